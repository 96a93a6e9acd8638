//! The admin status page in a real browser: Debian's chromium, headless, against the real
//! binary with a static source, an OAuth2 source whose tokens come from oidc-provider and
//! one whose token endpoint is down, after a rejected reload. The DOM chromium built is
//! read as a person would read it, and searched for every secret.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::binary::BinaryProxy;
use support::client;
use support::helper;
use support::provider::Provider;
use support::upstream::Upstream;

const SECRETS: [&str; 4] = [
    "s3cr3t-status-bearer",
    "interop-secret-basic",
    "s3cr3t-broken-client",
    "s3cr3t-executor-token",
];

/// Debian's chromium: `tests/setup.sh` installs it.
fn chromium() -> PathBuf {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
        })
    });
    found.unwrap_or_else(|| panic!("this test needs chromium: run `bash tests/setup.sh`"))
}

/// Runs headless chromium on `url` with `args` (`--dump-dom`, `--screenshot=…`) and
/// returns what it printed.
fn browse(url: &str, args: &[&str], profile: &Path) -> String {
    let output = Command::new(chromium())
        .args([
            "--headless",
            // The test may run as root, where chromium's sandbox cannot start.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The visible text of the element with `id` (tags dropped, whitespace collapsed).
fn section_text(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the DOM:\n{dom}"));
    let section = &dom[start..];
    let section = &section[..section.find("</section>").unwrap_or(section.len())];
    let mut text = String::new();
    let mut in_tag = false;
    for c in section.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn the_status_page_in_chromium_shows_sources_tokens_reloads_and_no_secret() {
    let Some(provider) = Provider::start(&[]) else {
        return;
    };
    let upstream = Upstream::recording().await;
    let executor = credproxy::caller::token_sha256_hex("s3cr3t-executor-token");
    let yaml = format!(
        "sources:\n  static:\n    upstream: {up}\n    auth_type: bearer\n    bearer_token: s3cr3t-status-bearer\n  \
         billing:\n    upstream: {up}/billing\n    auth_type: oauth2\n    oauth2_token_url: {token}\n    \
         oauth2_client_id: credproxy-basic\n    oauth2_client_secret: interop-secret-basic\n    \
         oauth2_scopes: [api.read]\n  \
         broken:\n    upstream: {up}/broken\n    auth_type: oauth2\n    oauth2_token_url: http://127.0.0.1:1/token\n    \
         oauth2_client_id: broken\n    oauth2_client_secret: s3cr3t-broken-client\n\
         callers:\n  executor:\n    token_sha256: {executor}\n    sources: [static, billing, broken]\n    \
         rules:\n      - source: static\n        methods: [GET]\n      - source: billing\n      - source: broken\n",
        up = upstream.url(),
        token = provider.token_endpoint,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sources.yaml");
    std::fs::write(&path, &yaml).expect("write config");
    let proxy = BinaryProxy::start(&path, "trace", &[]);

    let token = Some("s3cr3t-executor-token");
    let mut answers = Vec::new();
    for (path, expected) in [
        ("/static/a", 200),
        ("/static/b", 200),
        ("/billing/invoices", 200),
        ("/broken/x", 502),
    ] {
        let answer = client::as_caller(http::Method::GET, &proxy.url(path), token).await;
        assert_eq!(answer.status, expected, "{path}: {}", answer.text());
        answers.push(answer.text());
    }

    // A reload that is rejected: the page says so, with the loader's problem.
    std::fs::write(&path, format!("{yaml}  unknown_field: 1\n")).expect("rewrite");
    support::eventually("the rejected reload", || async {
        proxy.output().contains("Config reload rejected")
    })
    .await;

    let url = format!("http://{}/", proxy.admin_addr);
    let profile = tempfile::tempdir().expect("chromium profile");
    let dom = browse(&url, &["--dump-dom"], profile.path());

    let config = section_text(&dom, "config");
    assert!(config.contains("Generation 1"), "{config}");
    assert!(
        config.contains("rejected; the config above stays in effect"),
        "{config}"
    );
    assert!(
        config.contains("unknown_field"),
        "the problem is named: {config}"
    );

    let sources = section_text(&dom, "sources");
    assert!(sources.contains("3 in the config"), "{sources}");
    assert!(
        sources.contains("static bearer") && sources.contains(" 2 0 0 0 200 static"),
        "two 2xx, last status 200, a static credential: {sources}"
    );
    assert!(
        sources.contains("billing oauth2") && sources.contains(" 1 0 0 0 200 expires in"),
        "{sources}"
    );
    assert!(
        sources.contains("refresh in") && sources.contains("last refresh ok"),
        "{sources}"
    );
    assert!(
        sources.contains("broken oauth2")
            && sources.contains("0 0 0 1 502 none yet · last refresh failed"),
        "{sources}"
    );

    let callers = section_text(&dom, "callers");
    assert!(
        callers.contains("executor token static, billing, broken 3"),
        "{callers}"
    );

    // Filtering happens on the server: only the matching row comes back.
    let filtered = browse(&format!("{url}?q=BILL"), &["--dump-dom"], profile.path());
    let rows = section_text(&filtered, "sources");
    assert!(rows.contains("showing 1–1 of 1 matching"), "{rows}");
    assert!(!rows.contains("static bearer"), "{rows}");

    // A hostile filter comes back as text in the box, not as a script.
    let hostile = browse(
        &format!("{url}?q=%3Cscript%3Edocument.title%3D1%3C%2Fscript%3E"),
        &["--dump-dom"],
        profile.path(),
    );
    assert!(!hostile.contains("<script"), "{hostile}");

    let executor_hash = executor.as_str();
    for text in [&dom, &filtered, &proxy.output()]
        .into_iter()
        .chain(answers.iter())
    {
        for secret in SECRETS.iter().chain([&executor_hash]) {
            assert!(!text.contains(secret), "{secret} appears in:\n{text}");
        }
    }

    // The README's picture of the page.
    let shot = helper::repo_path("target/status-page.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &url,
        &[
            "--window-size=1280,900",
            &format!("--screenshot={}", shot.display()),
        ],
        profile.path(),
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
