//! Secret references: `{ env: NAME }`, `{ file: PATH }` and `{ encrypted: "v1:…" }`,
//! resolved at load time into [`Secret`]s.
//!
//! The files read are recorded, so that the watcher watches their directories and the
//! reloader's content hash covers them.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

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

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RefVisitor;

        impl<'de> Visitor<'de> for RefVisitor {
            type Value = SecretRef;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SHAPE)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretRef, E> {
                Ok(SecretRef::Plain(Secret::new(v)))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
                let Some(kind) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(SHAPE));
                };
                // The reference itself (a name, a path, ciphertext) is not secret.
                let value: String = map
                    .next_value()
                    .map_err(|_: A::Error| de::Error::custom(SHAPE))?;
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(SHAPE));
                }
                match kind.as_str() {
                    "env" => Ok(SecretRef::Env(value)),
                    "file" => Ok(SecretRef::File(PathBuf::from(value))),
                    "encrypted" => Ok(SecretRef::Encrypted(value)),
                    _ => Err(de::Error::custom(SHAPE)),
                }
            }

            // YAML has already turned `0123` into 123 here: refuse rather than guess, and
            // never let serde's default message quote the value.
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretRef, E> {
                Err(E::custom(UNQUOTED))
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretRef, E> {
                Err(E::custom(UNQUOTED))
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretRef, E> {
                Err(E::custom(UNQUOTED))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretRef, E> {
                Err(E::custom(UNQUOTED))
            }
        }

        deserializer.deserialize_any(RefVisitor)
    }
}

/// Resolves references for one load.
pub struct Resolver<'a> {
    keys: &'a MasterKeys,
    /// Relative `file:` paths are relative to the config file's directory.
    base_dir: &'a Path,
    /// Every file read, in order, for watching and hashing.
    pub files: Vec<PathBuf>,
}

impl<'a> Resolver<'a> {
    pub fn new(keys: &'a MasterKeys, config_path: &'a Path) -> Self {
        Self {
            keys,
            base_dir: config_path.parent().unwrap_or(Path::new(".")),
            files: Vec::new(),
        }
    }

    /// `path` resolved against the config's directory, and recorded so that the watcher
    /// watches it and the reload hash covers it.
    pub fn watched_path(&mut self, path: &str) -> PathBuf {
        let path = self.base_dir.join(path);
        self.files.push(path.clone());
        path
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
                let path = self.base_dir.join(path);
                let read = std::fs::read_to_string(&path);
                self.files.push(path.clone());
                let mut text =
                    read.map_err(|e| format!("cannot read the file {}: {e}", path.display()))?;
                // Kubernetes Secret keys and `echo` leave one newline.
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
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
    use crate::secret::MasterKey;
    use base64::Engine as _;

    fn parse(yaml: &str) -> Result<SecretRef, String> {
        serde_yaml::from_str::<SecretRef>(yaml).map_err(|e| e.to_string())
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
        for unquoted in ["4711", "true", "1.5"] {
            let err = parse(unquoted).expect_err(unquoted);
            assert!(err.contains("must be quoted"), "{unquoted}: {err}");
            assert!(!err.contains(unquoted), "{err}");
        }
        assert!(matches!(parse("\"0123\""), Ok(SecretRef::Plain(s)) if s.expose() == "0123"));
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
        let mut resolver = Resolver::new(&keys, &config);
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
        assert_eq!(resolver.files.len(), 4);
    }
}
