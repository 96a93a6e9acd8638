//! `Bearer <token>` (RFC 6750 §2.1), the one parser for both the caller's
//! `Proxy-Authorization` and the subject token in `Authorization`.

use http::HeaderValue;

/// The token of a `Bearer` credential (scheme case-insensitive), if non-empty.
pub fn token(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_tokens_only() {
        let value = |v: &'static str| HeaderValue::from_static(v);
        assert_eq!(token(&value("Bearer abc")), Some("abc"));
        assert_eq!(token(&value("bearer  abc ")), Some("abc"));
        for other in ["Basic dTpw", "Bearer ", "Bearer", "abc"] {
            assert_eq!(token(&value(other)), None, "{other}");
        }
    }
}
