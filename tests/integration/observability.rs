//! deploy/observability/ against the real thing: the alert rules through Prometheus's own
//! `promtool` (syntax and unit tests), the dashboard's queries through `promtool` too, the
//! PrometheusRule manifest identical to the rule file, and every metric, label and label
//! value they name present in a live proxy's `/metrics`, so that neither can drift from
//! what credproxy exports.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use support::binary::BinaryProxy;
use support::client::{self, get};
use support::helper::repo_path;
use support::token_endpoint::TokenEndpoint;
use support::upstream::Upstream;

/// Runs `promtool` with `args` and asserts that it succeeds. `tests/setup.sh` installs it
/// (Debian's prometheus package).
fn promtool(args: &[&str], dir: &Path) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("promtool ({e}): run `bash tests/setup.sh`"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The dashboard's queries, with Grafana's variables replaced by what Prometheus accepts.
fn dashboard_queries() -> Vec<String> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/observability/grafana-dashboard.json"))
            .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            queries.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(query) = variable["query"]["query"].as_str() {
            // label_values(SELECTOR, label): the selector is PromQL.
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map(|(selector, _)| selector.to_owned())
                .unwrap_or_else(|| panic!("unexpected variable query {query}"));
            queries.push(inner);
        }
    }
    queries
        .into_iter()
        .map(|q| {
            q.replace("$__rate_interval", "5m")
                .replace("$job", ".*")
                .replace("$instance", ".*")
                .replace("$source", ".*")
        })
        .collect()
}

/// A matcher of a selector: label, operator, value.
type Matcher = (String, String, String);

/// Every `credproxy_…{…}` selector in `text`, with its matchers.
fn selectors(text: &str) -> Vec<(String, Vec<Matcher>)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("credproxy_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].to_owned();
        let mut matchers = Vec::new();
        if let Some(body) = tail[end..].strip_prefix('{') {
            let body = &body[..body.find('}').expect("closing brace")];
            for matcher in body.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let op_at = matcher.find(['=', '!']).expect("operator");
                let (key, op_value) = matcher.split_at(op_at);
                let op_len = if op_value.starts_with("=~")
                    || op_value.starts_with("!~")
                    || op_value.starts_with("!=")
                {
                    2
                } else {
                    1
                };
                let (op, value) = op_value.split_at(op_len);
                matchers.push((
                    key.trim().to_owned(),
                    op.to_owned(),
                    value.trim().trim_matches('"').to_owned(),
                ));
            }
        }
        found.push((name, matchers));
        rest = &tail[end..];
    }
    found
}

/// Series name → label name → values seen, from a Prometheus text page.
fn exposed(page: &str) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut series: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, labels) = match line.split_once('{') {
            Some((name, rest)) => (name, &rest[..rest.rfind('}').expect("closing brace")]),
            None => (line.split(' ').next().unwrap_or(line), ""),
        };
        let entry = series.entry(name.to_owned()).or_default();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once("=\"").expect("label pair");
            entry
                .entry(key.to_owned())
                .or_default()
                .insert(value.trim_end_matches('"').to_owned());
        }
    }
    series
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = repo_path("deploy/observability");
    let checked = promtool(&["check", "rules", "alerts.yaml"], &dir);
    assert!(checked.contains("SUCCESS: 8 rules found"), "{checked}");
    promtool(&["test", "rules", "alerts.test.yaml"], &dir);
}

