//! The real binary: `check`, start-up refusals, config path resolution, logs with no
//! secrets at trace level, and graceful shutdown.

use crate::support;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::binary::{binary, BinaryProxy};
use support::client::{self, get, send};
use support::upstream::Upstream;

/// Every secret the config below holds, and the forms they take on the wire.
const SECRETS: [&str; 6] = [
    "s3cr3t-basic-pw",
    "s3cr3t-api-key",
    "s3cr3t-query-key",
    "s3cr3t-bearer",
    "s3cr3t-extra-header",
    "s3cr3t-caller-token",
];

fn config_text(upstream: &str) -> String {
    format!(
        r#"# every static auth type
sources:
  open:
    upstream: {upstream}
    auth_type: none
  basic:
    upstream: {upstream}/basic
    auth_type: http_basic
    basic_username: user
    basic_password: s3cr3t-basic-pw
  key:
    upstream: {upstream}
    auth_type: api_key
    api_key_name: X-API-Key
    api_key_value: s3cr3t-api-key
    headers:
      X-Extra: s3cr3t-extra-header
  query:
    upstream: {upstream}
    auth_type: api_key
    api_key_name: key
    api_key_value: s3cr3t-query-key
    api_key_in: query
  token:
    upstream: {upstream}
    auth_type: bearer
    bearer_token: s3cr3t-bearer
"#
    )
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("sources.yaml");
    let mut file = std::fs::File::create(&path).expect("create config");
    file.write_all(text.as_bytes()).expect("write config");
    path
}

fn assert_no_secret(what: &str, text: &str) {
    let basic_b64 = base64::engine::general_purpose::STANDARD.encode("user:s3cr3t-basic-pw");
    for secret in SECRETS
        .iter()
        .copied()
        .chain([basic_b64.as_str(), "query-marker"])
    {
        assert!(!text.contains(secret), "{what} contains {secret}:\n{text}");
    }
}

#[test]
fn check_lists_sources_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), &config_text("https://api.example.com"));
    let output = binary()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "open\tnone\thttps://api.example.com",
            "basic\thttp_basic\thttps://api.example.com/basic",
            "key\tapi_key\thttps://api.example.com",
            "query\tapi_key\thttps://api.example.com",
            "token\tbearer\thttps://api.example.com",
        ]
    );
    assert!(stderr.contains("OK, 5 sources"), "{stderr}");
    assert_no_secret("check output", &format!("{stdout}{stderr}"));
}

#[test]
fn check_and_serve_reject_a_bad_file_with_the_same_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = config_text("https://api.example.com")
        .replace("auth_type: bearer", "auth_type: beerer")
        .replace(
            "upstream: https://api.example.com/basic",
            "upstream: ftp://s3cr3t-basic-pw@x",
        );
    let path = write_config(dir.path(), &bad);

    let check = binary()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run check");
    assert!(!check.status.success());
    let message = String::from_utf8_lossy(&check.stderr).into_owned();
    let file = path.display().to_string();
    assert!(
        message.contains(&format!("{file}: 2 problems")),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "{file}:7:15: sources.basic.upstream: must not contain credentials"
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "{file}:26:16: sources.token.auth_type: unknown auth_type; one of none, http_basic"
        )),
        "{message}"
    );
    assert_no_secret("check error", &message);

    let serve = binary()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&path)
        .output()
        .expect("run serve");
    assert!(!serve.status.success());
    let log = String::from_utf8_lossy(&serve.stderr).into_owned();
    for line in message.lines() {
        assert!(
            log.contains(line.trim()),
            "serve's log lacks {line:?}:\n{log}"
        );
    }
    assert_no_secret("serve error", &log);
}

