//! The admin listener of the real binary: health, readiness, metrics that move, and a
//! config view without secrets.

use crate::support;

use std::collections::HashMap;

use support::binary::BinaryProxy;
use support::client::{self, get};
use support::token_endpoint::TokenEndpoint;
use support::upstream::Upstream;

/// `name{labels} value` lines of a Prometheus text page, keyed by name and labels.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn health_metrics_and_config() {
    let upstream = Upstream::recording().await;
    let idp = TokenEndpoint::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sources.yaml");
    let config = format!(
        "sources:\n  gh:\n    upstream: {up}\n    auth_type: bearer\n    bearer_token: s3cr3t-bearer\n  \
         down:\n    upstream: http://127.0.0.1:1\n    auth_type: none\n  \
         cc:\n    upstream: {up}\n    auth_type: oauth2\n    oauth2_token_url: {idp}\n    \
         oauth2_client_id: id\n    oauth2_client_secret: s3cr3t-client\n",
        up = upstream.url(),
        idp = idp.url()
    );
    std::fs::write(&path, &config).expect("write");
    let proxy = BinaryProxy::start(&path, "info", &[]);
    let admin = |path: &str| format!("http://{}{path}", proxy.admin_addr);
    let http = client::http1();

    assert_eq!(get(&http, &admin("/healthz")).await.text(), "ok\n");
    assert_eq!(get(&http, &admin("/readyz")).await.status, 200);
    get(&http, &admin("/nope"))
        .await
        .assert_problem(404, "not_found");

    for path in ["/gh/a", "/gh/b", "/missing/x", "/down/x", "/cc/x", "/cc/y"] {
        get(&http, &proxy.url(path)).await;
    }
    let page = get(&http, &admin("/metrics")).await;
    assert!(page.headers["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("application/openmetrics-text"));
    let metrics = parse_metrics(&page.text());
    let value = |key: &str| {
        metrics
            .get(key)
            .copied()
            .unwrap_or_else(|| panic!("no {key} in\n{}", page.text()))
    };
    assert_eq!(
        value(r#"credproxy_requests_total{source="gh",class="2xx"}"#),
        2.0
    );
    // The log writer's drop count is always exported, so an alert can watch it.
    assert_eq!(value("credproxy_log_lines_dropped_total"), 0.0);
    assert_eq!(
        value(r#"credproxy_requests_total{source="-",class="4xx"}"#),
        1.0
    );
    assert_eq!(
        value(r#"credproxy_requests_total{source="down",class="5xx"}"#),
        1.0
    );
    assert_eq!(
        value(r#"credproxy_upstream_errors_total{kind="connect"}"#),
        1.0
    );
    assert_eq!(value("credproxy_request_duration_seconds_count"), 6.0);
    assert_eq!(
        value(r#"credproxy_token_requests_total{source="cc",result="ok"}"#),
        1.0
    );
    assert_eq!(
        value(r#"credproxy_token_cache_hits_total{source="cc"}"#),
        1.0
    );
    assert_eq!(
        value(r#"credproxy_token_cache_misses_total{source="cc"}"#),
        1.0
    );
    assert_eq!(
        value(r#"credproxy_token_last_refresh_success{source="cc"}"#),
        1.0
    );
    let expiry = value(r#"credproxy_token_expiry_seconds{source="cc"}"#);
    assert!(expiry > 3500.0 && expiry <= 3570.0, "{expiry}");
    assert_eq!(value("credproxy_config_generation"), 1.0);
    assert_eq!(
        value(r#"credproxy_config_reloads_total{result="applied"}"#),
        0.0
    );
    assert!(value("credproxy_config_last_reload_success_timestamp_seconds") > 1.7e9);

    // A reload moves the generation and the reload counters; the request counters of a
    // source that stays are kept.
    std::fs::write(&path, config.replace("s3cr3t-bearer", "s3cr3t-bearer-2")).expect("rewrite");
    support::eventually("the reload", || async {
        let metrics = parse_metrics(&get(&http, &admin("/metrics")).await.text());
        metrics.get("credproxy_config_generation") == Some(&2.0)
    })
    .await;
    let metrics = parse_metrics(&get(&http, &admin("/metrics")).await.text());
    assert_eq!(
        metrics[r#"credproxy_config_reloads_total{result="applied"}"#],
        1.0
    );
    assert_eq!(
        metrics[r#"credproxy_requests_total{source="gh",class="2xx"}"#],
        2.0
    );

    let config_view = get(&http, &admin("/config")).await;
    let json = config_view.json();
    assert_eq!(json["generation"], 2);
    assert_eq!(json["content_sha256"].as_str().map(str::len), Some(64));
    assert_eq!(json["sources"][0]["id"], "gh");
    assert_eq!(json["sources"][0]["auth_type"], "bearer");
    assert_eq!(json["sources"][2]["upstream"], upstream.url());
    let text = config_view.text();
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(!get(&http, &admin("/metrics"))
        .await
        .text()
        .contains("s3cr3t"));
}
