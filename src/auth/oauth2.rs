//! OAuth2 token requests (every grant of DESIGN §4 and §7) and what the endpoint answers.
//! The form itself is built by [`super::token_request`]; sending it is the
//! [`TokenClient`]'s.
//!
//! Hand-written rather than the `oauth2` crate: that crate has no token exchange, accepts
//! only status 200 and a numeric `expires_in`, and its errors carry neither the HTTP
//! status (which the 502 must name) nor a body free of the issued token.

use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

use super::token_cache::Issued;
use super::token_client::{TokenClient, TokenError};
use super::token_request::build_request;
use crate::config::spec::OAuthSpec;
use crate::secret::{sensitive_header_value, Secret};
use crate::transport::SourceTls;

/// An OAuth2 source's token endpoint settings, and the endpoint's own TLS client.
#[derive(Debug)]
pub struct OAuthIssuer {
    pub spec: OAuthSpec,
    tls: Option<SourceTls>,
}

impl OAuthIssuer {
    pub fn new(spec: OAuthSpec) -> Self {
        let tls = spec.token_tls.as_ref().map(|profile| {
            SourceTls::new(std::sync::Arc::clone(&profile.config), profile.fingerprint)
        });
        Self { spec, tls }
    }

    /// `Bearer <token>`, marked sensitive; `subject` is the subject token of an exchange
    /// (ignored by other grants).
    pub async fn issue(
        &self,
        client: &TokenClient,
        subject: Option<&Secret>,
    ) -> Result<Issued<http::HeaderValue>, TokenError> {
        let request = build_request(&self.spec, subject)?;
        let (status, body) = client.send(request, self.tls.as_ref()).await?;
        let issued = parse_response(status, &body, client.settings.default_lifetime)?;
        Ok(Issued {
            value: bearer_header(&issued.value, status)?,
            lifetime: issued.lifetime,
        })
    }
}

/// `Bearer <token>` as a sensitive header value; a token that cannot be one is the
/// endpoint's invalid answer.
pub fn bearer_header(token: &Secret, status: StatusCode) -> Result<http::HeaderValue, TokenError> {
    sensitive_header_value(&zeroize::Zeroizing::new(format!(
        "Bearer {}",
        token.expose()
    )))
    .map_err(|_| TokenError::InvalidResponse {
        status: status.as_u16(),
    })
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

/// Any 2xx with a JSON `access_token` is a token; anything else is an error naming the
/// status and the OAuth `error` code, when the body has a plausible one.
fn parse_response(
    status: StatusCode,
    body: &[u8],
    default_lifetime: Duration,
) -> Result<Issued<Secret>, TokenError> {
    if !status.is_success() {
        let code = serde_json::from_slice::<ErrorResponse>(body)
            .ok()
            .and_then(|e| e.error);
        return Err(TokenError::refused(status, code.as_deref()));
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
    Ok(Issued {
        value: access_token,
        lifetime,
    })
}

fn seconds_to_duration(seconds: f64) -> Option<Duration> {
    (seconds.is_finite() && seconds > 0.0).then(|| Duration::from_secs_f64(seconds.min(1e9)))
}

#[cfg(test)]
mod tests;