#[test]
fn config_path_comes_from_flag_then_env_then_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("secrets")).expect("mkdir");
    write_config(
        &dir.path().join("secrets"),
        "sources:\n  from-default:\n    upstream: http://d\n    auth_type: none\n",
    );
    let env_file = dir.path().join("env.yaml");
    std::fs::write(
        &env_file,
        "sources:\n  from-env:\n    upstream: http://e\n    auth_type: none\n",
    )
    .expect("write");
    let flag_file = dir.path().join("flag.yaml");
    std::fs::write(
        &flag_file,
        "sources:\n  from-flag:\n    upstream: http://f\n    auth_type: none\n",
    )
    .expect("write");

    let run = |args: &[&str], env: Option<&Path>| {
        let mut command = binary();
        command
            .current_dir(dir.path())
            .arg("check")
            .args(args)
            .env_remove("SOURCE_SECRETS_PATH");
        if let Some(env) = env {
            command.env("SOURCE_SECRETS_PATH", env);
        }
        let output = command.output().expect("run check");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let flag = flag_file.to_str().expect("utf-8 path");
    assert!(run(&["--config", flag], Some(&env_file)).starts_with("from-flag"));
    assert!(run(&[], Some(&env_file)).starts_with("from-env"));
    assert!(run(&[], None).starts_with("from-default"));
}

#[test]
fn non_loopback_listen_needs_explicit_consent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), &config_text("http://127.0.0.1:9"));
    let output = binary()
        .args([
            "--listen",
            "0.0.0.0:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&path)
        .output()
        .expect("run serve");
    assert_eq!(output.status.code(), Some(1));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("callers: required: credproxy listens on a non-loopback address"),
        "{log}"
    );

    let proxy = BinaryProxy::start(
        &path,
        "info",
        &["--listen", "0.0.0.0:0", "--allow-unauthenticated"],
    );
    assert!(proxy.addr.ip().is_unspecified());
    drop(proxy);

    // With callers configured, no consent is needed.
    let with_callers = config_text("http://127.0.0.1:9")
        + &format!(
            "callers:\n  ci:\n    token_sha256: {}\n    sources: [\"*\"]\n",
            "a".repeat(64)
        );
    let path = write_config(dir.path(), &with_callers);
    let proxy = BinaryProxy::start(&path, "info", &["--listen", "0.0.0.0:0"]);
    assert!(proxy.addr.ip().is_unspecified());
}

