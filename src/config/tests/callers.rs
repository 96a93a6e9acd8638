//! `callers:` with `jwt:` and `rules:`: what loads, and every problem `check` reports.

use super::*;
use crate::config::spec::{CallerIdentity, CallerSpec, JwksSpec, SubjectPattern};

const SOURCES: &str = "sources:\n  github:\n    upstream: https://api.github.com\n    auth_type: none\n  petstore:\n    upstream: https://petstore.example\n    auth_type: none\n  billing:\n    upstream: https://billing.example\n    auth_type: none\n";

/// A directory with `jwks.json` (one P-256 key) and `ca.pem`.
fn jwks_dir() -> tempfile::TempDir {
    let dir = identity_dir();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let key = crate::jws::SigningKey::from_pem(&pair.serialize_pem()).expect("key");
    let mut jwk = key.public_jwk();
    jwk["kid"] = "k1".into();
    let set = serde_json::json!({ "keys": [jwk] });
    std::fs::write(dir.path().join("jwks.json"), set.to_string()).expect("write");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    std::fs::write(dir.path().join("ca.pem"), cert.cert.pem()).expect("write");
    std::fs::write(dir.path().join("empty.json"), "{\"keys\": []}").expect("write");
    dir
}

fn callers_of(spec: &Spec) -> &[CallerSpec] {
    spec.callers.as_deref().expect("callers")
}

#[test]
fn jwt_callers_and_rules_load() {
    let dir = jwks_dir();
    let text = format!(
        "{SOURCES}callers:\n  \
         executor:\n    jwt: {{ issuer: https://kubernetes.default.svc, audience: credproxy, jwks_url: https://kubernetes.default.svc/openid/v1/jwks, jwks_ca_file: ca.pem, subject: \"system:serviceaccount:agents:*\" }}\n    \
         sources: [github, petstore]\n    rules:\n      - source: github\n        methods: [GET, HEAD]\n        paths: [\"/repos/acme/**\", \"/user\"]\n      - source: petstore\n  \
         reporter:\n    jwt: {{ issuer: https://kubernetes.default.svc, audience: credproxy, jwks_file: jwks.json, subject: \"system:serviceaccount:agents:reporter\" }}\n    sources: [\"*\"]\n    rules: []\n  \
         ci:\n    token_sha256: {HASH_A}\n    sources: [\"*\"]\n"
    );
    let spec = load_in(&dir, &text).unwrap_or_else(|e| panic!("{e}"));
    let callers = callers_of(&spec);
    let CallerIdentity::Jwt(executor) = &callers[0].identity else {
        panic!("jwt");
    };
    assert_eq!(&*executor.issuer, "https://kubernetes.default.svc");
    assert_eq!(&*executor.audience, "credproxy");
    assert_eq!(
        executor.subject,
        Some(SubjectPattern::Prefix(
            "system:serviceaccount:agents:".into()
        ))
    );
    assert!(matches!(&executor.keys, JwksSpec::Url { tls: Some(_), .. }));
    let rules = callers[0].rules.as_deref().expect("rules");
    assert_eq!(rules.len(), 2);
    assert_eq!(&*rules[0].source, "github");
    assert_eq!(
        rules[0].methods.as_deref(),
        Some(&[http::Method::GET, http::Method::HEAD][..])
    );
    assert_eq!(rules[0].paths.as_ref().map(|p| p.len()), Some(2));
    assert!(rules[1].methods.is_none() && rules[1].paths.is_none());

    let CallerIdentity::Jwt(reporter) = &callers[1].identity else {
        panic!("jwt");
    };
    let JwksSpec::File { keys, path } = &reporter.keys else {
        panic!("file");
    };
    assert_eq!(keys.len(), 1);
    assert!(path.ends_with("jwks.json"));
    assert!(
        spec.meta
            .secret_files
            .iter()
            .any(|f| f.ends_with("jwks.json")),
        "watched"
    );
    assert_eq!(callers[1].rules.as_deref().map(<[_]>::len), Some(0));
    assert!(matches!(
        callers[2].identity,
        CallerIdentity::TokenSha256(_)
    ));
    assert!(callers[2].rules.is_none());
}

