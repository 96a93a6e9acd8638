//! Interop with a real, independently written OAuth 2.0 authorization server: panva's
//! oidc-provider (OpenID-certified), from npm, started by this test.
//!
//! Needs `npm ci --prefix tests/interop` first (`.ci/run` does it). Without it the test
//! fails with that instruction; `CREDPROXY_SKIP_INTEROP=1` skips it explicitly.

use crate::support;

use http::StatusCode;
use support::client::{self, get};
use support::provider::Provider;
use support::upstream::Upstream;
use support::InProcessProxy;

fn source(
    id: &str,
    upstream: &str,
    token_url: &str,
    client: &str,
    secret: &str,
    auth: &str,
) -> String {
    format!(
        "  {id}:\n    upstream: {upstream}\n    auth_type: oauth2\n    oauth2_token_url: {token_url}\n    \
         oauth2_client_id: {client}\n    oauth2_client_secret: {secret}\n    oauth2_client_auth: {auth}\n    \
         oauth2_scopes: [api.read]\n"
    )
}

#[tokio::test]
async fn client_credentials_against_oidc_provider() {
    let Some(provider) = Provider::start(&[]) else {
        return;
    };
    let upstream = Upstream::recording().await;
    let url = &provider.token_endpoint;
    let yaml = format!(
        "sources:\n{}{}{}",
        source(
            "basic",
            &upstream.url(),
            url,
            "credproxy-basic",
            "interop-secret-basic",
            "basic"
        ),
        source(
            "post",
            &upstream.url(),
            url,
            "credproxy-post",
            "interop-secret-post",
            "post"
        ),
        // The provider refuses a client that authenticates by the wrong method.
        source(
            "wrong-method",
            &upstream.url(),
            url,
            "credproxy-basic",
            "interop-secret-basic",
            "post"
        ),
    );
    let proxy = InProcessProxy::start(&yaml).await;
    let http = client::http1();

    for id in ["basic", "post"] {
        for _ in 0..3 {
            let answer = get(&http, &proxy.url(&format!("/{id}/x"))).await;
            assert_eq!(answer.status, StatusCode::OK, "{id}: {}", answer.text());
        }
    }
    let tokens = upstream.authorizations();
    assert_eq!(tokens.len(), 6);
    // One token per source, reused from the cache, and the two differ.
    assert!(
        tokens[0].starts_with("Bearer ") && tokens[0].len() > 20,
        "{tokens:?}"
    );
    assert!(tokens[..3].iter().all(|t| *t == tokens[0]), "{tokens:?}");
    assert!(tokens[3..].iter().all(|t| *t == tokens[3]), "{tokens:?}");
    assert_ne!(tokens[0], tokens[3]);

    let answer = get(&http, &proxy.url("/wrong-method/x")).await;
    answer.assert_problem(502, "token_endpoint_error");
    assert_eq!(
        answer.json()["detail"],
        "The token endpoint answered HTTP 401 (invalid_client)."
    );
    assert_eq!(upstream.requests().len(), 6);
}
