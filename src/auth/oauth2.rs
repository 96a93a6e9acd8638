//! Token requests: OAuth 2.0 client_credentials (RFC 6749 §4.4) and token exchange
//! (RFC 8693), as one form POST over the shared upstream client.
//!
//! Hand-written rather than the `oauth2` crate: that crate has no token exchange, accepts
//! only status 200 and a numeric `expires_in`, and its errors carry neither the HTTP
//! status (which the 502 must name) nor a body free of the issued token.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::config::spec::{ClientAuth, OAuthSpec};
use crate::secret::Secret;
use crate::telemetry::error_chain;
use crate::transport::HttpClient;

const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
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

/// Makes token requests over the shared pooled client.
#[derive(Debug, Clone)]
pub struct TokenClient {
    http: HttpClient,
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
    pub fn new(http: HttpClient, settings: TokenClientSettings) -> Self {
        Self { http, settings }
    }

    /// Requests a token. `subject` is the subject token of an exchange (ignored for
    /// client_credentials).
    pub async fn fetch(
        &self,
        oauth: &OAuthSpec,
        subject: Option<&Secret>,
    ) -> Result<IssuedToken, TokenError> {
        let request = build_request(oauth, subject);
        match tokio::time::timeout(self.settings.timeout, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => Err(TokenError::Timeout),
        }
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<IssuedToken, TokenError> {
        let response = self
            .http
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
        parse_response(status, &body, self.settings.default_lifetime)
    }
}

fn build_request(oauth: &OAuthSpec, subject: Option<&Secret>) -> Request<Full<Bytes>> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    match &oauth.exchange {
        None => {
            form.append_pair("grant_type", "client_credentials");
            if let Some(audience) = &oauth.audience {
                form.append_pair("audience", audience);
            }
        }
        Some(exchange) => {
            form.append_pair("grant_type", TOKEN_EXCHANGE_GRANT);
            if let Some(subject) = exchange.subject_token.as_ref().or(subject) {
                form.append_pair("subject_token", subject.expose());
            }
            form.append_pair("subject_token_type", &exchange.subject_token_type);
            if let Some(audience) = exchange.audience.as_ref().or(oauth.audience.as_ref()) {
                form.append_pair("audience", audience);
            }
            if let Some(resource) = &exchange.resource {
                form.append_pair("resource", resource);
            }
            if let Some(requested) = &exchange.requested_token_type {
                form.append_pair("requested_token_type", requested);
            }
            if let Some(actor) = &exchange.actor_token {
                form.append_pair("actor_token", actor.expose());
                form.append_pair("actor_token_type", &exchange.actor_token_type);
            }
        }
    }
    if !oauth.scopes.is_empty() {
        form.append_pair("scope", &oauth.scopes.join(" "));
    }
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(oauth.token_url.clone())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json");
    match oauth.client_auth {
        ClientAuth::Basic => {
            // RFC 6749 §2.3.1: form-encode id and secret, then Basic.
            let pair = Zeroizing::new(format!(
                "{}:{}",
                form_encode(&oauth.client_id),
                Zeroizing::new(form_encode(oauth.client_secret.expose())).as_str()
            ));
            let header = Zeroizing::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(&*pair)
            ));
            if let Ok(mut value) = HeaderValue::from_str(&header) {
                value.set_sensitive(true);
                builder = builder.header(AUTHORIZATION, value);
            }
        }
        ClientAuth::Post => {
            form.append_pair("client_id", &oauth.client_id);
            form.append_pair("client_secret", oauth.client_secret.expose());
        }
    }
    let body = Zeroizing::new(form.finish());
    builder
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap_or_else(|_| Request::new(Full::default()))
}

fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
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
