//! Listeners and connections: HTTP/1.1 and h2c on one port, header-read timeouts, and a
//! graceful shutdown that stops accepting and lets in-flight requests finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Connection-level settings shared by the proxy and admin listeners.
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    /// Time a client gets to send a request's headers (HTTP/1) before it is dropped.
    pub header_read_timeout: Duration,
    /// How long in-flight requests may run on after shutdown begins.
    pub shutdown_grace: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(25),
        }
    }
}

/// Something that answers requests on a listener.
pub trait Handler: Send + Sync + 'static {
    type Body: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;

    fn handle(
        &self,
        request: Request<Incoming>,
        local_addr: SocketAddr,
    ) -> impl Future<Output = Response<Self::Body>> + Send;
}

/// Accepts connections on `listener` until `shutdown` is cancelled, then waits up to the
/// grace period for open connections to finish their requests.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    settings: ServerSettings,
    shutdown: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(%error, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let local_addr = match stream.local_addr() {
            Ok(addr) => addr,
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        let handler = Arc::clone(&handler);
        let service = hyper::service::service_fn(move |request| {
            let handler = Arc::clone(&handler);
            async move { Ok::<_, Infallible>(handler.handle(request, local_addr).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, error = %error, "Connection ended with an error");
            }
        });
    }

    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(settings.shutdown_grace) => {
            tracing::warn!(grace_s = settings.shutdown_grace.as_secs(), "Shutdown grace period over; closing the remaining connections");
        }
    }
}

impl Handler for crate::proxy::Proxy {
    type Body = crate::proxy::ProxyBody;

    fn handle(
        &self,
        request: Request<Incoming>,
        local_addr: SocketAddr,
    ) -> impl Future<Output = Response<Self::Body>> + Send {
        crate::proxy::Proxy::handle(self, request, local_addr)
    }
}
