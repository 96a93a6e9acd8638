//! OAuth2 sources end to end: client_credentials and token exchange against a fake token
//! endpoint that counts its calls, through the proxy in process.

use crate::support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::client::{self, get, send};
use support::token_endpoint::{Behaviour, TokenEndpoint};
use support::upstream::Upstream;
use support::InProcessProxy;

fn oauth2_source(id: &str, upstream: &str, token_url: &str, extra: &str) -> String {
    format!(
        "  {id}:\n    upstream: {upstream}\n    auth_type: oauth2\n    oauth2_token_url: {token_url}\n    \
         oauth2_client_id: my-client\n    oauth2_client_secret: cl1ent-s3cret\n{extra}"
    )
}

fn exchange_source(id: &str, upstream: &str, token_url: &str) -> String {
    format!(
        "  {id}:\n    upstream: {upstream}\n    auth_type: token_exchange\n    oauth2_token_url: {token_url}\n    \
         oauth2_client_id: my-client\n    oauth2_client_secret: cl1ent-s3cret\n    token_exchange_audience: orders\n"
    )
}

async fn setup(
    extra: &str,
) -> (
    TokenEndpoint,
    Upstream,
    Arc<Mutex<HashSet<String>>>,
    InProcessProxy,
) {
    let idp = TokenEndpoint::start().await;
    let revoked = Arc::new(Mutex::new(HashSet::new()));
    let upstream = Upstream::refusing(Arc::clone(&revoked)).await;
    let yaml = format!(
        "sources:\n{}{}",
        oauth2_source("cc", &upstream.url(), &idp.url(), extra),
        exchange_source("xchg", &upstream.url(), &idp.url())
    );
    let proxy = InProcessProxy::start(&yaml).await;
    (idp, upstream, revoked, proxy)
}

#[tokio::test]
async fn sequential_requests_share_one_token() {
    let (idp, upstream, _, proxy) = setup("").await;
    let http = client::http1();
    for _ in 0..10 {
        assert_eq!(get(&http, &proxy.url("/cc/x")).await.status, StatusCode::OK);
    }
    assert_eq!(idp.calls(), 1);
    assert!(
        upstream
            .authorizations()
            .iter()
            .all(|a| a == "Bearer tok-1"),
        "{:?}",
        upstream.authorizations()
    );
}

#[tokio::test]
async fn concurrent_cold_requests_make_exactly_one_token_call() {
    let (idp, upstream, _, proxy) = setup("").await;
    idp.set(Behaviour {
        delay: Duration::from_millis(200),
        ..Behaviour::default()
    });
    let http = client::http1();
    let requests = (0..200).map(|_| {
        let (http, url) = (http.clone(), proxy.url("/cc/x"));
        tokio::spawn(async move { get(&http, &url).await.status })
    });
    for request in requests.collect::<Vec<_>>() {
        assert_eq!(request.await.expect("task"), StatusCode::OK);
    }
    assert_eq!(idp.calls(), 1);
    assert_eq!(upstream.requests().len(), 200);
}

#[tokio::test]
async fn client_secret_basic_by_default_and_post_on_request() {
    let (idp, _, _, proxy) =
        setup("    oauth2_scopes: [api.read, api.write]\n    oauth2_audience: https://api\n").await;
    get(&client::http1(), &proxy.url("/cc/x")).await;
    let request = &idp.requests()[0];
    let basic = request
        .authorization
        .as_deref()
        .expect("basic auth")
        .trim_start_matches("Basic ");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic)
        .expect("base64");
    assert_eq!(decoded, b"my-client:cl1ent-s3cret");
    assert_eq!(request.form["grant_type"], "client_credentials");
    assert_eq!(request.form["scope"], "api.read api.write");
    assert_eq!(request.form["audience"], "https://api");
    assert!(!request.form.contains_key("client_secret"));

    let (idp, _, _, proxy) = setup("    oauth2_client_auth: post\n").await;
    get(&client::http1(), &proxy.url("/cc/x")).await;
    let request = &idp.requests()[0];
    assert_eq!(request.authorization, None);
    assert_eq!(request.form["client_id"], "my-client");
    assert_eq!(request.form["client_secret"], "cl1ent-s3cret");
}

