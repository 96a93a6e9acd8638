//! Step 4 of the request path: a source's credentials onto the outbound request.
//!
//! [`inject`] is the one place a credential is written: the source's extra headers, then
//! its credential header, its query key (the upstream URI is assembled here, because the
//! key is part of it) or its OAuth2 token. It runs after cleaning, so nothing the caller
//! sent can remove or duplicate what it writes. Static credentials were encoded at load
//! time; injecting them costs a header insert.
//!
//! How new credential types fit: a token from another grant (a signed assertion, STS, a
//! GitHub installation) is a [`token_cache::CredentialCache`] with another
//! [`token_cache::Issue`], and gets single flight, refresh-ahead and the 401 retry for
//! free. A signature over the request (SigV4) is a `Credentials` variant whose arm in
//! [`inject`] runs last, when the method, the final URI and every header are set; it will
//! also take the caller's body, read it when the payload must be hashed, and hand back
//! what to send.

pub mod bearer;
mod lifetime;
pub mod oauth2;
mod query;
pub mod subject;
pub mod token_cache;
mod token_request;

use std::sync::Arc;

use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Uri};

pub use query::QueryCredential;

use crate::config::spec::{CredentialSpec, Upstream};
use crate::secret::Secret;
use oauth2::{TokenClient, TokenError, TokenSource};
use subject::{Subject, SubjectError};
use token_cache::{Got, Refusal};

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
    /// An OAuth2 bearer token, cached per source (and per subject for token exchange).
    Token(Arc<TokenSource>),
}

impl Credentials {
    /// The runtime form of a spec; a token source is made new (carrying one over from
    /// the previous snapshot is the live builder's decision).
    pub fn new(spec: CredentialSpec, source_id: &Arc<str>) -> Self {
        match spec {
            CredentialSpec::None => Credentials::None,
            CredentialSpec::Header { name, value } => Credentials::Header { name, value },
            CredentialSpec::Query(key) => Credentials::Query(QueryCredential::new(&key)),
            CredentialSpec::OAuth2(oauth) => Credentials::Token(Arc::new(oauth2::token_source(
                Arc::clone(source_id),
                *oauth,
            ))),
        }
    }

    pub fn token_source(&self) -> Option<&Arc<TokenSource>> {
        match self {
            Credentials::Token(tokens) => Some(tokens),
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
            Credentials::None | Credentials::Token(_) => Vec::new(),
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

/// What was injected, for the access log and a retry after an upstream 401.
pub struct Injected {
    pub outcome: TokenOutcome,
    /// The token (its `Authorization` value), when one came from a token source.
    pub token: Option<Got<HeaderValue>>,
    subject: Option<Subject>,
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
        Credentials::None | Credentials::Query(_) => Ok(Injected {
            outcome: TokenOutcome::None,
            token: None,
            subject: None,
        }),
        Credentials::Header { name, value } => {
            parts.headers.insert(name.clone(), value.clone());
            Ok(Injected {
                outcome: TokenOutcome::None,
                token: None,
                subject: None,
            })
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
                token: Some(token),
                subject,
            })
        }
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
    let (Credentials::Token(tokens), Some(token)) = (credentials, &injected.token) else {
        return Ok(None);
    };
    if tokens.refused(token) == Refusal::HeldDown {
        return Ok(None);
    }
    let fresh = tokens.get(client, injected.subject.as_ref()).await?;
    headers.insert(http::header::AUTHORIZATION, fresh.value.clone());
    injected.outcome = fresh.outcome;
    injected.token = Some(fresh);
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
