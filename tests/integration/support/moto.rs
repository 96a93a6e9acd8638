//! moto's server (PyPI), set up by `tests/aws/moto_server.py`: real AWS APIs that check
//! the SigV4 signature of every request, and botocore to recompute one.

use std::io::Write;
use std::process::{Command, Stdio};

use super::helper::{self, Helper};

pub struct Moto {
    _process: Helper,
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub role_arn: String,
    pub bucket: String,
}

impl Moto {
    /// `None` when interop tests are skipped.
    pub fn start() -> Option<Moto> {
        if helper::skipped("moto") {
            return None;
        }
        let mut command = Command::new(helper::python());
        command.arg(helper::repo_path("tests/aws/moto_server.py"));
        let process = Helper::start("moto", command);
        Some(Moto {
            endpoint: process.field("endpoint"),
            access_key_id: process.field("access_key_id"),
            secret_access_key: process.field("secret_access_key"),
            role_arn: process.field("role_arn"),
            bucket: process.field("bucket"),
            _process: process,
        })
    }
}

/// What botocore makes of a recorded request: the `Authorization` it computes, or why it
/// would not (a payload hash that is not the body's).
pub fn botocore_authorization(request: &serde_json::Value) -> Result<String, String> {
    let mut child = Command::new(helper::python())
        .arg(helper::repo_path("tests/aws/resign.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tests/aws/resign.py");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write the request");
    let output = child.wait_with_output().expect("resign.py");
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
