//! The request path end to end, in process: routing, cleaning, injection, forwarding,
//! errors. A real upstream on 127.0.0.1:0 records what arrived.

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::Full;
use support::client::{self, get, send};
use support::upstream::{full, Upstream};
use support::InProcessProxy;

fn sources(upstream: &str) -> String {
    format!(
        r#"
sources:
  open:
    upstream: {upstream}/open/
    auth_type: none
  basic:
    upstream: {upstream}/v1
    auth_type: http_basic
    basic_username: user
    basic_password: pass
  key-header:
    upstream: {upstream}
    auth_type: api_key
    api_key_name: X-API-Key
    api_key_value: header-key
    headers:
      X-Second-Key: second
      X-Client: credproxy-test
  key-query:
    upstream: {upstream}/q
    auth_type: api_key
    api_key_name: api_key
    api_key_value: "query key&="
    api_key_in: query
  token:
    upstream: {upstream}
    auth_type: bearer
    bearer_token: static-token
"#
    )
}

async fn setup() -> (Upstream, InProcessProxy) {
    let upstream = Upstream::recording().await;
    let proxy = InProcessProxy::start(&sources(&upstream.url())).await;
    (upstream, proxy)
}

#[tokio::test]
async fn http_basic_is_injected_and_the_path_joins_the_base() {
    let (upstream, proxy) = setup().await;
    let answer = get(&client::http1(), &proxy.url("/basic/pets?limit=1&q=a%2Fb")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "ok");
    let seen = upstream.single();
    assert_eq!(seen.target, "/v1/pets?limit=1&q=a%2Fb");
    assert_eq!(
        seen.header("authorization").as_deref(),
        Some("Basic dXNlcjpwYXNz")
    );
    assert_eq!(seen.header("host"), Some(upstream.addr.to_string()));
}

#[tokio::test]
async fn source_alone_goes_to_the_base_path_and_encoded_slashes_stay() {
    let (upstream, proxy) = setup().await;
    let http = client::http1();
    get(&http, &proxy.url("/basic")).await;
    get(&http, &proxy.url("/open")).await;
    get(&http, &proxy.url("/open/repos/a%2Fb/x%20y")).await;
    let targets: Vec<String> = upstream.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/v1", "/open", "/open/repos/a%2Fb/x%20y"]);
}

#[tokio::test]
async fn a_callers_authorization_is_replaced_never_duplicated() {
    let (upstream, proxy) = setup().await;
    let request = Request::get(proxy.url("/token/me"))
        .header("authorization", "Bearer caller-token")
        .header("authorization", "Basic Y2FsbGVyOmNhbGxlcg==")
        .body(Full::default())
        .expect("request");
    send(&client::http1(), request).await;
    let seen = upstream.single();
    assert_eq!(seen.header_values("authorization"), ["Bearer static-token"]);
}

#[tokio::test]
async fn auth_type_none_passes_the_callers_authorization() {
    let (upstream, proxy) = setup().await;
    let request = Request::get(proxy.url("/open/x"))
        .header("authorization", "Bearer caller-token")
        .body(Full::default())
        .expect("request");
    send(&client::http1(), request).await;
    assert_eq!(
        upstream.single().header("authorization").as_deref(),
        Some("Bearer caller-token")
    );
}

#[tokio::test]
async fn api_key_header_and_extra_headers_replace_the_callers() {
    let (upstream, proxy) = setup().await;
    let request = Request::get(proxy.url("/key-header/x"))
        .header("x-api-key", "forged")
        .header("X-Second-Key", "forged")
        .body(Full::default())
        .expect("request");
    send(&client::http1(), request).await;
    let seen = upstream.single();
    assert_eq!(seen.header_values("x-api-key"), ["header-key"]);
    assert_eq!(seen.header_values("x-second-key"), ["second"]);
    assert_eq!(seen.header("x-client").as_deref(), Some("credproxy-test"));
    assert_eq!(seen.header("authorization"), None);
}