#[tokio::test]
async fn trace_logs_and_error_bodies_never_hold_a_secret_or_a_query() {
    let upstream = Upstream::recording().await;
    // A source whose upstream refuses connections, for the 502 path.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let down = format!(
        "  down:\n    upstream: http://{}\n    auth_type: bearer\n    bearer_token: s3cr3t-bearer\n",
        closed.local_addr().expect("addr")
    );
    drop(closed);
    let dir = tempfile::tempdir().expect("tempdir");
    let callers = format!(
        "callers:\n  executor:\n    token_sha256: {}\n    sources: [\"*\"]\n",
        credproxy::caller::token_sha256_hex("s3cr3t-caller-token")
    );
    let path = write_config(
        dir.path(),
        &(config_text(&upstream.url()) + &down + &callers),
    );
    let proxy = BinaryProxy::start(&path, "trace", &[]);

    let mut bodies = String::new();
    for client in [client::http1(), client::h2c()] {
        for id in ["open", "basic", "key", "query", "token"] {
            let request = Request::get(proxy.url(&format!("/{id}/items?query-marker=1&key=mine")))
                .header("authorization", "Bearer s3cr3t-caller-token")
                .header("proxy-authorization", "Bearer s3cr3t-caller-token")
                .body(Full::new(Bytes::new()))
                .expect("request");
            let answer = send(&client, request).await;
            assert_eq!(answer.status, 200, "{id}: {}", answer.text());
        }
        for (path, status) in [
            ("/missing/x?query-marker=1", 404),
            ("/token/%2e%2e/x?query-marker=1", 400),
            ("/down/x?query-marker=1", 502),
        ] {
            let request = Request::get(proxy.url(path))
                .header("proxy-authorization", "Bearer s3cr3t-caller-token")
                .body(Full::new(Bytes::new()))
                .expect("request");
            let answer = send(&client, request).await;
            assert_eq!(answer.status, status, "{path}");
            bodies.push_str(&answer.text());
        }
    }

    let seen = upstream.requests();
    assert_eq!(seen.len(), 10);
    // The injected secrets did reach the upstream: the test is not vacuous.
    let all_headers = format!(
        "{:?}",
        seen.iter()
            .map(|r| (&r.target, &r.headers))
            .collect::<Vec<_>>()
    );
    for secret in [
        "s3cr3t-api-key",
        "s3cr3t-query-key",
        "s3cr3t-bearer",
        "s3cr3t-extra-header",
    ] {
        assert!(
            all_headers.contains(secret),
            "{secret} never reached the upstream: {all_headers}"
        );
    }

    let access = proxy.access_log(16);
    let logs = proxy.output();
    assert_no_secret("error bodies", &bodies);
    assert_no_secret("trace logs", &logs);
    // Dependencies log at debug (h2 is capped at info); seeing it proves RUST_LOG=trace took.
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "debug logging was not on:\n{logs}"
    );

    // One access-log event per request, with the path but not the query.
    assert_eq!(access.len(), 16, "{logs}");
    let basic = access
        .iter()
        .find(|e| e["source"] == "basic")
        .expect("basic request logged");
    assert_eq!(basic["path"], "/basic/items");
    assert_eq!(basic["auth_type"], "http_basic");
    assert_eq!(basic["method"], "GET");
    assert_eq!(basic["caller"], "executor");
    assert_eq!(basic["status"], 200);
    assert_eq!(basic["token"], "none");
    assert!(basic["total_ms"].as_f64().is_some() && basic["upstream_ms"].as_f64().is_some());
    let missing = access
        .iter()
        .find(|e| e["status"] == 404)
        .expect("404 logged");
    assert_eq!(missing["code"], "unknown_source");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_zero() {
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (release_tx, release) = tokio::sync::watch::channel(false);
    let upstream = Upstream::with_handler(move |_| {
        let (entered_tx, mut release) = (entered_tx.clone(), release.clone());
        async move {
            let _ = entered_tx.send(());
            let _ = release.wait_for(|go| *go).await;
            http::Response::new(support::upstream::full("finished"))
        }
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), &config_text(&upstream.url()));
    let mut proxy = BinaryProxy::start(&path, "info", &["--shutdown-grace", "10s"]);

    let in_flight = tokio::spawn({
        let url = proxy.url("/token/slow");
        async move { get(&client::http1(), &url).await }
    });
    support::within("the request to reach the upstream", entered.recv()).await;
    proxy.signal("TERM");
    // The proxy logs that it is draining before the upstream answers.
    support::within("the shutdown log line", async {
        while !proxy.output().contains("Shutting down") {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    release_tx.send(true).expect("release");
    let answer = support::within("the in-flight response", in_flight)
        .await
        .expect("task");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "finished");
    assert_eq!(proxy.wait(), Some(0));
}

#[tokio::test]
async fn oauth2_flows_at_trace_level_never_log_client_secrets_subject_or_issued_tokens() {
    use support::token_endpoint::{Behaviour, TokenEndpoint};
    let idp = TokenEndpoint::start().await;
    let upstream = Upstream::recording().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "sources:\n  cc:\n    upstream: {up}\n    auth_type: oauth2\n    oauth2_token_url: {idp}\n    \
         oauth2_client_id: my-client\n    oauth2_client_secret: s3cr3t-client-secret\n  \
         post:\n    upstream: {up}\n    auth_type: oauth2\n    oauth2_token_url: {idp}\n    \
         oauth2_client_id: my-client\n    oauth2_client_secret: s3cr3t-client-secret\n    oauth2_client_auth: post\n  \
         xchg:\n    upstream: {up}\n    auth_type: token_exchange\n    oauth2_token_url: {idp}\n    \
         oauth2_client_id: my-client\n    oauth2_client_secret: s3cr3t-client-secret\n    \
         token_exchange_actor_token: s3cr3t-actor-token\n",
        up = upstream.url(),
        idp = idp.url()
    );
    let path = write_config(dir.path(), &yaml);
    let proxy = BinaryProxy::start(&path, "trace", &[]);

    let mut bodies = String::new();
    for client in [client::http1(), client::h2c()] {
        for id in ["cc", "post", "xchg"] {
            let request = Request::get(proxy.url(&format!("/{id}/items?query-marker=1")))
                .header("authorization", "Bearer s3cr3t-subject-token")
                .body(Full::new(Bytes::new()))
                .expect("request");
            let answer = send(&client, request).await;
            assert_eq!(answer.status, 200, "{id}: {}", answer.text());
        }
    }
    // Failures: the subject refused, then the client refused.
    idp.set(Behaviour {
        fail: Some((400, "invalid_grant")),
        ..Behaviour::default()
    });
    let request = Request::get(proxy.url("/xchg/x?query-marker=1"))
        .header("authorization", "Bearer s3cr3t-other-subject")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let answer = send(&client::http1(), request).await;
    answer.assert_problem(401, "subject_token_rejected");
    bodies.push_str(&answer.text());

    // Tokens reached the upstream, so the checks below are not vacuous.
    let seen = upstream.authorizations();
    assert!(seen.contains(&"Bearer tok-1".to_owned()), "{seen:?}");
    assert!(
        seen.iter()
            .any(|a| a.starts_with("Bearer xchg-s3cr3t-subject-token")),
        "{seen:?}"
    );
    assert!(idp.requests().iter().any(|r| r
        .form
        .get("client_secret")
        .is_some_and(|s| s == "s3cr3t-client-secret")));

    let access = proxy.access_log(7);
    let logs = proxy.output();
    for secret in [
        "s3cr3t-client-secret",
        "s3cr3t-subject-token",
        "s3cr3t-other-subject",
        "s3cr3t-actor-token",
        "tok-1",
        "xchg-",
        "query-marker",
        // Basic of my-client:s3cr3t-client-secret
        &base64::engine::general_purpose::STANDARD.encode("my-client:s3cr3t-client-secret"),
    ] {
        assert!(!logs.contains(secret), "logs contain {secret}:\n{logs}");
        assert!(
            !bodies.contains(secret),
            "error bodies contain {secret}:\n{bodies}"
        );
    }
    assert_eq!(access.len(), 7, "{logs}");
    assert!(
        logs.contains("\"token\":\"fetched\"") && logs.contains("\"token\":\"cached\""),
        "{logs}"
    );
}

fn master_key(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// Runs `credproxy encrypt` with the secret on stdin and returns the YAML value it prints.
fn encrypt(secret: &str, key: &str) -> String {
    use std::process::Stdio;
    let mut child = binary()
        .arg("encrypt")
        .env("CREDPROXY_MASTER_KEY", key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn encrypt");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{secret}\n").as_bytes())
        .expect("write secret");
    let output = child.wait_with_output().expect("encrypt output");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value = String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert!(
        value.starts_with("{ encrypted: \"v1:") && value.ends_with("\" }"),
        "{value}"
    );
    assert!(!value.contains(secret));
    value
}

#[tokio::test]
async fn encrypted_and_env_references_resolve_and_wrong_keys_are_named_not_shown() {
    let upstream = Upstream::recording().await;
    let key = master_key(9);
    let sealed = encrypt("s3cr3t-sealed-token", &key);
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "sources:\n  sealed:\n    upstream: {up}\n    auth_type: bearer\n    bearer_token: {sealed}\n  \
         from-env:\n    upstream: {up}\n    auth_type: api_key\n    api_key_name: X-Key\n    \
         api_key_value: {{ env: CREDPROXY_TEST_API_KEY }}\n",
        up = upstream.url()
    );
    let path = write_config(dir.path(), &yaml);

    let check = binary()
        .args(["check", "--config"])
        .arg(&path)
        .env("CREDPROXY_MASTER_KEY", &key)
        .env("CREDPROXY_TEST_API_KEY", "s3cr3t-env-key")
        .output()
        .expect("check");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // A wrong key and a missing variable are load errors naming source and field.
    let wrong = binary()
        .args(["check", "--config"])
        .arg(&path)
        .env("CREDPROXY_MASTER_KEY", master_key(8))
        .env_remove("CREDPROXY_TEST_API_KEY")
        .output()
        .expect("check");
    assert!(!wrong.status.success());
    let message = String::from_utf8_lossy(&wrong.stderr).into_owned();
    assert!(message.contains("sources.sealed.bearer_token: the encrypted value was encrypted under a different master key"), "{message}");
    assert!(message.contains("sources.from-env.api_key_value: environment variable `CREDPROXY_TEST_API_KEY` is not set"), "{message}");
    assert!(!message.contains("s3cr3t"), "{message}");

    // The proxy resolves both; the upstream gets the plaintext, the log never does.
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, format!("{key}\n")).expect("key file");
    let proxy = BinaryProxy::start_with_env(
        &path,
        "trace",
        &["--master-key-file", key_file.to_str().expect("path")],
        &[("CREDPROXY_TEST_API_KEY", "s3cr3t-env-key")],
    );
    let http = client::http1();
    assert_eq!(get(&http, &proxy.url("/sealed/x")).await.status, 200);
    assert_eq!(get(&http, &proxy.url("/from-env/x")).await.status, 200);
    let seen = upstream.requests();
    assert_eq!(
        seen[0].header("authorization").as_deref(),
        Some("Bearer s3cr3t-sealed-token")
    );
    assert_eq!(seen[1].header("x-key").as_deref(), Some("s3cr3t-env-key"));
    let logs = proxy.output();
    assert!(!logs.contains("s3cr3t") && !logs.contains(&key), "{logs}");
}

