//! Step 4 of the request path: a source's credentials onto the outbound request.
//!
//! [`inject`] is the one place a credential is written: the source's extra headers, then
//! its credential header, its query key (the upstream URI is assembled here, because the
//! key is part of it) or its OAuth2 token. It runs after cleaning, so nothing the caller
//! sent can remove or duplicate what it writes. Static credentials were encoded at load
//! time; injecting them costs a header insert.
//!
//! A signature over the request (SigV4) is the one credential that depends on the body:
//! [`inject`] gets its keys and drops the caller's signing headers, and [`sign`], which
//! runs once every header is final, reads the body when it must be hashed and writes the
//! signature. For every other source, [`sign`] hands the body back as it is.
//!
//! How new credential types fit: a credential from another issuer (an assertion grant,
//! STS, a GitHub installation) is a [`token_cache::CredentialCache`] with another
//! [`token_cache::Issue`], and gets single flight, refresh-ahead and (for bearer tokens)
//! the 401 retry for free.

pub mod bearer;
pub mod github_app;
pub mod lifetime;
pub mod oauth2;
mod query;
pub mod sigv4;
pub mod sts;
pub mod subject;
pub mod token_cache;
pub mod token_client;
mod token_request;
pub mod token_source;

use std::sync::Arc;

use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Uri};

pub use query::QueryCredential;

use crate::config::spec::{CredentialSpec, Upstream};
use crate::secret::Secret;
use crate::transport::{BufferedBodies, CallerBody, Payload, ReadBodyError};
use github_app::GitHubAppIssuer;
use oauth2::OAuthIssuer;
use sigv4::AwsSigner;
use sts::AwsKeys;
use subject::{Subject, SubjectError};
use token_cache::{CacheState, Got, Refusal};
use token_client::{TokenClient, TokenError};
use token_source::{token_source, TokenIssuer, TokenSource};

/// What a source adds to each forwarded request, ready to apply.
#[derive(Debug)]
pub enum Credentials {
    /// `auth_type: none`: the request is forwarded as the caller sent it.
    None,
    /// A header set on every request: Basic, bearer, or an API key in a header.
    Header {
        name: HeaderName,
        value: HeaderValue,
    },
    /// An API key in the query string.
    Query(QueryCredential),
    /// A bearer token (OAuth2, a GitHub installation), cached per source (and per
    /// subject for token exchange).
    Token(Arc<TokenSource>),
    /// A SigV4 signature over each request.
    Signed(Arc<AwsSigner>),
}

impl Credentials {
    /// The runtime form of a spec, with new caches (see [`Self::reuse`]).
    pub fn new(spec: CredentialSpec, source_id: &Arc<str>) -> Self {
        let tokens =
            |issuer| Credentials::Token(Arc::new(token_source(Arc::clone(source_id), issuer)));
        match spec {
            CredentialSpec::None => Credentials::None,
            CredentialSpec::Header { name, value } => Credentials::Header { name, value },
            CredentialSpec::Query(key) => Credentials::Query(QueryCredential::new(&key)),
            CredentialSpec::OAuth2(oauth) => {
                tokens(TokenIssuer::OAuth(Box::new(OAuthIssuer::new(*oauth))))
            }
            CredentialSpec::GitHubApp(app) => {
                tokens(TokenIssuer::GitHubApp(GitHubAppIssuer::new(*app)))
            }
            CredentialSpec::AwsSigV4(aws) => {
                Credentials::Signed(Arc::new(AwsSigner::new(*aws, source_id)))
            }
        }
    }

    /// These credentials again, sharing their caches, when `spec` is what they were made
    /// from: a reload that left a source's settings alone keeps its cached credentials.
    pub fn reuse(&self, spec: &CredentialSpec) -> Option<Credentials> {
        match (self, spec) {
            (Credentials::Token(tokens), spec) if tokens.issuer().issues_for(spec) => {
                Some(Credentials::Token(Arc::clone(tokens)))
            }
            (Credentials::Signed(signer), CredentialSpec::AwsSigV4(aws))
                if signer.spec == **aws =>
            {
                Some(Credentials::Signed(Arc::clone(signer)))
            }
            _ => None,
        }
    }

    pub fn token_source(&self) -> Option<&Arc<TokenSource>> {
        match self {
            Credentials::Token(tokens) => Some(tokens),
            _ => None,
        }
    }

