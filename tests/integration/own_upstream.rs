//! `--upstream-per-caller`: an HTTP/1 caller connection's own upstream connection
//! (`proxy/local.rs`), reused while both sides keep it alive, replaced when either closes
//! it or it breaks, and never handed to another request half-read.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::Request;
use http_body_util::Full;
use support::client::{self, read_response, send};
use support::upstream::{full, Upstream};
use support::{within, InProcessProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The proxy with `--upstream-per-caller`.
async fn start(yaml: &str) -> InProcessProxy {
    let options = support::Options {
        upstream_per_caller: true,
        ..Default::default()
    };
    InProcessProxy::start_with(yaml, options).await
}

fn config(upstream: &str) -> String {
    format!(
        "sources:\n  up:\n    upstream: {upstream}/v1\n    auth_type: bearer\n    bearer_token: up-token\n"
    )
}

#[tokio::test]
async fn one_downstream_connection_keeps_one_upstream_connection() {
    let upstream = Upstream::recording().await;
    let proxy = start(&config(&upstream.url())).await;
    let client = client::http1(); // one pooled connection, reused
    for i in 0..20 {
        let answer = support::client::get(&client, &proxy.url(&format!("/up/items/{i}"))).await;
        assert_eq!(answer.status, 200);
    }
    assert_eq!(upstream.connections(), 1);
    let seen = upstream.requests();
    assert_eq!(seen.len(), 20);
    assert_eq!(seen[7].target, "/v1/items/7");
    assert_eq!(
        seen[7].header("authorization").as_deref(),
        Some("Bearer up-token")
    );
    assert_eq!(
        seen[7].header("host").as_deref(),
        Some(&*upstream.addr.to_string())
    );
    // Another downstream connection has its own.
    let other = client::http1();
    support::client::get(&other, &proxy.url("/up/x")).await;
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let upstream = Upstream::recording().await;
    let proxy = start(&config(&upstream.url())).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let two = "GET /up/first HTTP/1.1\r\nHost: p\r\n\r\nGET /up/second HTTP/1.1\r\nHost: p\r\n\r\n";
    stream.write_all(two.as_bytes()).await.expect("write");
    let first = read_response(&mut stream).await;
    let second = read_response(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    let targets: Vec<_> = upstream.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/v1/first", "/v1/second"]);
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn an_upstream_that_says_close_gets_a_new_connection_next_time() {
    let upstream = Upstream::with_handler(|_request| async {
        http::Response::builder()
            .header("connection", "close")
            .body(full("bye"))
            .expect("response")
    })
    .await;
    let proxy = start(&config(&upstream.url())).await;
    let client = client::http1();
    for _ in 0..3 {
        let answer = support::client::get(&client, &proxy.url("/up/x")).await;
        assert_eq!(
            (answer.status.as_u16(), answer.text().as_str()),
            (200, "bye")
        );
    }
    assert_eq!(upstream.connections(), 3);
}

/// A raw upstream: answers each request with `respond(n)` (`n` counts requests over all
/// connections), and closes the connection after it when `respond` says so.
struct RawUpstream {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl RawUpstream {
    async fn start(respond: fn(usize) -> (String, bool)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let (count, requests) = (Arc::clone(&connections), Arc::new(AtomicUsize::new(0)));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let requests = Arc::clone(&requests);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let Ok(n) = stream.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        head.extend_from_slice(&buf[..n]);
                        while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                            head.drain(..end + 4);
                            let (answer, close) = respond(requests.fetch_add(1, Ordering::SeqCst));
                            if stream.write_all(answer.as_bytes()).await.is_err() || close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, connections }
    }
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_replaced() {
    // Keep-alive implied, then the upstream closes anyway (an idle timeout, say).
    let upstream = RawUpstream::start(|n| {
        (
            format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{:02}", n),
            true,
        )
    })
    .await;
    let proxy = start(&config(&format!("http://{}", upstream.addr))).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    for n in 0..3 {
        stream
            .write_all(b"GET /up/x HTTP/1.1\r\nHost: p\r\n\r\n")
            .await
            .expect("write");
        let answer = read_response(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "request {n}: {answer}");
        assert!(answer.ends_with(&format!("{n:02}")), "{answer}");
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_upstream_that_breaks_mid_body_takes_only_that_response_with_it() {
    // The first answer promises 100 bytes and sends 10; the next ones are whole.
    let upstream = RawUpstream::start(|n| match n {
        0 => (
            "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789".to_owned(),
            true,
        ),
        _ => (
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_owned(),
            false,
        ),
    })
    .await;
    let proxy = start(&config(&format!("http://{}", upstream.addr))).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET /up/x HTTP/1.1\r\nHost: p\r\n\r\n")
        .await
        .expect("write");
    // The caller never gets a whole response: the connection closes, before the head or
    // short of the promised length, depending on how far the head got.
    let mut received = Vec::new();
    within("the cut-off response", stream.read_to_end(&mut received))
        .await
        .expect("read");
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.is_empty()
            || (text.starts_with("HTTP/1.1 200") && !text.contains(&"0123456789".repeat(2))),
        "{text}"
    );
    // A new downstream connection, a new upstream one, a whole answer.
    let answer = support::client::get(&client::http1(), &proxy.url("/up/y")).await;
    assert_eq!(
        (answer.status.as_u16(), answer.text().as_str()),
        (200, "ok")
    );
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_response_dropped_half_read_does_not_hand_its_connection_on() {
    // A large body the client abandons: the next request must not read its rest.
    let upstream = Upstream::with_handler(|request| async move {
        let body = if request.uri().path().ends_with("/big") {
            vec![b'x'; 4 << 20]
        } else {
            b"small".to_vec()
        };
        http::Response::new(full(body))
    })
    .await;
    let proxy = start(&config(&upstream.url())).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET /up/big HTTP/1.1\r\nHost: p\r\n\r\n")
        .await
        .expect("write");
    let mut first = [0u8; 1024];
    let n = within("the big head", stream.read(&mut first))
        .await
        .expect("read");
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    drop(stream); // the client gives up mid-body
    let answer = support::client::get(&client::http1(), &proxy.url("/up/small")).await;
    assert_eq!(
        (answer.status.as_u16(), answer.text().as_str()),
        (200, "small")
    );
}

#[tokio::test]
async fn a_client_that_says_close_is_answered_and_closed() {
    let upstream = Upstream::recording().await;
    let proxy = start(&config(&upstream.url())).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET /up/x HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut received = Vec::new();
    within("the proxy to close", stream.read_to_end(&mut received))
        .await
        .expect("read");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // Nothing of the caller's `Connection: close` is forwarded (a hop-by-hop header).
    assert_eq!(upstream.single().header("connection"), None);
}

#[tokio::test]
async fn h2_callers_share_the_pool() {
    let upstream = Upstream::recording().await;
    let proxy = start(&config(&upstream.url())).await;
    let h2 = client::h2c();
    for i in 0..8 {
        let request = Request::get(proxy.url(&format!("/up/{i}")))
            .body(Full::default())
            .expect("request");
        assert_eq!(send(&h2, request).await.status, 200);
    }
    assert_eq!(upstream.requests().len(), 8);
    assert_eq!(upstream.connections(), 1, "the pool kept its connection");
}

#[tokio::test]
async fn a_caller_alternating_between_sources_keeps_one_own_and_shares_the_pool() {
    let (a, b) = (Upstream::recording().await, Upstream::recording().await);
    let yaml = format!(
        "sources:\n  a:\n    upstream: {}\n    auth_type: none\n  b:\n    upstream: {}\n    auth_type: none\n",
        a.url(),
        b.url()
    );
    let proxy = start(&yaml).await;
    let client = client::http1();
    for i in 0..10 {
        let source = if i % 2 == 0 { "a" } else { "b" };
        let answer = support::client::get(&client, &proxy.url(&format!("/{source}/{i}"))).await;
        assert_eq!(answer.status, 200);
    }
    assert_eq!((a.requests().len(), b.requests().len()), (5, 5));
    // `a` on the connection's own (it came first), `b` on the pool: one each, kept.
    assert_eq!((a.connections(), b.connections()), (1, 1));
}

#[tokio::test]
async fn by_default_caller_connections_share_the_pool() {
    let upstream = Upstream::recording().await;
    let pooled = InProcessProxy::start(&config(&upstream.url())).await;
    for _ in 0..3 {
        let answer = support::client::get(&client::http1(), &pooled.url("/up/x")).await;
        assert_eq!(answer.status, 200);
    }
    assert_eq!(
        upstream.connections(),
        1,
        "three callers, one pooled connection"
    );

    let upstream = Upstream::recording().await;
    let own = start(&config(&upstream.url())).await;
    for _ in 0..3 {
        support::client::get(&client::http1(), &own.url("/up/x")).await;
    }
    assert_eq!(upstream.connections(), 3, "one per caller connection");
}
