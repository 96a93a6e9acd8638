//! Inbound caller authentication: who may use which source.
//!
//! Callers present `Proxy-Authorization: Bearer <token>`. credproxy stores only the
//! SHA-256 of each token and compares digests in constant time, against every caller
//! (no early exit), so neither the token nor which caller matched shows in the timing.

use std::sync::Arc;

use http::header::PROXY_AUTHORIZATION;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The `callers:` section of a snapshot.
#[derive(Debug, Default)]
pub struct Callers {
    entries: Vec<Caller>,
}

#[derive(Debug)]
pub struct Caller {
    pub name: Arc<str>,
    token_sha256: [u8; 32],
    access: Access,
}

/// Which sources a caller may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    All,
    Only(Vec<Arc<str>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    #[error("no valid Proxy-Authorization: Bearer token")]
    Unauthenticated,
}

impl Callers {
    pub fn new(entries: Vec<Caller>) -> Self {
        Self { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Caller> {
        self.entries.iter()
    }

    /// The caller whose token the request carries.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<&Caller, CallerError> {
        let token = bearer(headers).ok_or(CallerError::Unauthenticated)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut matched = None;
        for caller in &self.entries {
            if bool::from(caller.token_sha256.ct_eq(&digest)) {
                matched = Some(caller);
            }
        }
        matched.ok_or(CallerError::Unauthenticated)
    }
}

impl Caller {
    pub fn new(name: Arc<str>, token_sha256: [u8; 32], access: Access) -> Self {
        Self {
            name,
            token_sha256,
            access,
        }
    }

    pub fn token_sha256(&self) -> &[u8; 32] {
        &self.token_sha256
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    pub fn may_use(&self, source_id: &str) -> bool {
        match &self.access {
            Access::All => true,
            Access::Only(ids) => ids.iter().any(|id| **id == *source_id),
        }
    }
}

/// `Proxy-Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(PROXY_AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Lower-case hex of a token's SHA-256: what `token_sha256` holds.
pub fn token_sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses 64 hex digits (either case).
pub fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn callers() -> Callers {
        let hash = |t: &str| parse_sha256_hex(&token_sha256_hex(t)).expect("hex");
        Callers::new(vec![
            Caller::new("ci".into(), hash("ci-token"), Access::All),
            Caller::new(
                "bot".into(),
                hash("bot-token"),
                Access::Only(vec!["github".into()]),
            ),
        ])
    }

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            PROXY_AUTHORIZATION,
            HeaderValue::from_str(value).expect("value"),
        );
        headers
    }

    #[test]
    fn authenticates_by_token_hash() {
        let callers = callers();
        assert_eq!(
            &*callers
                .authenticate(&headers("Bearer ci-token"))
                .expect("ci")
                .name,
            "ci"
        );
        assert_eq!(
            &*callers
                .authenticate(&headers("bearer bot-token"))
                .expect("bot")
                .name,
            "bot"
        );
        for bad in ["Bearer nope", "Basic Y2k6Y2k=", "Bearer ", "ci-token"] {
            assert_eq!(
                callers.authenticate(&headers(bad)).map(|_| ()),
                Err(CallerError::Unauthenticated),
                "{bad}"
            );
        }
        assert!(callers.authenticate(&HeaderMap::new()).is_err());
    }

    #[test]
    fn access_lists() {
        let callers = callers();
        let bot = callers
            .authenticate(&headers("Bearer bot-token"))
            .expect("bot");
        assert!(bot.may_use("github") && !bot.may_use("billing"));
        let ci = callers
            .authenticate(&headers("Bearer ci-token"))
            .expect("ci");
        assert!(ci.may_use("anything"));
    }

    #[test]
    fn hex_round_trip() {
        let hex = token_sha256_hex("abc");
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            parse_sha256_hex(&hex.to_uppercase()),
            parse_sha256_hex(&hex)
        );
        assert_eq!(parse_sha256_hex("abc"), None);
        assert_eq!(parse_sha256_hex(&"zz".repeat(32)), None);
    }
}
