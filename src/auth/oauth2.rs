//! Token requests over the shared upstream client (or the token endpoint's own TLS
//! client), and what the endpoint answers. The form itself is built by
//! [`super::token_request`].
//!
//! Hand-written rather than the `oauth2` crate: that crate has no token exchange, accepts
//! only status 200 and a numeric `expires_in`, and its errors carry neither the HTTP
//! status (which the 502 must name) nor a body free of the issued token.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use serde::Deserialize;

use super::token_cache::{CredentialCache, Issue, Issued, Keyed};
use super::token_request::build_request;
use crate::config::spec::{Grant, OAuthSpec};
use crate::secret::{sensitive_header_value, Secret};
use crate::telemetry::error_chain;
use crate::transport::{ClientSettings, HttpClient, SourceTls};

/// Token responses are small; anything larger is not one.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Runtime settings for token requests.
#[derive(Debug, Clone, Copy)]
pub struct TokenClientSettings {
    /// The whole token request, connect to last byte.
    pub timeout: Duration,
    /// Lifetime assumed when a response has no `expires_in`.
    pub default_lifetime: Duration,
}

impl Default for TokenClientSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            default_lifetime: Duration::from_secs(300),
        }
    }
}

/// The token side of an OAuth2 source: its cached `Authorization` header values.
pub type TokenSource = CredentialCache<OAuthIssuer>;

/// A token source for `spec`: one token, or one per caller's subject for an exchange of
/// the caller's own token.
pub fn token_source(source_id: std::sync::Arc<str>, spec: OAuthSpec) -> TokenSource {
    let keyed = match &spec.grant {
        Grant::TokenExchange(exchange) if exchange.subject_token.is_none() => Keyed::PerSubject,
        _ => Keyed::Single,
    };
    CredentialCache::new(source_id, OAuthIssuer::new(spec), keyed)
}

/// An OAuth2 source's token endpoint settings, and the endpoint's own TLS client.
#[derive(Debug)]
pub struct OAuthIssuer {
    pub spec: OAuthSpec,
    tls: Option<SourceTls>,
}

impl OAuthIssuer {
    fn new(spec: OAuthSpec) -> Self {
        let tls = spec.token_tls.as_ref().map(|profile| {
            SourceTls::new(std::sync::Arc::clone(&profile.config), profile.fingerprint)
        });
        Self { spec, tls }
    }
}

impl Issue for OAuthIssuer {
    /// `Bearer <token>`, marked sensitive.
    type Value = http::HeaderValue;
    type Client = TokenClient;

    async fn issue(
        &self,
        client: &TokenClient,
        subject: Option<&Secret>,
    ) -> Result<Issued<http::HeaderValue>, TokenError> {
        let issued = client.fetch(&self.spec, self.tls.as_ref(), subject).await?;
        let header = sensitive_header_value(&zeroize::Zeroizing::new(format!(
            "Bearer {}",
            issued.access_token.expose()
        )))
        .map_err(|_| TokenError::InvalidResponse { status: 200 })?;
        Ok(Issued {
            value: header,
            lifetime: issued.lifetime,
        })
    }
}

/// Makes token requests over the shared pooled client, or a token endpoint's own.
#[derive(Debug, Clone)]
pub struct TokenClient {
    http: HttpClient,
    /// For building a token endpoint's own client (its CA, its client certificate).
    client_settings: ClientSettings,
    settings: TokenClientSettings,
}

/// A token as issued, before caching decides its schedule.
#[derive(Debug)]
pub struct IssuedToken {
    pub access_token: Secret,
    pub lifetime: Duration,
}

