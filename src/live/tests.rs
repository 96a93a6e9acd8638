//! The carry-over rules, one at a time.

use std::path::Path;

use super::*;
use crate::config::{self, LoadOptions};

fn spec(yaml: &str, dir: &Path) -> Spec {
    config::load_bytes(
        &dir.join("sources.yaml"),
        yaml.as_bytes(),
        LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

const OAUTH: &str = "sources:\n  o:\n    upstream: https://api\n    auth_type: oauth2\n    oauth2_token_url: https://idp/token\n    oauth2_client_id: id\n    oauth2_client_secret: SECRET\n  s:\n    upstream: https://api\n    auth_type: bearer\n    bearer_token: t0ken\n";

fn tokens(snapshot: &Snapshot) -> &Arc<crate::auth::token_source::TokenSource> {
    snapshot
        .source("o")
        .and_then(|s| s.credentials.token_source())
        .expect("token source")
}

#[test]
fn counters_pass_to_the_source_of_the_same_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = build(spec(OAUTH, dir.path()), None);
    let second = build(
        spec(&OAUTH.replace("t0ken", "other"), dir.path()),
        Some(&first),
    );
    for id in ["o", "s"] {
        let (a, b) = (first.source(id).expect(id), second.source(id).expect(id));
        assert!(Arc::ptr_eq(&a.metrics, &b.metrics), "{id}");
    }
    let renamed = build(
        spec(&OAUTH.replace("  s:", "  t:"), dir.path()),
        Some(&first),
    );
    assert!(!Arc::ptr_eq(
        &first.source("s").expect("s").metrics,
        &renamed.source("t").expect("t").metrics
    ));
}

#[test]
fn token_caches_pass_on_only_with_equal_token_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = build(spec(OAUTH, dir.path()), None);
    // Another source changed: the token settings did not.
    let same = build(
        spec(&OAUTH.replace("t0ken", "other"), dir.path()),
        Some(&first),
    );
    assert!(Arc::ptr_eq(tokens(&first), tokens(&same)));
    for changed in [
        OAUTH.replace("SECRET", "ROTATED"),
        OAUTH.replace("client_id: id", "client_id: id2"),
        OAUTH.replace("idp/token", "idp/other"),
        OAUTH.replace(
            "client_secret: SECRET\n",
            "client_secret: SECRET\n    oauth2_scopes: [a]\n",
        ),
    ] {
        let next = build(spec(&changed, dir.path()), Some(&same));
        assert!(!Arc::ptr_eq(tokens(&same), tokens(&next)), "{changed}");
    }
}

#[test]
fn tls_clients_pass_on_while_their_files_hash_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write_ca = |name: &str| {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("write");
    };
    let yaml =
        "sources:\n  m:\n    upstream: https://api\n    auth_type: none\n    tls_ca_file: ca.pem\n";
    write_ca("one");
    let first = build(spec(yaml, dir.path()), None);
    let tls = |s: &Snapshot| Arc::clone(s.source("m").and_then(|m| m.tls.as_ref()).expect("tls"));
    let same = build(spec(yaml, dir.path()), Some(&first));
    assert!(Arc::ptr_eq(&tls(&first), &tls(&same)));
    write_ca("two");
    let rotated = build(spec(yaml, dir.path()), Some(&same));
    assert!(!Arc::ptr_eq(&tls(&same), &tls(&rotated)));
}

#[test]
fn sources_know_their_proxy_path_and_their_needles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = "sources:\n  \"a%b?c\":\n    upstream: https://api\n    auth_type: http_basic\n    basic_username: user\n    basic_password: pass\n    headers: { X-Second: second-key }\n";
    let snapshot = build(spec(yaml, dir.path()), None);
    let source = snapshot.source("a%b?c").expect("source");
    assert_eq!(&*source.proxy_prefix, "/a%25b%3Fc");
    let needles: Vec<&str> = source.needles.iter().map(Secret::expose).collect();
    assert_eq!(needles, ["dXNlcjpwYXNz", "pass", "second-key"]);
}
