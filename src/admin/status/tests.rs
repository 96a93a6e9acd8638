use super::*;
use crate::caller::token_sha256_hex;
use crate::config::{self, LoadOptions};
use crate::watch::ReloadStats;

fn snapshot(yaml: &str) -> Snapshot {
    let spec = config::load_bytes(
        std::path::Path::new("status-test.yaml"),
        yaml.as_bytes(),
        LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("config rejected: {e}"));
    crate::live::build(spec, None)
}

fn many_sources(n: usize) -> String {
    let mut yaml = String::from("sources:\n");
    for i in 0..n {
        yaml += &format!(
            "  pad-{i:05}:\n    upstream: http://127.0.0.1:9/{i}\n    auth_type: bearer\n    bearer_token: pad-secret-{i}\n"
        );
    }
    yaml
}

/// Rows of the sources table.
fn source_rows(page: &str) -> usize {
    let table = page
        .split("<section id=\"sources\">")
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .expect("sources section");
    table.matches("<tr><td><code>").count()
}

#[test]
fn the_filter_is_text_never_markup() {
    let snapshot = snapshot(&many_sources(3));
    let query = Query::parse(Some("q=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E&page=x"));
    assert_eq!(query.page, 1, "a page that is not a number is the first");
    let page = render(&snapshot, None, &query);
    assert!(!page.contains("<script"), "{page}");
    assert!(page.contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""));
    assert_eq!(source_rows(&page), 0);
}

#[test]
fn a_long_file_is_paged_and_filtered_server_side() {
    let snapshot = snapshot(&many_sources(250));
    let first = render(&snapshot, None, &Query::parse(None));
    assert_eq!(source_rows(&first), PAGE);
    assert!(first.contains("showing 1–100 of 250"));
    assert!(first.contains("page 1 of 3 <a rel=\"next\" href=\"/?page=2\">"));

    let last = render(&snapshot, None, &Query::parse(Some("page=3")));
    assert_eq!(source_rows(&last), 50);
    assert!(last.contains("<code>pad-00249</code>") && !last.contains("<code>pad-00199</code>"));
    assert!(last.contains("rel=\"prev\" href=\"/?page=2\""));

    let beyond = render(&snapshot, None, &Query::parse(Some("page=99")));
    assert_eq!(source_rows(&beyond), 0);
    assert!(beyond.contains("showing 0–0 of 250"));

    // Any case, in the id or the upstream; the pager keeps the filter.
    let filtered = render(&snapshot, None, &Query::parse(Some("q=PAD-0012")));
    assert_eq!(source_rows(&filtered), 10);
    assert!(filtered.contains("of 10 matching"));
    let by_upstream = render(&snapshot, None, &Query::parse(Some("q=127.0.0.1:9/17")));
    assert_eq!(source_rows(&by_upstream), 11, "/17 and /170…/179");
}

#[test]
fn no_secret_and_no_caller_hash_is_on_the_page() {
    let hash = token_sha256_hex("s3cr3t-caller-token");
    let yaml = format!(
        "sources:\n  basic:\n    upstream: http://127.0.0.1:9\n    auth_type: http_basic\n    \
         basic_username: user\n    basic_password: s3cr3t-basic-pw\n  \
         key:\n    upstream: http://127.0.0.1:9/k\n    auth_type: api_key\n    api_key_name: X-Key\n    \
         api_key_value: s3cr3t-api-key\n    headers:\n      X-Extra: s3cr3t-extra\n  \
         cc:\n    upstream: http://127.0.0.1:9/cc\n    auth_type: oauth2\n    \
         oauth2_token_url: http://127.0.0.1:9/token\n    oauth2_client_id: my-client\n    \
         oauth2_client_secret: s3cr3t-client-secret\n\
         callers:\n  executor:\n    token_sha256: {hash}\n    sources: [basic, cc]\n    \
         rules:\n      - source: basic\n        methods: [GET]\n"
    );
    let snapshot = snapshot(&yaml);
    let stats = ReloadStats::default();
    let page = render(&snapshot, Some(&stats), &Query::default());
    for secret in [
        "s3cr3t-basic-pw",
        "s3cr3t-api-key",
        "s3cr3t-extra",
        "s3cr3t-client-secret",
        "s3cr3t-caller-token",
        hash.as_str(),
    ] {
        assert!(!page.contains(secret), "the page shows {secret}:\n{page}");
    }
    // What it does show: the caller, its sources and its rule count; the token source.
    assert!(page.contains("<tr><td>executor</td><td>token</td><td><code>basic, cc</code></td><td class=\"n\">1</td></tr>"));
    assert!(page.contains("<code>cc</code></td><td>oauth2</td>"));
    assert!(page.contains("none yet"), "no token fetched yet");
    assert!(page.contains("none since the start"));
}

#[test]
fn the_last_reload_and_its_problems_are_shown() {
    let snapshot = snapshot(&many_sources(1));
    let stats = ReloadStats::default();
    stats.record(
        ReloadOutcome::Rejected,
        Some("sources.pad-1.upstream: must be <http or https>".to_owned()),
    );
    let page = render(&snapshot, Some(&stats), &Query::default());
    assert!(page.contains("<span class=\"bad\">rejected; the config above stays in effect</span>"));
    assert!(page.contains(
        "<pre class=\"problems\">sources.pad-1.upstream: must be &lt;http or https&gt;</pre>"
    ));

    stats.record(ReloadOutcome::Applied(2), None);
    let page = render(&snapshot, Some(&stats), &Query::default());
    assert!(page.contains("applied (generation 2)"));
    assert!(!page.contains("<pre class=\"problems\">"));
}

#[test]
fn counts_and_the_last_status_of_each_source() {
    let snapshot = snapshot(&many_sources(2));
    let source = snapshot.source("pad-00001").expect("source");
    for status in [200, 200, 404, 502] {
        source
            .metrics
            .answered(http::StatusCode::from_u16(status).expect("status"));
    }
    let page = render(&snapshot, None, &Query::parse(Some("q=pad-00001")));
    assert!(page.contains(
        "<td class=\"n\">2</td><td class=\"n\">0</td><td class=\"n\">1</td><td class=\"n\">1</td><td><span class=\"bad\">502</span>"
    ), "{page}");
}

#[test]
fn jwt_callers_show_their_issuer_and_key_set_state() {
    let yaml = "sources:\n  gh:\n    upstream: http://127.0.0.1:9\n    auth_type: none\n\
         callers:\n  agents:\n    jwt: { issuer: \"https://issuer.example\", audience: credproxy, \
         jwks_url: \"http://127.0.0.1:9/jwks\", subject: \"system:serviceaccount:agents:*\" }\n    \
         sources: [gh]\n";
    let page = render(&snapshot(yaml), None, &Query::default());
    assert!(
        page.contains("<td>JWT from https://issuer.example</td>"),
        "{page}"
    );
    assert!(
        page.contains(
            "<tr><td>https://issuer.example</td><td><code>http://127.0.0.1:9/jwks</code></td>\
         <td><span class=\"bad\">not fetched yet</span></td><td class=\"n\">0</td></tr>"
        ),
        "{page}"
    );
}