#[test]
fn bad_jwt_callers_list_every_problem() {
    let dir = jwks_dir();
    let text = format!(
        "{SOURCES}callers:\n  \
         both:\n    token_sha256: {HASH_A}\n    jwt: {{ issuer: i, audience: a, jwks_file: jwks.json }}\n    sources: [\"*\"]\n  \
         neither:\n    sources: [\"*\"]\n  \
         no_keys:\n    jwt: {{ issuer: i8, audience: a }}\n    sources: [\"*\"]\n  \
         two_keys:\n    jwt: {{ issuer: i6, audience: a, jwks_file: jwks.json, jwks_url: https://x/jwks }}\n    sources: [\"*\"]\n  \
         plain_http:\n    jwt: {{ issuer: i7, audience: a, jwks_url: http://idp.example/jwks }}\n    sources: [\"*\"]\n  \
         ca_on_file:\n    jwt: {{ issuer: i2, audience: a, jwks_file: jwks.json, jwks_ca_file: ca.pem }}\n    sources: [\"*\"]\n  \
         empty_set:\n    jwt: {{ issuer: i3, audience: a, jwks_file: empty.json }}\n    sources: [\"*\"]\n  \
         missing_file:\n    jwt: {{ issuer: i4, audience: a, jwks_file: nope.json }}\n    sources: [\"*\"]\n  \
         star_inside:\n    jwt: {{ issuer: i5, audience: a, jwks_file: jwks.json, subject: \"a*b\" }}\n    sources: [\"*\"]\n  \
         no_issuer:\n    jwt: {{ audience: a, jwks_file: jwks.json, algorithm: HS256 }}\n    sources: [\"*\"]\n  \
         first:\n    jwt: {{ issuer: k8s, audience: a, jwks_file: jwks.json, subject: s }}\n    sources: [\"*\"]\n  \
         twin:\n    jwt: {{ issuer: k8s, audience: a, jwks_file: jwks.json, subject: s }}\n    sources: [\"*\"]\n"
    );
    let message = load_in(&dir, &text).expect_err("rejected").to_string();
    for expected in [
        "callers.both.jwt: a caller is either a token",
        "callers.neither.token_sha256: missing: set `token_sha256`",
        "callers.no_keys.jwt.jwks_url: missing: set `jwks_file`",
        "callers.two_keys.jwt.jwks_url: set `jwks_file` or `jwks_url`, not both",
        "callers.plain_http.jwt.jwks_url: must be https",
        "callers.ca_on_file.jwt.jwks_ca_file: is for an https `jwks_url`",
        "callers.empty_set.jwt.jwks_file: holds no RS256 or ES256 signing key",
        "callers.missing_file.jwt.jwks_file: cannot read the file",
        "callers.star_inside.jwt.subject: may end in `*`",
        "callers.no_issuer.jwt.issuer: missing",
        "callers.twin.jwt.subject: accepts the same tokens as caller `first`",
    ] {
        assert!(message.contains(expected), "{expected}\n{message}");
    }
    assert!(
        !message.contains("HS256"),
        "unknown keys are not echoed: {message}"
    );
}

#[test]
fn bad_rules_list_every_problem() {
    let text = format!(
        "{SOURCES}callers:\n  \
         c:\n    token_sha256: {HASH_A}\n    sources: [github, petstore]\n    rules:\n      \
         - source: billing\n      - source: nope\n      - methods: [GET]\n      \
         - source: github\n        methods: [get, TRACE, \"G ET\"]\n      \
         - source: github\n        paths: [\"repos\", \"/a/b*\", \"/a/%2F\"]\n      \
         - source: github\n        methods: []\n      - source: github\n        paths: []\n      \
         - github\n  \
         d:\n    token_sha256: {}\n    sources: [\"*\"]\n    rules:\n  \
         e:\n    token_sha256: {}\n    sources: [\"*\"]\n    rules: {{ source: github }}\n",
        "b".repeat(64),
        "c".repeat(64),
    );
    let message = rejected(&text);
    for expected in [
        "callers.c.rules[0].source: `billing` is not on this caller's `sources`",
        "callers.c.rules[1].source: names unknown source `nope`",
        "callers.c.rules[2].source: missing",
        "callers.c.rules[3].methods: method names are case-sensitive: write `GET`",
        "callers.c.rules[3].methods: `TRACE` is never forwarded",
        "callers.c.rules[3].methods: holds something that is not a method name",
        "callers.c.rules[4].paths: entry 1 must start with `/`",
        "callers.c.rules[4].paths: entry 2 uses `*` inside a segment",
        "callers.c.rules[4].paths: entry 3 has a segment holding an encoded `/`",
        "callers.c.rules[5].methods: is empty, so the rule allows nothing",
        "callers.c.rules[6].paths: is empty, so the rule allows nothing",
        "callers.c.rules[7]: must be a map with source",
        "callers.d.rules: is empty; write `rules: []`",
        "callers.e.rules: must be a list of rules, not a map",
    ] {
        assert!(message.contains(expected), "{expected}\n{message}");
    }
}