#[tokio::test]
async fn exchange_caches_one_token_per_subject_and_never_forwards_the_subject() {
    let (idp, upstream, _, proxy) = setup("").await;
    let http = client::http1();
    for user in ["alice-token", "bob-token", "alice-token", "bob-token"] {
        let request = Request::get(proxy.url("/xchg/orders"))
            .header("authorization", format!("Bearer {user}"))
            .body(Full::default())
            .expect("request");
        assert_eq!(send(&http, request).await.status, StatusCode::OK);
    }
    assert_eq!(idp.calls(), 2);
    assert_eq!(
        upstream.authorizations(),
        [
            "Bearer xchg-alice-token-1",
            "Bearer xchg-bob-token-2",
            "Bearer xchg-alice-token-1",
            "Bearer xchg-bob-token-2"
        ]
    );
    let first = &idp.requests()[0];
    assert_eq!(
        first.form["grant_type"],
        "urn:ietf:params:oauth:grant-type:token-exchange"
    );
    assert_eq!(first.form["subject_token"], "alice-token");
    assert_eq!(
        first.form["subject_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(first.form["audience"], "orders");
}

#[tokio::test]
async fn exchange_without_or_with_a_refused_subject_is_401() {
    let (idp, upstream, _, proxy) = setup("").await;
    let http = client::http1();
    let answer = get(&http, &proxy.url("/xchg/orders")).await;
    answer.assert_problem(401, "subject_token_missing");
    assert_eq!(answer.headers["www-authenticate"], "Bearer");
    assert_eq!(idp.calls(), 0);

    idp.set(Behaviour {
        fail: Some((400, "invalid_grant")),
        ..Behaviour::default()
    });
    let request = Request::get(proxy.url("/xchg/orders"))
        .header("authorization", "Bearer revoked-user")
        .body(Full::default())
        .expect("request");
    send(&http, request)
        .await
        .assert_problem(401, "subject_token_rejected");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn an_upstream_401_on_a_cached_token_refetches_and_retries_once() {
    let (idp, upstream, revoked, proxy) = setup("").await;
    let http = client::http1();
    assert_eq!(get(&http, &proxy.url("/cc/x")).await.status, StatusCode::OK);
    revoked.lock().expect("revoked").insert("tok-1".into());

    // A small body is read before the first attempt and sent again, intact.
    let request = Request::post(proxy.url("/cc/items"))
        .body(Full::new(Bytes::from_static(b"{\"n\":1}")))
        .expect("request");
    let answer = send(&http, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "Bearer tok-2|7");
    assert_eq!(idp.calls(), 2);
    assert_eq!(
        upstream.authorizations(),
        ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    );
}

#[tokio::test]
async fn a_401_is_retried_at_most_once_and_never_for_a_fresh_token() {
    let (idp, upstream, revoked, proxy) = setup("").await;
    revoked.lock().expect("revoked").extend([
        "tok-1".to_owned(),
        "tok-2".to_owned(),
        "tok-3".to_owned(),
    ]);
    let http = client::http1();
    // Cold cache: the token is fresh, so its 401 is the answer.
    assert_eq!(
        get(&http, &proxy.url("/cc/x")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!((idp.calls(), upstream.requests().len()), (1, 1));
    // Cached token refused → one new token, one retry, and that 401 is the answer.
    assert_eq!(
        get(&http, &proxy.url("/cc/x")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!((idp.calls(), upstream.requests().len()), (2, 3));
}

#[tokio::test]
async fn a_streamed_body_is_never_retried() {
    let (idp, upstream, revoked, proxy) = setup("").await;
    let http = client::http1();
    get(&http, &proxy.url("/cc/warm")).await;
    revoked.lock().expect("revoked").insert("tok-1".into());
    // No Content-Length: the body streams and cannot be replayed.
    let stream_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let (mut tx, body) =
        http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(1);
    let request = Request::post(proxy.url("/cc/upload"))
        .body(body)
        .expect("request");
    let response = tokio::spawn(stream_client.request(request));
    tx.send_data(Bytes::from_static(b"chunk"))
        .await
        .expect("send");
    drop(tx);
    let response = support::within("the streamed response", response)
        .await
        .expect("task")
        .expect("response");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.requests().len(), 2);
    assert_eq!(idp.calls(), 1);
}

#[tokio::test]
async fn token_endpoint_failure_is_a_502_naming_status_and_code_then_recovers() {
    let (idp, upstream, _, proxy) = setup("").await;
    idp.set(Behaviour {
        fail: Some((401, "invalid_client")),
        ..Behaviour::default()
    });
    let http = client::http1();
    let answer = get(&http, &proxy.url("/cc/x")).await;
    answer.assert_problem(502, "token_endpoint_error");
    assert_eq!(
        answer.json()["detail"],
        "The token endpoint answered HTTP 401 (invalid_client)."
    );
    assert!(!answer.text().contains("cl1ent-s3cret"));

    idp.set(Behaviour::default());
    assert_eq!(get(&http, &proxy.url("/cc/x")).await.status, StatusCode::OK);
    assert_eq!(idp.calls(), 2);
    assert_eq!(upstream.authorizations(), ["Bearer tok-2"]);
}

#[tokio::test]
async fn concurrent_waiters_share_one_failure() {
    let (idp, _, _, proxy) = setup("").await;
    idp.set(Behaviour {
        fail: Some((503, "temporarily_unavailable")),
        delay: Duration::from_millis(200),
        ..Behaviour::default()
    });
    let http = client::http1();
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let (http, url) = (http.clone(), proxy.url("/cc/x"));
            tokio::spawn(async move { get(&http, &url).await.status })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.expect("task"), StatusCode::BAD_GATEWAY);
    }
    assert_eq!(idp.calls(), 1);
}

#[tokio::test]
async fn unreachable_and_slow_token_endpoints_are_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/token", closed.local_addr().expect("addr"));
    drop(closed);
    let upstream = Upstream::recording().await;
    let proxy = InProcessProxy::start(&format!(
        "sources:\n{}",
        oauth2_source("cc", &upstream.url(), &url, "")
    ))
    .await;
    let answer = get(&client::http1(), &proxy.url("/cc/x")).await;
    answer.assert_problem(502, "token_endpoint_error");
    assert_eq!(
        answer.json()["detail"],
        "The token endpoint is unreachable."
    );

    let idp = TokenEndpoint::start().await;
    idp.set(Behaviour {
        delay: Duration::from_secs(5),
        ..Behaviour::default()
    });
    let options = support::Options {
        tokens: credproxy::auth::token_client::TokenClientSettings {
            timeout: Duration::from_millis(200),
            ..Default::default()
        },
        ..Default::default()
    };
    let yaml = format!(
        "sources:\n{}",
        oauth2_source("cc", &upstream.url(), &idp.url(), "")
    );
    let proxy = InProcessProxy::start_with(&yaml, options).await;
    let answer = get(&client::http1(), &proxy.url("/cc/x")).await;
    answer.assert_problem(502, "token_endpoint_error");
    assert_eq!(
        answer.json()["detail"],
        "The token endpoint did not answer in time."
    );
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn expires_in_as_a_string_or_missing_is_accepted() {
    for expires_in in [Some(serde_json::json!("3599")), None] {
        let (idp, _, _, proxy) = setup("").await;
        idp.set(Behaviour {
            expires_in: expires_in.clone(),
            ..Behaviour::default()
        });
        let http = client::http1();
        for _ in 0..3 {
            assert_eq!(get(&http, &proxy.url("/cc/x")).await.status, StatusCode::OK);
        }
        assert_eq!(idp.calls(), 1, "{expires_in:?}");
    }
}

#[tokio::test]
async fn a_path_that_always_answers_401_cannot_force_a_token_request_per_request() {
    let (idp, upstream, revoked, proxy) = setup("").await;
    revoked
        .lock()
        .expect("revoked")
        .extend((1..=50).map(|n| format!("tok-{n}")));
    let http = client::http1();
    for _ in 0..50 {
        assert_eq!(
            get(&http, &proxy.url("/cc/always-401")).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // The first fetch, and one forced refresh; then the hold-down answers the 401 as is.
    assert_eq!(idp.calls(), 2);
    assert_eq!(upstream.requests().len(), 51);
    let snapshot = proxy.store.load();
    let tokens = snapshot
        .source("cc")
        .and_then(|s| s.credentials.token_source())
        .expect("token source");
    let stats = &tokens.stats;
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.forced_refreshes.load(Relaxed), 1);
    assert_eq!(stats.forced_refreshes_held.load(Relaxed), 48);
}
