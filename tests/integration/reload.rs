//! Live rotation with real files and the real watcher: every way a file gets replaced,
//! bad files that never replace good ones, secret files, token caches across reloads,
//! and a reload storm under load.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use credproxy::secret::MasterKeys;
use http::Response;
use support::client::{self, get};
use support::token_endpoint::TokenEndpoint;
use support::upstream::{full, Upstream};
use support::{eventually, InProcessProxy};

/// An upstream that answers with the Authorization header it received.
async fn echo_upstream() -> Upstream {
    Upstream::with_handler(|request| async move {
        let auth = request
            .headers()
            .get("authorization")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        Response::new(full(auth))
    })
    .await
}

fn bearer_config(upstream: &Upstream, token: &str) -> String {
    format!(
        "sources:\n  s:\n    upstream: {}\n    auth_type: bearer\n    bearer_token: {token}\n",
        upstream.url()
    )
}

/// The credential the upstream receives right now.
async fn credential(proxy: &InProcessProxy) -> String {
    let answer = get(&client::http1(), &proxy.url("/s/x")).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.text()
}

async fn wait_for_credential(proxy: &InProcessProxy, expected: &str) {
    let expected = expected.to_owned();
    eventually(&format!("credential {expected}"), || {
        let expected = expected.clone();
        async move { credential(proxy).await == expected }
    })
    .await;
}

fn generation(proxy: &InProcessProxy) -> u64 {
    proxy.store.load().meta.generation
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    upstream: Upstream,
    proxy: InProcessProxy,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sources.yaml");
    let upstream = echo_upstream().await;
    std::fs::write(&path, bearer_config(&upstream, "one")).expect("write");
    let proxy = InProcessProxy::watching(&path, MasterKeys::default()).await;
    assert_eq!(credential(&proxy).await, "Bearer one");
    Fixture {
        _dir: dir,
        path,
        upstream,
        proxy,
    }
}

#[tokio::test]
async fn an_in_place_write_is_seen() {
    let f = fixture().await;
    std::fs::write(&f.path, bearer_config(&f.upstream, "two")).expect("write");
    wait_for_credential(&f.proxy, "Bearer two").await;
    assert_eq!(generation(&f.proxy), 2);
}

#[tokio::test]
async fn an_editors_write_temp_then_rename_is_seen() {
    let f = fixture().await;
    let temp = f.path.with_file_name(".sources.yaml.swp");
    std::fs::write(&temp, bearer_config(&f.upstream, "two")).expect("write");
    std::fs::rename(&temp, &f.path).expect("rename");
    wait_for_credential(&f.proxy, "Bearer two").await;
}

#[tokio::test]
async fn cp_over_the_file_is_seen() {
    let f = fixture().await;
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let source = elsewhere.path().join("new.yaml");
    std::fs::write(&source, bearer_config(&f.upstream, "two")).expect("write");
    let status = std::process::Command::new("cp")
        .arg(&source)
        .arg(&f.path)
        .status()
        .expect("cp");
    assert!(status.success());
    wait_for_credential(&f.proxy, "Bearer two").await;
}

/// Kubernetes' AtomicWriter: the volume holds `..<timestamp>/` directories, a `..data`
/// symlink to the current one, and `sources.yaml -> ..data/sources.yaml`. An update
/// writes a new timestamped directory, points `..data_tmp` at it, renames `..data_tmp`
/// over `..data`, and removes the old directory.
struct AtomicWriterVolume {
    dir: PathBuf,
    current: Option<PathBuf>,
    version: u32,
}

impl AtomicWriterVolume {
    fn new(dir: &Path, files: &[(&str, String)]) -> Self {
        let mut volume = Self {
            dir: dir.to_path_buf(),
            current: None,
            version: 0,
        };
        volume.update(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name))
                .expect("user-visible symlink");
        }
        volume
    }

    fn update(&mut self, files: &[(&str, String)]) {
        self.version += 1;
        let stamp = self.dir.join(format!(
            "..2026_11_23_12_00_0{}.000000{}",
            self.version, self.version
        ));
        std::fs::create_dir(&stamp).expect("timestamped dir");
        for (name, content) in files {
            std::fs::write(stamp.join(name), content).expect("write payload");
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(stamp.file_name().expect("name"), &tmp).expect("..data_tmp");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("swap ..data");
        if let Some(old) = self.current.replace(stamp) {
            std::fs::remove_dir_all(old).expect("remove old payload");
        }
    }
}

