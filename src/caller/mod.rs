//! Step 1 of the request path: who is calling, and may they do this.
//!
//! Callers present `Proxy-Authorization: Bearer <token>`: a shared token, of which
//! credproxy stores only the SHA-256, or a JWT from an issuer ([`jwt`]). Token digests are
//! compared in constant time against every token caller (no early exit), so neither the
//! token nor which caller matched shows in the timing. Once the request is routed,
//! [`Caller::permits`] holds the caller to its `sources` and `rules`.

pub mod jwks;
pub mod jwt;

use std::sync::Arc;

use http::header::PROXY_AUTHORIZATION;
use http::{HeaderMap, Method};
use subtle::ConstantTimeEq;

use crate::config::spec::{Access, CallerIdentity, CallerSpec, JwksSpec, RuleSpec};
use crate::digest::sha256;
use crate::metrics::CallerRejection;
use jwks::RemoteJwks;
use jwt::{JwtCallers, JwtOutcome, JwtRejection, Keys};

/// The `callers:` section of a snapshot.
#[derive(Debug, Default)]
pub struct Callers {
    entries: Vec<Caller>,
    /// Token callers: their index in `entries` and their token's digest.
    tokens: Vec<(usize, [u8; 32])>,
    jwt: Option<JwtCallers>,
}

#[derive(Debug)]
pub struct Caller {
    pub name: Arc<str>,
    pub kind: CallerKind,
    access: Access,
    rules: Option<Box<[RuleSpec]>>,
}

/// How a caller authenticates, for `/config`.
#[derive(Debug, Clone)]
pub enum CallerKind {
    Token,
    Jwt {
        issuer: Arc<str>,
        subject: Option<String>,
    },
}

/// The caller a request authenticated as.
#[derive(Debug)]
pub struct Authenticated<'c> {
    pub caller: &'c Caller,
    /// A JWT caller's `sub`.
    pub subject: Option<Arc<str>>,
}

/// Why a request did not authenticate (407).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallerError {
    #[error("no Proxy-Authorization: Bearer token")]
    Missing,
    #[error("the token is not one of a caller")]
    UnknownToken,
    #[error(transparent)]
    Jwt(JwtRejection),
    /// Not an answer: the token names a key `keys` may have gained since it was fetched.
    /// Fetch, then authenticate again (the second time, this is `UnknownKey`).
    #[error("the JWT names a key its issuer's key set does not hold yet")]
    FetchKeys(Arc<RemoteJwks>),
}

/// Why an authenticated caller may not do this (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Forbidden {
    #[error("the source is not on the caller's sources")]
    Source,
    #[error("no rule of the caller allows this method and path")]
    Rule,
}

impl CallerError {
    pub fn rejection(&self) -> CallerRejection {
        match self {
            CallerError::Missing => CallerRejection::MissingToken,
            CallerError::UnknownToken => CallerRejection::UnknownToken,
            CallerError::FetchKeys(_) => CallerRejection::JwtUnknownKey,
            CallerError::Jwt(why) => match why {
                JwtRejection::Algorithm => CallerRejection::JwtAlgorithm,
                JwtRejection::Issuer => CallerRejection::JwtIssuer,
                JwtRejection::UnknownKey => CallerRejection::JwtUnknownKey,
                JwtRejection::Signature => CallerRejection::JwtSignature,
                JwtRejection::Expired => CallerRejection::JwtExpired,
                JwtRejection::NotYetValid => CallerRejection::JwtNotYetValid,
                JwtRejection::Claims => CallerRejection::JwtClaims,
                JwtRejection::Audience => CallerRejection::JwtAudience,
                JwtRejection::Subject => CallerRejection::JwtSubject,
            },
        }
    }
}

impl Forbidden {
    pub fn rejection(self) -> CallerRejection {
        match self {
            Forbidden::Source => CallerRejection::Source,
            Forbidden::Rule => CallerRejection::Rule,
        }
    }
}

