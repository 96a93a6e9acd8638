//! The subject token of an RFC 8693 exchange: the caller's `Authorization: Bearer …`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::HeaderValue;
use serde::Deserialize;
use tokio::time::Instant;

use crate::digest::sha256;
use crate::secret::Secret;

/// A caller's subject token, its cache key, and its own expiry when it is a JWT.
#[derive(Debug, Clone)]
pub struct Subject {
    pub token: Secret,
    /// SHA-256 of the token: the cache key, so the cache holds no subject token.
    pub key: [u8; 32],
    /// The JWT's `exp`; an exchanged token is never used past it.
    pub expires: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("no Authorization: Bearer subject token")]
    Missing,
    #[error("the subject token (a JWT) has expired")]
    Expired,
}

impl Subject {
    /// The bearer token of the caller's `Authorization` (which cleaning took off the
    /// request).
    pub fn from_authorization(value: Option<&HeaderValue>) -> Result<Self, SubjectError> {
        let token = value
            .and_then(super::bearer::token)
            .ok_or(SubjectError::Missing)?;
        let expires = match jwt_expiry(token) {
            Some(exp) if exp <= SystemTime::now() => return Err(SubjectError::Expired),
            Some(exp) => {
                let left = exp
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                Some(Instant::now() + left)
            }
            None => None,
        };
        Ok(Self {
            key: sha256(token.as_bytes()),
            token: Secret::new(token),
            expires,
        })
    }
}

/// The `exp` claim of a JWT, read without verifying it: the identity provider verifies
/// the token; credproxy only avoids using an exchanged token past its subject's life.
fn jwt_expiry(token: &str) -> Option<SystemTime> {
    #[derive(Deserialize)]
    struct Claims {
        exp: Option<f64>,
    }
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let exp = serde_json::from_slice::<Claims>(&bytes).ok()?.exp?;
    (exp.is_finite() && exp > 0.0).then(|| UNIX_EPOCH + Duration::from_secs_f64(exp.min(1e11)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn jwt(exp: u64) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.sig",
            b64(r#"{"alg":"none"}"#),
            b64(&format!(r#"{{"sub":"u","exp":{exp}}}"#))
        )
    }

    fn subject(value: &str) -> Result<Subject, SubjectError> {
        Subject::from_authorization(Some(&HeaderValue::from_str(value).expect("value")))
    }

    fn now_secs() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    }

    #[test]
    fn reads_bearer_and_hashes_it() {
        let subject = subject("bearer opaque-token").expect("subject");
        assert_eq!(subject.token.expose(), "opaque-token");
        assert_eq!(subject.key, sha256(b"opaque-token"));
        assert!(subject.expires.is_none());
    }

    #[test]
    fn missing_or_other_schemes_are_missing() {
        assert_eq!(
            Subject::from_authorization(None).map(|_| ()),
            Err(SubjectError::Missing)
        );
        assert_eq!(
            subject("Basic dTpw").map(|_| ()),
            Err(SubjectError::Missing)
        );
        assert_eq!(subject("Bearer ").map(|_| ()), Err(SubjectError::Missing));
    }

    #[test]
    fn jwt_exp_caps_and_expired_is_refused() {
        let fresh = subject(&format!("Bearer {}", jwt(now_secs() + 600))).expect("subject");
        let left = fresh.expires.expect("exp") - Instant::now();
        assert!(
            left > Duration::from_secs(590) && left <= Duration::from_secs(600),
            "{left:?}"
        );
        let expired = subject(&format!("Bearer {}", jwt(now_secs() - 1)));
        assert_eq!(expired.map(|_| ()), Err(SubjectError::Expired));
    }
}
