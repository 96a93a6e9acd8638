//! Secret references: `{ env: NAME }`, `{ file: PATH }` and `{ encrypted: "v1:…" }`,
//! resolved at load time into [`Secret`]s.
//!
//! The files read are recorded, so that the watcher watches their directories and the
//! reloader's content hash covers them.

use std::path::{Path, PathBuf};

use super::yaml::{Node, Value};
use super::InputsHasher;
use crate::files::{self, MAX_SECRET_FILE_BYTES};
use crate::secret::{CryptoError, MasterKeys, Secret};

/// A secret as written in `sources.yaml`.
#[derive(Debug, Clone)]
pub enum SecretRef {
    Plain(Secret),
    Env(String),
    File(PathBuf),
    Encrypted(String),
}

const SHAPE: &str =
    "a secret is a string, or one of { env: NAME }, { file: /path }, { encrypted: \"v1:…\" }";

const UNQUOTED: &str =
    "a secret that YAML reads as a number or boolean must be quoted, so it is kept exactly as written";

impl SecretRef {
    /// The reference a (non-null) node holds; the problem names the shape, never the value.
    pub fn from_node(node: &Node) -> Result<Self, String> {
        match &node.value {
            Value::Scalar(scalar) if scalar.reads_as_non_text() => Err(UNQUOTED.to_owned()),
            Value::Scalar(scalar) => Ok(SecretRef::Plain(scalar.text.clone())),
            Value::Map(entries) => {
                let [entry] = &entries[..] else {
                    return Err(SHAPE.to_owned());
                };
                // The reference itself (a name, a path, ciphertext) is not secret.
                let Value::Scalar(target) = &entry.value.value else {
                    return Err(SHAPE.to_owned());
                };
                let target = target.text.expose().to_owned();
                match &*entry.key.name {
                    "env" => Ok(SecretRef::Env(target)),
                    "file" => Ok(SecretRef::File(PathBuf::from(target))),
                    "encrypted" => Ok(SecretRef::Encrypted(target)),
                    _ => Err(SHAPE.to_owned()),
                }
            }
            Value::Null | Value::Seq(_) => Err(SHAPE.to_owned()),
        }
    }
}

/// Resolves references for one load.
pub struct Resolver<'a> {
    keys: &'a MasterKeys,
    /// Relative paths are relative to the config file's directory.
    base_dir: &'a Path,
    /// Every file read, in order, for watching.
    files: Vec<PathBuf>,
    /// The config and those files, hashed as they were read: the content a reload
    /// compares against, with no second read that could see another version.
    hash: InputsHasher,
}

impl<'a> Resolver<'a> {
    pub fn new(keys: &'a MasterKeys, config_path: &'a Path, config: &[u8]) -> Self {
        Self {
            keys,
            base_dir: config_path.parent().unwrap_or(Path::new(".")),
            files: Vec::new(),
            hash: InputsHasher::new(config),
        }
    }

    /// Reads a file the config names (a certificate, a key), recorded so that the watcher
    /// watches it and the reload hash covers it.
    pub fn read_file(&mut self, path: &Path) -> Result<Vec<u8>, String> {
        let path = self.base_dir.join(path);
        let read = files::read_capped(&path, MAX_SECRET_FILE_BYTES);
        if let Ok(bytes) = &read {
            self.hash.file(&path, bytes);
        }
        let message = |e: files::ReadError| format!("cannot read the file {}: {e}", path.display());
        let read = read.map_err(message);
        self.files.push(path);
        read
    }

