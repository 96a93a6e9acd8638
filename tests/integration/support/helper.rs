//! A helper server in another process (oidc-provider and the GitHub API under node, moto
//! under Python): started for a test, ready once it prints one JSON line (its address and
//! whatever the test needs to know), killed on drop.
//!
//! The helpers come from the registries; `bash tests/setup.sh` installs them (`.ci/run`
//! does). A test that needs a missing one fails with that instruction;
//! `CREDPROXY_SKIP_INTEROP=1` skips them all.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Helper {
    child: Child,
    /// The JSON line the helper printed when it was ready.
    pub ready: serde_json::Value,
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether interop tests are skipped (`CREDPROXY_SKIP_INTEROP`); says so when they are.
pub fn skipped(what: &str) -> bool {
    let skip = std::env::var_os("CREDPROXY_SKIP_INTEROP").is_some();
    if skip {
        eprintln!("CREDPROXY_SKIP_INTEROP is set: skipping the test against {what}");
    }
    skip
}

/// Fails with the setup instruction unless `path` exists.
pub fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "this test needs {what}: run `bash tests/setup.sh` (or set CREDPROXY_SKIP_INTEROP=1 \
         to skip it)"
    );
}

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The test venv's Python, with moto and botocore.
pub fn python() -> PathBuf {
    let venv = std::env::var_os("CREDPROXY_TEST_VENV")
        .map_or_else(|| repo_path("target/test-venv"), PathBuf::from);
    let python = venv.join("bin/python");
    require(&python, "moto and botocore");
    python
}

/// Node, with `tests/interop`'s packages installed.
pub fn node() -> Command {
    require(
        &repo_path("tests/interop/node_modules/jose"),
        "jose and oidc-provider",
    );
    Command::new("node")
}

impl Helper {
    /// Starts `command` and waits for its JSON line. `CREDPROXY_INTEROP_LOG=1` shows the
    /// helper's own log, to debug a refusal.
    pub fn start(name: &str, mut command: Command) -> Helper {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("CREDPROXY_INTEROP_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(super::WAIT).unwrap_or_default();
        match serde_json::from_str(&line) {
            Ok(ready) => Helper { child, ready },
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{name} did not start (printed {line:?}; CREDPROXY_INTEROP_LOG=1 shows why)"
                );
            }
        }
    }

    pub fn field(&self, name: &str) -> String {
        self.ready[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} missing from {}", self.ready))
            .to_owned()
    }
}
