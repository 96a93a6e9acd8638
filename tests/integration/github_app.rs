//! `github_app` end to end, against a stand-in for GitHub's API (`tests/interop/github.mjs`)
//! that verifies each app JWT with the App's public key (jose) and counts token calls.

use crate::support;

use std::time::Duration;

use http::Request;
use http_body_util::Full;
use support::binary::BinaryProxy;
use support::client::{self, get, send, TestClient};
use support::helper::{self, Helper};
use support::{eventually, InProcessProxy};

/// The stand-in API, and the directory holding the keys it generated.
struct GitHub {
    process: Helper,
    dir: tempfile::TempDir,
    url: String,
}

impl GitHub {
    fn start() -> Option<GitHub> {
        if helper::skipped("the GitHub API stand-in") {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = helper::node();
        command
            .arg(helper::repo_path("tests/interop/github.mjs"))
            .env("GITHUB_KEY_DIR", dir.path());
        let process = Helper::start("the GitHub API stand-in", command);
        let url = process.field("url");
        Some(GitHub { process, dir, url })
    }

    fn key(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn app_id(&self) -> u64 {
        self.process.ready["app_id"].as_u64().expect("app id")
    }

    /// A `github_app` source for this API, signing with key file `key`.
    fn source(&self, id: &str, key: &str, extra: &str) -> String {
        format!(
            "  {id}:\n    upstream: {url}\n    auth_type: github_app\n    github_app_id: {app}\n    \
             github_installation_id: 99\n    github_private_key: {{ file: {key} }}\n    github_api_url: {url}\n{extra}",
            url = self.url,
            app = self.app_id(),
            key = self.key(key),
        )
    }

    async fn stats(&self) -> serde_json::Value {
        get(&client::http1(), &format!("{}/_test/stats", self.url))
            .await
            .json()
    }

    async fn control(&self, what: &str) {
        let request = Request::post(format!("{}/_test/{what}", self.url))
            .body(Full::default())
            .expect("request");
        assert_eq!(send(&client::http1(), request).await.status, 200);
    }
}

async fn repo(client: &TestClient, proxy: &InProcessProxy, source: &str) -> client::Answer {
    get(
        client,
        &proxy.url(&format!("/{source}/repos/octo-org/widgets")),
    )
    .await
}

#[tokio::test]
async fn installation_tokens_come_from_a_verified_app_jwt_once_for_concurrent_requests() {
    let Some(github) = GitHub::start() else {
        return;
    };
    github.control("delay?ms=300").await;
    let extra = "    github_permissions: { contents: read, issues: write }\n    github_repositories: [widgets, gadgets]\n";
    let client_id = github.process.field("client_id");
    let yaml = format!(
        "sources:\n{}{}",
        github.source("gh", "app.pem", extra),
        github.source("by-client-id", "app.pem", "").replace(
            &format!("github_app_id: {}", github.app_id()),
            &format!("github_app_id: {client_id}")
        ),
    );
    let proxy = InProcessProxy::start(&yaml).await;
    let client = client::http1();
    let requests: Vec<_> = (0..30)
        .map(|_| {
            let (client, url) = (client.clone(), proxy.url("/gh/repos/octo-org/widgets"));
            tokio::spawn(async move { get(&client, &url).await })
        })
        .collect();
    for request in requests {
        let answer = request.await.expect("task");
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.json()["full_name"], "octo-org/widgets");
    }
    let stats = github.stats().await;
    assert_eq!(stats["token_calls"], 1, "single flight: {stats}");
    let call = &stats["requests"][0];
    assert_eq!(call["iss"], github.app_id());
    assert_eq!(call["alg"], "RS256");
    assert_eq!(
        call["body"],
        serde_json::json!({
            "permissions": { "contents": "read", "issues": "write" },
            "repositories": ["widgets", "gadgets"],
        })
    );
    assert!(call["user_agent"]
        .as_str()
        .is_some_and(|ua| ua.starts_with("credproxy/")));

    // A client id is accepted as `iss` too, and with no narrowing the body is empty.
    assert_eq!(repo(&client, &proxy, "by-client-id").await.status, 200);
    let stats = github.stats().await;
    assert_eq!(stats["requests"][1]["iss"], client_id);
    assert_eq!(stats["requests"][1]["body"], serde_json::json!({}));
}

#[tokio::test]
async fn a_revoked_token_is_dropped_and_the_request_retried_once_with_a_new_one() {
    let Some(github) = GitHub::start() else {
        return;
    };
    let proxy =
        InProcessProxy::start(&format!("sources:\n{}", github.source("gh", "app.pem", ""))).await;
    let client = client::http1();
    assert_eq!(repo(&client, &proxy, "gh").await.status, 200);
    github.control("revoke").await;
    let answer = repo(&client, &proxy, "gh").await;
    assert_eq!(
        answer.status,
        200,
        "retried with a new token: {}",
        answer.text()
    );
    assert_eq!(github.stats().await["token_calls"], 2);
    // The new token is cached again.
    assert_eq!(repo(&client, &proxy, "gh").await.status, 200);
    assert_eq!(github.stats().await["token_calls"], 2);
}

#[tokio::test]
async fn a_token_is_refreshed_before_it_expires() {
    let Some(github) = GitHub::start() else {
        return;
    };
    // 6 s tokens: refreshed in the background from 4.5 s, never used after 5.4 s.
    github.control("lifetime?seconds=6").await;
    let proxy =
        InProcessProxy::start(&format!("sources:\n{}", github.source("gh", "app.pem", ""))).await;
    let client = client::http1();
    assert_eq!(repo(&client, &proxy, "gh").await.status, 200);
    let obtained = tokio::time::Instant::now();
    // Waiting for the clock is the point here: refresh-ahead is about time passing.
    tokio::time::sleep_until(obtained + Duration::from_millis(4800)).await;
    assert_eq!(repo(&client, &proxy, "gh").await.status, 200);
    eventually("the background refresh", || async {
        github.stats().await["token_calls"] == 2
    })
    .await;
    let answer = repo(&client, &proxy, "gh").await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        github.stats().await["token_calls"],
        2,
        "the refreshed token is used"
    );
}

