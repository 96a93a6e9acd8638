//! JWT callers (DESIGN §9): a bearer JWT is verified against its issuer's key set, its
//! claims checked, and the most specific caller whose `audience` and `subject` it meets
//! is the one calling.
//!
//! Verified tokens are cached by the SHA-256 the caller check computes anyway, for a minute
//! at most and never past `exp`, so a busy caller pays one signature check a minute rather
//! than one per request. An entry also names the key set generation it was verified with:
//! once a refetch replaces the set, tokens are checked again against the new keys.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::jwks::RemoteJwks;
use crate::config::spec::{JwtCallerSpec, SubjectPattern};
use crate::jws::{Jwks, Unverified, VerifyError};

/// `exp` and `nbf` are met with this much clock skew allowed.
pub const LEEWAY_SECONDS: u64 = 30;
const CACHE_FOR: Duration = Duration::from_secs(60);
const CACHE_CAPACITY: u64 = 10_000;

/// Why a JWT did not authenticate anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtRejection {
    #[error("the JWT is signed with an algorithm other than RS256 or ES256")]
    Algorithm,
    #[error("no caller accepts the JWT's issuer")]
    Issuer,
    #[error("the JWT names a key its issuer's key set does not hold")]
    UnknownKey,
    #[error("the JWT's signature does not verify")]
    Signature,
    #[error("the JWT has expired")]
    Expired,
    #[error("the JWT is not valid yet (nbf)")]
    NotYetValid,
    #[error("the JWT lacks `exp` or has claims of the wrong type")]
    Claims,
    #[error("the JWT's audience is not one a caller accepts")]
    Audience,
    #[error("the JWT's subject matches no caller")]
    Subject,
}

/// What the caller check learns from a JWT.
pub enum JwtOutcome {
    /// The index of the caller, and the token's `sub`.
    Caller(usize, Option<Arc<str>>),
    Rejected(JwtRejection),
    /// The token names a key this set may have gained: fetch it, then check again.
    FetchKeys(Arc<RemoteJwks>),
}

/// Where a group's keys come from.
#[derive(Debug)]
pub enum Keys {
    File(Arc<Jwks>),
    Remote(Arc<RemoteJwks>),
}

/// The JWT callers of one snapshot, grouped by issuer and key set.
pub struct JwtCallers {
    groups: Box<[Group]>,
    verified: moka::sync::Cache<[u8; 32], Arc<Verified>>,
}

impl std::fmt::Debug for JwtCallers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtCallers")
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Group {
    issuer: Arc<str>,
    keys: Keys,
    members: Vec<Member>,
}

#[derive(Debug)]
struct Member {
    caller: usize,
    audience: Box<str>,
    subject: Option<SubjectPattern>,
}

