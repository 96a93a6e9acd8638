//! The attacks and careless-operator mistakes of the hardening review, each against the
//! real server: silent sockets, echoing upstreams, redirects that carry the key back,
//! malformed bodies, hostile paths, and config files built to exhaust memory.

use crate::support;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use credproxy::server::ServerSettings;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use support::binary::{binary, BinaryProxy};
use support::client::{self, get, raw, send};
use support::upstream::{full, Upstream};
use support::{within, InProcessProxy, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn bearer_source(upstream: &Upstream) -> String {
    format!(
        "sources:\n  s:\n    upstream: {}\n    auth_type: bearer\n    bearer_token: s3cr3t-bearer-token\n",
        upstream.url()
    )
}

async fn proxy_with(yaml: &str, server: ServerSettings) -> InProcessProxy {
    InProcessProxy::start_with(
        yaml,
        Options {
            server,
            ..Options::default()
        },
    )
    .await
}

/// Reads until the server closes the connection; what it sent.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    within("the server to close the connection", async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    received
}

// === Silent connections ===

#[tokio::test]
async fn silent_sockets_and_half_prefaces_are_closed_at_the_header_deadline() {
    let upstream = Upstream::recording().await;
    let settings = ServerSettings {
        header_read_timeout: Duration::from_millis(300),
        ..ServerSettings::default()
    };
    let proxy = proxy_with(&bearer_source(&upstream), settings).await;
    let h2_preface_and_settings = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
    let openings: [&[u8]; 5] = [
        b"",
        b"P",
        b"PRI * HTTP/2.0\r\n",
        h2_preface_and_settings,
        b"GET /s/x HTTP/1.1\r\nHost: a\r\n",
    ];
    let mut streams = Vec::new();
    for opening in openings {
        let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
        stream.write_all(opening).await.expect("write");
        streams.push(stream);
    }
    // Meanwhile an ordinary client is served.
    assert_eq!(get(&client::http1(), &proxy.url("/s/x")).await.status, 200);
    for (stream, opening) in streams.iter_mut().zip(openings) {
        let sent = until_closed(stream).await;
        // An h2 client is told why (GOAWAY, frame type 7); nobody gets a response.
        assert!(
            !String::from_utf8_lossy(&sent).contains("HTTP/1.1 200"),
            "{opening:?}: {sent:?}"
        );
    }
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn an_idle_h2c_connection_is_sent_goaway_after_the_idle_timeout() {
    let upstream = Upstream::recording().await;
    let settings = ServerSettings {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_millis(400),
        ..ServerSettings::default()
    };
    let proxy = proxy_with(&bearer_source(&upstream), settings).await;
    let tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut h2, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    // The h2 crate's connection answers PINGs and SETTINGS by itself, as long as it runs.
    let connection = tokio::spawn(connection);
    let request = Request::get(format!("http://{}/s/x", proxy.addr))
        .body(())
        .expect("request");
    let (response, _) = h2.send_request(request, true).expect("send");
    let response = within("the h2 response", response).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    while let Some(chunk) = within("the body", body.data()).await {
        chunk.expect("chunk");
    }
    let answered = tokio::time::Instant::now();
    // Nothing open: the server ends the connection, and the client's driver returns.
    let ended = within("the idle connection to end", connection).await;
    assert!(ended.expect("task").is_ok(), "a clean GOAWAY, not an error");
    let after = answered.elapsed();
    assert!(
        after >= Duration::from_millis(300) && after < Duration::from_secs(10),
        "closed {after:?} after the last stream: by the idle timeout, not the 10 s head deadline"
    );
}

#[tokio::test]
async fn a_flood_of_silent_connections_locks_out_no_one_for_long_and_never_blocks_healthz() {
    let upstream = Upstream::recording().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sources.yaml");
    std::fs::write(&path, bearer_source(&upstream)).expect("write");
    let proxy = BinaryProxy::start(
        &path,
        "info",
        &["--max-connections", "20", "--header-read-timeout", "1s"],
    );
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(TcpStream::connect(proxy.addr).await.expect("connect"));
    }
    for _ in 0..80 {
        silent.push(TcpStream::connect(proxy.admin_addr).await.expect("connect"));
    }
    // The admin listener has slots and deadlines of its own.
    let health = get(
        &client::http1(),
        &format!("http://{}/healthz", proxy.admin_addr),
    )
    .await;
    assert_eq!(health.status, 200);
    // Every proxy slot is taken by a silent socket; each is dropped at its deadline.
    let answer = get(&client::http1(), &proxy.url("/s/x")).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    for stream in &mut silent {
        until_closed(stream).await;
    }
}