    /// The cache of issued credentials (tokens, STS keys), for the metrics endpoint.
    pub fn cache(&self) -> Option<&dyn CacheState> {
        match self {
            Credentials::Token(tokens) => Some(&**tokens),
            Credentials::Signed(signer) => signer
                .assumed_keys()
                .map(|cache| &**cache as &dyn CacheState),
            _ => None,
        }
    }

    pub fn query(&self) -> Option<&QueryCredential> {
        match self {
            Credentials::Query(query) => Some(query),
            _ => None,
        }
    }

    /// The caller's own `Authorization` goes upstream only when the source adds none.
    pub fn forwards_caller_authorization(&self) -> bool {
        matches!(self, Credentials::None)
    }

    /// The forms in which this credential's secrets could come back in a response, besides
    /// the configured values themselves: the encoded Basic pair, the URL-encoded key.
    fn encoded_forms(&self) -> Vec<Secret> {
        match self {
            Credentials::Header { value, .. } => value
                .to_str()
                .ok()
                .and_then(|text| text.strip_prefix("Basic "))
                .map(|encoded| vec![Secret::new(encoded)])
                .unwrap_or_default(),
            Credentials::Query(query) => vec![query.encoded_value().clone()],
            Credentials::None | Credentials::Token(_) | Credentials::Signed(_) => Vec::new(),
        }
    }
}

/// Why no credential could be added. Never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("subject token: {0}")]
    Subject(#[from] SubjectError),
    #[error("token request failed: {0}")]
    Token(#[from] TokenError),
    /// Cannot happen for a target that passed routing; kept as an error, not a panic.
    #[error("the upstream request target is not a valid URI")]
    InvalidTarget,
    /// A body that must be hashed for a signature could not be read whole.
    #[error("{0}")]
    Body(ReadBodyError),
    /// The SigV4 signer refused the request.
    #[error("cannot sign the request: {0}")]
    Sign(String),
}

/// Where the credential of a request came from, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOutcome {
    /// Static credentials, or none at all.
    None,
    Cached,
    Fetched,
}

impl TokenOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenOutcome::None => "none",
            TokenOutcome::Cached => "cached",
            TokenOutcome::Fetched => "fetched",
        }
    }
}

/// What [`inject`] needs to know of the routed request.
pub struct Injection<'a> {
    pub credentials: &'a Credentials,
    pub extra_headers: &'a [(HeaderName, HeaderValue)],
    pub upstream: &'a Upstream,
    /// Where the rest of the path (after `/{source_id}`) starts in the inbound path.
    pub rest_start: usize,
    /// The caller's `Authorization`, which cleaning took off: the subject of an exchange.
    pub caller_authorization: Option<HeaderValue>,
}

/// What was injected, for the access log, the response scrub and a retry after an
/// upstream 401.
pub struct Injected {
    pub outcome: TokenOutcome,
    sent: Sent,
    subject: Option<Subject>,
}

/// A credential issued for this request (the configured ones are the source's needles).
enum Sent {
    Nothing,
    /// A bearer token from a token source (its `Authorization` value).
    Token(Got<HeaderValue>),
    /// The keys to sign with; [`sign`] writes the signature.
    AwsKeys(Arc<AwsKeys>),
}

impl Injected {
    fn with(outcome: TokenOutcome, sent: Sent) -> Self {
        Self {
            outcome,
            sent,
            subject: None,
        }
    }

    /// The issued secret this request carries, to keep it out of the response: the bearer
    /// token, or the STS session token.
    pub fn sent_secret(&self) -> Option<&[u8]> {
        match &self.sent {
            Sent::Token(token) => token.value.as_bytes().strip_prefix(b"Bearer "),
            Sent::AwsKeys(keys) => keys.session_token.as_ref().map(|t| t.expose().as_bytes()),
            Sent::Nothing => None,
        }
        .filter(|secret| !secret.is_empty())
    }

    /// Whether an upstream 401 may mean the token was revoked early: it came from the
    /// cache, and can be dropped for a new one.
    pub fn may_retry(&self) -> bool {
        matches!(self.sent, Sent::Token(_)) && self.outcome == TokenOutcome::Cached
    }
}