#[test]
fn the_prometheus_rule_manifest_holds_the_same_groups() {
    let rules = read("deploy/observability/alerts.yaml");
    let manifest = read("deploy/observability/prometheusrule.yaml");
    assert!(manifest.contains("\napiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\n"));
    let groups = &rules[rules.find("groups:").expect("groups")..];
    let spec = &manifest[manifest.find("\nspec:\n").expect("spec") + "\nspec:\n".len()..];
    let unindented: String = spec
        .lines()
        .map(|line| line.strip_prefix("  ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(unindented.trim_end(), groups.trim_end());
}

#[test]
fn the_dashboard_queries_are_valid_promql() {
    let scratch = tempfile::tempdir().expect("tempdir");
    // As recording rules, every query goes through Prometheus's parser.
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, query) in dashboard_queries().iter().enumerate() {
        let quoted = serde_json::to_string(query).expect("string");
        file += &format!("      - record: dashboard:query{n}\n        expr: {quoted}\n");
    }
    std::fs::write(scratch.path().join("dashboard.yaml"), file).expect("write");
    promtool(&["check", "rules", "dashboard.yaml"], scratch.path());
}

#[tokio::test]
async fn every_metric_label_and_value_they_name_is_exported() {
    // A live proxy that has been through everything the rules and panels watch: answers
    // of each class, a token issued and one refused, a header holding the credential, a
    // caller turned away, a key set that cannot be fetched, a rejected reload.
    let upstream = Upstream::with_handler(|request: http::Request<_>| async move {
        let echoed = request
            .headers()
            .get("authorization")
            .cloned()
            .unwrap_or(http::HeaderValue::from_static("-"));
        let mut response = http::Response::new(support::upstream::full("ok"));
        response.headers_mut().insert("x-echo", echoed);
        response
    })
    .await;
    let idp = TokenEndpoint::start().await;
    let executor = credproxy::caller::token_sha256_hex("executor-token");
    let yaml = format!(
        "sources:\n  static:\n    upstream: {up}\n    auth_type: bearer\n    bearer_token: obs-bearer\n  \
         down:\n    upstream: http://127.0.0.1:1\n    auth_type: none\n  \
         cc:\n    upstream: {up}\n    auth_type: oauth2\n    oauth2_token_url: {idp}\n    \
         oauth2_client_id: id\n    oauth2_client_secret: obs-client\n  \
         broken:\n    upstream: {up}\n    auth_type: oauth2\n    oauth2_token_url: http://127.0.0.1:1/token\n    \
         oauth2_client_id: id\n    oauth2_client_secret: obs-client\n\
         callers:\n  executor:\n    token_sha256: {executor}\n    sources: [\"*\"]\n  \
         agents:\n    jwt: {{ issuer: \"https://issuer.example\", audience: credproxy, \
         jwks_url: \"http://127.0.0.1:1/jwks\" }}\n    sources: [static]\n",
        up = upstream.url(),
        idp = idp.url(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sources.yaml");
    std::fs::write(&path, &yaml).expect("write");
    let proxy = BinaryProxy::start(&path, "info", &[]);
    for source in ["static", "down", "cc", "cc", "broken"] {
        let url = proxy.url(&format!("/{source}/x"));
        client::as_caller(http::Method::GET, &url, Some("executor-token")).await;
    }
    client::as_caller(http::Method::GET, &proxy.url("/static/x"), None).await;
    std::fs::write(&path, format!("{yaml}  unknown_field: 1\n")).expect("rewrite");
    support::eventually("the rejected reload", || async {
        proxy.output().contains("Config reload rejected")
    })
    .await;
    let metrics_url = format!("http://{}/metrics", proxy.admin_addr);
    support::eventually("the failed key set fetch", || async {
        get(&client::http1(), &metrics_url)
            .await
            .text()
            .contains("credproxy_jwks_fetch_failures_total{")
    })
    .await;
    let live = exposed(&get(&client::http1(), &metrics_url).await.text());

    // (alerts.test.yaml's series are made up; promtool holds them to the rules.)
    let named = [
        read("deploy/observability/alerts.yaml"),
        dashboard_queries().join("\n"),
    ]
    .join("\n");
    let selectors = selectors(&named);
    assert!(selectors.len() > 30, "{selectors:?}");
    let scrape_labels = ["job", "instance"];
    for (name, matchers) in selectors {
        let Some(labels) = live.get(&name) else {
            panic!(
                "{name} is named but not exported; exported: {:?}",
                live.keys()
            );
        };
        for (key, op, value) in matchers {
            if scrape_labels.contains(&key.as_str()) {
                continue;
            }
            let values = labels
                .get(&key)
                .unwrap_or_else(|| panic!("{name} has no label {key}: {labels:?}"));
            // Literal values (not a Grafana variable's `.*`) must be values it takes.
            if (op == "=" || op == "=~") && value != ".*" {
                for wanted in value.split('|') {
                    assert!(
                        values.contains(wanted),
                        "{name}{{{key}=\"{wanted}\"}} never appears: {values:?}"
                    );
                }
            }
        }
    }
}