/// Why no token was issued. Never holds a secret or a response body.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    #[error("token endpoint did not answer within the timeout")]
    Timeout,
    #[error("token endpoint answered HTTP {status} ({})", oauth_error.as_deref().unwrap_or("no OAuth error code"))]
    Refused {
        status: u16,
        oauth_error: Option<String>,
    },
    #[error("token endpoint answered HTTP {status} with something that is not a token response")]
    InvalidResponse { status: u16 },
    /// The request could not be made: an assertion file unreadable, a signature failed.
    #[error("cannot make the token request: {0}")]
    Request(String),
}

impl TokenError {
    /// RFC 8693 §2.2.2: `invalid_grant` means the subject token itself was refused.
    pub fn is_subject_rejected(&self) -> bool {
        matches!(self, TokenError::Refused { oauth_error: Some(code), .. } if code == "invalid_grant")
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<Secret>,
    expires_in: Option<ExpiresIn>,
}

/// Some identity providers send `"3599"` instead of `3599`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ExpiresIn {
    Number(f64),
    Text(String),
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: Option<String>,
}

impl TokenClient {
    pub fn new(
        http: HttpClient,
        client_settings: ClientSettings,
        settings: TokenClientSettings,
    ) -> Self {
        Self {
            http,
            client_settings,
            settings,
        }
    }

    /// Requests a token, through `tls` when the endpoint has TLS settings of its own.
    /// `subject` is the subject token of an exchange (ignored by other grants).
    pub async fn fetch(
        &self,
        oauth: &OAuthSpec,
        tls: Option<&SourceTls>,
        subject: Option<&Secret>,
    ) -> Result<IssuedToken, TokenError> {
        let request = build_request(oauth, subject)?;
        let http = tls.map_or(&self.http, |tls| tls.client(&self.client_settings));
        match tokio::time::timeout(
            self.settings.timeout,
            exchange(http, request, &self.settings),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(TokenError::Timeout),
        }
    }
}

async fn exchange(
    http: &HttpClient,
    request: Request<Full<Bytes>>,
    settings: &TokenClientSettings,
) -> Result<IssuedToken, TokenError> {
    {
        let response = http
            .request(request.map(Either::Right))
            .await
            .map_err(|e| TokenError::Unreachable(error_chain(&e)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|_| TokenError::InvalidResponse {
                status: status.as_u16(),
            })?
            .to_bytes();
        parse_response(status, &body, settings.default_lifetime)
    }
}

/// Any 2xx with a JSON `access_token` is a token; anything else is an error naming the
/// status and the OAuth `error` code, when the body has a plausible one.
fn parse_response(
    status: StatusCode,
    body: &[u8],
    default_lifetime: Duration,
) -> Result<IssuedToken, TokenError> {
    if !status.is_success() {
        let oauth_error = serde_json::from_slice::<ErrorResponse>(body)
            .ok()
            .and_then(|e| e.error)
            .filter(|code| is_error_code(code));
        return Err(TokenError::Refused {
            status: status.as_u16(),
            oauth_error,
        });
    }
    let invalid = TokenError::InvalidResponse {
        status: status.as_u16(),
    };
    let parsed: TokenResponse = serde_json::from_slice(body).map_err(|_| invalid.clone())?;
    let access_token = parsed
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or(invalid.clone())?;
    let lifetime = match parsed.expires_in {
        None => default_lifetime,
        Some(ExpiresIn::Number(seconds)) => seconds_to_duration(seconds).ok_or(invalid)?,
        Some(ExpiresIn::Text(text)) => text
            .trim()
            .parse()
            .ok()
            .and_then(seconds_to_duration)
            .ok_or(invalid)?,
    };
    Ok(IssuedToken {
        access_token,
        lifetime,
    })
}

fn seconds_to_duration(seconds: f64) -> Option<Duration> {
    (seconds.is_finite() && seconds > 0.0).then(|| Duration::from_secs_f64(seconds.min(1e9)))
}

/// RFC 6749 §5.2: error codes are printable ASCII without `"` or `\`. Stricter here, since
/// the code is echoed into a response: a short identifier or nothing.
fn is_error_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

#[cfg(test)]
mod tests;
