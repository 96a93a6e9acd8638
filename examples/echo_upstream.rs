//! A demo upstream for the example config: answers every request with the request it
//! received (method, target, headers), so you can see what credproxy injected.
//!
//! `cargo run --example echo_upstream [ADDR]` (default 127.0.0.1:9999). It echoes
//! credentials back on purpose; never point a real client at it.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("echo upstream on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                let mut text = format!(
                    "{} {} {:?}\n",
                    request.method(),
                    request.uri(),
                    request.version()
                );
                for (name, value) in request.headers() {
                    text.push_str(&format!(
                        "{name}: {}\n",
                        String::from_utf8_lossy(value.as_bytes())
                    ));
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