/// A token that verified: what caller matching needs, without the token.
struct Verified {
    group: usize,
    generation: u64,
    sub: Option<Arc<str>>,
    aud: Box<[Box<str>]>,
    exp: u64,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    nbf: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl JwtCallers {
    /// `callers` are `(index, spec)` in file order; `keys` finds each one's key set (a
    /// reload passes on those it already has).
    pub fn new<'s>(
        callers: impl IntoIterator<Item = (usize, &'s JwtCallerSpec)>,
        mut keys: impl FnMut(&JwtCallerSpec) -> Keys,
    ) -> Self {
        let mut groups: Vec<Group> = Vec::new();
        for (caller, spec) in callers {
            let member = Member {
                caller,
                audience: spec.audience.clone(),
                subject: spec.subject.clone(),
            };
            let keys = keys(spec);
            match groups
                .iter_mut()
                .find(|g| g.issuer == spec.issuer && g.keys.same(&keys))
            {
                Some(group) => group.members.push(member),
                None => groups.push(Group {
                    issuer: Arc::clone(&spec.issuer),
                    keys,
                    members: vec![member],
                }),
            }
        }
        Self {
            groups: groups.into(),
            verified: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(CACHE_FOR)
                .build(),
        }
    }

    /// The remote key sets, for the background refresh.
    pub fn remote_keys(&self) -> impl Iterator<Item = &Arc<RemoteJwks>> {
        self.groups.iter().filter_map(|g| match &g.keys {
            Keys::Remote(remote) => Some(remote),
            Keys::File(_) => None,
        })
    }

    /// The caller `token` (whose SHA-256 is `digest`) authenticates, at `now` (Unix
    /// seconds).
    pub fn authenticate(&self, token: &str, digest: &[u8; 32], now: u64) -> JwtOutcome {
        if let Some(verified) = self.verified.get(digest) {
            let group = &self.groups[verified.group];
            if now < verified.exp && group.keys.generation() == Some(verified.generation) {
                return group.select(&verified);
            }
            self.verified.invalidate(digest);
        }
        match self.verify(token, now) {
            Ok(verified) => {
                let group = &self.groups[verified.group];
                let outcome = group.select(&verified);
                if now < verified.exp {
                    self.verified.insert(*digest, Arc::new(verified));
                }
                outcome
            }
            Err(outcome) => outcome,
        }
    }

    fn verify(&self, token: &str, now: u64) -> Result<Verified, JwtOutcome> {
        let rejected = JwtOutcome::Rejected;
        let unverified = Unverified::parse(token).map_err(|e| match e {
            VerifyError::Algorithm => rejected(JwtRejection::Algorithm),
            _ => rejected(JwtRejection::Claims),
        })?;
        let claims: Claims = serde_json::from_slice(unverified.payload())
            .map_err(|_| rejected(JwtRejection::Claims))?;
        let iss = claims.iss.as_deref().unwrap_or_default();
        let mut rejection = JwtRejection::Issuer;
        for (index, group) in self.groups.iter().enumerate() {
            if *group.issuer != *iss {
                continue;
            }
            let generation = match group.keys.check(&unverified) {
                Ok(generation) => generation,
                Err(KeyCheck::Fetch(remote)) => return Err(JwtOutcome::FetchKeys(remote)),
                Err(KeyCheck::Rejected(why)) => {
                    rejection = why;
                    continue;
                }
            };
            return check_claims(claims, now)
                .map(|(exp, sub, aud)| Verified {
                    group: index,
                    generation,
                    sub,
                    aud,
                    exp,
                })
                .map_err(rejected);
        }
        Err(rejected(rejection))
    }
}

/// `exp`, `sub` and `aud` of a verified token.
type Checked = (u64, Option<Arc<str>>, Box<[Box<str>]>);

/// Time claims and types; the `exp`, `sub` and `aud` of a token that passes.
fn check_claims(claims: Claims, now: u64) -> Result<Checked, JwtRejection> {
    let Some(exp) = claims.exp.filter(|exp| exp.is_finite() && *exp >= 0.0) else {
        return Err(JwtRejection::Claims);
    };
    // NumericDate may have a fraction; whole seconds are precise enough with a leeway.
    let exp = exp as u64;
    if now > exp.saturating_add(LEEWAY_SECONDS) {
        return Err(JwtRejection::Expired);
    }
    if let Some(nbf) = claims.nbf {
        if !nbf.is_finite() {
            return Err(JwtRejection::Claims);
        }
        if (now.saturating_add(LEEWAY_SECONDS) as f64) < nbf {
            return Err(JwtRejection::NotYetValid);
        }
    }
    let aud: Box<[Box<str>]> = match claims.aud {
        Some(Audience::One(one)) => Box::new([one.into()]),
        Some(Audience::Many(many)) => many.into_iter().map(Into::into).collect(),
        None => Box::default(),
    };
    // Entries live until `exp` at most; a token inside its leeway is still accepted, but
    // checked each time.
    Ok((exp, claims.sub.map(Arc::from), aud))
}

enum KeyCheck {
    Fetch(Arc<RemoteJwks>),
    Rejected(JwtRejection),
}

impl Keys {
    fn same(&self, other: &Keys) -> bool {
        match (self, other) {
            (Keys::File(a), Keys::File(b)) => Arc::ptr_eq(a, b) || a.same_keys(b),
            (Keys::Remote(a), Keys::Remote(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The generation of the keys in use: 0 for a file, whose keys change only with a
    /// reload (which starts a new cache).
    fn generation(&self) -> Option<u64> {
        match self {
            Keys::File(_) => Some(0),
            Keys::Remote(remote) => remote.generation(),
        }
    }

    /// Verifies the signature; the generation of the keys that did.
    fn check(&self, token: &Unverified<'_>) -> Result<u64, KeyCheck> {
        let verify = |keys: &Jwks| {
            token.verify(keys).map_err(|e| match e {
                VerifyError::UnknownKey => JwtRejection::UnknownKey,
                _ => JwtRejection::Signature,
            })
        };
        match self {
            Keys::File(keys) => verify(keys).map(|()| 0).map_err(KeyCheck::Rejected),
            Keys::Remote(remote) => {
                let Some(set) = remote.current() else {
                    return Err(on_demand(remote));
                };
                match verify(&set.keys) {
                    Ok(()) => Ok(set.generation),
                    Err(JwtRejection::UnknownKey) => Err(on_demand(remote)),
                    Err(why) => Err(KeyCheck::Rejected(why)),
                }
            }
        }
    }
}

/// A fetch for a key the set lacks, if one may be made now.
fn on_demand(remote: &Arc<RemoteJwks>) -> KeyCheck {
    match remote.claim_on_demand() {
        true => KeyCheck::Fetch(Arc::clone(remote)),
        false => KeyCheck::Rejected(JwtRejection::UnknownKey),
    }
}

impl Group {
    /// The most specific member the token meets: an exact subject over a longer prefix
    /// over a shorter one over none; file order breaks ties.
    fn select(&self, token: &Verified) -> JwtOutcome {
        let sub = token.sub.as_deref();
        let mut best: Option<(&Member, (u8, usize))> = None;
        let mut audience_met = false;
        for member in &self.members {
            if !token.aud.iter().any(|aud| **aud == *member.audience) {
                continue;
            }
            audience_met = true;
            let rank = match (&member.subject, sub) {
                (None, _) => (0, 0),
                (Some(pattern), Some(sub)) if pattern.matches(sub) => match pattern {
                    SubjectPattern::Prefix(prefix) => (1, prefix.len()),
                    SubjectPattern::Exact(_) => (2, 0),
                },
                (Some(_), _) => continue,
            };
            if best.is_none_or(|(_, best)| rank > best) {
                best = Some((member, rank));
            }
        }
        match best {
            Some((member, _)) => JwtOutcome::Caller(member.caller, token.sub.clone()),
            None if audience_met => JwtOutcome::Rejected(JwtRejection::Subject),
            None => JwtOutcome::Rejected(JwtRejection::Audience),
        }
    }
}

#[cfg(test)]
mod tests;
