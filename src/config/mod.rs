//! `sources.yaml`: schema, validation, and the immutable [`Snapshot`] it becomes.
//!
//! [`load`] is the only way to get a snapshot: read → parse → validate → build. A file
//! with any problem yields a [`ConfigError`] listing all of them and no snapshot at all.

mod error;
mod file;
mod locate;
mod snapshot;
mod validate;

use std::path::Path;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

pub use error::{ConfigError, Problem};
pub use snapshot::{AuthType, Snapshot, SnapshotMeta, Source, Upstream};

/// The config path when neither `--config` nor `SOURCE_SECRETS_PATH` is given.
pub const DEFAULT_PATH: &str = "secrets/sources.yaml";

/// Reads and loads the file at `path`.
pub fn load(path: &Path) -> Result<Snapshot, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigError::new(
            path,
            vec![Problem::new(format!("cannot read the file: {e}"))],
        )
    })?;
    load_bytes(path, &bytes)
}

/// Loads a config from bytes already read; `path` names it in errors and in the snapshot.
pub fn load_bytes(path: &Path, bytes: &[u8]) -> Result<Snapshot, ConfigError> {
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
    let sources = validate::build_sources(file, text).map_err(|p| ConfigError::new(path, p))?;
    Ok(Snapshot::new(
        sources,
        SnapshotMeta {
            path: path.to_path_buf(),
            content_sha256: Sha256::digest(bytes).into(),
            loaded_at: SystemTime::now(),
            generation: 0,
        },
    ))
}

#[cfg(test)]
mod tests;
