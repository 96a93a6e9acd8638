//! Caller rules and JWT callers (DESIGN §9), end to end: tokens are minted by jose
//! (`tests/interop/jwks.mjs`), which also serves the JWK Set, counts its fetches, and can
//! rotate keys or fail on command.

use crate::support;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use credproxy::caller::token_sha256_hex;
use credproxy::metrics::CallerRejection;
use credproxy::secret::MasterKeys;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::json;
use support::binary::BinaryProxy;
use support::client::{self, get, send, Answer};
use support::helper::{self, Helper};
use support::upstream::Upstream;
use support::{eventually, InProcessProxy};

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The identity provider stand-in.
struct Idp {
    _process: Helper,
    url: String,
}

impl Idp {
    fn start() -> Option<Idp> {
        if helper::skipped("the JWKS server (jose)") {
            return None;
        }
        let mut command = helper::node();
        command.arg(helper::repo_path("tests/interop/jwks.mjs"));
        let process = Helper::start("the JWKS server", command);
        let url = process.field("url");
        Some(Idp {
            _process: process,
            url,
        })
    }

    fn jwks_url(&self) -> String {
        format!("{}/jwks", self.url)
    }

    /// A token signed with key `kid` (`a`, `b`: RS256; `c`: ES256).
    async fn mint(&self, kid: &str, claims: serde_json::Value) -> String {
        self.mint_as(kid, kid, claims).await
    }

    /// Signed with key `kid`, but naming `header_kid`.
    async fn mint_as(&self, kid: &str, header_kid: &str, claims: serde_json::Value) -> String {
        let body = json!({ "kid": kid, "as": header_kid, "claims": claims }).to_string();
        let request = Request::post(format!("{}/mint", self.url))
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let answer = send(&client::http1(), request).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()["token"].as_str().expect("token").to_owned()
    }

    async fn control(&self, what: &str) {
        let request = Request::post(format!("{}/_test/{what}", self.url))
            .body(Full::default())
            .expect("request");
        assert_eq!(send(&client::http1(), request).await.status, 200);
    }

    async fn fetches(&self) -> u64 {
        let stats = get(&client::http1(), &format!("{}/_test/stats", self.url)).await;
        stats.json()["fetches"].as_u64().expect("fetches")
    }

