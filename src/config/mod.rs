//! `sources.yaml` → a validated [`Spec`]: a pure function of the file's bytes, the files it
//! references and the master keys.
//!
//! [`load`] reads → parses into a spanned tree (bounded: [`yaml::LIMITS`]) → checks every
//! key against the schema tables → resolves secrets → builds typed values. A file with any
//! problem yields a [`ConfigError`] listing all of them, and no spec. Turning a spec into
//! the running proxy's state (token caches, counters, pools) is the live snapshot's job,
//! a layer above.

pub mod aws;
mod callers;
mod credential;
mod error;
mod fields;
mod github;
mod google;
mod oauth;
mod resolve;
mod schema;
mod source;
pub mod spec;
mod tls;
mod url;
mod yaml;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use error::{ConfigError, Problem};
pub use spec::{AuthType, CredentialSpec, SourceSpec, Spec, SpecMeta, Upstream};
pub use yaml::Mark;

use crate::files::{self, MAX_CONFIG_BYTES, MAX_SECRET_FILE_BYTES};
use crate::secret::MasterKeys;
use fields::{only, Fields, Problems};
use resolve::Resolver;
use yaml::{Node, Value};

/// The config path when neither `--config` nor `SOURCE_SECRETS_PATH` is given.
pub const DEFAULT_PATH: &str = "secrets/sources.yaml";

/// What a load needs besides the file.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    /// Keys for `{ encrypted: … }` values.
    pub keys: Option<&'a MasterKeys>,
    /// A file without `callers:` is rejected (credproxy listens beyond loopback).
    pub require_callers: bool,
}

/// Reads and loads the file at `path`.
pub fn load(path: &Path, options: LoadOptions<'_>) -> Result<Spec, ConfigError> {
    let bytes = files::read_capped(path, MAX_CONFIG_BYTES)
        .map_err(|e| ConfigError::one(path, Problem::new(format!("cannot read the file: {e}"))))?;
    load_bytes(path, &bytes, options)
}

/// Loads a config from bytes already read; `path` names it in errors and in the spec, and
/// relative file references are relative to its directory.
pub fn load_bytes(
    path: &Path,
    bytes: &[u8],
    options: LoadOptions<'_>,
) -> Result<Spec, ConfigError> {
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        let message = format!("is larger than {MAX_CONFIG_BYTES} bytes");
        return Err(ConfigError::one(path, Problem::new(message)));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let message = format!("is not UTF-8 (invalid byte at offset {})", e.valid_up_to());
        ConfigError::one(path, Problem::new(message))
    })?;
    let root = yaml::parse(text, &yaml::LIMITS).map_err(|e| {
        let problem = Problem {
            location: e.at,
            ..Problem::new(e.message)
        };
        ConfigError::one(path, problem)
    })?;
    let no_keys = MasterKeys::default();
    let mut resolver = Resolver::new(options.keys.unwrap_or(&no_keys), path, bytes);
    let mut problems = Problems::default();
    let (sources, callers) = match &root {
        Some(root) => build(root, &mut resolver, &options, &mut problems),
        None => {
            problems.add(None, "", None, "is empty; it needs a `sources:` map");
            (Vec::new(), None)
        }
    };
    if !problems.is_empty() {
        return Err(ConfigError::new(path, problems.0));
    }
    let (secret_files, content_sha256) = resolver.finish();
    Ok(Spec {
        sources,
        callers,
        meta: SpecMeta {
            path: path.to_path_buf(),
            content_sha256,
            secret_files,
        },
    })
}

fn build(
    root: &Node,
    resolver: &mut Resolver<'_>,
    options: &LoadOptions<'_>,
    p: &mut Problems,
) -> (Vec<SourceSpec>, Option<Vec<spec::CallerSpec>>) {
    let Some(top) = Fields::of(root, "", "a map with `sources:` (and `callers:`)", p) else {
        return (Vec::new(), None);
    };
    top.check_keys(
        p,
        "top-level key",
        schema::names(schema::FILE),
        only(schema::FILE),
    );
    top.require(p, schema::FILE);

    let mut sources = Vec::new();
    let mut ids: HashSet<&str> = HashSet::new();
    match top
        .entries
        .iter()
        .find(|e| &*e.key.name == "sources")
        .map(|e| &e.value)
    {
        // `sources:` with every entry commented out: nothing to serve, which is valid.
        None
        | Some(Node {
            value: Value::Null, ..
        }) => {}
        Some(Node {
            value: Value::Map(entries),
            ..
        }) => {
            sources.reserve(entries.len());
            ids.reserve(entries.len());
            for entry in entries.iter() {
                if !ids.insert(&entry.key.name) {
                    let section = format!("sources.{}", entry.key.name);
                    p.add(Some(entry.key.at), &section, None, "duplicate source id");
                    continue;
                }
                if let Some(source) = source::source(&entry.key, &entry.value, resolver, p) {
                    sources.push(source);
                }
            }
        }
        Some(other) => p.add(
            Some(other.at),
            "sources",
            None,
            format!(
                "must be a map of source ids to settings, not {}",
                other.value.kind()
            ),
        ),
    }

    let callers = match top.entries.iter().find(|e| &*e.key.name == "callers") {
        Some(entry) => {
            let valid: HashMap<&str, &std::sync::Arc<str>> =
                sources.iter().map(|s| (&*s.id, &s.id)).collect();
            Some(callers::callers(&entry.value, &ids, &valid, resolver, p))
        }
        None if options.require_callers => {
            p.add(
                Some(top.at),
                "callers",
                None,
                "required: credproxy listens on a non-loopback address, where anyone who can \
                 connect could use the credentials. Add callers (see `credproxy hash-token`), \
                 listen on loopback, or pass --allow-unauthenticated",
            );
            None
        }
        None => None,
    };
    (sources, callers)
}

/// SHA-256 over the config's bytes and every referenced file's path and bytes, in order:
/// what a reload compares to decide whether anything changed.
pub(crate) struct InputsHasher(Sha256);

impl InputsHasher {
    pub fn new(config: &[u8]) -> Self {
        let mut hash = Sha256::new();
        hash.update((config.len() as u64).to_le_bytes());
        hash.update(config);
        Self(hash)
    }

    pub fn file(&mut self, path: &Path, bytes: &[u8]) {
        let name = path.as_os_str().as_encoded_bytes();
        self.0.update((name.len() as u64).to_le_bytes());
        self.0.update(name);
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// The digest a load of `config` with these `secret_files` would have, from the files as
/// they are now; `None` if one cannot be read (then only a full load can tell what is
/// wrong).
pub fn inputs_digest(config: &[u8], secret_files: &[PathBuf]) -> Option<[u8; 32]> {
    let mut hash = InputsHasher::new(config);
    for file in secret_files {
        let bytes = zeroize::Zeroizing::new(files::read_capped(file, MAX_SECRET_FILE_BYTES).ok()?);
        hash.file(file, &bytes);
    }
    Some(hash.finish())
}

#[cfg(test)]
mod tests;