#[tokio::test]
async fn a_wrong_key_gets_a_502_naming_githubs_status() {
    let Some(github) = GitHub::start() else {
        return;
    };
    let proxy = InProcessProxy::start(&format!(
        "sources:\n{}",
        github.source("gh", "wrong.pem", "")
    ))
    .await;
    let answer = repo(&client::http1(), &proxy, "gh").await;
    answer.assert_problem(502, "token_endpoint_error");
    assert!(
        answer.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("HTTP 401")),
        "{}",
        answer.text()
    );
    assert_eq!(github.stats().await["refused"], 1);
}

#[test]
fn trace_logs_and_responses_never_show_the_key_the_jwt_or_the_token() {
    let Some(github) = GitHub::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("sources.yaml");
    std::fs::write(
        &config,
        format!("sources:\n{}", github.source("gh", "app.pem", "")),
    )
    .expect("write");
    let proxy = BinaryProxy::start(&config, "trace", &[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (answer, stats) = runtime.block_on(async {
        let answer = get(&client::http1(), &proxy.url("/gh/repos/octo-org/widgets")).await;
        (answer, github.stats().await)
    });
    assert_eq!(answer.status, 200, "{}", answer.text());
    let output = proxy.output_when("the access log line", |out| {
        out.contains("credproxy::access")
    });
    let token = stats["tokens"][0].as_str().expect("token");
    let jwt = stats["jwts"][0].as_str().expect("jwt");
    let pem = std::fs::read_to_string(github.key("app.pem")).expect("pem");
    let key_line = pem.lines().nth(1).expect("a line of the key");
    let answer_text = format!("{:?}{}", answer.headers, answer.text());
    for (what, secret) in [
        ("token", token),
        ("app JWT", jwt),
        ("private key", key_line),
    ] {
        assert!(
            !output.contains(secret),
            "the {what} is in the log:\n{output}"
        );
        assert!(
            !answer_text.contains(secret),
            "the {what} is in the response"
        );
    }
    // Not vacuous: the log did record the exchange, at trace level.
    assert!(output.contains("TRACE"), "{output}");
    assert!(output.contains(r#""token":"fetched""#), "{output}");
}
