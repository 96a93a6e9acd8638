use std::path::Path;

use super::*;
use crate::config::{self, LoadOptions};
use crate::live::{self, Snapshot};

fn snapshot(yaml: &str) -> Snapshot {
    let spec = config::load_bytes(Path::new("t.yaml"), yaml.as_bytes(), LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    live::build(spec, None)
}

const SOURCES: &str = "sources:\n  q:\n    upstream: https://api.example.com/v1\n    auth_type: api_key\n    api_key_name: api_key\n    api_key_value: Q-SECRET-VALUE\n    api_key_in: query\n  b:\n    upstream: https://api.example.com\n    auth_type: bearer\n    bearer_token: B-SECRET-TOKEN\n    headers: { X-Short: abc }\n";

fn scrubbed(
    id: &str,
    pairs: &[(&'static str, &'static str)],
    issued: Option<&str>,
) -> Vec<(String, String)> {
    let snapshot = snapshot(SOURCES);
    let source = snapshot.source(id).expect("source");
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(*name, HeaderValue::from_static(value));
    }
    scrub(&mut headers, source, issued.map(str::as_bytes));
    headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().expect("text").to_owned()))
        .collect()
}

#[test]
fn the_query_key_leaves_every_url_header() {
    let got = scrubbed(
        "q",
        &[
            ("location", "/v1/x/?page=1&api_key=Q-SECRET-VALUE"),
            ("content-location", "https://api.example.com/v1/p?api_key=Q-SECRET-VALUE"),
            ("link", "<https://api.example.com/v1/p?page=2&api_key=Q-SECRET-VALUE>; rel=\"next\", <https://api.example.com/v1/p?API_KEY=x&page=9>; rel=\"last\""),
            ("refresh", "5; url=/v1/p?api_key=Q-SECRET-VALUE&a=1"),
        ],
        None,
    );
    assert_eq!(
        got,
        [
            ("location".to_owned(), "/q/x/?page=1".to_owned()),
            ("content-location".to_owned(), "https://api.example.com/v1/p".to_owned()),
            ("link".to_owned(), "<https://api.example.com/v1/p?page=2>; rel=\"next\", <https://api.example.com/v1/p?page=9>; rel=\"last\"".to_owned()),
            ("refresh".to_owned(), "5; url=/v1/p?a=1".to_owned()),
        ]
    );
}

#[test]
fn locations_under_the_upstream_come_back_through_the_proxy() {
    let snapshot = snapshot(SOURCES);
    let upstream = &snapshot.source("q").expect("q").upstream;
    for (location, want) in [
        (
            "https://api.example.com/v1/pets/1?x=2",
            Some("/q/pets/1?x=2"),
        ),
        ("HTTPS://API.example.com:443/v1", Some("/q")),
        ("//api.example.com/v1#f", Some("/q#f")),
        ("/v1/pets", Some("/q/pets")),
        ("https://api.example.com/v10/pets", None),
        ("https://api.example.com/other", None),
        ("http://api.example.com/v1/pets", None),
        ("https://evil.example/v1/pets", None),
        ("https://api.example.com.evil/v1", None),
        ("pets/1", None),
    ] {
        assert_eq!(
            under_upstream(location, upstream, "/q").as_deref(),
            want,
            "{location}"
        );
    }
}

#[test]
fn headers_holding_a_secret_are_dropped_and_counted() {
    let got = scrubbed(
        "b",
        &[
            ("content-type", "application/json"),
            ("x-echo-authorization", "Bearer B-SECRET-TOKEN"),
            ("x-debug", "sent=B-SECRET-TOKEN;"),
            ("x-short", "abc"),
            ("x-contains-short", "abcdef"),
            ("x-multi", "fine"),
            ("x-multi", "B-SECRET-TOKEN"),
        ],
        None,
    );
    assert_eq!(
        got,
        [
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-contains-short".to_owned(), "abcdef".to_owned()),
            ("x-multi".to_owned(), "fine".to_owned()),
        ]
    );
}

#[test]
fn the_issued_token_is_a_needle_too() {
    let got = scrubbed(
        "b",
        &[("x-seen", "token ISSUED-ACCESS-TOKEN"), ("x-ok", "ok")],
        Some("ISSUED-ACCESS-TOKEN"),
    );
    assert_eq!(got, [("x-ok".to_owned(), "ok".to_owned())]);
}