#[tokio::test]
async fn a_kubernetes_secret_volume_swap_is_seen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = echo_upstream().await;
    let mut volume = AtomicWriterVolume::new(
        dir.path(),
        &[("sources.yaml", bearer_config(&upstream, "one"))],
    );
    let proxy =
        InProcessProxy::watching(&dir.path().join("sources.yaml"), MasterKeys::default()).await;
    assert_eq!(credential(&proxy).await, "Bearer one");
    volume.update(&[("sources.yaml", bearer_config(&upstream, "two"))]);
    wait_for_credential(&proxy, "Bearer two").await;
    volume.update(&[("sources.yaml", bearer_config(&upstream, "three"))]);
    wait_for_credential(&proxy, "Bearer three").await;
}

#[tokio::test]
async fn a_secret_file_reference_is_watched_too() {
    let config_dir = tempfile::tempdir().expect("tempdir");
    let secret_dir = tempfile::tempdir().expect("tempdir");
    let upstream = echo_upstream().await;
    let mut volume =
        AtomicWriterVolume::new(secret_dir.path(), &[("token", "from-file-1\n".to_owned())]);
    let path = config_dir.path().join("sources.yaml");
    let config = format!(
        "sources:\n  s:\n    upstream: {}\n    auth_type: bearer\n    bearer_token: {{ file: {} }}\n",
        upstream.url(),
        secret_dir.path().join("token").display()
    );
    std::fs::write(&path, config).expect("write");
    let proxy = InProcessProxy::watching(&path, MasterKeys::default()).await;
    assert_eq!(credential(&proxy).await, "Bearer from-file-1");
    volume.update(&[("token", "from-file-2\n".to_owned())]);
    wait_for_credential(&proxy, "Bearer from-file-2").await;
}

#[tokio::test]
async fn a_bad_file_never_replaces_a_good_one_and_the_next_good_one_applies() {
    let f = fixture().await;
    let reloader = f.proxy.reloader.as_ref().expect("reloader");
    for bad in [
        "sources:\n  s: [not, a, map\n".to_owned(),
        bearer_config(&f.upstream, "two").replace("auth_type: bearer", "auth_type: beerer"),
        format!(
            "sources:\n  s:\n    upstream: {}\n    auth_type: bearer\n",
            f.upstream.url()
        ),
    ] {
        let rejected = reloader.stats.rejected.load(Ordering::Relaxed);
        std::fs::write(&f.path, bad).expect("write");
        eventually("the bad file to be rejected", || async {
            reloader.stats.rejected.load(Ordering::Relaxed) > rejected
        })
        .await;
        assert_eq!(credential(&f.proxy).await, "Bearer one");
        assert_eq!(generation(&f.proxy), 1);
    }
    std::fs::write(&f.path, bearer_config(&f.upstream, "two")).expect("write");
    wait_for_credential(&f.proxy, "Bearer two").await;
    assert_eq!(generation(&f.proxy), 2);
}

/// Writes `text` to the fixture's file and waits for the reloader to reject it.
async fn rejected(f: &Fixture, write: impl FnOnce(&Path)) {
    let reloader = f.proxy.reloader.as_ref().expect("reloader");
    let before = reloader.stats.rejected.load(Ordering::Relaxed);
    write(&f.path);
    eventually("the file to be rejected", || async {
        reloader.stats.rejected.load(Ordering::Relaxed) > before
    })
    .await;
    assert_eq!(credential(&f.proxy).await, "Bearer one");
    assert_eq!(generation(&f.proxy), 1);
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(status.success());
}

