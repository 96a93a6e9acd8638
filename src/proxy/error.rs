//! The one place where a failed request becomes an HTTP response.
//!
//! Every error is `application/problem+json` (RFC 9457) with a stable `code`. The public
//! `detail` is fixed text chosen here; causes (which may name hosts or carry an
//! upstream's words) go to the access log only.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{HeaderValue, PROXY_AUTHENTICATE, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::Full;

pub use crate::problem::response as problem_response;

use crate::auth::subject::SubjectError;
use crate::auth::token_client::TokenError;
use crate::auth::AuthError;
use crate::caller::{CallerError, Forbidden};
use crate::metrics::{CallerRejection, UpstreamErrorKind};
use crate::transport::ReadBodyError;

/// Why a request was not forwarded, or why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("caller not authenticated")]
    CallerUnauthenticated(#[from] CallerError),
    #[error("caller forbidden")]
    CallerForbidden(#[source] Forbidden),
    #[error("no source matches the path")]
    UnknownSource,
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("upstream unreachable")]
    UpstreamUnreachable(#[source] hyper_util::client::legacy::Error),
    /// The caller connection's own upstream connection ([`super::local`]) could not be
    /// opened.
    #[error("could not connect to the upstream")]
    UpstreamConnect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// That connection broke, or the upstream sent no valid response on it.
    #[error("upstream connection failed")]
    UpstreamProtocol(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("no response headers from the upstream within the timeout")]
    UpstreamTimeout,
    /// The caller's body was malformed or cut off: the caller's fault, not the upstream's.
    #[error("could not read the request body")]
    RequestBody(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl ProxyError {
    /// Status, stable code and public detail.
    fn parts(&self) -> (StatusCode, &'static str, Cow<'static, str>) {
        let (status, code, detail): (_, _, Cow<'static, str>) = match self {
            ProxyError::CallerUnauthenticated(_) => (
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "caller_unauthenticated",
                "Send the caller token as Proxy-Authorization: Bearer <token>.".into(),
            ),
            ProxyError::CallerForbidden(Forbidden::Source) => (
                StatusCode::FORBIDDEN,
                "caller_forbidden",
                "This caller may not use this source.".into(),
            ),
            ProxyError::CallerForbidden(Forbidden::Rule) => (
                StatusCode::FORBIDDEN,
                "caller_forbidden",
                "This caller's rules do not allow this method and path on this source.".into(),
            ),
            ProxyError::UnknownSource => (
                StatusCode::NOT_FOUND,
                "unknown_source",
                "No source with this id is configured. Send requests to /{source_id}/{path}."
                    .into(),
            ),
            ProxyError::BadRequest(why) => (StatusCode::BAD_REQUEST, "bad_request", (*why).into()),
            ProxyError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "TRACE, TRACK and CONNECT are never forwarded.".into(),
            ),
            ProxyError::RequestBody(_) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request body could not be read.".into(),
            ),
            ProxyError::UpstreamConnect(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                "Could not connect to the upstream.".into(),
            ),
            ProxyError::UpstreamProtocol(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                "The upstream closed the connection or sent an invalid response.".into(),
            ),
            ProxyError::UpstreamUnreachable(e) if e.is_connect() => (
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                "Could not connect to the upstream.".into(),
            ),
            ProxyError::UpstreamUnreachable(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                "The upstream closed the connection or sent an invalid response.".into(),
            ),
            ProxyError::UpstreamTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "The upstream did not answer in time.".into(),
            ),
            ProxyError::Auth(AuthError::Subject(SubjectError::Missing)) => (
                StatusCode::UNAUTHORIZED,
                "subject_token_missing",
                "This source exchanges the caller's token: send Authorization: Bearer <token>."
                    .into(),
            ),
            ProxyError::Auth(AuthError::Subject(SubjectError::Expired)) => (
                StatusCode::UNAUTHORIZED,
                "subject_token_rejected",
                "The caller's token has expired.".into(),
            ),
            ProxyError::Auth(AuthError::Token(error)) if error.is_subject_rejected() => (
                StatusCode::UNAUTHORIZED,
                "subject_token_rejected",
                "The identity provider refused to exchange the caller's token (invalid_grant)."
                    .into(),
            ),
            ProxyError::Auth(AuthError::Token(error)) => (
                StatusCode::BAD_GATEWAY,
                "token_endpoint_error",
                token_detail(error).into(),
            ),
            ProxyError::Auth(AuthError::Body(ReadBodyError::TooLarge { limit })) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("This source signs the request body, which must be at most {limit} bytes.")
                    .into(),
            ),
            ProxyError::Auth(AuthError::Body(ReadBodyError::Unreadable(_))) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request body could not be read.".into(),
            ),
            ProxyError::Auth(AuthError::Body(ReadBodyError::Timeout(_))) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request body did not arrive in time.".into(),
            ),
            ProxyError::Auth(AuthError::Sign(_)) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request cannot be signed as it is.".into(),
            ),
            ProxyError::Auth(AuthError::InvalidTarget) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request target is not a valid URI path.".into(),
            ),
        };
        (status, code, detail)
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    /// The upstream-error metric this counts under, if it is an upstream's failure.
    pub fn upstream_error_kind(&self) -> Option<UpstreamErrorKind> {
        match self {
            ProxyError::UpstreamUnreachable(e) if e.is_connect() => {
                Some(UpstreamErrorKind::Connect)
            }
            ProxyError::UpstreamUnreachable(_) => Some(UpstreamErrorKind::Protocol),
            ProxyError::UpstreamConnect(_) => Some(UpstreamErrorKind::Connect),
            ProxyError::UpstreamProtocol(_) => Some(UpstreamErrorKind::Protocol),
            ProxyError::UpstreamTimeout => Some(UpstreamErrorKind::Timeout),
            _ => None,
        }
    }

    /// The caller-rejection metric this counts under, if the caller was turned away.
    pub fn caller_rejection(&self) -> Option<CallerRejection> {
        match self {
            ProxyError::CallerUnauthenticated(e) => Some(e.rejection()),
            ProxyError::CallerForbidden(e) => Some(e.rejection()),
            _ => None,
        }
    }

    pub fn to_response(&self) -> Response<Full<Bytes>> {
        let (status, code, detail) = self.parts();
        let mut response = problem_response(status, code, &detail);
        if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            response.headers_mut().insert(
                PROXY_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"credproxy\""),
            );
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            response.headers_mut().insert(
                http::header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            // The caller's own bearer is what is missing or refused.
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Names the endpoint's status (or "unreachable") and OAuth `error` code; the code was
/// checked to be a short identifier before it got here.
fn token_detail(error: &TokenError) -> String {
    match error {
        TokenError::Unreachable(_) => "The token endpoint is unreachable.".to_owned(),
        TokenError::Timeout => "The token endpoint did not answer in time.".to_owned(),
        TokenError::Refused { status, error } => format!(
            "The token endpoint answered HTTP {status} ({}).",
            error.as_deref().unwrap_or("no error code")
        ),
        TokenError::InvalidResponse { status } => {
            format!("The token endpoint answered HTTP {status} without a usable access token.")
        }
        // The cause (which may name a file) goes to the log only.
        TokenError::Request(_) => {
            "credproxy could not make the token request (its assertion or credentials).".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn problem_json_has_status_code_and_detail() {
        let response = ProxyError::UnknownSource.to_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["code"], "unknown_source");
        assert_eq!(json["status"], 404);
        assert_eq!(json["title"], "Not Found");
    }
}
