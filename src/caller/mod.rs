//! Step 1 of the request path: who is calling, and may they use this source.
//!
//! Callers present `Proxy-Authorization: Bearer <token>`. credproxy stores only the
//! SHA-256 of each token and compares digests in constant time, against every caller
//! (no early exit), so neither the token nor which caller matched shows in the timing.

use std::sync::Arc;

use http::header::PROXY_AUTHORIZATION;
use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::config::spec::{Access, CallerSpec};
use crate::digest::sha256;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    #[error("no valid Proxy-Authorization: Bearer token")]
    Unauthenticated,
}

impl Callers {
    pub fn new(specs: Vec<CallerSpec>) -> Self {
        let entries = specs
            .into_iter()
            .map(|spec| Caller {
                name: spec.name,
                token_sha256: spec.token_sha256,
                access: spec.access,
            })
            .collect();
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
        let token = headers
            .get(PROXY_AUTHORIZATION)
            .and_then(crate::auth::bearer::token)
            .ok_or(CallerError::Unauthenticated)?;
        let digest = sha256(token.as_bytes());
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

/// Lower-case hex of a token's SHA-256: what `token_sha256` holds.
pub fn token_sha256_hex(token: &str) -> String {
    crate::digest::hex(&sha256(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn callers() -> Callers {
        let spec = |name: &str, token: &str, access| CallerSpec {
            name: name.into(),
            token_sha256: sha256(token.as_bytes()),
            access,
        };
        Callers::new(vec![
            spec("ci", "ci-token", Access::All),
            spec("bot", "bot-token", Access::Only(vec!["github".into()])),
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
        let name = |value| callers.authenticate(&headers(value)).map(|c| &*c.name);
        assert_eq!(name("Bearer ci-token"), Ok("ci"));
        assert_eq!(name("bearer bot-token"), Ok("bot"));
        for bad in ["Bearer nope", "Basic Y2k6Y2k=", "Bearer ", "ci-token"] {
            assert_eq!(name(bad), Err(CallerError::Unauthenticated), "{bad}");
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
    fn hash_token_prints_lower_case_hex() {
        assert_eq!(
            token_sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
