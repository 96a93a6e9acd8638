//! Loading and rejecting whole files.

use std::path::Path;

use super::*;

fn load_str(text: &str) -> Result<Spec, ConfigError> {
    load_bytes(
        Path::new("test/sources.yaml"),
        text.as_bytes(),
        LoadOptions::default(),
    )
}

fn source<'s>(spec: &'s Spec, id: &str) -> &'s SourceSpec {
    spec.sources
        .iter()
        .find(|s| &*s.id == id)
        .unwrap_or_else(|| panic!("no source {id}"))
}

fn rejected(text: &str) -> String {
    let error = load_str(text).expect_err("the file should be rejected");
    error.to_string()
}

const GOOD: &str = r#"
sources:
  open:
    upstream: http://127.0.0.1:9/
    auth_type: none
  basic:
    upstream: https://api.example.com/v1
    auth_type: http_basic
    basic_username: user
    basic_password: "pa:ss"
  key-header:
    upstream: https://api.example.com
    auth_type: api_key
    api_key_name: X-API-Key
    api_key_value: k1
    headers: { X-Extra: two }
  key-query:
    upstream: https://api.example.com
    auth_type: api_key
    api_key_name: key
    api_key_value: k2
    api_key_in: query
  token:
    upstream: https://api.example.com
    auth_type: bearer
    bearer_token: t0ken
"#;

