//! What a valid `sources.yaml` says, as typed values: parsed URIs, header names, prebuilt
//! (sensitive) header values, [`Secret`]s. No runtime state: token caches, counters and
//! connection pools belong to the live snapshot built from a spec, a layer above.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue, Method, Uri};

use crate::jws::{Jwks, SigningKey};
use crate::path_pattern::PathPattern;
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
    /// A GitHub App installation token.
    GitHubApp(Box<GitHubAppSpec>),
    /// An AWS SigV4 signature over each request.
    AwsSigV4(Box<AwsSpec>),
}

impl CredentialSpec {
    /// Whether this credential writes header `name` itself (so `headers:` may not).
    pub fn sets_header(&self, name: &HeaderName) -> bool {
        match self {
            CredentialSpec::Header { name: own, .. } => own == name,
            CredentialSpec::OAuth2(_) | CredentialSpec::GitHubApp(_) => {
                name == http::header::AUTHORIZATION
            }
            CredentialSpec::AwsSigV4(_) => AWS_SIGNING_HEADERS.contains(name),
            CredentialSpec::None | CredentialSpec::Query(_) => false,
        }
    }
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

impl PartialEq for TlsProfile {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl Eq for TlsProfile {}

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
    JwtBearer,
    GoogleServiceAccount,
    AwsSigV4,
    GitHubApp,
}

impl AuthType {
    pub const ALL: [AuthType; 10] = [
        AuthType::None,
        AuthType::HttpBasic,
        AuthType::ApiKey,
        AuthType::Bearer,
        AuthType::OAuth2,
        AuthType::TokenExchange,
        AuthType::JwtBearer,
        AuthType::GoogleServiceAccount,
        AuthType::AwsSigV4,
        AuthType::GitHubApp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::None => "none",
            AuthType::HttpBasic => "http_basic",
            AuthType::ApiKey => "api_key",
            AuthType::Bearer => "bearer",
            AuthType::OAuth2 => "oauth2",
            AuthType::TokenExchange => "token_exchange",
            AuthType::JwtBearer => "jwt_bearer",
            AuthType::GoogleServiceAccount => "google_service_account",
            AuthType::AwsSigV4 => "aws_sigv4",
            AuthType::GitHubApp => "github_app",
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
/// reload (a rotated `{ file: }` assertion compares by its path, so rotating it keeps
/// them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSpec {
    pub token_url: Uri,
    pub grant: Grant,
    /// Required by every client authentication but `none`.
    pub client_id: Option<String>,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    /// RFC 8707 `resource` parameters.
    pub resources: Vec<String>,
    /// Extra form parameters (values are secrets).
    pub extra_params: Vec<(String, Secret)>,
    /// `aud` of the assertions credproxy signs; the token URL when unset.
    pub assertion_audience: Option<String>,
    /// Extra trust roots and the client certificate for the token endpoint.
    pub token_tls: Option<TlsProfile>,
}

/// What is asked of the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    ClientCredentials,
    /// RFC 8693.
    TokenExchange(ExchangeSpec),
    /// RFC 7523 §2.1 (also Google's service-account flow).
    JwtBearer(GrantAssertion),
}

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic of the form-encoded id and secret (the default,
    /// which RFC 6749 §2.3.1 requires servers to support).
    Basic(Secret),
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    Post(Secret),
    /// RFC 7523 client assertion, HS256 with the client secret.
    SecretJwt(Secret),
    /// RFC 7523 client assertion signed with the client's private key.
    PrivateKeyJwt(SignedBy),
    /// A ready-made JWT (a projected service-account token, a JWT-SVID).
    Assertion(LiveSecret),
    /// RFC 8705: the client certificate on the connection (see `token_tls`).
    TlsClientAuth,
    /// A public client: `client_id` in the body only.
    None,
}

impl ClientAuth {
    /// The `oauth2_client_auth` value.
    pub fn as_str(&self) -> &'static str {
        match self {
            ClientAuth::Basic(_) => "basic",
            ClientAuth::Post(_) => "post",
            ClientAuth::SecretJwt(_) => "client_secret_jwt",
            ClientAuth::PrivateKeyJwt(_) => "private_key_jwt",
            ClientAuth::Assertion(_) => "client_assertion",
            ClientAuth::TlsClientAuth => "tls_client_auth",
            ClientAuth::None => "none",
        }
    }
}

/// A key credproxy signs with, and the `kid` its JWS header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBy {
    pub key: Arc<SigningKey>,
    pub kid: Option<String>,
}

/// The assertion of a JWT-bearer grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantAssertion {
    /// Signed by credproxy for each token request.
    Signed(Box<SignedAssertion>),
    /// Ready-made, read for each token request.
    ReadyMade(LiveSecret),
}

/// The claims of a grant assertion credproxy signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAssertion {
    pub signed_by: SignedBy,
    pub issuer: String,
    pub subject: Option<String>,
    /// Extra claims (`jwt_bearer_claims`; Google's `scope`).
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Seconds from `iat` to `exp`.
    pub lifetime_secs: u64,
    /// Whether the assertion carries a `jti` (Google documents a fixed set of claims).
    pub jti: bool,
}

/// A secret read again each time it is used: a `{ file: }` that rotates (a projected
/// token the kubelet swaps), or a value that does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveSecret {
    Value(Secret),
    File(PathBuf),
}