#[tokio::test]
async fn files_built_to_exhaust_the_proxy_never_replace_a_good_one() {
    let f = fixture().await;
    let mut bomb = format!("big: &big {}\nsources:\n", "x".repeat(1_000_000));
    for i in 0..3000 {
        bomb.push_str(&format!(
            "  s{i}: {{ upstream: {}, auth_type: bearer, bearer_token: *big }}\n",
            f.upstream.url()
        ));
    }
    rejected(&f, |path| std::fs::write(path, &bomb).expect("write")).await;
    rejected(&f, |path| {
        std::fs::write(path, format!("sources: {}\n", "[".repeat(100_000))).expect("write")
    })
    .await;
    // A FIFO renamed over the config: opened without blocking and refused, so the
    // reload thread stays free for the next change.
    rejected(&f, |path| {
        let fifo = path.with_file_name("fifo");
        mkfifo(&fifo);
        std::fs::rename(&fifo, path).expect("rename");
    })
    .await;
    // Writing to the FIFO would block this test: replace it.
    std::fs::remove_file(&f.path).expect("remove the FIFO");
    // A secret that is a FIFO, or a device, is refused the same way.
    let secret = f.path.with_file_name("token");
    mkfifo(&secret);
    let yaml = bearer_config(&f.upstream, "two")
        .replace("bearer_token: two", "bearer_token: { file: token }");
    rejected(&f, |path| std::fs::write(path, &yaml).expect("write")).await;
    let yaml = bearer_config(&f.upstream, "two")
        .replace("bearer_token: two", "bearer_token: { file: /dev/zero }");
    rejected(&f, |path| std::fs::write(path, &yaml).expect("write")).await;
    std::fs::write(&f.path, bearer_config(&f.upstream, "two")).expect("write");
    wait_for_credential(&f.proxy, "Bearer two").await;
}

#[tokio::test]
async fn commenting_out_every_caller_is_rejected_not_read_as_no_callers() {
    let f = fixture().await;
    let caller = format!(
        "callers:\n  ci:\n    token_sha256: {}\n    sources: [\"*\"]\n",
        credproxy::caller::token_sha256_hex("ci-token")
    );
    std::fs::write(&f.path, bearer_config(&f.upstream, "one") + &caller).expect("write");
    eventually("the callers to apply", || async {
        get(&client::http1(), &f.proxy.url("/s/x")).await.status == 407
    })
    .await;
    let reloader = f.proxy.reloader.as_ref().expect("reloader");
    let before = reloader.stats.rejected.load(Ordering::Relaxed);
    let commented = bearer_config(&f.upstream, "one")
        + "callers:\n#  ci:\n#    token_sha256: x\n#    sources: [\"*\"]\n";
    std::fs::write(&f.path, commented).expect("write");
    eventually("the null callers to be rejected", || async {
        reloader.stats.rejected.load(Ordering::Relaxed) > before
    })
    .await;
    get(&client::http1(), &f.proxy.url("/s/x"))
        .await
        .assert_problem(407, "caller_unauthenticated");
}

#[tokio::test]
async fn a_replaced_config_directory_is_watched_again() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("conf");
    std::fs::create_dir(&dir).expect("mkdir");
    let path = dir.join("sources.yaml");
    let upstream = echo_upstream().await;
    std::fs::write(&path, bearer_config(&upstream, "one")).expect("write");
    let proxy = InProcessProxy::watching(&path, MasterKeys::default()).await;
    assert_eq!(credential(&proxy).await, "Bearer one");

    // `mv conf conf.old; mkdir conf`: the old watch went with the old directory.
    std::fs::rename(&dir, root.path().join("conf.old")).expect("mv");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(&path, bearer_config(&upstream, "two")).expect("write");
    wait_for_credential(&proxy, "Bearer two").await;
    // Then a prepared directory renamed into place.
    let next = root.path().join("next");
    std::fs::create_dir(&next).expect("mkdir");
    std::fs::write(next.join("sources.yaml"), bearer_config(&upstream, "three")).expect("write");
    std::fs::rename(&dir, root.path().join("conf.older")).expect("mv");
    std::fs::rename(&next, &dir).expect("mv");
    wait_for_credential(&proxy, "Bearer three").await;
    // And the watch is on the directory that has the name now.
    std::fs::write(&path, bearer_config(&upstream, "four")).expect("write");
    wait_for_credential(&proxy, "Bearer four").await;
}

#[tokio::test]
async fn a_vanished_file_keeps_the_last_good_config_until_it_returns() {
    let f = fixture().await;
    let reloader = f.proxy.reloader.as_ref().expect("reloader");
    std::fs::remove_file(&f.path).expect("remove");
    eventually("the missing file to be noticed", || async {
        reloader.stats.rejected.load(Ordering::Relaxed) > 0
    })
    .await;
    assert_eq!(credential(&f.proxy).await, "Bearer one");
    std::fs::write(&f.path, bearer_config(&f.upstream, "two")).expect("write");
    wait_for_credential(&f.proxy, "Bearer two").await;
}