#[tokio::test]
async fn sighup_reloads_when_watching_is_off() {
    let upstream = Upstream::recording().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |token: &str| bearer_source(&upstream.url(), token);
    let path = write_config(dir.path(), &config("s3cr3t-first"));
    let proxy = BinaryProxy::start(&path, "info", &["--no-watch"]);
    // The watcher is set up before the listeners: by now it would have said so.
    assert!(
        !proxy.output().contains("Watching for config changes"),
        "{}",
        proxy.output()
    );
    let http = client::http1();
    get(&http, &proxy.url("/s/1")).await;

    std::fs::write(&path, config("s3cr3t-second")).expect("rewrite");
    get(&http, &proxy.url("/s/2")).await;
    proxy.signal("HUP");
    support::eventually("the SIGHUP reload", || async {
        proxy.output().contains("Config reloaded")
    })
    .await;
    get(&http, &proxy.url("/s/3")).await;

    let tokens = upstream.authorizations();
    assert_eq!(
        tokens,
        [
            "Bearer s3cr3t-first",
            "Bearer s3cr3t-first",
            "Bearer s3cr3t-second"
        ]
    );
    let logs = proxy.output();
    assert!(!logs.contains("s3cr3t"), "{logs}");
}

#[test]
fn hash_token_hashes_stdin_or_makes_a_token() {
    use std::process::Stdio;
    let run = |input: &str| {
        let mut child = binary()
            .arg("hash-token")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        let output = child.wait_with_output().expect("output");
        assert!(output.status.success());
        String::from_utf8(output.stdout).expect("utf-8")
    };
    assert_eq!(
        run("abc\n"),
        "token_sha256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"
    );
    let fresh = run("");
    let mut lines = fresh.lines();
    let token = lines
        .next()
        .and_then(|l| l.strip_prefix("token: "))
        .expect("token line");
    let hash = lines
        .next()
        .and_then(|l| l.strip_prefix("token_sha256: "))
        .expect("hash line");
    assert!(token.len() >= 40, "{token}");
    assert_eq!(hash, credproxy::caller::token_sha256_hex(token));
    assert_ne!(run(""), fresh, "tokens are random");
}

