//! Caller authentication: accept, reject and forbid, before any routing, and reloaded
//! with the file.

use crate::support;

use bytes::Bytes;
use credproxy::caller::token_sha256_hex;
use credproxy::secret::MasterKeys;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::client::{self, send};
use support::upstream::Upstream;
use support::{eventually, InProcessProxy};

fn config(upstream: &Upstream, bot_sources: &str) -> String {
    format!(
        "sources:\n  gh:\n    upstream: {up}\n    auth_type: bearer\n    bearer_token: gh-token\n  \
         jira:\n    upstream: {up}\n    auth_type: none\n\
         callers:\n  ci:\n    token_sha256: {ci}\n    sources: [\"*\"]\n  \
         bot:\n    token_sha256: {bot}\n    sources: {bot_sources}\n",
        up = upstream.url(),
        ci = token_sha256_hex("ci-token"),
        bot = token_sha256_hex("bot-token"),
    )
}

async fn request(proxy: &InProcessProxy, path: &str, token: Option<&str>) -> client::Answer {
    client::as_caller(http::Method::GET, &proxy.url(path), token).await
}

#[tokio::test]
async fn accept_reject_forbid_matrix() {
    let upstream = Upstream::recording().await;
    let proxy = InProcessProxy::start(&config(&upstream, "[gh]")).await;
    let cases: [(&str, Option<&str>, u16, &str); 9] = [
        ("/gh/x", Some("ci-token"), 200, ""),
        ("/jira/x", Some("ci-token"), 200, ""),
        ("/gh/x", Some("bot-token"), 200, ""),
        ("/jira/x", Some("bot-token"), 403, "caller_forbidden"),
        ("/gh/x", None, 407, "caller_unauthenticated"),
        ("/gh/x", Some("wrong-token"), 407, "caller_unauthenticated"),
        // The caller check comes first: no routing for strangers.
        ("/nope/x", None, 407, "caller_unauthenticated"),
        ("/gh/../jira", None, 407, "caller_unauthenticated"),
        ("/nope/x", Some("ci-token"), 404, "unknown_source"),
    ];
    for (path, token, status, code) in cases {
        let answer = request(&proxy, path, token).await;
        if code.is_empty() {
            assert_eq!(
                answer.status.as_u16(),
                status,
                "{path} {token:?}: {}",
                answer.text()
            );
        } else {
            answer.assert_problem(status, code);
        }
        if status == 407 {
            assert_eq!(
                answer.headers["proxy-authenticate"],
                "Bearer realm=\"credproxy\""
            );
        }
    }
    let seen = upstream.requests();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(
            request.header("proxy-authorization"),
            None,
            "the caller token reached the upstream"
        );
    }
    assert_eq!(
        seen[0].header("authorization").as_deref(),
        Some("Bearer gh-token")
    );
}

#[tokio::test]
async fn h2c_callers_are_checked_too() {
    let upstream = Upstream::recording().await;
    let proxy = InProcessProxy::start(&config(&upstream, "[gh]")).await;
    let build = |token: &str| {
        Request::get(proxy.url("/gh/x"))
            .header("proxy-authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    assert_eq!(
        send(&client::h2c(), build("bot-token")).await.status,
        StatusCode::OK
    );
    send(&client::h2c(), build("nope"))
        .await
        .assert_problem(407, "caller_unauthenticated");
}

#[tokio::test]
async fn callers_reload_with_the_file() {
    let upstream = Upstream::recording().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sources.yaml");
    std::fs::write(&path, config(&upstream, "[gh]")).expect("write");
    let proxy = InProcessProxy::watching(&path, MasterKeys::default()).await;
    assert_eq!(
        request(&proxy, "/jira/x", Some("bot-token")).await.status,
        StatusCode::FORBIDDEN
    );

    std::fs::write(&path, config(&upstream, "[gh, jira]")).expect("write");
    eventually("the bot to be allowed jira", || async {
        request(&proxy, "/jira/x", Some("bot-token")).await.status == StatusCode::OK
    })
    .await;
}
