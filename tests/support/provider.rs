//! panva's oidc-provider (OpenID-certified, from npm), started for a test: the real
//! authorization server the OAuth2 and identity tests talk to.
//!
//! Needs `npm ci --prefix tests/interop` first (`.ci/run` does it). Without it a test
//! that needs it fails with that instruction; `CREDPROXY_SKIP_INTEROP=1` skips them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The provider process; killed on drop.
pub struct Provider {
    child: Child,
    pub issuer: String,
    pub token_endpoint: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// Starts the provider with `env` and waits for the JSON line it prints once
    /// listening; `None` when interop tests are skipped.
    pub fn start(env: &[(&str, &std::ffi::OsStr)]) -> Option<Provider> {
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
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // CREDPROXY_INTEROP_LOG=1 shows the provider's own log, to debug a refusal.
            .stderr(if std::env::var_os("CREDPROXY_INTEROP_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start node tests/interop/provider.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(super::WAIT).unwrap_or_default();
        let ready: serde_json::Value = match serde_json::from_str(&line) {
            Ok(value) => value,
            Err(_) => {
                let _ = child.kill();
                panic!("oidc-provider did not start (printed {line:?})");
            }
        };
        let field = |name: &str| ready[name].as_str().expect(name).to_owned();
        Some(Provider {
            issuer: field("issuer"),
            token_endpoint: field("token_endpoint"),
            child,
        })
    }
}
