//! `sources.yaml`: schema, secret references, validation, and the immutable [`Snapshot`]
//! it becomes.
//!
//! [`load`] is the only way to get a snapshot: read → parse → resolve → validate → build.
//! A file with any problem yields a [`ConfigError`] listing all of them and no snapshot.

mod error;
mod file;
mod locate;
mod resolve;
mod snapshot;
mod validate;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

pub use error::{ConfigError, Problem};
pub use resolve::SecretRef;
pub use snapshot::{AuthType, Snapshot, SnapshotMeta, Source, Upstream};

use crate::secret::MasterKeys;

/// The config path when neither `--config` nor `SOURCE_SECRETS_PATH` is given.
pub const DEFAULT_PATH: &str = "secrets/sources.yaml";

/// What a load needs besides the file.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    /// Keys for `{ encrypted: … }` values.
    pub keys: Option<&'a MasterKeys>,
    /// The snapshot being replaced: OAuth2 sources with unchanged settings keep its
    /// token caches.
    pub previous: Option<&'a Snapshot>,
    /// A file without `callers:` is rejected (credproxy listens beyond loopback).
    pub require_callers: bool,
}

/// Reads and loads the file at `path`.
pub fn load(path: &Path, options: LoadOptions<'_>) -> Result<Snapshot, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigError::new(
            path,
            vec![Problem::new(format!("cannot read the file: {e}"))],
        )
    })?;
    load_bytes(path, &bytes, options)
}

/// Loads a config from bytes already read; `path` names it in errors and in the snapshot,
/// and relative `{ file: … }` references are relative to its directory.
pub fn load_bytes(
    path: &Path,
    bytes: &[u8],
    options: LoadOptions<'_>,
) -> Result<Snapshot, ConfigError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ConfigError::new(
            path,
            vec![Problem::new(format!(
                "is not UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ))],
        )
    })?;
    let file: file::FileConfig = serde_yaml::from_str(text)
        .map_err(|e| ConfigError::new(path, vec![error::problem_from_yaml(&e)]))?;
    let no_keys = MasterKeys::default();
    let mut resolver = resolve::Resolver::new(options.keys.unwrap_or(&no_keys), path);
    let (sources, callers) = validate::build(file, text, &mut resolver, &options)
        .map_err(|p| ConfigError::new(path, p))?;
    let secret_files = resolver.files;
    let content_sha256 =
        inputs_digest(bytes, &secret_files).unwrap_or_else(|| Sha256::digest(bytes).into());
    Ok(Snapshot::new(
        sources,
        callers,
        SnapshotMeta {
            path: path.to_path_buf(),
            content_sha256,
            secret_files,
            loaded_at: SystemTime::now(),
            generation: 0,
        },
    ))
}

/// SHA-256 over the config's bytes and every referenced secret file's path and bytes:
/// what a reload compares to decide whether anything changed. `None` if a file cannot be
/// read (then only a full load can tell what is wrong).
pub fn inputs_digest(config: &[u8], secret_files: &[PathBuf]) -> Option<[u8; 32]> {
    let mut hash = Sha256::new();
    hash.update((config.len() as u64).to_le_bytes());
    hash.update(config);
    for file in secret_files {
        let bytes = std::fs::read(file).ok()?;
        let name = file.as_os_str().as_encoded_bytes();
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name);
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    Some(hash.finalize().into())
}

#[cfg(test)]
mod tests;