    /// Where a `{ file: }` reference points: relative to the config's directory.
    pub fn path_of(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    /// The files read and the digest of everything read.
    pub fn finish(self) -> (Vec<PathBuf>, [u8; 32]) {
        (self.files, self.hash.finish())
    }

    /// The secret a reference stands for, or why not (never containing the value).
    pub fn resolve(&mut self, reference: &SecretRef) -> Result<Secret, String> {
        match reference {
            SecretRef::Plain(secret) => Ok(secret.clone()),
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(value) => Ok(Secret::new(value)),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("environment variable `{name}` is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("environment variable `{name}` is not UTF-8"))
                }
            },
            SecretRef::File(path) => {
                let bytes = zeroize::Zeroizing::new(self.read_file(path)?);
                let mut text = std::str::from_utf8(&bytes)
                    .map_err(|_| format!("the file {} is not UTF-8", path.display()))?;
                // Kubernetes Secret keys and `echo` leave one newline.
                if let Some(stripped) = text.strip_suffix('\n') {
                    text = stripped.strip_suffix('\r').unwrap_or(stripped);
                }
                Ok(Secret::new(text))
            }
            SecretRef::Encrypted(value) => self.keys.decrypt(value).map_err(|e| match e {
                CryptoError::NoKey => e.to_string(),
                other => format!("the encrypted value {other}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::{self, LIMITS};
    use crate::secret::MasterKey;
    use base64::Engine as _;

    fn parse(text: &str) -> Result<SecretRef, String> {
        let node = yaml::parse(&format!("v: {text}\n"), &LIMITS)
            .map_err(|e| e.message)?
            .expect("document");
        let Value::Map(entries) = node.value else {
            panic!("map")
        };
        SecretRef::from_node(&entries[0].value)
    }

    #[test]
    fn shapes() {
        assert!(matches!(parse("plain"), Ok(SecretRef::Plain(s)) if s.expose() == "plain"));
        assert!(matches!(parse("{ env: TOKEN }"), Ok(SecretRef::Env(n)) if n == "TOKEN"));
        assert!(
            matches!(parse("{ file: /run/s }"), Ok(SecretRef::File(p)) if p == Path::new("/run/s"))
        );
        assert!(
            matches!(parse("{ encrypted: \"v1:x\" }"), Ok(SecretRef::Encrypted(v)) if v == "v1:x")
        );
        for bad in [
            "{ vault: x }",
            "{ env: A, file: B }",
            "{}",
            "[hunter2]",
            "{ env: [hunter2] }",
            "{ hunter2: x }",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(
                err.contains("a secret is a string, or one of"),
                "{bad}: {err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
        // YAML keeps `0123` a string; `4711` is a number and its text could differ.
        assert!(matches!(parse("0123"), Ok(SecretRef::Plain(s)) if s.expose() == "0123"));
        for unquoted in [
            "4711",
            "true",
            "1.5",
            "0x1F",
            "0o17",
            "31415926535897932384626433832795",
        ] {
            let err = parse(unquoted).expect_err(unquoted);
            assert!(err.contains("must be quoted"), "{unquoted}: {err}");
            assert!(!err.contains(unquoted), "{err}");
        }
        assert!(matches!(parse("\"0123\""), Ok(SecretRef::Plain(s)) if s.expose() == "0123"));
        assert!(matches!(parse("!!str 4711"), Ok(SecretRef::Plain(s)) if s.expose() == "4711"));
    }

    #[test]
    fn resolves_env_files_and_encrypted_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("token"), "from-file\n").expect("write");
        std::fs::write(dir.path().join("crlf"), "crlf\r\n").expect("write");
        std::fs::write(dir.path().join("two"), "two\n\n").expect("write");
        let key =
            MasterKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
                .expect("key");
        let sealed = key.encrypt("from-cipher").expect("encrypt");
        let keys = MasterKeys::new([key]);
        let config = dir.path().join("sources.yaml");
        let mut resolver = Resolver::new(&keys, &config, b"");
        let mut resolve = |r: SecretRef| resolver.resolve(&r).map(|s| s.expose().to_owned());

        assert_eq!(
            resolve(SecretRef::File("token".into())),
            Ok("from-file".into())
        );
        assert_eq!(resolve(SecretRef::File("crlf".into())), Ok("crlf".into()));
        assert_eq!(resolve(SecretRef::File("two".into())), Ok("two\n".into()));
        assert_eq!(
            resolve(SecretRef::Encrypted(sealed)),
            Ok("from-cipher".into())
        );
        let path = std::env::var("PATH").expect("PATH is set");
        assert_eq!(resolve(SecretRef::Env("PATH".into())), Ok(path));

        let missing =
            resolve(SecretRef::Env("CREDPROXY_TEST_SURELY_UNSET".into())).expect_err("unset");
        assert_eq!(
            missing,
            "environment variable `CREDPROXY_TEST_SURELY_UNSET` is not set"
        );
        let err = resolve(SecretRef::File("absent".into())).expect_err("absent");
        assert!(err.starts_with("cannot read the file "), "{err}");
        let err = resolve(SecretRef::File("/dev/zero".into())).expect_err("device");
        assert!(err.ends_with("is a device, not a regular file"), "{err}");
        assert_eq!(resolver.finish().0.len(), 5);
    }
}