#[tokio::test]
async fn api_key_in_query_replaces_a_same_named_parameter() {
    let (upstream, proxy) = setup().await;
    let http = client::http1();
    get(
        &http,
        &proxy.url("/key-query/search?api_key=forged&q=1&api%5Fkey=again"),
    )
    .await;
    get(&http, &proxy.url("/key-query")).await;
    let targets: Vec<String> = upstream.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        [
            "/q/search?api_key=query%20key%26%3D&q=1",
            "/q?api_key=query%20key%26%3D"
        ]
    );
}

#[tokio::test]
async fn hop_by_hop_and_connection_listed_headers_are_dropped_before_injection() {
    let (upstream, proxy) = setup().await;
    // Raw, because a well-behaved client would not send these.
    let request = "GET /token/x HTTP/1.1\r\nHost: localhost\r\n\
        Connection: close, Authorization, X-Drop-Me\r\nX-Drop-Me: 1\r\nKeep-Alive: timeout=5\r\n\
        Proxy-Authorization: Bearer caller-secret\r\nTE: trailers\r\nUpgrade: websocket\r\n\
        Authorization: Bearer forged\r\nX-Keep: yes\r\n\r\n";
    let (status, _) = client::raw(proxy.addr, request).await;
    assert_eq!(status, 200);
    let seen = upstream.single();
    assert_eq!(seen.header_values("authorization"), ["Bearer static-token"]);
    for gone in [
        "x-drop-me",
        "keep-alive",
        "proxy-authorization",
        "te",
        "upgrade",
        "connection",
    ] {
        assert_eq!(seen.header(gone), None, "{gone} reached the upstream");
    }
    assert_eq!(seen.header("x-keep").as_deref(), Some("yes"));
}