#[test]
fn a_good_file_loads_every_static_type_in_order() {
    let spec = load_str(GOOD).expect("loads");
    let listed: Vec<(String, &str, String)> = spec
        .sources
        .iter()
        .map(|s| {
            (
                s.id.to_string(),
                s.auth_type.as_str(),
                s.upstream.to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("open".into(), "none", "http://127.0.0.1:9".into()),
            (
                "basic".into(),
                "http_basic",
                "https://api.example.com/v1".into()
            ),
            (
                "key-header".into(),
                "api_key",
                "https://api.example.com".into()
            ),
            (
                "key-query".into(),
                "api_key",
                "https://api.example.com".into()
            ),
            ("token".into(), "bearer", "https://api.example.com".into()),
        ]
    );
    let extra = &source(&spec, "key-header").extra_headers;
    assert_eq!(extra[0].0.as_str(), "x-extra");
    assert!(extra[0].1.is_sensitive());
    match &source(&spec, "basic").credential {
        CredentialSpec::Header { name, value } => {
            assert_eq!(name, http::header::AUTHORIZATION);
            assert_eq!(value, "Basic dXNlcjpwYTpzcw==");
            assert!(value.is_sensitive());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        Some(spec.meta.content_sha256),
        inputs_digest(GOOD.as_bytes(), &[])
    );
}

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let message = rejected("sources:\n  a:\n    upstream: x\n   bad: [\n");
    assert!(
        message.starts_with("test/sources.yaml: 1 problem"),
        "{message}"
    );
    assert!(message.contains("test/sources.yaml:4:4:"), "{message}");
}

#[test]
fn unknown_auth_type_names_source_field_and_line() {
    let message = rejected("sources:\n  gh:\n    upstream: https://x\n    auth_type: kerberos\n");
    assert!(
        message.contains(
            "test/sources.yaml:4:16: sources.gh.auth_type: unknown auth_type; one of none, http_basic, api_key"
        ),
        "{message}"
    );
    assert!(!message.contains("kerberos"), "{message}");
}

#[test]
fn missing_and_unknown_fields() {
    let message = rejected("sources:\n  gh:\n    auth_type: http_basic\n    basic_username: u\n");
    assert!(message.contains("2 problems"), "{message}");
    assert!(
        message.contains("sources.gh.upstream: missing"),
        "{message}"
    );
    assert!(
        message.contains("sources.gh.basic_password: missing"),
        "{message}"
    );

    let message = rejected("sources:\n  gh:\n    upstream: https://x\n    auth_type: none\n    basic_pasword: hunter2\n");
    assert!(
        message.contains(
            "test/sources.yaml:5:5: sources.gh: unknown field; did you mean `basic_password`?"
        ),
        "{message}"
    );
    assert!(
        !message.contains("hunter2") && !message.contains("pasword`"),
        "{message}"
    );

    let message = rejected("sources:\n  gh:\n    upstream: https://x\n    auth_type: bearer\n    bearer_token: t\n    basic_password: hunter2\n");
    assert!(
        message.contains("sources.gh.basic_password: does not apply to auth_type `bearer`"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn duplicate_keys_are_rejected_at_every_level() {
    let message = rejected("sources:\n  a:\n    upstream: http://x\n    auth_type: none\n  a:\n    upstream: http://y\n    auth_type: none\n");
    assert!(
        message.contains("sources.yaml:5:3: sources.a: duplicate source id"),
        "{message}"
    );

    let message = rejected(
        "sources:\n  a:\n    upstream: http://x\n    upstream: http://y\n    auth_type: none\n",
    );
    assert!(
        message.contains("4:5: sources.a: duplicate field `upstream`"),
        "{message}"
    );

    let message = rejected("sources:\n  a:\n    upstream: http://x\n    auth_type: none\n    headers:\n      X-A: one\n      X-A: two\n");
    assert!(
        message.contains("7:7: sources.a.headers.X-A: is listed twice"),
        "{message}"
    );

    let message = rejected("sources:\n  a:\n    upstream: http://x\n    auth_type: none\n    headers:\n      X-A: one\n      x-a: two\n");
    assert!(
        message.contains("sources.a.headers.x-a: is listed twice"),
        "{message}"
    );
}

#[test]
fn upstream_must_be_an_absolute_http_url_without_credentials() {
    for (upstream, why) in [
        ("api.example.com/v1", "is not an absolute URL"),
        ("ftp://example.com", "must use the http or https scheme"),
        (
            "https://user:hunter2@example.com",
            "must not contain credentials",
        ),
        (
            "https://example.com/v1?key=hunter2",
            "must not contain a query",
        ),
        ("not a url", "is not an absolute URL"),
        (
            "https://exa mple.com",
            "is not a valid absolute http(s) URL",
        ),
    ] {
        let message = rejected(&format!(
            "sources:\n  s:\n    upstream: \"{upstream}\"\n    auth_type: none\n"
        ));
        assert!(
            message.contains(&format!("3:15: sources.s.upstream: {why}")),
            "{upstream}: {message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[test]
fn control_characters_in_headers_and_secrets_are_rejected_without_the_value() {
    let message = rejected("sources:\n  s:\n    upstream: http://x\n    auth_type: bearer\n    bearer_token: \"hunter2\\r\\nX-Evil: 1\"\n    headers:\n      X-Extra: \"also-hunter2\\n\"\n      \"Bad Name\": v\n");
    assert!(message.contains("3 problems"), "{message}");
    assert!(
        message.contains("sources.s.bearer_token: is not a valid HTTP header value"),
        "{message}"
    );
    assert!(
        message.contains("sources.s.headers.X-Extra: is not a valid HTTP header value"),
        "{message}"
    );
    assert!(
        message.contains("sources.s.headers.Bad Name: is not a valid HTTP header name"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn wrong_shapes_never_quote_secret_values() {
    let message = rejected(
        "sources:\n  s:\n    upstream: http://x\n    auth_type: none\n    headers: hunter2\n",
    );
    assert!(
        message.contains("5:14: sources.s.headers: must be a map, not text"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn reserved_and_credential_headers_cannot_be_set_by_headers() {
    let message = rejected("sources:\n  s:\n    upstream: http://x\n    auth_type: bearer\n    bearer_token: t\n    headers:\n      Authorization: x\n      Connection: close\n      Host: evil\n");
    assert!(
        message.contains(
            "sources.s.headers.Authorization: is the header the source's auth_type already sets"
        ),
        "{message}"
    );
    assert!(
        message.contains("sources.s.headers.Connection: names a header credproxy manages"),
        "{message}"
    );
    assert!(
        message.contains("sources.s.headers.Host: names a header credproxy manages"),
        "{message}"
    );
}

#[test]
fn empty_secrets_and_bad_ids_are_rejected() {
    let message = rejected("sources:\n  \"a/b\":\n    upstream: http://x\n    auth_type: bearer\n    bearer_token: \"\"\n");
    assert!(
        message
            .contains("sources.a/b: a source id must be non-empty and contain no '/', whitespace"),
        "{message}"
    );
    assert!(
        message.contains("sources.a/b.bearer_token: must not be empty"),
        "{message}"
    );
}

const HASH_A: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn callers_load_with_hashes_and_access_lists() {
    let text = format!(
        "sources:\n  gh:\n    upstream: http://x\n    auth_type: none\n  jira:\n    upstream: http://y\n    auth_type: none\ncallers:\n  ci:\n    token_sha256: {}\n    sources: [\"*\"]\n  bot:\n    token_sha256: {}\n    sources: [gh]\n",
        HASH_A.to_uppercase(),
        "0".repeat(64)
    );
    let spec = load_str(&text).expect("loads");
    let callers = spec.callers.as_ref().expect("callers");
    assert_eq!(callers.len(), 2);
    assert_eq!(callers[1].access, spec::Access::Only(vec!["gh".into()]));
}

#[test]
fn bad_callers_are_rejected_with_every_problem() {
    let text = format!(
        "sources:\n  gh:\n    upstream: http://x\n    auth_type: none\ncallers:\n  a:\n    token_sha256: abc\n    sources: [gh, nope]\n  b:\n    token_sha256: {HASH_A}\n  c:\n    token_sha256: {HASH_A}\n    sources: [\"*\", gh]\n"
    );
    let message = rejected(&text);
    for expected in [
        "callers.a.token_sha256: must be 64 hex digits",
        "callers.a.sources: names unknown source `nope`",
        "callers.b.sources: missing",
        "callers.c.token_sha256: is the same token as caller `b`",
        "callers.c.sources: \"*\" stands alone",
    ] {
        assert!(message.contains(expected), "{expected}\n{message}");
    }
}

#[test]
fn callers_can_be_required() {
    let options = LoadOptions {
        require_callers: true,
        ..LoadOptions::default()
    };
    let error =
        load_bytes(Path::new("s.yaml"), b"sources: {}\n", options).expect_err("needs callers");
    assert!(
        error
            .to_string()
            .contains("callers: required: credproxy listens on a non-loopback address"),
        "{error}"
    );
    let text =
        format!("sources: {{}}\ncallers:\n  ci: {{ token_sha256: {HASH_A}, sources: [\"*\"] }}\n");
    assert!(load_bytes(Path::new("s.yaml"), text.as_bytes(), options).is_ok());
}

#[test]
fn oauth2_sources_need_a_token_url_and_client() {
    let message = rejected("sources:\n  s:\n    upstream: http://x\n    auth_type: oauth2\n    oauth2_token_url: idp/token\n    oauth2_client_auth: jwt\n    oauth2_scopes: [\"a b\"]\n    token_exchange_audience: x\n");
    for expected in [
        "sources.s.oauth2_token_url: is not an absolute URL",
        "sources.s.oauth2_client_id: missing",
        "sources.s.oauth2_client_auth: unknown value; one of basic, post",
        "sources.s.oauth2_scopes: each scope must be non-empty and contain no spaces",
        "sources.s.token_exchange_audience: does not apply to auth_type `oauth2`",
    ] {
        assert!(message.contains(expected), "{expected}\n{message}");
    }
    // The secret is the default method's: missing when that method is used.
    let message = rejected("sources:\n  s:\n    upstream: http://x\n    auth_type: oauth2\n    oauth2_token_url: https://idp/token\n    oauth2_client_id: c\n");
    assert!(
        message.contains(
            "sources.s.oauth2_client_secret: missing; oauth2_client_auth `basic` needs it"
        ),
        "{message}"
    );
}

#[test]
fn oauth2_and_token_exchange_load() {
    let spec = load_str("sources:\n  cc:\n    upstream: https://api\n    auth_type: oauth2\n    oauth2_token_url: https://idp/token\n    oauth2_client_id: id\n    oauth2_client_secret: s\n    oauth2_scopes: [a, b]\n  x:\n    upstream: https://api\n    auth_type: token_exchange\n    oauth2_token_url: https://idp/token\n    oauth2_client_id: id\n    oauth2_client_secret: s\n    oauth2_client_auth: post\n    token_exchange_resource: https://api\n").expect("loads");
    let oauth = |id| match &source(&spec, id).credential {
        CredentialSpec::OAuth2(oauth) => oauth,
        other => panic!("{other:?}"),
    };
    assert_eq!(oauth("cc").grant, spec::Grant::ClientCredentials);
    assert_eq!(oauth("cc").scopes, ["a", "b"]);
    assert_eq!(oauth("x").client_auth.as_str(), "post");
    let spec::Grant::TokenExchange(exchange) = &oauth("x").grant else {
        panic!("exchange settings")
    };
    assert_eq!(
        exchange.subject_token_type,
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(exchange.resource.as_deref(), Some("https://api"));
}

#[test]
fn unreadable_and_non_utf8_files() {
    let error = load(
        Path::new("/nonexistent/credproxy/sources.yaml"),
        LoadOptions::default(),
    )
    .expect_err("missing file");
    assert!(
        error
            .to_string()
            .contains("/nonexistent/credproxy/sources.yaml"),
        "{error}"
    );
    let error = load_bytes(
        Path::new("x.yaml"),
        b"sources: {a: \xff}",
        LoadOptions::default(),
    )
    .expect_err("not utf-8");
    assert!(error.to_string().contains("is not UTF-8"), "{error}");
}

/// Inputs the config fuzzers found, where a `"` inside a quoted id made the old
/// quote-pairing redaction print the secret.
#[test]
fn fuzz_found_quote_desync_does_not_leak() {
    for input in [
        &b"sources:\n  open:\n    upstream: http://127.0.0.1:9/\n  ! auth/api.s \"_token: hunter2-fuzz\n"[..],
        &b"sources:\n  s:\n    upstream: https://api.example.com\n    auth_type: none\n    headers:\n      \n  h2_\"hun\"\"client_secbearet a: hunter2-fuzz\n"[..],
    ] {
        if let Err(error) = load_bytes(Path::new("fuzz.yaml"), input, LoadOptions::default()) {
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
    }
}

#[test]
fn a_null_callers_section_is_an_error_and_an_empty_one_refuses_everyone() {
    let message = rejected("sources: {}\ncallers:\n#  ci:\n#    token_sha256: x\n");
    assert!(
        message.contains(
            "callers: is empty; write `callers: {}` to refuse every caller, or delete the key"
        ),
        "{message}"
    );
    let spec = load_str("sources: {}\ncallers: {}\n").expect("loads");
    assert_eq!(spec.callers.map(|c| c.len()), Some(0));
    assert!(load_str("sources: {}\n").expect("loads").callers.is_none());
}

#[test]
fn source_ids_are_path_segments() {
    for id in ["\"a b\"", "\"a\\tb\"", "\"a\\u0001b\"", "\"\""] {
        let message = rejected(&format!(
            "sources:\n  {id}:\n    upstream: http://x\n    auth_type: none\n"
        ));
        assert!(
            message.contains("a source id must be non-empty"),
            "{id}: {message}"
        );
    }
}

#[test]
fn unknown_keys_are_never_echoed_anywhere() {
    for text in [
        "sources: {}\nhunter2-top: x\n",
        "sources:\n  s: { upstream: \"http://x\", auth_type: none, hunter2,rest }\n",
        "sources: {}\ncallers:\n  c: { token_sha256: x, hunter2: y }\n",
    ] {
        let message = rejected(text);
        assert!(message.contains("unknown"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[test]
fn every_tls_file_problem_is_reported_with_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("not-a-cert.pem"), "hello\n").expect("write");
    let text = "sources:\n  s:\n    upstream: ftp://x\n    auth_type: none\n    tls_ca_file: not-a-cert.pem\n    tls_client_cert_file: absent.pem\n    tls_client_key_file: /dev/null\n";
    let error = load_bytes(
        &dir.path().join("sources.yaml"),
        text.as_bytes(),
        LoadOptions::default(),
    )
    .expect_err("rejected");
    let message = error.to_string();
    for expected in [
        "sources.s.upstream: must use the http or https scheme",
        "sources.s.tls_ca_file: holds no PEM certificate",
        "sources.s.tls_client_cert_file: cannot read the file",
        "sources.s.tls_client_key_file: cannot read the file",
    ] {
        assert!(message.contains(expected), "{expected}\n{message}");
    }
}

/// A config directory with an EC key (`key.pem`) and a ready-made assertion (`token`).
fn identity_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    std::fs::write(dir.path().join("key.pem"), pair.serialize_pem()).expect("write");
    std::fs::write(dir.path().join("token"), "eyJ.ready.made\n").expect("write");
    let google = serde_json::json!({
        "type": "service_account",
        "client_email": "robot@project.iam.gserviceaccount.com",
        "private_key": pair.serialize_pem(),
        "private_key_id": "kid-1",
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    std::fs::write(dir.path().join("google.json"), google.to_string()).expect("write");
    std::fs::write(
        dir.path().join("bad.json"),
        "{\"private_key\": \"hunter2\"}",
    )
    .expect("write");
    dir
}

fn load_in(dir: &tempfile::TempDir, text: &str) -> Result<Spec, ConfigError> {
    load_bytes(
        &dir.path().join("sources.yaml"),
        text.as_bytes(),
        LoadOptions::default(),
    )
}

fn oauth_of(spec: &Spec, id: &str) -> spec::OAuthSpec {
    match &source(spec, id).credential {
        CredentialSpec::OAuth2(oauth) => (**oauth).clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn identity_client_authentications_load() {
    let dir = identity_dir();
    let text = "sources:\n  pk:\n    upstream: https://api\n    auth_type: oauth2\n    oauth2_token_url: https://idp/token\n    oauth2_client_id: c\n    oauth2_client_auth: private_key_jwt\n    oauth2_client_private_key: { file: key.pem }\n    oauth2_client_key_id: k1\n    oauth2_resource: [https://a.test, urn:example:b]\n    oauth2_extra_params: { tenant: t1 }\n  assertion:\n    upstream: https://api\n    auth_type: token_exchange\n    oauth2_token_url: https://idp/token\n    oauth2_client_id: c\n    oauth2_client_auth: client_assertion\n    oauth2_client_assertion: { file: token }\n  public:\n    upstream: https://api\n    auth_type: oauth2\n    oauth2_token_url: https://idp/token\n    oauth2_client_id: c\n    oauth2_client_auth: none\n    oauth2_resource: https://one.test\n";
    let spec = load_in(&dir, text).unwrap_or_else(|e| panic!("{e}"));
    let pk = oauth_of(&spec, "pk");
    assert_eq!(pk.client_auth.as_str(), "private_key_jwt");
    assert_eq!(pk.resources, ["https://a.test", "urn:example:b"]);
    assert_eq!(pk.extra_params[0].0, "tenant");
    let spec::ClientAuth::Assertion(live) = oauth_of(&spec, "assertion").client_auth else {
        panic!("assertion")
    };
    assert_eq!(live, spec::LiveSecret::File(dir.path().join("token")));
    assert_eq!(oauth_of(&spec, "public").resources, ["https://one.test"]);
    assert!(spec.meta.secret_files.contains(&dir.path().join("token")));
}

#[test]
fn identity_fields_are_checked_against_the_chosen_method() {
    let dir = identity_dir();
    let text = "sources:\n  s:\n    upstream: https://api\n    auth_type: oauth2\n    oauth2_token_url: https://idp/token\n    oauth2_client_id: c\n    oauth2_client_auth: private_key_jwt\n    oauth2_client_private_key: hunter2-not-a-key\n    oauth2_client_secret: hunter2\n  t:\n    upstream: https://api\n    auth_type: oauth2\n    oauth2_token_url: https://idp/token\n    oauth2_client_id: c\n    oauth2_client_auth: tls_client_auth\n    oauth2_resource: not a uri\n    oauth2_extra_params: { client_secret: x }\n";
    let message = load_in(&dir, text).expect_err("rejected").to_string();
    for expected in [
        "sources.s.oauth2_client_private_key: holds no PEM private key",
        "sources.s.oauth2_client_secret: does not apply to oauth2_client_auth `private_key_jwt`",
        "sources.t.oauth2_tls_client_cert_file: missing; oauth2_client_auth `tls_client_auth` needs it",
        "sources.t.oauth2_tls_client_key_file: missing",
        "sources.t.oauth2_resource: each resource must be an absolute URI",
        "sources.t.oauth2_extra_params.client_secret: is a parameter credproxy sets itself",
    ] {
        assert!(message.contains(expected), "{expected}\n{message}");
    }
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn jwt_bearer_grants_load_signed_or_ready_made() {
    let dir = identity_dir();
    let text = "sources:\n  signed:\n    upstream: https://api\n    auth_type: jwt_bearer\n    oauth2_token_url: https://idp/token\n    oauth2_client_private_key: { file: key.pem }\n    jwt_bearer_issuer: me\n    jwt_bearer_claims: { tenant: t1, level: 3, tags: [a, b] }\n  ready:\n    upstream: https://api\n    auth_type: jwt_bearer\n    oauth2_token_url: https://idp/token\n    oauth2_client_assertion: { file: token }\n    oauth2_client_id: c\n    oauth2_client_auth: post\n    oauth2_client_secret: s\n";
    let spec = load_in(&dir, text).unwrap_or_else(|e| panic!("{e}"));
    let spec::Grant::JwtBearer(spec::GrantAssertion::Signed(signed)) =
        oauth_of(&spec, "signed").grant
    else {
        panic!("signed")
    };
    assert_eq!(
        (signed.issuer.as_str(), signed.subject.as_deref()),
        ("me", Some("me"))
    );
    assert_eq!(
        serde_json::Value::from(signed.claims.clone()),
        serde_json::json!({ "tenant": "t1", "level": 3, "tags": ["a", "b"] })
    );
    assert_eq!(
        oauth_of(&spec, "signed").client_auth,
        spec::ClientAuth::None
    );
    assert!(matches!(
        oauth_of(&spec, "ready").grant,
        spec::Grant::JwtBearer(spec::GrantAssertion::ReadyMade(_))
    ));

    let text = "sources:\n  both:\n    upstream: https://api\n    auth_type: jwt_bearer\n    oauth2_token_url: https://idp/token\n    oauth2_client_private_key: { file: key.pem }\n    oauth2_client_assertion: { file: token }\n  none:\n    upstream: https://api\n    auth_type: jwt_bearer\n    oauth2_token_url: https://idp/token\n  claims:\n    upstream: https://api\n    auth_type: jwt_bearer\n    oauth2_token_url: https://idp/token\n    oauth2_client_private_key: { file: key.pem }\n    jwt_bearer_claims: { exp: 1 }\n    oauth2_client_auth: private_key_jwt\n";
    let message = load_in(&dir, text).expect_err("rejected").to_string();
    for expected in [
        "sources.both.oauth2_client_assertion: set one of oauth2_client_private_key",
        "sources.none.oauth2_client_private_key: set one of",
        "sources.claims.jwt_bearer_issuer: missing; the signed assertion's iss",
        "sources.claims.jwt_bearer_claims.exp: is a claim credproxy sets itself",
        "sources.claims.oauth2_client_auth: for jwt_bearer the key and the assertion fields make the grant",
    ] {
        assert!(message.contains(expected), "{expected}\n{message}");
    }
}

#[test]
fn a_google_service_account_key_is_read_whole() {
    let dir = identity_dir();
    let text = "sources:\n  g:\n    upstream: https://storage.googleapis.com\n    auth_type: google_service_account\n    google_service_account_key: { file: google.json }\n    oauth2_scopes: [https://www.googleapis.com/auth/devstorage.read_only]\n";
    let spec = load_in(&dir, text).unwrap_or_else(|e| panic!("{e}"));
    let oauth = oauth_of(&spec, "g");
    assert_eq!(
        oauth.token_url.to_string(),
        "https://oauth2.googleapis.com/token"
    );
    assert_eq!(
        oauth.assertion_audience.as_deref(),
        Some("https://oauth2.googleapis.com/token")
    );
    let spec::Grant::JwtBearer(spec::GrantAssertion::Signed(signed)) = oauth.grant else {
        panic!("signed")
    };
    assert_eq!(signed.issuer, "robot@project.iam.gserviceaccount.com");
    assert_eq!(signed.signed_by.kid.as_deref(), Some("kid-1"));
    assert_eq!(
        signed.claims["scope"],
        "https://www.googleapis.com/auth/devstorage.read_only"
    );
    assert!(signed.subject.is_none() && !signed.jti);

    let message = load_in(&dir, &text.replace("google.json", "bad.json"))
        .expect_err("rejected")
        .to_string();
    assert!(
        message.contains("is not a Google service-account JSON key"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
    let message = load_in(
        &dir,
        &text.replace(
            "    oauth2_scopes: [https://www.googleapis.com/auth/devstorage.read_only]\n",
            "",
        ),
    )
    .expect_err("rejected")
    .to_string();
    assert!(
        message.contains("sources.g.oauth2_scopes: missing"),
        "{message}"
    );
}

mod callers;
mod signed;
