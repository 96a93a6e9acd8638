//! Requests for credentials (an OAuth2 token, STS keys, a GitHub installation token) over
//! the shared upstream client, or an endpoint's own TLS client: bounded in time and in the
//! size of the answer. What is asked and how the answer reads is each issuer's.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};

use crate::telemetry::error_chain;
use crate::transport::{ClientSettings, HttpClient, SourceTls};

/// Credential responses are small; anything larger is not one.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Runtime settings for credential requests.
#[derive(Debug, Clone, Copy)]
pub struct TokenClientSettings {
    /// The whole request, connect to last byte.
    pub timeout: Duration,
    /// Lifetime assumed when an OAuth2 response has no `expires_in`.
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

/// Makes credential requests over the shared pooled client, or an endpoint's own.
#[derive(Debug, Clone)]
pub struct TokenClient {
    http: HttpClient,
    /// For building an endpoint's own client (its CA, its client certificate).
    client_settings: ClientSettings,
    pub settings: TokenClientSettings,
}

/// Why no credential was issued. Never holds a secret or a response body.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    #[error("token endpoint did not answer within the timeout")]
    Timeout,
    /// `error` is the endpoint's error code (OAuth2 `error`, STS `Code`), when plausible.
    #[error("token endpoint answered HTTP {status} ({})", error.as_deref().unwrap_or("no error code"))]
    Refused { status: u16, error: Option<String> },
    #[error("token endpoint answered HTTP {status} with something that is not a credential")]
    InvalidResponse { status: u16 },
    /// The request could not be made: an assertion file unreadable, a signature failed.
    #[error("cannot make the token request: {0}")]
    Request(String),
}

impl TokenError {
    /// RFC 8693 §2.2.2: `invalid_grant` means the subject token itself was refused.
    pub fn is_subject_rejected(&self) -> bool {
        matches!(self, TokenError::Refused { error: Some(code), .. } if code == "invalid_grant")
    }

    /// A refusal naming `code` only when it is a short identifier: it is echoed into the
    /// caller's 502, and an endpoint's error text may quote what it was sent.
    pub fn refused(status: StatusCode, code: Option<&str>) -> Self {
        TokenError::Refused {
            status: status.as_u16(),
            error: code.filter(|code| is_error_code(code)).map(str::to_owned),
        }
    }
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

    /// Sends `request` (through `tls` when the endpoint has TLS settings of its own) and
    /// reads the answer whole, within the timeout.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        tls: Option<&SourceTls>,
    ) -> Result<(StatusCode, Bytes), TokenError> {
        let http = tls.map_or(&self.http, |tls| tls.client(&self.client_settings));
        let exchange = async {
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
            Ok((status, body))
        };
        tokio::time::timeout(self.settings.timeout, exchange)
            .await
            .unwrap_or(Err(TokenError::Timeout))
    }
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