// === Nothing comes back with the credential in it ===

#[tokio::test]
async fn trace_and_track_are_405_and_never_reach_an_echoing_upstream() {
    // Apache's default: TRACE answers with the request it received, headers included.
    let upstream = Upstream::with_handler(|request| async move {
        let echoed = format!("{:?}", request.headers());
        Response::new(full(echoed))
    })
    .await;
    let proxy = InProcessProxy::start(&bearer_source(&upstream)).await;
    for method in ["TRACE", "TRACK"] {
        let request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(proxy.url("/s/x"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let answer = send(&client::http1(), request).await;
        answer.assert_problem(405, "method_not_allowed");
        assert!(answer.headers.contains_key("allow"));
        assert!(!answer.text().contains("s3cr3t"), "{}", answer.text());
    }
    let (status, _) = raw(
        proxy.addr,
        "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405);
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn redirects_links_and_echoed_headers_never_carry_the_credential_back() {
    // An upstream that keeps the query string in its redirects and pagination links, and
    // echoes what it was sent in debugging headers.
    let upstream = Upstream::with_handler(|request| async move {
        let target = request.uri().to_string();
        let authority = request
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let echo = |name: &str| {
            request
                .headers()
                .get(name)
                .cloned()
                .unwrap_or(http::HeaderValue::from_static("-"))
        };
        Response::builder()
            .status(302)
            .header("location", format!("http://{authority}{target}&page=2"))
            .header("link", format!("<{target}&page=3>; rel=\"next\""))
            .header("x-echo-auth", echo("authorization"))
            .header("x-echo-extra", echo("x-extra"))
            .header("x-request-id", "kept")
            .body(full("moved"))
            .expect("response")
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sources.yaml");
    let yaml = format!(
        "sources:\n  q:\n    upstream: {up}/v1\n    auth_type: api_key\n    api_key_name: api_key\n    api_key_value: s3cr3t-query-key\n    api_key_in: query\n  b:\n    upstream: {up}\n    auth_type: bearer\n    bearer_token: s3cr3t-bearer-token\n    headers:\n      X-Extra: s3cr3t-extra-header\n",
        up = upstream.url()
    );
    std::fs::write(&path, yaml).expect("write");
    let proxy = BinaryProxy::start(&path, "trace", &[]);

    let answer = get(&client::http1(), &proxy.url("/q/items?API_KEY=forged&a=1")).await;
    assert_eq!(answer.status, 302);
    assert_eq!(answer.headers["location"], "/q/items?a=1&page=2");
    assert_eq!(
        answer.headers["link"],
        "</v1/items?a=1&page=3>; rel=\"next\""
    );
    // The key reached the upstream, first and alone.
    assert_eq!(
        upstream.single().target,
        "/v1/items?api_key=s3cr3t-query-key&a=1"
    );

    let answer = get(&client::http1(), &proxy.url("/b/x")).await;
    assert!(
        !answer.headers.contains_key("x-echo-auth"),
        "{:?}",
        answer.headers
    );
    assert!(
        !answer.headers.contains_key("x-echo-extra"),
        "{:?}",
        answer.headers
    );
    assert_eq!(answer.headers["x-request-id"], "kept");
    assert_eq!(answer.headers["location"], "/b/x&page=2");

    let metrics = get(
        &client::http1(),
        &format!("http://{}/metrics", proxy.admin_addr),
    )
    .await
    .text();
    assert!(
        metrics.contains("credproxy_response_headers_dropped_total{source=\"b\"} 2"),
        "{metrics}"
    );
    let output = proxy.output_when("the drop is logged", |o| o.contains("x-echo-auth"));
    for secret in [
        "s3cr3t-query-key",
        "s3cr3t-bearer-token",
        "s3cr3t-extra-header",
    ] {
        assert!(
            !output.contains(secret),
            "{secret} in the trace log:\n{output}"
        );
    }
}

// === Hostile requests ===

#[tokio::test]
async fn hostile_paths_hosts_and_bodies_are_the_callers_400() {
    let upstream = Upstream::recording().await;
    let yaml = format!(
        "sources:\n  s:\n    upstream: {up}\n    auth_type: bearer\n    bearer_token: t\n",
        up = upstream.url()
    );
    let proxy = InProcessProxy::start(&yaml).await;
    for request in [
        "GET /s/..;/x HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /s/.;/x HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /s/%2e%2e;x=1/y HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /s//evil.example/x HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /s/x HTTP/1.1\r\n\r\n",
        // A chunk size that is not hex: the caller's body is broken, not the upstream.
        "POST /s/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    ] {
        let (status, text) = raw(proxy.addr, request).await;
        assert_eq!(status, 400, "{request:?}: {text}");
        assert!(text.contains("\"code\":\"bad_request\""), "{request:?}: {text}");
    }
    let counted: Vec<(&str, u64)> = proxy
        .store
        .load()
        .source("s")
        .expect("s")
        .metrics
        .requests
        .values()
        .collect();
    assert!(
        counted.iter().all(|(class, _)| *class == "4xx"),
        "{counted:?}"
    );
    // The broken body's head may have been sent on; its body never completed upstream.
    assert!(upstream.requests().iter().all(|r| r.body.is_empty()));
}

// === Config files built to exhaust memory ===

/// Runs `credproxy check` on `text` with its address space capped, so that a file which
/// expanded in memory would fail the allocation instead of passing.
fn check_capped(dir: &Path, name: &str, text: &str) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" check --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_credproxy"))
        .arg(&path)
        .output()
        .expect("run check");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn expanding_files_are_rejected_in_bounded_memory_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut alias_bomb = format!("big: &big {}\nsources:\n", "x".repeat(1_000_000));
    for i in 0..3000 {
        alias_bomb.push_str(&format!(
            "  s{i}: {{ upstream: http://x, auth_type: bearer, bearer_token: *big }}\n"
        ));
    }
    let mut nested = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = vec![format!("*l{}", i - 1); 10].join(", ");
        nested.push_str(&format!("l{i}: &l{i} [{prev}]\n"));
    }
    nested.push_str("sources: {}\n");
    let deep = format!("sources: {}\n", "[".repeat(200_000));
    for (name, text, expected) in [
        (
            "alias.yaml",
            alias_bomb.as_str(),
            "aliases repeat their anchor's content",
        ),
        ("nested.yaml", nested.as_str(), "YAML nodes"),
        ("deep.yaml", deep.as_str(), "nests lists and maps"),
    ] {
        let (ok, stderr) = check_capped(dir.path(), name, text);
        assert!(!ok, "{name} was accepted");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(!stderr.contains("memory allocation"), "{name}: {stderr}");
    }
    let too_big = dir.path().join("big.yaml");
    let file = std::fs::File::create(&too_big).expect("create");
    file.set_len(33 * 1024 * 1024).expect("grow");
    let output = binary()
        .args(["check", "--config"])
        .arg(&too_big)
        .output()
        .expect("check");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is larger than 33554432 bytes"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn thousands_of_problems_are_listed_up_to_a_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from("sources:\n");
    for i in 0..4000 {
        text.push_str(&format!(
            "  s{i}: {{ upstream: \"http://x\", auth_type: bogus }}\n"
        ));
    }
    let (ok, stderr) = check_capped(dir.path(), "many.yaml", &text);
    assert!(!ok);
    assert!(stderr.contains(": 4,000 problems"), "{stderr}");
    assert!(stderr.trim_end().ends_with("… and 3,900 more"), "{stderr}");
    assert_eq!(stderr.lines().count(), 102, "{stderr}");
}

#[test]
fn check_never_prints_a_value_whatever_shape_it_takes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "sources:\n  a:\n    upstream: http://x\n    auth_type: bearer\n    bearer_token: 314159265358979323846264338327950288\n  b:\n    upstream: http://x\n    auth_type: bearer\n    bearer_token: 0x1f2e3d4c5b6a79880123456789abcdef\n  c: { upstream: \"http://x\", auth_type: bearer, bearer_token: hunter2,correcthorseSECRET }\n  d:\n    upstream: http://x\n    auth_type: none\n    headers: { X-Key: pass,hunter3SECRET }\n  e:\n    upstream: http://x\n    auth_type: bearer\n    bearer_token: { hunter4SECRET: x }\n";
    let (ok, stderr) = check_capped(dir.path(), "values.yaml", text);
    assert!(!ok);
    for fragment in [
        "314159",
        "1f2e3d",
        "hunter2",
        "correcthorse",
        "hunter3",
        "hunter4",
        "SECRET",
    ] {
        assert!(!stderr.contains(fragment), "{fragment}:\n{stderr}");
    }
    for expected in [
        "sources.a.bearer_token: a secret that YAML reads as a number or boolean must be quoted",
        "sources.b.bearer_token: a secret that YAML reads as a number",
        "sources.c: unknown field; the known ones are",
        "sources.d.headers: an entry has no value",
        "sources.e.bearer_token: a secret is a string, or one of",
    ] {
        assert!(stderr.contains(expected), "{expected}:\n{stderr}");
    }
}