    async fn published(&self) -> String {
        get(&client::http1(), &self.jwks_url()).await.text()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// What a Kubernetes projected service-account token carries, for audience `credproxy`.
fn k8s_claims(namespace: &str, account: &str) -> serde_json::Value {
    let now = now();
    json!({
        "aud": ["credproxy"],
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
        "iss": ISSUER,
        "jti": format!("{namespace}-{account}-{now}"),
        "kubernetes.io": {
            "namespace": namespace,
            "node": { "name": "node-1", "uid": "4e1c7d0b-7a15-4c8b-9e1a-7f1a2b3c4d5e" },
            "pod": { "name": format!("{account}-7d9f8"), "uid": "0f0e0d0c-0b0a-4909-8807-060504030201" },
            "serviceaccount": { "name": account, "uid": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d" },
        },
        "sub": format!("system:serviceaccount:{namespace}:{account}"),
    })
}

/// Sources `gh` (bearer) and `echo` (none) on one upstream; callers `agents` (any account
/// in namespace agents), `reporter` (one account, narrower rules) and `ci` (a token).
fn config(upstream: &Upstream, jwks: &str) -> String {
    format!(
        "sources:\n  gh:\n    upstream: {up}\n    auth_type: bearer\n    bearer_token: gh-token\n  \
         echo:\n    upstream: {up}\n    auth_type: none\n\
         callers:\n  \
         agents:\n    jwt: {{ issuer: \"{ISSUER}\", audience: credproxy, {jwks}, subject: \"system:serviceaccount:agents:*\" }}\n    \
         sources: [gh, echo]\n    rules:\n      - source: gh\n        methods: [GET, HEAD]\n        paths: [\"/repos/acme/**\"]\n      - source: echo\n  \
         reporter:\n    jwt: {{ issuer: \"{ISSUER}\", audience: credproxy, {jwks}, subject: \"system:serviceaccount:agents:reporter\" }}\n    \
         sources: [gh]\n    rules:\n      - source: gh\n        methods: [GET]\n        paths: [\"/repos/acme/reports/*\"]\n  \
         ci:\n    token_sha256: {ci}\n    sources: [gh]\n    rules:\n      - source: gh\n        methods: [GET]\n        paths: [\"/repos/*/issues\", \"/files/**\", \"/repos/acme/*/issues\"]\n",
        up = upstream.url(),
        ci = token_sha256_hex("ci-token"),
    )
}

async fn call(proxy: &InProcessProxy, method: Method, path: &str, token: Option<&str>) -> Answer {
    client::as_caller(method, &proxy.url(path), token).await
}

/// Starts the proxy on a `jwks_url` and waits until the background has fetched the set.
async fn proxy_on(idp: &Idp, upstream: &Upstream) -> InProcessProxy {
    let jwks = format!("jwks_url: \"{}\"", idp.jwks_url());
    let proxy = InProcessProxy::start(&config(upstream, &jwks)).await;
    eventually("the key set to be fetched at load", || async {
        let snapshot = proxy.store.load_full();
        let mut sets = snapshot.callers.iter().flat_map(|c| c.remote_keys());
        sets.all(|set| set.current().is_some())
    })
    .await;
    proxy
}

fn rejections(proxy: &InProcessProxy, why: CallerRejection) -> u64 {
    proxy.metrics.caller_rejections(why)
}

#[tokio::test]
async fn kubernetes_tokens_are_matched_by_subject_and_held_to_their_rules() {
    let Some(idp) = Idp::start() else {
        return;
    };
    let upstream = Upstream::recording().await;
    let proxy = proxy_on(&idp, &upstream).await;
    let runner = idp.mint("a", k8s_claims("agents", "runner")).await;
    let runner_es = idp.mint("c", k8s_claims("agents", "runner")).await;
    let reporter = idp.mint("a", k8s_claims("agents", "reporter")).await;

    let cases: [(Method, &str, &str, u16); 12] = [
        (Method::GET, "/gh/repos/acme/widgets", &runner, 200),
        (Method::HEAD, "/gh/repos/acme", &runner, 200),
        (Method::GET, "/echo/anything/at/all", &runner_es, 200),
        (Method::DELETE, "/echo/pets/1", &runner_es, 200),
        (Method::POST, "/gh/repos/acme/widgets", &runner, 403),
        (Method::GET, "/gh/repos/other", &runner, 403),
        (Method::GET, "/gh/user", &runner_es, 403),
        // The exact subject wins over the prefix: the reporter has its own, narrower rules.
        (Method::GET, "/gh/repos/acme/reports/q3", &reporter, 200),
        (Method::GET, "/gh/repos/acme/widgets", &reporter, 403),
        (Method::GET, "/echo/x", &reporter, 403),
        (Method::GET, "/gh/repos/acme/issues", "ci-token", 200),
        (Method::GET, "/gh/repos/acme/pulls", "ci-token", 403),
    ];
    let mut allowed = 0;
    for (method, path, token, status) in cases {
        let answer = call(&proxy, method.clone(), path, Some(token)).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.text());
        if status == 403 {
            answer.assert_problem(403, "caller_forbidden");
        } else {
            allowed += 1;
        }
    }
    let seen = upstream.requests();
    assert_eq!(
        seen.len(),
        allowed,
        "a refused request reached the upstream"
    );
    for request in &seen {
        assert_eq!(request.header("proxy-authorization"), None);
    }
    assert_eq!(
        seen[0].header("authorization").as_deref(),
        Some("Bearer gh-token")
    );
    assert_eq!(rejections(&proxy, CallerRejection::Rule), 5);
    assert_eq!(rejections(&proxy, CallerRejection::Source), 1);
    // Four JWT requests, one fetch: the one at load.
    assert_eq!(idp.fetches().await, 1);
}

/// A token made by hand: `header.claims.signature`.
fn forged(header: serde_json::Value, claims: &serde_json::Value, signature: &str) -> String {
    let part = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", part(&header), part(claims))
}

#[tokio::test]
async fn every_rejection_has_its_reason() {
    let Some(idp) = Idp::start() else {
        return;
    };
    let upstream = Upstream::recording().await;
    let proxy = proxy_on(&idp, &upstream).await;
    let claims = || k8s_claims("agents", "runner");
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = claims();
        change(&mut claims);
        claims
    };
    let good = idp.mint("a", claims()).await;
    let mut parts: Vec<&str> = good.split('.').collect();
    let other_payload = URL_SAFE_NO_PAD
        .encode(with(&|c| c["sub"] = "system:serviceaccount:agents:admin".into()).to_string());
    parts[1] = &other_payload;
    let tampered = parts.join(".");
    let signature = good.rsplit('.').next().expect("signature");

    use CallerRejection::*;
    let cases: Vec<(String, CallerRejection)> = vec![
        ("not-a-jwt".into(), UnknownToken),
        (
            forged(json!({ "alg": "none" }), &claims(), ""),
            JwtAlgorithm,
        ),
        (
            forged(json!({ "alg": "HS256", "kid": "a" }), &claims(), signature),
            JwtAlgorithm,
        ),
        (
            idp.mint("a", with(&|c| c["iss"] = "https://evil.example".into()))
                .await,
            JwtIssuer,
        ),
        (
            idp.mint("a", with(&|c| c["aud"] = json!(["vault"]))).await,
            JwtAudience,
        ),
        (
            idp.mint("a", with(&|c| c["exp"] = json!(now() - 120)))
                .await,
            JwtExpired,
        ),
        (
            idp.mint("a", with(&|c| c["nbf"] = json!(now() + 120)))
                .await,
            JwtNotYetValid,
        ),
        (
            idp.mint(
                "a",
                with(&|c| {
                    c.as_object_mut().expect("claims").remove("exp");
                }),
            )
            .await,
            JwtClaims,
        ),
        (
            idp.mint("c", k8s_claims("billing", "runner")).await,
            JwtSubject,
        ),
        (tampered, JwtSignature),
        // Signed with the RSA key, naming the EC key: never tried with a key of another type.
        (idp.mint_as("a", "c", claims()).await, JwtUnknownKey),
    ];
    let mut expected = std::collections::HashMap::new();
    for (token, why) in &cases {
        let answer = call(&proxy, Method::GET, "/echo/x", Some(token)).await;
        answer.assert_problem(407, "caller_unauthenticated");
        *expected.entry(*why as usize).or_insert(0) += 1;
        assert_eq!(
            rejections(&proxy, *why),
            expected[&(*why as usize)],
            "{why:?}"
        );
    }
    call(&proxy, Method::GET, "/echo/x", None)
        .await
        .assert_problem(407, "caller_unauthenticated");
    assert_eq!(rejections(&proxy, MissingToken), 1);

    // Within the 30 s leeway, an expired token still passes; `aud` may be a string.
    let lenient = idp
        .mint(
            "c",
            with(&|c| {
                c["exp"] = json!(now() - 10);
                c["aud"] = "credproxy".into();
            }),
        )
        .await;
    assert_eq!(
        call(&proxy, Method::GET, "/echo/x", Some(&lenient))
            .await
            .status,
        200
    );
    assert!(
        upstream.requests().len() == 1,
        "only the good token got through"
    );
}

#[tokio::test]
async fn an_unknown_kid_refetches_at_most_once_a_minute_and_a_new_set_replaces_the_old() {
    let Some(idp) = Idp::start() else {
        return;
    };
    let upstream = Upstream::recording().await;
    let proxy = proxy_on(&idp, &upstream).await;
    assert_eq!(idp.fetches().await, 1);
    let old = idp.mint("a", k8s_claims("agents", "runner")).await;
    assert_eq!(
        call(&proxy, Method::GET, "/echo/x", Some(&old))
            .await
            .status,
        200
    );

    // The issuer rotates to key b: the first token signed with it brings a fetch.
    idp.control("publish?kids=b").await;
    let rotated = idp.mint("b", k8s_claims("agents", "runner")).await;
    let answer = call(&proxy, Method::GET, "/echo/x", Some(&rotated)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(idp.fetches().await, 2);

    // The new set replaced the old: key a is gone, for a cached token too.
    call(&proxy, Method::GET, "/echo/x", Some(&old))
        .await
        .assert_problem(407, "caller_unauthenticated");
    // Made-up kids within the minute: no more fetches.
    for kid in ["zzz", "yyy", "a"] {
        let token = idp.mint_as("b", kid, k8s_claims("agents", "runner")).await;
        call(&proxy, Method::GET, "/echo/x", Some(&token))
            .await
            .assert_problem(407, "caller_unauthenticated");
    }
    assert_eq!(
        idp.fetches().await,
        2,
        "an unknown kid fetched within the minute"
    );
    assert_eq!(rejections(&proxy, CallerRejection::JwtUnknownKey), 4);
}

#[tokio::test]
async fn a_jwks_outage_keeps_the_last_good_set_and_is_counted() {
    let Some(idp) = Idp::start() else {
        return;
    };
    let upstream = Upstream::recording().await;
    let proxy = proxy_on(&idp, &upstream).await;
    idp.control("fail?on=1").await;
    let unknown = idp.mint("b", k8s_claims("agents", "runner")).await;
    call(&proxy, Method::GET, "/echo/x", Some(&unknown))
        .await
        .assert_problem(407, "caller_unauthenticated");
    assert_eq!(idp.fetches().await, 2, "the unknown kid asked for a fetch");
    let snapshot = proxy.store.load_full();
    let set = snapshot
        .callers
        .iter()
        .flat_map(|c| c.remote_keys())
        .next()
        .expect("a remote set");
    assert_eq!(set.failures.load(std::sync::atomic::Ordering::Relaxed), 1);
    let fresh = idp.mint("a", k8s_claims("agents", "runner")).await;
    let answer = call(&proxy, Method::GET, "/echo/x", Some(&fresh)).await;
    assert_eq!(
        answer.status,
        200,
        "the last good set was dropped: {}",
        answer.text()
    );
}

#[tokio::test]
async fn a_rule_tightened_by_reload_and_a_rotated_jwks_file_apply_without_a_restart() {
    let Some(idp) = Idp::start() else {
        return;
    };
    let upstream = Upstream::recording().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, idp.published().await).expect("write");
    let path = dir.path().join("sources.yaml");
    let written = config(&upstream, "jwks_file: jwks.json");
    std::fs::write(&path, &written).expect("write");
    let proxy = InProcessProxy::watching(&path, MasterKeys::default()).await;
    let runner = idp.mint("c", k8s_claims("agents", "runner")).await;
    assert_eq!(
        call(&proxy, Method::GET, "/echo/other", Some(&runner))
            .await
            .status,
        200
    );

    let tightened = written.replace(
        "      - source: echo\n",
        "      - source: echo\n        paths: [\"/pets/*\"]\n",
    );
    assert_ne!(tightened, written);
    std::fs::write(&path, tightened).expect("write");
    eventually("the tightened rule", || async {
        call(&proxy, Method::GET, "/echo/other", Some(&runner))
            .await
            .status
            == 403
    })
    .await;
    assert_eq!(
        call(&proxy, Method::GET, "/echo/pets/1", Some(&runner))
            .await
            .status,
        200
    );

    // The file's keys rotate to b: b's tokens pass and c's stop, with no fetch at all.
    idp.control("publish?kids=b").await;
    let fetched = idp.fetches().await;
    std::fs::write(&jwks, idp.published().await).expect("write");
    let rotated = idp.mint("b", k8s_claims("agents", "runner")).await;
    eventually("the rotated key file", || async {
        call(&proxy, Method::GET, "/echo/pets/2", Some(&rotated))
            .await
            .status
            == 200
    })
    .await;
    call(&proxy, Method::GET, "/echo/pets/1", Some(&runner))
        .await
        .assert_problem(407, "caller_unauthenticated");
    assert_eq!(
        idp.fetches().await,
        fetched + 1,
        "only the test read the set"
    );
}

#[tokio::test]
async fn encoded_slashes_and_other_tricks_do_not_widen_a_rule() {
    let upstream = Upstream::recording().await;
    let proxy =
        InProcessProxy::start(&config(&upstream, "jwks_url: \"https://idp.invalid/jwks\"")).await;
    let cases: [(&str, u16); 13] = [
        ("/gh/repos/acme/widgets/issues", 200),
        ("/gh/repos/%61cme/widgets/issues", 200),
        (
            "/gh/repos/acme/widgets/issues?next=/repos/other/secrets",
            200,
        ),
        ("/gh/files/a%2Fb/c", 200),
        ("/gh/repos/acme%2Fwidgets/issues", 403),
        ("/gh/repos/acme/a%2Fb/issues", 403),
        ("/gh/repos/acme/a%2fb/issues", 403),
        ("/gh/repos/acme/a%5Cb/issues", 403),
        ("/gh/repos/ACME/widgets/issues", 403),
        ("/gh//repos/acme/widgets/issues", 403),
        ("/gh/repos/acme/widgets/issues/", 403),
        ("/gh/repos/acme/widgets%2F..%2F..%2Fother/issues", 400),
        ("/gh/repos/acme/..%2Fother/x/issues", 400),
    ];
    let mut allowed = Vec::new();
    for (path, status) in cases {
        let answer = call(&proxy, Method::GET, path, Some("ci-token")).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.text());
        if status == 200 {
            allowed.push(
                path.split('?')
                    .next()
                    .unwrap_or(path)
                    .trim_start_matches("/gh"),
            );
        }
    }
    let seen: Vec<String> = upstream
        .requests()
        .iter()
        .map(|r| r.target.split('?').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        seen, allowed,
        "the upstream saw exactly the allowed paths, byte for byte"
    );
}

