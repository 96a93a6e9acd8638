//! The runtime form of a loaded config: typed, validated, immutable.
//!
//! Everything the hot path needs is precomputed here (upstream URI parts, credential
//! header values), so a request does one map lookup and clones no config.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue};

use crate::auth::Credentials;
use crate::caller::Callers;
use crate::metrics::SourceMetrics;
use crate::proxy::client::UpstreamTls;

/// One loaded `sources.yaml`.
#[derive(Debug)]
pub struct Snapshot {
    sources: HashMap<Arc<str>, Arc<Source>>,
    /// The same sources in file order, for `check` and `/config`.
    ordered: Vec<Arc<Source>>,
    /// `None` without a `callers:` section: no caller authentication.
    pub callers: Option<Callers>,
    pub meta: SnapshotMeta,
}

/// Where a snapshot came from; none of it is secret.
#[derive(Debug, Clone)]
pub struct SnapshotMeta {
    pub path: PathBuf,
    /// SHA-256 of the file and the secret files it references ([`super::inputs_digest`]):
    /// an unchanged hash is not a reload.
    pub content_sha256: [u8; 32],
    /// Files read for `{ file: … }` secrets: watched and hashed like the config.
    pub secret_files: Vec<PathBuf>,
    pub loaded_at: SystemTime,
    /// 1 for the first snapshot a store holds, +1 per successful reload.
    pub generation: u64,
}

impl Snapshot {
    pub(crate) fn new(
        ordered: Vec<Arc<Source>>,
        callers: Option<Callers>,
        meta: SnapshotMeta,
    ) -> Self {
        let sources = ordered
            .iter()
            .map(|source| (Arc::clone(&source.id), Arc::clone(source)))
            .collect();
        Self {
            sources,
            ordered,
            callers,
            meta,
        }
    }

    pub fn source(&self, id: &str) -> Option<&Arc<Source>> {
        self.sources.get(id)
    }

    pub fn sources(&self) -> &[Arc<Source>] {
        &self.ordered
    }

    pub fn with_generation(mut self, generation: u64) -> Self {
        self.meta.generation = generation;
        self
    }
}

/// One upstream service and the credentials credproxy adds for it.
#[derive(Debug)]
pub struct Source {
    pub id: Arc<str>,
    pub upstream: Upstream,
    pub auth_type: AuthType,
    pub credentials: Credentials,
    /// The `headers:` map, values marked sensitive.
    pub extra_headers: Vec<(HeaderName, HeaderValue)>,
    /// Request counters, handed on to the source of the same id by a reload.
    pub metrics: Arc<SourceMetrics>,
    /// Its own CA or client certificate, when it has `tls_*` fields.
    pub tls: Option<Arc<UpstreamTls>>,
}

/// An upstream base URL split into the parts a forwarded URI is built from.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    /// The base path without its trailing `/` (empty for the root).
    pub base_path: Box<str>,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

/// The `auth_type` of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    None,
    HttpBasic,
    ApiKey,
    Bearer,
    OAuth2,
    TokenExchange,
}

impl AuthType {
    pub const ALL: [AuthType; 6] = [
        AuthType::None,
        AuthType::HttpBasic,
        AuthType::ApiKey,
        AuthType::Bearer,
        AuthType::OAuth2,
        AuthType::TokenExchange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::None => "none",
            AuthType::HttpBasic => "http_basic",
            AuthType::ApiKey => "api_key",
            AuthType::Bearer => "bearer",
            AuthType::OAuth2 => "oauth2",
            AuthType::TokenExchange => "token_exchange",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

impl fmt::Display for AuthType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