impl Callers {
    /// The live callers of `specs`; a remote key set of `previous` with the same URL and
    /// TLS carries over, with its keys and its schedule.
    pub fn new(specs: Vec<CallerSpec>, previous: Option<&Callers>) -> Self {
        let previous_keys: Vec<&Arc<RemoteJwks>> = previous
            .and_then(|p| p.jwt.as_ref())
            .map(|jwt| jwt.remote_keys().collect())
            .unwrap_or_default();
        let jwt_specs: Vec<_> = specs
            .iter()
            .enumerate()
            .filter_map(|(i, spec)| match &spec.identity {
                CallerIdentity::Jwt(jwt) => Some((i, jwt)),
                CallerIdentity::TokenSha256(_) => None,
            })
            .collect();
        let mut made: Vec<Arc<RemoteJwks>> = Vec::new();
        let jwt = (!jwt_specs.is_empty()).then(|| {
            JwtCallers::new(jwt_specs.iter().copied(), |spec| match &spec.keys {
                JwksSpec::File { keys, .. } => Keys::File(Arc::clone(keys)),
                JwksSpec::Url { url, tls } => {
                    let same = |set: &&Arc<RemoteJwks>| {
                        set.issuer == spec.issuer && set.same_source(url, tls.as_ref())
                    };
                    let known = previous_keys.iter().copied().chain(made.iter()).find(same);
                    let set = known.cloned().unwrap_or_else(|| {
                        let set = Arc::new(RemoteJwks::new(
                            url.clone(),
                            Arc::clone(&spec.issuer),
                            tls.as_ref(),
                        ));
                        made.push(Arc::clone(&set));
                        set
                    });
                    Keys::Remote(set)
                }
            })
        });
        let mut tokens = Vec::new();
        let entries = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let kind = match spec.identity {
                    CallerIdentity::TokenSha256(hash) => {
                        tokens.push((i, hash));
                        CallerKind::Token
                    }
                    CallerIdentity::Jwt(jwt) => CallerKind::Jwt {
                        issuer: jwt.issuer,
                        subject: jwt.subject.map(|s| s.to_string()),
                    },
                };
                Caller {
                    name: spec.name,
                    kind,
                    access: spec.access,
                    rules: spec.rules,
                }
            })
            .collect();
        Self {
            entries,
            tokens,
            jwt,
        }
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

    /// The key sets fetched from a `jwks_url`, for the background refresh and metrics.
    pub fn remote_keys(&self) -> impl Iterator<Item = &Arc<RemoteJwks>> {
        self.jwt.iter().flat_map(JwtCallers::remote_keys)
    }

    /// The caller the request's token belongs to.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Authenticated<'_>, CallerError> {
        let token = headers
            .get(PROXY_AUTHORIZATION)
            .and_then(crate::auth::bearer::token)
            .ok_or(CallerError::Missing)?;
        let digest = sha256(token.as_bytes());
        let mut matched = None;
        for (index, hash) in &self.tokens {
            if bool::from(hash.ct_eq(&digest)) {
                matched = Some(*index);
            }
        }
        if let Some(index) = matched {
            return Ok(Authenticated {
                caller: &self.entries[index],
                subject: None,
            });
        }
        let Some(jwt) = &self.jwt else {
            return Err(CallerError::UnknownToken);
        };
        // Three base64url parts: anything else is a shared token nobody has.
        if token.bytes().filter(|&b| b == b'.').count() != 2 {
            return Err(CallerError::UnknownToken);
        }
        match jwt.authenticate(token, &digest, crate::auth::lifetime::unix_now()) {
            JwtOutcome::Caller(index, subject) => Ok(Authenticated {
                caller: &self.entries[index],
                subject,
            }),
            JwtOutcome::Rejected(why) => Err(CallerError::Jwt(why)),
            JwtOutcome::FetchKeys(keys) => Err(CallerError::FetchKeys(keys)),
        }
    }
}

impl Caller {
    pub fn access(&self) -> &Access {
        &self.access
    }

    pub fn rules(&self) -> Option<&[RuleSpec]> {
        self.rules.as_deref()
    }

    pub fn may_use(&self, source_id: &str) -> bool {
        match &self.access {
            Access::All => true,
            Access::Only(ids) => ids.iter().any(|id| **id == *source_id),
        }
    }

    /// Whether this caller may send `method` to `rest` (the path after `/{source_id}`,
    /// without the query) of the source.
    pub fn permits(&self, source_id: &str, method: &Method, rest: &str) -> Result<(), Forbidden> {
        if !self.may_use(source_id) {
            return Err(Forbidden::Source);
        }
        let Some(rules) = &self.rules else {
            return Ok(());
        };
        let allowed = rules.iter().any(|rule| {
            *rule.source == *source_id
                && rule.methods.as_ref().is_none_or(|m| m.contains(method))
                && rule
                    .paths
                    .as_ref()
                    .is_none_or(|paths| paths.iter().any(|p| p.matches(rest)))
        });
        allowed.then_some(()).ok_or(Forbidden::Rule)
    }
}

/// Lower-case hex of a token's SHA-256: what `token_sha256` holds.
pub fn token_sha256_hex(token: &str) -> String {
    crate::digest::hex(&sha256(token.as_bytes()))
}

#[cfg(test)]
mod tests;
