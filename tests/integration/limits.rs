//! Limits: request smuggling, slow and idle clients, connection count, header size.

use crate::support;

use std::time::Duration;

use credproxy::server::ServerSettings;
use support::client::read_response;
use support::upstream::Upstream;
use support::{within, InProcessProxy, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn proxy_with(upstream: &Upstream, server: ServerSettings) -> InProcessProxy {
    let yaml = format!(
        "sources:\n  s:\n    upstream: {}\n    auth_type: bearer\n    bearer_token: t\n",
        upstream.url()
    );
    InProcessProxy::start_with(
        &yaml,
        Options {
            server,
            ..Options::default()
        },
    )
    .await
}

#[tokio::test]
async fn conflicting_content_length_and_transfer_encoding_is_400_and_never_forwarded() {
    let upstream = Upstream::recording().await;
    let proxy = proxy_with(&upstream, ServerSettings::default()).await;
    for smuggle in [
        "POST /s/x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /s/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        "POST /s/x HTTP/1.1\r\nHost: a\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 4\r\n\r\n0\r\n\r\n",
        // Whatever the length says, if it says anything next to a Transfer-Encoding.
        "POST /s/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: abc\r\n\r\n0\r\n\r\n",
        "POST /s/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: -1\r\n\r\n0\r\n\r\n",
        "POST /s/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5, 5\r\n\r\n0\r\n\r\n",
    ] {
        // On a kept-alive connection, after an honest request with a body.
        let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
        let honest = "POST /s/ok HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        stream.write_all(honest.as_bytes()).await.expect("write");
        assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
        stream.write_all(smuggle.as_bytes()).await.expect("write");
        let response = read_response(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
        assert!(response.contains("\"code\":\"bad_request\""), "{response}");
        assert!(response.contains("Content-Length and Transfer-Encoding"), "{response}");
    }
    // Only the honest requests reached the upstream.
    let targets: Vec<String> = upstream.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/ok"; 6]);

    // Other framing errors hyper refuses itself.
    for bad in [
        "POST /s/x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        "POST /s/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST /s/x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        let (status, _) = support::client::raw(proxy.addr, bad).await;
        assert_eq!(status, 400, "{bad:?}");
    }
    assert_eq!(upstream.requests().len(), 6);
}

#[tokio::test]
async fn slow_loris_clients_are_dropped_and_do_not_block_others() {
    let upstream = Upstream::recording().await;
    let settings = ServerSettings {
        header_read_timeout: Duration::from_millis(500),
        ..ServerSettings::default()
    };
    let proxy = proxy_with(&upstream, settings).await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
        stream
            .write_all(b"GET /s/x HTTP/1.1\r\nHost: a\r\nX-Slow: ")
            .await
            .expect("write");
        slow.push(stream);
    }
    // Meanwhile an ordinary client is served.
    let answer = support::client::get(&support::client::http1(), &proxy.url("/s/fast")).await;
    assert_eq!(answer.status, 200);
    // Each slow client is cut off at the header timeout, whatever it still sends.
    let started = tokio::time::Instant::now();
    for stream in &mut slow {
        let _ = stream.write_all(b"a").await;
        let mut buf = [0u8; 256];
        // hyper may answer 408 before closing; either way the connection ends.
        within("the server to drop a slow client", async {
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let upstream = Upstream::recording().await;
    let settings = ServerSettings {
        header_read_timeout: Duration::from_millis(300),
        ..ServerSettings::default()
    };
    let proxy = proxy_with(&upstream, settings).await;
    let mut stream = served_connection(proxy.addr).await;
    let mut buf = [0u8; 64];
    let n = within("the idle connection to close", stream.read(&mut buf))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0, "the server closed the idle connection");
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let upstream = Upstream::recording().await;
    let proxy = proxy_with(&upstream, ServerSettings::default()).await;
    let big = "a".repeat(100 * 1024);
    let (status, _) = support::client::raw(
        proxy.addr,
        &format!("GET /s/x HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 431);
    assert!(upstream.requests().is_empty());
}

/// A connection on which one request has been answered 200, kept alive.
async fn served_connection(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /s/x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    stream
}