#[tokio::test]
async fn single_worker_runtime_serves_and_reloads() {
    // --workers 1 runs everything on the main thread's runtime: proxying, the admin
    // listener, the file watcher and the blocking reload task must all make progress.
    let upstream = Upstream::recording().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |token: &str| bearer_source(&upstream.url(), token);
    let path = write_config(dir.path(), &config("s3cr3t-first"));
    let proxy = BinaryProxy::start(&path, "info", &["--workers", "1"]);
    let http = client::http1();
    assert_eq!(get(&http, &proxy.url("/s/1")).await.status, 200);

    std::fs::write(&path, config("s3cr3t-second")).expect("rewrite");
    support::eventually("the watched reload", || async {
        proxy.output().contains("Config reloaded")
    })
    .await;
    assert_eq!(get(&http, &proxy.url("/s/2")).await.status, 200);
    let tokens = upstream.authorizations();
    assert_eq!(tokens, ["Bearer s3cr3t-first", "Bearer s3cr3t-second"]);
}

#[tokio::test]
async fn every_worker_serves_its_listener_counts_into_one_registry_and_drains_on_sigterm() {
    const WORKERS: usize = 4;
    const HELD: usize = 16;
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (release_tx, release) = tokio::sync::watch::channel(false);
    let upstream = Upstream::with_handler(move |request: http::Request<_>| {
        let (entered_tx, mut release) = (entered_tx.clone(), release.clone());
        let held = request.uri().path().starts_with("/held");
        async move {
            if held {
                let _ = entered_tx.send(());
                let _ = release.wait_for(|go| *go).await;
            }
            http::Response::new(support::upstream::full("done"))
        }
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), &bearer_source(&upstream.url(), "s3cr3t-w"));
    let workers = WORKERS.to_string();
    let mut proxy = BinaryProxy::start(
        &path,
        "info",
        &["--workers", &workers, "--shutdown-grace", "10s"],
    );
    // One listening socket per worker on the proxy port (state 0A is LISTEN).
    let port = format!(":{:04X} ", proxy.addr.port());
    let tcp = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let listening = tcp
        .lines()
        .filter(|line| line.contains(&port) && line.split_whitespace().nth(3) == Some("0A"))
        .count();
    assert_eq!(listening, WORKERS, "{tcp}");
    // Every worker on a thread of its own, the first too: the main thread is left to the
    // admin listener, the reloader and the signals.
    let mut threads = thread_names(proxy.pid());
    threads.retain(|name| name.starts_with("proxy-worker-"));
    threads.sort();
    let expected: Vec<String> = (0..WORKERS).map(|n| format!("proxy-worker-{n}")).collect();
    assert_eq!(threads, expected);

    // Each request on a new connection: the kernel spreads them over the listeners, and a
    // listener that no worker served would leave its connections hanging here.
    for n in 0..HELD {
        assert_eq!(
            get(&client::http1(), &proxy.url(&format!("/s/{n}")))
                .await
                .status,
            200
        );
    }
    let metrics = get(
        &client::http1(),
        &format!("http://{}/metrics", proxy.admin_addr),
    )
    .await;
    let line = format!("credproxy_requests_total{{source=\"s\",class=\"2xx\"}} {HELD}");
    assert!(metrics.text().contains(&line), "{}", metrics.text());

    let in_flight: Vec<_> = (0..HELD)
        .map(|n| {
            let url = proxy.url(&format!("/s/held/{n}"));
            tokio::spawn(async move { get(&client::http1(), &url).await })
        })
        .collect();
    for _ in 0..HELD {
        support::within("every held request to reach the upstream", entered.recv()).await;
    }
    proxy.signal("TERM");
    support::within("the shutdown log line", async {
        while !proxy.output().contains("Shutting down") {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    release_tx.send(true).expect("release");
    for request in in_flight {
        let answer = support::within("an in-flight response", request)
            .await
            .expect("task");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "done");
    }
    assert_eq!(proxy.wait(), Some(0));
}

/// The names of a process's threads, from `/proc/<pid>/task/*/comm`.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the proxy's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect()
}

/// A config with one bearer source `s` forwarding to `upstream`.
fn bearer_source(upstream: &str, token: &str) -> String {
    format!("sources:\n  s:\n    upstream: {upstream}\n    auth_type: bearer\n    bearer_token: {token}\n")
}

#[tokio::test]
async fn a_fifo_as_the_config_blocks_neither_reloads_nor_the_shutdown() {
    let upstream = Upstream::recording().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), &bearer_source(&upstream.url(), "s3cr3t-first"));
    let mut proxy = BinaryProxy::start(&path, "info", &[]);
    assert!(proxy.output().contains("Watching for config changes"));
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    std::fs::rename(&fifo, &path).expect("rename the FIFO over the config");
    proxy.output_when("the FIFO to be refused", |o| {
        o.contains("is a FIFO, not a regular file")
    });
    // The reload thread is free: SIGHUP is handled, and a good file applies.
    proxy.signal("HUP");
    proxy.output_when("the SIGHUP", |o| o.contains("SIGHUP: reloading the config"));
    std::fs::remove_file(&path).expect("remove the FIFO");
    std::fs::write(&path, bearer_source(&upstream.url(), "s3cr3t-second")).expect("write");
    proxy.output_when("the good file", |o| o.contains("Config reloaded"));
    get(&client::http1(), &proxy.url("/s/x")).await;
    assert_eq!(upstream.authorizations(), ["Bearer s3cr3t-second"]);
    proxy.signal("TERM");
    assert_eq!(proxy.wait(), Some(0));

    for special in ["/dev/zero", "/dev/null"] {
        let check = binary()
            .args(["check", "--config", special])
            .output()
            .expect("check");
        assert!(!check.status.success());
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert!(
            stderr.contains("is a device, not a regular file"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn the_connection_limit_holds_new_clients_until_a_slot_frees() {
    let upstream = Upstream::recording().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), &bearer_source(&upstream.url(), "t"));
    let proxy = BinaryProxy::start(
        &path,
        "credproxy=debug",
        // One worker: with more, each holds its share of the limit for the clients that
        // the kernel hands its listener.
        &[
            "--workers",
            "1",
            "--max-connections",
            "2",
            "--header-read-timeout",
            "30s",
        ],
    );
    let at_limit = |output: &str| {
        output
            .lines()
            .filter(|l| {
                l.contains("At the connection limit") && l.contains("\"listener\":\"proxy\"")
            })
            .count()
    };
    let mut held = Vec::new();
    for n in 1..=2 {
        // A served request makes sure the proxy accepted this connection (took a slot).
        let mut stream = tokio::net::TcpStream::connect(proxy.addr)
            .await
            .expect("connect");
        tokio::io::AsyncWriteExt::write_all(
            &mut stream,
            b"GET /s/held HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .await
        .expect("write");
        let answer = support::client::read_response(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{n}: {answer}");
        held.push(stream);
    }
    // The accept loop now waits for a slot before it accepts anyone else: the third
    // client sits in the listen backlog, whatever it sends.
    proxy.output_when("the limit to be reached", |o| at_limit(o) == 1);
    let third = tokio::spawn({
        let url = proxy.url("/s/third");
        async move { get(&client::http1(), &url).await.status }
    });
    drop(held.pop());
    assert_eq!(
        support::within("the third client", third)
            .await
            .expect("task"),
        200
    );
    assert_eq!(upstream.requests().len(), 3);
}

#[test]
fn version_names_the_git_revision() {
    let output = binary().arg("--version").output().expect("run");
    assert!(output.status.success());
    let version = String::from_utf8(output.stdout).expect("utf-8");
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let revision = match std::env::var("CREDPROXY_GIT_REVISION") {
        Ok(set) if !set.is_empty() => set,
        _ => head.unwrap_or_else(|| "unknown".to_owned()),
    };
    let expected = format!("credproxy {} ({revision})\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(version, expected);
}

#[test]
fn completions_and_the_man_page_come_from_the_same_flags() {
    let run = |args: &[&str]| {
        let output = binary().args(args).output().expect("run");
        assert!(output.status.success(), "{args:?}");
        String::from_utf8(output.stdout).expect("utf-8")
    };
    let bash = run(&["completions", "bash"]);
    for word in [
        "--upstream-per-caller",
        "--workers",
        "check",
        "hash-token",
        "completions",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let syntax = std::process::Command::new("bash")
        .args(["-n", "-c", &bash])
        .status()
        .expect("bash");
    assert!(syntax.success(), "the bash completion does not parse");
    assert!(run(&["completions", "zsh"]).starts_with("#compdef credproxy"));
    assert!(run(&["completions", "fish"]).contains("complete -c credproxy"));

    let man = run(&["man"]);
    assert!(man.contains(".TH credproxy 1"), "{man}");
    assert!(man.contains("upstream\\-per\\-caller") && man.contains("hash\\-token"));
    // groff renders it without one warning (`-ww`: all of them; `-k`: UTF-8 input).
    let mut groff = std::process::Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("groff: run `bash tests/setup.sh`");
    groff
        .stdin
        .take()
        .expect("stdin")
        .write_all(man.as_bytes())
        .expect("write");
    let rendered = groff.wait_with_output().expect("groff");
    assert!(rendered.status.success());
    assert_eq!(String::from_utf8_lossy(&rendered.stderr), "");
}