/// Writes the credential onto `parts`: headers, and the upstream URI (with the query key).
pub async fn inject(
    injection: Injection<'_>,
    parts: &mut Parts,
    client: &TokenClient,
) -> Result<Injected, AuthError> {
    let Injection {
        credentials,
        extra_headers,
        upstream,
        rest_start,
        caller_authorization,
    } = injection;
    parts.uri = upstream_uri(upstream, &parts.uri, rest_start, credentials.query())?;
    for (name, value) in extra_headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    match credentials {
        Credentials::None | Credentials::Query(_) => {
            Ok(Injected::with(TokenOutcome::None, Sent::Nothing))
        }
        Credentials::Header { name, value } => {
            parts.headers.insert(name.clone(), value.clone());
            Ok(Injected::with(TokenOutcome::None, Sent::Nothing))
        }
        Credentials::Signed(signer) => {
            AwsSigner::drop_caller_signature(&mut parts.headers);
            let (keys, outcome) = signer.keys(client).await?;
            Ok(Injected::with(outcome, Sent::AwsKeys(keys)))
        }
        Credentials::Token(tokens) => {
            let subject = if tokens.needs_subject() {
                Some(Subject::from_authorization(caller_authorization.as_ref())?)
            } else {
                None
            };
            let token = tokens.get(client, subject.as_ref()).await?;
            parts
                .headers
                .insert(http::header::AUTHORIZATION, token.value.clone());
            Ok(Injected {
                outcome: token.outcome,
                sent: Sent::Token(token),
                subject,
            })
        }
    }
}

/// The body to send: for a signing source, after the signature over the final request
/// (read whole first, when its hash is signed); for any other, the caller's, untouched.
pub async fn sign(
    credentials: &Credentials,
    injected: &Injected,
    parts: &mut Parts,
    body: CallerBody,
    bodies: &BufferedBodies,
) -> Result<Payload, AuthError> {
    match (credentials, &injected.sent) {
        (Credentials::Signed(signer), Sent::AwsKeys(keys)) => {
            signer.sign(parts, keys, body, bodies).await
        }
        _ => Ok(Payload::Streaming(body)),
    }
}

/// After the upstream refused a cached token: a token to retry with, written onto
/// `headers`, or `None` when the request should not be retried (see
/// [`token_cache::CredentialCache::refused`]).
pub async fn reinject_after_refusal(
    credentials: &Credentials,
    injected: &mut Injected,
    headers: &mut http::HeaderMap,
    client: &TokenClient,
) -> Result<Option<TokenOutcome>, AuthError> {
    let (Credentials::Token(tokens), Sent::Token(token)) = (credentials, &injected.sent) else {
        return Ok(None);
    };
    if tokens.refused(token) == Refusal::HeldDown {
        return Ok(None);
    }
    let fresh = tokens.get(client, injected.subject.as_ref()).await?;
    headers.insert(http::header::AUTHORIZATION, fresh.value.clone());
    injected.outcome = fresh.outcome;
    injected.sent = Sent::Token(fresh);
    Ok(Some(injected.outcome))
}

/// The secret texts to keep out of a source's responses: every configured secret value and
/// the encoded forms of its credential.
pub fn response_needles(credentials: &Credentials, secrets: Vec<Secret>) -> Box<[Secret]> {
    let mut needles = secrets;
    needles.extend(credentials.encoded_forms());
    needles.sort_by(|a, b| a.expose().cmp(b.expose()));
    needles.dedup();
    needles.into_boxed_slice()
}

/// `{upstream}{rest}?{query}` from the inbound URI, with the query key written in.
fn upstream_uri(
    upstream: &Upstream,
    inbound: &Uri,
    rest_start: usize,
    query_credential: Option<&QueryCredential>,
) -> Result<Uri, AuthError> {
    let rest = inbound.path().get(rest_start..).unwrap_or("");
    let query = inbound.query();
    // Sized exactly (in the usual cases), so that `Bytes::from` adopts the buffer as is
    // instead of allocating a second block to share it: one allocation per request.
    let path_len = (upstream.base_path.len() + rest.len()).max(1);
    let query_len = match (query_credential, query) {
        (Some(credential), _) => 1 + credential.max_query_len(query),
        (None, Some(query)) => 1 + query.len(),
        (None, None) => 0,
    };
    let mut target = String::with_capacity(path_len + query_len);
    target.push_str(&upstream.base_path);
    target.push_str(rest);
    if target.is_empty() {
        target.push('/');
    }
    match (query_credential, query) {
        (Some(credential), _) => {
            target.push('?');
            credential.write_query(query, &mut target);
        }
        (None, Some(query)) => {
            target.push('?');
            target.push_str(query);
        }
        (None, None) => {}
    }
    let path_and_query = PathAndQuery::from_maybe_shared(bytes::Bytes::from(target))
        .map_err(|_| AuthError::InvalidTarget)?;
    Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| AuthError::InvalidTarget)
}

#[cfg(test)]
mod tests;