#[tokio::test]
async fn an_unchanged_hash_is_not_a_reload() {
    let f = fixture().await;
    let reloader = f.proxy.reloader.as_ref().expect("reloader");
    std::fs::write(&f.path, bearer_config(&f.upstream, "one")).expect("rewrite the same bytes");
    eventually("the rewrite to be hashed", || async {
        reloader.stats.unchanged.load(Ordering::Relaxed) > 0
    })
    .await;
    assert_eq!(generation(&f.proxy), 1);
    assert_eq!(reloader.stats.applied.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn sighup_style_triggers_reload_immediately() {
    let f = fixture().await;
    std::fs::write(&f.path, bearer_config(&f.upstream, "two")).expect("write");
    // A signal ends a pending debounce at once; the watcher's event joins that reload.
    f.proxy
        .reload
        .as_ref()
        .expect("handle")
        .trigger(credproxy::watch::Trigger::Signal);
    wait_for_credential(&f.proxy, "Bearer two").await;
    assert_eq!(generation(&f.proxy), 2);
}

#[tokio::test]
async fn token_caches_survive_reloads_unless_their_settings_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sources.yaml");
    let idp = TokenEndpoint::start().await;
    let upstream = echo_upstream().await;
    let config = |client_id: &str, static_token: &str| {
        format!(
            "sources:\n  cc:\n    upstream: {up}\n    auth_type: oauth2\n    oauth2_token_url: {idp}\n    \
             oauth2_client_id: {client_id}\n    oauth2_client_secret: secret\n  \
             s:\n    upstream: {up}\n    auth_type: bearer\n    bearer_token: {static_token}\n",
            up = upstream.url(),
            idp = idp.url()
        )
    };
    std::fs::write(&path, config("client-a", "one")).expect("write");
    let proxy = InProcessProxy::watching(&path, MasterKeys::default()).await;
    let http = client::http1();
    assert_eq!(get(&http, &proxy.url("/cc/x")).await.text(), "Bearer tok-1");

    // Another source changed: the OAuth2 source keeps its cached token.
    std::fs::write(&path, config("client-a", "two")).expect("write");
    wait_for_credential(&proxy, "Bearer two").await;
    assert_eq!(get(&http, &proxy.url("/cc/x")).await.text(), "Bearer tok-1");
    assert_eq!(idp.calls(), 1);

    // Its own settings changed: the old token is dropped.
    std::fs::write(&path, config("client-b", "two")).expect("write");
    eventually("generation 3", || async { generation(&proxy) == 3 }).await;
    assert_eq!(get(&http, &proxy.url("/cc/x")).await.text(), "Bearer tok-2");
    assert_eq!(idp.calls(), 2);
    let basic = idp.requests()[1].authorization.clone().unwrap_or_default();
    assert!(basic.starts_with("Basic "), "{basic}");
}

#[tokio::test]
async fn reloads_under_load_fail_no_request_and_never_mix_credentials() {
    let f = fixture().await;
    let (one, two) = (
        "Bearer cred-AAAAAAAAAAAAAAAA",
        "Bearer cred-BBBBBBBBBBBBBBBB",
    );
    std::fs::write(&f.path, bearer_config(&f.upstream, &one[7..])).expect("write");
    wait_for_credential(&f.proxy, one).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (stop, url, http) = (Arc::clone(&stop), f.proxy.url("/s/x"), client::http1());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let answer = get(&http, &url).await;
                    seen.push((answer.status.as_u16(), answer.text()));
                }
                seen
            })
        })
        .collect();
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    for round in 0..30 {
        interval.tick().await;
        let token = if round % 2 == 0 { &two[7..] } else { &one[7..] };
        std::fs::write(&f.path, bearer_config(&f.upstream, token)).expect("write");
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut by_credential = std::collections::BTreeMap::new();
    for client in clients {
        for (status, credential) in client.await.expect("client task") {
            total += 1;
            assert_eq!(status, 200, "a request failed during reloads: {credential}");
            assert!(
                credential == one || credential == two,
                "mixed credential: {credential:?}"
            );
            *by_credential.entry(credential).or_insert(0) += 1;
        }
    }
    assert!(total > 100, "only {total} requests");
    assert_eq!(
        by_credential.len(),
        2,
        "both credentials were in effect at some point: {by_credential:?}"
    );
    let reloader = f.proxy.reloader.as_ref().expect("reloader");
    assert!(reloader.stats.applied.load(Ordering::Relaxed) >= 5);
}
