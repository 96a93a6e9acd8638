//! The real `credproxy` binary, started with JSON logs on stderr that the test captures.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct BinaryProxy {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    child: Child,
    output: Arc<Mutex<String>>,
}

pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_credproxy"))
}

impl BinaryProxy {
    /// Runs `credproxy serve --config PATH` on ephemeral ports with `RUST_LOG=rust_log`,
    /// and waits for both "Listening" lines.
    pub fn start(config: &Path, rust_log: &str, extra_args: &[&str]) -> Self {
        Self::start_with_env(config, rust_log, extra_args, &[])
    }

    /// Like [`Self::start`], with extra environment variables for the process.
    pub fn start_with_env(
        config: &Path,
        rust_log: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = binary();
        command.envs(env.iter().copied());
        command.args([
            "serve",
            "--log-format",
            "json",
            "--admin-listen",
            "127.0.0.1:0",
        ]);
        if !extra_args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .arg("--config")
            .arg(config)
            .args(extra_args)
            .env("RUST_LOG", rust_log)
            .env_remove("CREDPROXY_MASTER_KEY")
            .env_remove("SOURCE_SECRETS_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn credproxy");
        let output = Arc::new(Mutex::new(String::new()));
        let (listening, wait) = mpsc::channel();
        capture(
            child.stdout.take().expect("stdout"),
            Arc::clone(&output),
            None,
        );
        capture(
            child.stderr.take().expect("stderr"),
            Arc::clone(&output),
            Some(listening),
        );

        let (mut proxy, mut admin) = (None, None);
        let deadline = Instant::now() + super::WAIT;
        while proxy.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match wait.recv_timeout(left) {
                Ok((name, addr)) if name == "proxy" => proxy = Some(addr),
                Ok((_, addr)) => admin = Some(addr),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "credproxy did not start; output:\n{}",
                        output.lock().expect("output")
                    );
                }
            }
        }
        Self {
            addr: proxy.expect("proxy addr"),
            admin_addr: admin.expect("admin addr"),
            child,
            output,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.output.lock().expect("output").clone()
    }

    /// Everything printed so far, once `ready` holds for it: stderr is read by another
    /// thread, so a line logged before a response may arrive here after it.
    pub fn output_when(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + super::WAIT;
        loop {
            let output = self.output();
            if ready(&output) {
                return output;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; output:\n{output}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Access-log events printed so far, once there are `count` of them.
    pub fn access_log(&self, count: usize) -> Vec<serde_json::Value> {
        let output = self.output_when(&format!("{count} access-log events"), |output| {
            output.matches("\"target\":\"credproxy::access\"").count() >= count
        });
        output
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["target"] == "credproxy::access")
            .collect()
    }

    /// Sends `signal` (e.g. "TERM") to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + super::WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "credproxy did not exit");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for BinaryProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends every line of `stream` to `output`; reports "Listening" events on `listening`.
fn capture(
    stream: impl std::io::Read + Send + 'static,
    output: Arc<Mutex<String>>,
    listening: Option<mpsc::Sender<(String, SocketAddr)>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if let Some(tx) = &listening {
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
                    if event["message"] == "Listening" {
                        let name = event["listener"].as_str().unwrap_or_default().to_owned();
                        if let Some(addr) = event["listen"].as_str().and_then(|a| a.parse().ok()) {
                            let _ = tx.send((name, addr));
                        }
                    }
                }
            }
            let mut out = output.lock().expect("output");
            out.push_str(&line);
            out.push('\n');
        }
    });
}