impl LiveSecret {
    /// The secret now: one trailing newline trimmed, as at load. The error names the
    /// file, never its contents.
    pub fn read(&self) -> Result<Secret, String> {
        match self {
            LiveSecret::Value(secret) => Ok(secret.clone()),
            LiveSecret::File(path) => {
                let bytes = crate::files::read_capped(path, crate::files::MAX_SECRET_FILE_BYTES)
                    .map(zeroize::Zeroizing::new)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let text = std::str::from_utf8(&bytes)
                    .map_err(|_| format!("{} is not UTF-8", path.display()))?;
                let text = text
                    .strip_suffix('\n')
                    .map_or(text, |t| t.strip_suffix('\r').unwrap_or(t));
                if text.is_empty() {
                    return Err(format!("{} is empty", path.display()));
                }
                Ok(Secret::new(text))
            }
        }
    }
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

// === Signed requests (§8) ===

/// The headers a SigV4 signature consists of: the caller's are dropped, and `headers:` may
/// not set them.
pub const AWS_SIGNING_HEADERS: [HeaderName; 4] = [
    http::header::AUTHORIZATION,
    HeaderName::from_static("x-amz-date"),
    HeaderName::from_static("x-amz-security-token"),
    HeaderName::from_static("x-amz-content-sha256"),
];

/// `auth_type: aws_sigv4`. Equality decides whether cached STS keys survive a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSpec {
    pub region: String,
    /// The signing name: `s3`, `execute-api`, `bedrock`, `es`, `lambda`…
    pub service: String,
    pub keys: AwsKeySource,
    /// Bodies up to this many bytes are read and hashed; larger ones get 413.
    pub max_signed_body: u64,
    /// Send every body unhashed and streamed (`UNSIGNED-PAYLOAD`).
    pub unsigned_payload: bool,
}

/// Where a SigV4 source's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsKeySource {
    Static(StaticAwsKeys),
    WebIdentity(WebIdentitySpec),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticAwsKeys {
    /// Not a secret (AWS prints it in every `Authorization`), but may come from one.
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// STS `AssumeRoleWithWebIdentity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebIdentitySpec {
    pub role_arn: String,
    /// Read again for every STS call: the kubelet rotates a projected token.
    pub token: LiveSecret,
    pub session_name: String,
    pub sts_endpoint: Uri,
}

/// `auth_type: github_app`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubAppSpec {
    /// The app JWT's `iss`: the numeric app id, or the app's client id.
    pub app_id: GitHubAppId,
    pub installation_id: u64,
    /// RS256 only: what GitHub verifies app JWTs with.
    pub private_key: Arc<SigningKey>,
    /// The REST API's base, without a trailing `/`.
    pub api_url: String,
    /// `github_permissions`, in file order.
    pub permissions: Vec<(String, String)>,
    pub repositories: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitHubAppId {
    Number(u64),
    /// A client id (`Iv23…`), which GitHub also accepts as `iss`.
    Text(String),
}

// === Callers ===

/// One entry under `callers:`.
#[derive(Debug)]
pub struct CallerSpec {
    pub name: Arc<str>,
    pub identity: CallerIdentity,
    pub access: Access,
    /// `None`: whatever the caller's sources allow. `Some(empty)`: nothing.
    pub rules: Option<Box<[RuleSpec]>>,
}

/// How a caller proves who it is.
#[derive(Debug)]
pub enum CallerIdentity {
    /// The SHA-256 of its shared token (`token_sha256`).
    TokenSha256([u8; 32]),
    /// A JWT from an issuer (`jwt:`).
    Jwt(JwtCallerSpec),
}

/// `jwt: { issuer, audience, jwks_file | jwks_url, subject }`.
#[derive(Debug)]
pub struct JwtCallerSpec {
    pub issuer: Arc<str>,
    pub audience: Box<str>,
    pub keys: JwksSpec,
    /// `None`: any `sub` of the issuer.
    pub subject: Option<SubjectPattern>,
}

/// Where a JWT caller's verification keys come from.
#[derive(Debug)]
pub enum JwksSpec {
    /// Read at load; a changed file reloads the config.
    File { path: PathBuf, keys: Arc<Jwks> },
    /// Fetched, and refreshed while the proxy runs; `tls` from `jwks_ca_file`.
    Url { url: Uri, tls: Option<TlsProfile> },
}

/// `subject:` of a JWT caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectPattern {
    Exact(Box<str>),
    /// Written `prefix*`.
    Prefix(Box<str>),
}

impl SubjectPattern {
    pub fn matches(&self, sub: &str) -> bool {
        match self {
            SubjectPattern::Exact(exact) => sub == &**exact,
            SubjectPattern::Prefix(prefix) => sub.starts_with(&**prefix),
        }
    }
}

impl fmt::Display for SubjectPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectPattern::Exact(exact) => f.write_str(exact),
            SubjectPattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// One entry of a caller's `rules:`.
#[derive(Debug)]
pub struct RuleSpec {
    pub source: Arc<str>,
    /// `None`: any method.
    pub methods: Option<Box<[Method]>>,
    /// `None`: any path.
    pub paths: Option<Box<[PathPattern]>>,
}

/// Which sources a caller may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    All,
    Only(Vec<Arc<str>>),
}
