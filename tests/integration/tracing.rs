//! OpenTelemetry: the real binary exports spans over OTLP/HTTP to a collector that decodes
//! the protobuf; the caller's W3C trace context is their parent, and the upstream gets the
//! context of the upstream call's span. Off by default, the caller's headers pass through
//! untouched; a collector that is down or silent costs requests nothing.

use crate::support;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use opentelemetry_proto::tonic::trace::v1::Span;
use support::binary::BinaryProxy;
use support::client::{self, send};
use support::collector::{attribute, Collector};
use support::token_endpoint::TokenEndpoint;
use support::upstream::Upstream;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const SECRETS: [&str; 5] = [
    "s3cr3t-trace-bearer",
    "s3cr3t-trace-client",
    "s3cr3t-trace-query",
    "s3cr3t-trace-caller",
    // What the token endpoint issues: `tok-1`, `tok-2`…
    "tok-",
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn config(upstream: &str, idp: &str) -> String {
    let caller = credproxy::caller::token_sha256_hex("s3cr3t-trace-caller");
    format!(
        "sources:\n  static:\n    upstream: {upstream}\n    auth_type: bearer\n    bearer_token: s3cr3t-trace-bearer\n  \
         cc:\n    upstream: {upstream}/cc\n    auth_type: oauth2\n    oauth2_token_url: {idp}\n    \
         oauth2_client_id: tracer\n    oauth2_client_secret: s3cr3t-trace-client\n  \
         down:\n    upstream: http://127.0.0.1:1\n    auth_type: none\n\
         callers:\n  executor:\n    token_sha256: {caller}\n    sources: [\"*\"]\n"
    )
}

/// A GET as the `executor` caller, with these extra headers.
async fn call(proxy: &BinaryProxy, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = http::Request::get(proxy.url(path))
        .header("proxy-authorization", "Bearer s3cr3t-trace-caller");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Default::default()).expect("request");
    send(&client::http1(), request).await.status.as_u16()
}

fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span {name} in {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

#[tokio::test]
async fn spans_continue_the_callers_trace_and_the_upstream_continues_ours() {
    let collector = Collector::start().await;
    let upstream = Upstream::recording().await;
    let idp = TokenEndpoint::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sources.yaml");
    std::fs::write(&path, config(&upstream.url(), &idp.url())).expect("write");
    let proxy = BinaryProxy::start_with_env(
        &path,
        "trace",
        &["--otlp-endpoint", &collector.url()],
        &[("OTEL_BSP_SCHEDULE_DELAY", "50")],
    );

    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let status = call(
        &proxy,
        "/cc/invoices?api_key=s3cr3t-trace-query",
        &[
            ("traceparent", &traceparent),
            ("tracestate", "vendor=opaque"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    // No context from the caller: a trace of our own. A malformed one is no context.
    assert_eq!(call(&proxy, "/static/a", &[]).await, 200);
    assert_eq!(
        call(
            &proxy,
            "/static/b",
            &[("traceparent", "00-zz-not-a-trace-01")]
        )
        .await,
        200
    );
    assert_eq!(call(&proxy, "/down/x", &[]).await, 502);

    support::eventually("the spans of four requests", || async {
        collector
            .spans()
            .iter()
            .filter(|s| s.kind == SpanKind::Server as i32)
            .count()
            >= 4
    })
    .await;
    let spans = collector.spans();
    let ours: Vec<Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == TRACE_ID)
        .cloned()
        .collect();
    assert_eq!(ours.len(), 3, "server, token fetch, upstream: {ours:?}");

    let server = named(&ours, "GET cc");
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    let attrs = &server.attributes;
    assert_eq!(
        attribute(attrs, "credproxy.source.id").as_deref(),
        Some("cc")
    );
    assert_eq!(
        attribute(attrs, "credproxy.auth_type").as_deref(),
        Some("oauth2")
    );
    assert_eq!(
        attribute(attrs, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attribute(attrs, "credproxy.token").as_deref(),
        Some("fetched")
    );

    let fetch = named(&ours, "token fetch");
    assert_eq!(fetch.parent_span_id, server.span_id);
    assert!(fetch.start_time_unix_nano >= server.start_time_unix_nano);
    assert!(fetch.end_time_unix_nano <= server.end_time_unix_nano);

    let call_span = named(&ours, "upstream");
    assert_eq!(call_span.kind, SpanKind::Client as i32);
    assert_eq!(call_span.parent_span_id, server.span_id);
    assert_eq!(
        attribute(&call_span.attributes, "http.response.status_code").as_deref(),
        Some("200")
    );

    // The upstream was called inside our upstream span, with the caller's trace state.
    let received = upstream.requests();
    let first = &received[0];
    assert_eq!(
        first.header("traceparent"),
        Some(format!("00-{TRACE_ID}-{}-01", hex(&call_span.span_id)))
    );
    assert_eq!(first.header("tracestate").as_deref(), Some("vendor=opaque"));

    // The other requests started traces of their own, as roots.
    let roots: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32 && hex(&s.trace_id) != TRACE_ID)
        .collect();
    assert_eq!(roots.len(), 3);
    assert!(roots.iter().all(|s| s.parent_span_id.is_empty()));
    for request in &received[1..] {
        let sent = request
            .header("traceparent")
            .expect("a traceparent upstream");
        assert!(!sent.contains("zz") && !sent.contains(TRACE_ID), "{sent}");
    }
    let failed = roots
        .iter()
        .find(|s| s.name == "GET down")
        .expect("the 502's span");
    let status = failed.status.as_ref().expect("status");
    assert_eq!(status.code, SpanStatus::Error as i32);
    assert_eq!(
        attribute(&failed.attributes, "error.type").as_deref(),
        Some("upstream_unreachable")
    );

    let exports = collector.exports();
    let resource = exports[0].resource_spans[0]
        .resource
        .as_ref()
        .expect("resource");
    assert_eq!(
        attribute(&resource.attributes, "service.name").as_deref(),
        Some("credproxy")
    );
    // Nothing secret in any span, nor in the proxy's trace-level log.
    let exported = format!("{exports:?}");
    for secret in SECRETS {
        assert!(!exported.contains(secret), "{secret} was exported");
        assert!(!proxy.output().contains(secret), "{secret} was logged");
    }
}

#[tokio::test]
async fn without_an_endpoint_the_trace_context_passes_through_untouched() {
    let upstream = Upstream::recording().await;
    let idp = TokenEndpoint::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sources.yaml");
    std::fs::write(&path, config(&upstream.url(), &idp.url())).expect("write");
    let proxy =
        BinaryProxy::start_with_env(&path, "info", &[], &[("OTEL_EXPORTER_OTLP_ENDPOINT", "")]);
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let headers = [("traceparent", traceparent.as_str()), ("tracestate", "a=b")];
    assert_eq!(call(&proxy, "/static/x", &headers).await, 200);
    let received = upstream.single();
    assert_eq!(received.header("traceparent"), Some(traceparent));
    assert_eq!(received.header("tracestate").as_deref(), Some("a=b"));
}

#[tokio::test]
async fn a_collector_that_never_answers_holds_up_no_request_nor_the_exit() {
    // Accepts connections and reads nothing back: every export waits for its timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let collector = format!("http://{}", silent.local_addr().expect("addr"));
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let upstream = Upstream::recording().await;
    let idp = TokenEndpoint::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sources.yaml");
    std::fs::write(&path, config(&upstream.url(), &idp.url())).expect("write");
    let mut proxy = BinaryProxy::start_with_env(
        &path,
        "info",
        &["--otlp-endpoint", &collector, "--shutdown-grace", "1s"],
        &[("OTEL_BSP_SCHEDULE_DELAY", "10")],
    );
    for n in 0..50 {
        assert_eq!(call(&proxy, &format!("/static/{n}"), &[]).await, 200);
    }
    proxy.signal("TERM");
    assert_eq!(proxy.wait(), Some(0));
    held.abort();
}

#[test]
fn an_endpoint_that_is_not_http_is_refused_at_start_without_repeating_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sources.yaml");
    std::fs::write(
        &path,
        "sources:\n  s:\n    upstream: http://127.0.0.1:1\n    auth_type: none\n",
    )
    .expect("write");
    let output = support::binary::binary()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--config")
        .arg(&path)
        .args([
            "--otlp-endpoint",
            "ftp://user:s3cr3t-in-url@collector.example",
        ])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--otlp-endpoint must be an http:// or https:// URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3t-in-url"), "{stderr}");
}