#[test]
fn trace_logs_never_show_a_jwt_and_the_access_log_names_the_subject() {
    let Some(idp) = Idp::start() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let upstream = runtime.block_on(Upstream::recording());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sources.yaml");
    let jwks = format!("jwks_url: \"{}\"", idp.jwks_url());
    std::fs::write(&path, config(&upstream, &jwks)).expect("write");
    let proxy = BinaryProxy::start(&path, "trace", &[]);
    proxy.output_when("the key set", |out| out.contains("JWKS loaded"));
    let (token, expired, answers, metrics) = runtime.block_on(async {
        let token = idp.mint("a", k8s_claims("agents", "runner")).await;
        let mut claims = k8s_claims("agents", "runner");
        claims["exp"] = json!(now() - 300);
        let expired = idp.mint("c", claims).await;
        let mut answers = Vec::new();
        for token in [&token, &token, &expired] {
            let request = Request::get(proxy.url("/gh/repos/acme/widgets"))
                .header("proxy-authorization", format!("Bearer {token}"))
                .body(Full::default())
                .expect("request");
            answers.push(send(&client::http1(), request).await);
        }
        let metrics = get(
            &client::http1(),
            &format!("http://{}/metrics", proxy.admin_addr),
        )
        .await;
        (token, expired, answers, metrics.text())
    });
    assert_eq!(
        answers
            .iter()
            .map(|a| a.status.as_u16())
            .collect::<Vec<_>>(),
        [200, 200, 407]
    );
    let output = proxy.output_when("three access log lines", |out| {
        out.matches("credproxy::access").count() >= 3
    });
    for (what, jwt) in [("token", &token), ("expired token", &expired)] {
        let signature = jwt.rsplit('.').next().expect("signature");
        let body = jwt.split('.').nth(1).expect("claims");
        for answer in &answers {
            let text = format!("{:?}{}", answer.headers, answer.text());
            assert!(!text.contains(signature), "the {what} is in a response");
        }
        assert!(
            !output.contains(signature),
            "the {what}'s signature is in the log:\n{output}"
        );
        assert!(
            !output.contains(body),
            "the {what}'s claims are in the log:\n{output}"
        );
    }
    let access = proxy.access_log(3);
    assert_eq!(access[0]["caller"], "agents", "{access:?}");
    assert_eq!(access[0]["subject"], "system:serviceaccount:agents:runner");
    assert!(
        output.contains("TRACE"),
        "not vacuous: trace logging was on"
    );
    assert!(
        metrics.contains("credproxy_caller_rejections_total{reason=\"jwt_expired\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "credproxy_jwks_fetch_failures_total{{issuer=\"{ISSUER}\",url=\"{}\"}} 0",
            idp.jwks_url()
        )),
        "{metrics}"
    );
}
