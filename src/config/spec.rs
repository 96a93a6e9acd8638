//! What a valid `sources.yaml` says, as typed values: parsed URIs, header names, prebuilt
//! (sensitive) header values, [`Secret`]s. No runtime state: token caches, counters and
//! connection pools belong to the live snapshot built from a spec, a layer above.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue, Uri};

use crate::secret::Secret;

/// One valid file.
#[derive(Debug)]
pub struct Spec {
    /// In file order.
    pub sources: Vec<SourceSpec>,
    /// `None` without a `callers:` section: no caller authentication.
    pub callers: Option<Vec<CallerSpec>>,
    pub meta: SpecMeta,
}

/// Where a spec came from; none of it is secret.
#[derive(Debug, Clone)]
pub struct SpecMeta {
    pub path: PathBuf,
    /// SHA-256 of the file and the files it references ([`super::inputs_digest`]): an
    /// unchanged hash is not a reload.
    pub content_sha256: [u8; 32],
    /// Files read for `{ file: … }` secrets and `tls_*` fields: watched and hashed like the
    /// config.
    pub secret_files: Vec<PathBuf>,
}

/// One upstream service and the credentials credproxy adds for it.
#[derive(Debug)]
pub struct SourceSpec {
    pub id: Arc<str>,
    pub upstream: Upstream,
    pub auth_type: AuthType,
    pub credential: CredentialSpec,
    /// The `headers:` map, values marked sensitive.
    pub extra_headers: Vec<(HeaderName, HeaderValue)>,
    /// Its own CA or client certificate, when it has `tls_*` fields.
    pub tls: Option<TlsProfile>,
    /// Every secret value the source holds, for keeping them out of responses.
    pub secrets: Vec<Secret>,
}

/// What a source adds to each request, as configured.
#[derive(Debug)]
pub enum CredentialSpec {
    /// `auth_type: none`: the request is forwarded as the caller sent it.
    None,
    /// A header set on every request: Basic (already encoded), bearer, or an API key.
    Header {
        name: HeaderName,
        value: HeaderValue,
    },
    /// An API key in the query string.
    Query(QueryKey),
    /// A token from a token endpoint (boxed: the settings are large, and rare).
    OAuth2(Box<OAuthSpec>),
}

/// `api_key_in: query`.
#[derive(Debug, Clone)]
pub struct QueryKey {
    pub name: Box<str>,
    pub value: Secret,
}

/// A source's TLS client settings (public roots plus its CA, its client certificate),
/// and a hash of the files they came from, to tell whether a reload changed them.
#[derive(Clone)]
pub struct TlsProfile {
    pub config: Arc<rustls::ClientConfig>,
    pub fingerprint: [u8; 32],
}

impl fmt::Debug for TlsProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsProfile").finish_non_exhaustive()
    }
}

/// An upstream base URL split into the parts a forwarded URI is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
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

// === OAuth2 ===

/// The default `subject_token_type` and `actor_token_type` (RFC 8693 §3).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A source's token endpoint settings. Equality decides whether cached tokens survive a
/// reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSpec {
    pub token_url: Uri,
    pub client_id: String,
    pub client_secret: Secret,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    /// Present for `token_exchange`.
    pub exchange: Option<ExchangeSpec>,
}

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic of the form-encoded id and secret (the default,
    /// which RFC 6749 §2.3.1 requires servers to support).
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    Post,
}

/// RFC 8693 token exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeSpec {
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub subject_token_type: String,
    pub requested_token_type: Option<String>,
    /// A fixed subject (the workload's own token) instead of the caller's bearer.
    pub subject_token: Option<Secret>,
    pub actor_token: Option<Secret>,
    pub actor_token_type: String,
}

// === Callers ===

/// One entry under `callers:`.
#[derive(Debug)]
pub struct CallerSpec {
    pub name: Arc<str>,
    pub token_sha256: [u8; 32],
    pub access: Access,
}

/// Which sources a caller may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    All,
    Only(Vec<Arc<str>>),
}
