//! Interop with a real, independently written OAuth 2.0 authorization server: panva's
//! oidc-provider (OpenID-certified), from npm, started by this test.
//!
//! Needs `npm ci --prefix tests/interop` first (`.ci/run` does it). Without it the test
//! fails with that instruction; `CREDPROXY_SKIP_INTEROP=1` skips it explicitly.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use http::StatusCode;
use support::client::{self, get};
use support::upstream::Upstream;
use support::InProcessProxy;

/// The provider process; killed on drop.
struct Provider {
    child: Child,
    token_endpoint: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the provider and waits for the JSON line it prints once listening.
fn start_provider() -> Option<Provider> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    if std::env::var_os("CREDPROXY_SKIP_INTEROP").is_some() {
        eprintln!("CREDPROXY_SKIP_INTEROP is set: skipping the oidc-provider interop test");
        return None;
    }
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "the interop test needs oidc-provider: run `npm ci --prefix tests/interop` \
         (or set CREDPROXY_SKIP_INTEROP=1 to skip it)"
    );
    let mut child = Command::new("node")
        .arg(dir.join("provider.mjs"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node tests/interop/provider.mjs");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(support::WAIT).unwrap_or_default();
    let ready: serde_json::Value = match serde_json::from_str(&line) {
        Ok(value) => value,
        Err(_) => {
            let _ = child.kill();
            panic!("oidc-provider did not start (printed {line:?})");
        }
    };
    let token_endpoint = ready["token_endpoint"]
        .as_str()
        .expect("token_endpoint")
        .to_owned();
    Some(Provider {
        child,
        token_endpoint,
    })
}

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
    let Some(provider) = start_provider() else {
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
    let tokens: Vec<String> = upstream
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap_or_default())
        .collect();
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
