//! Turning a source's credentials into what goes on the wire.
//!
//! Static credentials are built once, at load time, into ready header values (marked
//! sensitive) or a ready-encoded query pair; injecting them costs a header insert.

mod lifetime;
pub mod oauth2;
mod static_creds;
pub mod subject;
pub mod token_cache;

pub use static_creds::{sensitive_header_value, QueryCredential, StaticCredentialError};

use http::{HeaderMap, HeaderName, HeaderValue};

/// What a source adds to each forwarded request.
#[derive(Debug)]
pub enum Credentials {
    /// `auth_type: none`: the request is forwarded as the caller sent it.
    None,
    /// A header set on every request: Basic, bearer, or an API key in a header.
    Header {
        name: HeaderName,
        value: HeaderValue,
    },
    /// An API key in the query string, replacing any parameter of the same name.
    Query(QueryCredential),
    /// An OAuth2 bearer token, cached per source (and per subject for token exchange).
    OAuth2(std::sync::Arc<token_cache::TokenSource>),
}

impl Credentials {
    /// Sets the credential header, replacing any value of the same name.
    pub fn apply_to_headers(&self, headers: &mut HeaderMap) {
        if let Credentials::Header { name, value } = self {
            headers.insert(name.clone(), value.clone());
        }
    }

    /// The header this credential sets, if any.
    pub fn header_name(&self) -> Option<&HeaderName> {
        match self {
            Credentials::Header { name, .. } => Some(name),
            Credentials::OAuth2(_) => Some(&http::header::AUTHORIZATION),
            _ => None,
        }
    }

    pub fn token_source(&self) -> Option<&std::sync::Arc<token_cache::TokenSource>> {
        match self {
            Credentials::OAuth2(tokens) => Some(tokens),
            _ => None,
        }
    }

    pub fn query(&self) -> Option<&QueryCredential> {
        match self {
            Credentials::Query(query) => Some(query),
            _ => None,
        }
    }
}

/// Sets a source's extra headers and then its credential, replacing what the caller sent.
pub fn inject(
    credentials: &Credentials,
    extra_headers: &[(HeaderName, HeaderValue)],
    headers: &mut HeaderMap,
) {
    for (name, value) in extra_headers {
        headers.insert(name.clone(), value.clone());
    }
    credentials.apply_to_headers(headers);
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
