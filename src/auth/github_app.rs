//! GitHub App installation tokens: an RS256 app JWT, exchanged at
//! `{api}/app/installations/{id}/access_tokens` for a token that lives an hour.

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use serde::Deserialize;

use super::lifetime::{unix_now, until_rfc3339};
use super::oauth2::bearer_header;
use super::token_cache::Issued;
use super::token_client::{TokenClient, TokenError};
use crate::config::spec::{GitHubAppId, GitHubAppSpec};
use crate::jws;
use crate::secret::{sensitive_header_value, Secret};

/// The REST API version the request and its answer follow.
const API_VERSION: &str = "2022-11-28";
/// GitHub's documented clock-skew allowance: `iat` a minute back, `exp` under ten minutes.
const JWT_BACKDATE_SECS: u64 = 60;
const JWT_LIFETIME_SECS: u64 = 9 * 60;

#[derive(Debug)]
pub struct GitHubAppIssuer {
    pub spec: GitHubAppSpec,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<Secret>,
    expires_at: Option<String>,
}

impl GitHubAppIssuer {
    pub fn new(spec: GitHubAppSpec) -> Self {
        Self { spec }
    }

    /// `Bearer <installation token>`, marked sensitive.
    pub async fn issue(&self, client: &TokenClient) -> Result<Issued<HeaderValue>, TokenError> {
        let request = self.token_request()?;
        let (status, body) = client.send(request, None).await?;
        let token = parse_response(status, &body)?;
        Ok(Issued {
            value: bearer_header(&token.value, status)?,
            lifetime: token.lifetime,
        })
    }

    fn token_request(&self) -> Result<Request<Full<Bytes>>, TokenError> {
        let spec = &self.spec;
        let jwt = self.app_jwt()?;
        let authorization =
            sensitive_header_value(&zeroize::Zeroizing::new(format!("Bearer {}", jwt.expose())))
                .map_err(|_| TokenError::Request("the app JWT is not valid in a header".into()))?;
        let mut body = serde_json::Map::new();
        if !spec.repositories.is_empty() {
            body.insert("repositories".into(), spec.repositories.clone().into());
        }
        if !spec.permissions.is_empty() {
            let permissions: serde_json::Map<String, serde_json::Value> = spec
                .permissions
                .iter()
                .map(|(name, level)| (name.clone(), level.clone().into()))
                .collect();
            body.insert("permissions".into(), permissions.into());
        }
        Request::builder()
            .method(Method::POST)
            .uri(format!(
                "{}/app/installations/{}/access_tokens",
                spec.api_url, spec.installation_id
            ))
            .header(ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION)
            .header(USER_AGENT, concat!("credproxy/", env!("CARGO_PKG_VERSION")))
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, authorization)
            .body(Full::new(Bytes::from(
                serde_json::Value::from(body).to_string(),
            )))
            .map_err(|_| TokenError::Request("the token request is not valid HTTP".into()))
    }

    fn app_jwt(&self) -> Result<Secret, TokenError> {
        let now = unix_now();
        let issuer = match &self.spec.app_id {
            GitHubAppId::Number(id) => serde_json::Value::from(*id),
            GitHubAppId::Text(client_id) => serde_json::Value::from(client_id.as_str()),
        };
        let claims = serde_json::json!({
            "iss": issuer,
            "iat": now.saturating_sub(JWT_BACKDATE_SECS),
            "exp": now + JWT_LIFETIME_SECS,
        });
        jws::sign(&self.spec.private_key, None, &claims)
            .map_err(|e| TokenError::Request(format!("cannot sign the app JWT: {e}")))
    }
}

/// 201 with `token` and `expires_at`; GitHub's errors have a `message` but no code, and
/// the message is not passed on.
fn parse_response(status: StatusCode, body: &[u8]) -> Result<Issued<Secret>, TokenError> {
    if !status.is_success() {
        return Err(TokenError::refused(status, None));
    }
    let invalid = TokenError::InvalidResponse {
        status: status.as_u16(),
    };
    let parsed: TokenResponse = serde_json::from_slice(body).map_err(|_| invalid.clone())?;
    let token = parsed
        .token
        .filter(|t| !t.is_empty())
        .ok_or(invalid.clone())?;
    let lifetime = parsed
        .expires_at
        .as_deref()
        .and_then(until_rfc3339)
        .ok_or(invalid)?;
    Ok(Issued {
        value: token,
        lifetime,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn expiry_in(seconds: u64) -> String {
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(seconds))
            .to_string()
    }

    #[test]
    fn reads_token_and_expiry() {
        let body = format!(
            r#"{{"token":"ghs_abc","expires_at":"{}","permissions":{{"contents":"read"}}}}"#,
            expiry_in(3600)
        );
        let issued = parse_response(StatusCode::CREATED, body.as_bytes()).expect("token");
        assert_eq!(issued.value.expose(), "ghs_abc");
        assert!((3590..=3600).contains(&issued.lifetime.as_secs()));
    }

    #[test]
    fn refusals_and_odd_answers_name_the_status_only() {
        let refused = parse_response(
            StatusCode::UNAUTHORIZED,
            br#"{"message":"'Expiration time' claim ('exp') is too far in the future"}"#,
        );
        assert_eq!(
            refused.map(|_| ()),
            Err(TokenError::Refused {
                status: 401,
                error: None
            })
        );
        let past = format!(
            r#"{{"token":"ghs_abc","expires_at":"{}"}}"#,
            humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(5))
        );
        for body in [
            r#"{"token":"ghs_abc"}"#,
            r#"{"expires_at":"x"}"#,
            past.as_str(),
        ] {
            assert_eq!(
                parse_response(StatusCode::CREATED, body.as_bytes()).map(|_| ()),
                Err(TokenError::InvalidResponse { status: 201 }),
                "{body}"
            );
        }
    }
}
