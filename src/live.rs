//! The live snapshot: what requests are served from, built from a validated [`Spec`] and
//! the snapshot it replaces.
//!
//! The carry-over rules of a reload live here and nowhere else. For a source of the same
//! id as before:
//! - its request counters pass on;
//! - its token cache (and the tokens in it) passes on when its token settings are equal;
//! - its TLS client (and its pooled connections) passes on when its TLS files hash the same.
//!
//! Everything the hot path needs is ready here (credential header values, the upstream's
//! parts), so a request does one map lookup and clones no config.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderName, HeaderValue};

use crate::auth::{self, Credentials};
use crate::caller::Callers;
use crate::config::spec::{AuthType, SourceSpec, Spec, Upstream};
use crate::metrics::SourceMetrics;
use crate::secret::Secret;
use crate::transport::SourceTls;

/// One loaded `sources.yaml`, ready to serve.
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
    /// SHA-256 of the file and the files it references: an unchanged hash is not a reload.
    pub content_sha256: [u8; 32],
    /// Files read for `{ file: … }` secrets and `tls_*` fields: watched like the config.
    pub secret_files: Vec<PathBuf>,
    pub loaded_at: SystemTime,
    /// 1 for the first snapshot a store holds, +1 per successful reload.
    pub generation: u64,
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
    /// Its own TLS client, when it has `tls_*` fields.
    pub tls: Option<Arc<SourceTls>>,
    pub metrics: Arc<SourceMetrics>,
    /// Secret texts that no response header may carry back.
    pub needles: Box<[Secret]>,
    /// `/{id}`, percent-encoded as a path segment: where credproxy serves this source.
    pub proxy_prefix: Box<str>,
}

impl Snapshot {
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

/// The live form of `spec`, taking over from `previous` what the rules above allow.
pub fn build(spec: Spec, previous: Option<&Snapshot>) -> Snapshot {
    let ordered: Vec<Arc<Source>> = spec
        .sources
        .into_iter()
        .map(|source| {
            let before = previous.and_then(|p| p.source(&source.id)).map(Arc::as_ref);
            Arc::new(build_source(source, before))
        })
        .collect();
    let sources = ordered
        .iter()
        .map(|source| (Arc::clone(&source.id), Arc::clone(source)))
        .collect();
    Snapshot {
        sources,
        ordered,
        callers: spec
            .callers
            .map(|callers| Callers::new(callers, previous.and_then(|p| p.callers.as_ref()))),
        meta: SnapshotMeta {
            path: spec.meta.path,
            content_sha256: spec.meta.content_sha256,
            secret_files: spec.meta.secret_files,
            loaded_at: SystemTime::now(),
            generation: 0,
        },
    }
}

fn build_source(spec: SourceSpec, before: Option<&Source>) -> Source {
    let SourceSpec {
        id,
        upstream,
        auth_type,
        credential,
        extra_headers,
        tls,
        secrets,
    } = spec;
    // Unchanged credential settings: the cached tokens (or STS keys) are still right.
    let credentials = before
        .and_then(|b| b.credentials.reuse(&credential))
        .unwrap_or_else(|| Credentials::new(credential, &id));
    let tls = tls.map(|profile| {
        match before
            .and_then(|b| b.tls.as_ref())
            .filter(|kept| kept.fingerprint == profile.fingerprint)
        {
            Some(kept) => Arc::clone(kept),
            None => Arc::new(SourceTls::new(profile.config, profile.fingerprint)),
        }
    });
    let needles = auth::response_needles(&credentials, secrets);
    let proxy_prefix = format!(
        "/{}",
        percent_encoding::utf8_percent_encode(&id, PATH_SEGMENT)
    )
    .into_boxed_str();
    Source {
        metrics: before.map_or_else(Default::default, |b| Arc::clone(&b.metrics)),
        id,
        upstream,
        auth_type,
        credentials,
        extra_headers,
        tls,
        needles,
        proxy_prefix,
    }
}

/// Characters a path segment cannot hold as they are (RFC 3986 `pchar`).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

#[cfg(test)]
mod tests;