#[tokio::test]
async fn unknown_source_is_a_404_problem() {
    let (upstream, proxy) = setup().await;
    let http = client::http1();
    get(&http, &proxy.url("/nope/x"))
        .await
        .assert_problem(404, "unknown_source");
    get(&http, &proxy.url("/"))
        .await
        .assert_problem(404, "unknown_source");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn dot_segments_and_foreign_absolute_targets_are_400_and_never_forwarded() {
    let (upstream, proxy) = setup().await;
    for target in [
        "/basic/../token/x",
        "/basic/%2e%2e/token",
        "/basic/a/%2E",
        "/basic/..%2Fx",
    ] {
        let (status, text) = client::raw(
            proxy.addr,
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 400, "{target}: {text}");
        assert!(text.contains("\"code\":\"bad_request\""), "{text}");
    }
    let (status, text) = client::raw(
        proxy.addr,
        "GET http://evil.example/basic/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400, "{text}");
    let own = format!(
        "GET http://{}/basic/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        proxy.addr
    );
    let (status, _) = client::raw(proxy.addr, &own).await;
    assert_eq!(status, 200);
    assert_eq!(upstream.single().target, "/v1/x");
}

#[tokio::test]
async fn h2c_in_http1_out() {
    let (upstream, proxy) = setup().await;
    let answer = get(&client::h2c(), &proxy.url("/basic/h2?x=1")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let seen = upstream.single();
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(seen.target, "/v1/h2?x=1");
    assert_eq!(
        seen.header("authorization").as_deref(),
        Some("Basic dXNlcjpwYXNz")
    );
}

#[tokio::test]
async fn https_upstream_speaks_http2_by_alpn_and_http1_clients_get_it() {
    let (roots, tls) = support::upstream::test_tls();
    let upstream = Upstream::tls_recording(tls).await;
    let yaml = format!(
        "sources:\n  secure:\n    upstream: https://localhost:{}/api\n    auth_type: bearer\n    bearer_token: tls-token\n",
        upstream.addr.port()
    );
    let proxy = InProcessProxy::start_with(
        &yaml,
        support::Options {
            roots: Some(roots),
            ..Default::default()
        },
    )
    .await;
    for client in [client::http1(), client::h2c()] {
        let answer = get(&client, &proxy.url("/secure/v?x=1")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    for seen in requests {
        assert_eq!(seen.version, Version::HTTP_2);
        assert_eq!(seen.target, "/api/v?x=1");
        assert_eq!(
            seen.header("authorization").as_deref(),
            Some("Bearer tls-token")
        );
    }
    // Both requests went over one pooled HTTP/2 connection.
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn untrusted_upstream_certificate_is_a_502() {
    let (_roots, tls) = support::upstream::test_tls();
    let upstream = Upstream::tls_recording(tls).await;
    let yaml = format!(
        "sources:\n  secure:\n    upstream: https://localhost:{}\n    auth_type: bearer\n    bearer_token: t\n",
        upstream.addr.port()
    );
    // Public roots only: the test CA is not trusted.
    let proxy = InProcessProxy::start(&yaml).await;
    get(&client::http1(), &proxy.url("/secure/x"))
        .await
        .assert_problem(502, "upstream_unreachable");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn upstream_connections_are_pooled() {
    let (upstream, proxy) = setup().await;
    let http = client::http1();
    for _ in 0..5 {
        assert_eq!(
            get(&http, &proxy.url("/token/x")).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(upstream.requests().len(), 5);
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn unreachable_upstream_is_a_502_problem() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let proxy = InProcessProxy::start(&format!(
        "sources:\n  gone:\n    upstream: http://127.0.0.1:{port}\n    auth_type: none\n"
    ))
    .await;
    get(&client::http1(), &proxy.url("/gone/x"))
        .await
        .assert_problem(502, "upstream_unreachable");
}

#[tokio::test]
async fn slow_upstream_is_a_504_problem() {
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let held = std::sync::Mutex::new(Some(held));
    let upstream = Upstream::with_handler(move |_| {
        let held = held.lock().expect("lock").take();
        async move {
            if let Some(held) = held {
                let _ = held.await;
            }
            http::Response::new(full("late"))
        }
    })
    .await;
    let options = support::Options {
        client: credproxy::proxy::ClientSettings {
            response_timeout: Duration::from_millis(300),
            ..Default::default()
        },
        ..Default::default()
    };
    let yaml = format!(
        "sources:\n  slow:\n    upstream: {}\n    auth_type: none\n",
        upstream.url()
    );
    let proxy = InProcessProxy::start_with(&yaml, options).await;
    get(&client::http1(), &proxy.url("/slow/x"))
        .await
        .assert_problem(504, "upstream_timeout");
    drop(release);
}

#[tokio::test]
async fn upstream_status_headers_and_body_pass_back() {
    let upstream = Upstream::with_handler(|_| async {
        http::Response::builder()
            .status(StatusCode::CREATED)
            .header("x-upstream", "1")
            .header("connection", "x-upstream-hop")
            .header("x-upstream-hop", "drop")
            .body(full(Bytes::from_static(b"{\"id\":7}")))
            .expect("response")
    })
    .await;
    let proxy = InProcessProxy::start(&format!(
        "sources:\n  s:\n    upstream: {}\n    auth_type: none\n",
        upstream.url()
    ))
    .await;
    let answer = get(&client::h2c(), &proxy.url("/s/items")).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.headers["x-upstream"], "1");
    assert!(answer.headers.get("x-upstream-hop").is_none());
    assert_eq!(answer.text(), "{\"id\":7}");
}

#[tokio::test]
async fn post_bodies_are_forwarded() {
    let (upstream, proxy) = setup().await;
    let request = Request::post(proxy.url("/token/items"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"name\":\"x\"}")))
        .expect("request");
    assert_eq!(send(&client::http1(), request).await.status, StatusCode::OK);
    let seen = upstream.single();
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(&seen.body[..], b"{\"name\":\"x\"}");
    assert_eq!(
        seen.header("content-type").as_deref(),
        Some("application/json")
    );
}
