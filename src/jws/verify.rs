//! Verifying compact JWS (RFC 7515) against a JWK Set (RFC 7517): RS256 and ES256 only.
//!
//! The algorithm is the header's claim, so it is held to what the key is: an RSA key
//! verifies only RS256, a P-256 key only ES256, and `none`, the HMAC algorithms and
//! everything else are refused before any key is looked at. A key whose own `alg` or
//! `use` says otherwise is left out of the set.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

use crate::digest::sha256;

/// A JWT larger than this is not one a workload was issued (Kubernetes' are ~1 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// More keys than this is not a signing-key set.
const MAX_KEYS: usize = 64;

/// The usable keys of a JWK Set.
#[derive(Debug)]
pub struct Jwks {
    keys: Box<[PublicJwk]>,
    /// SHA-256 of the set's canonical form: equal sets are equal whatever their layout.
    fingerprint: [u8; 32],
}

#[derive(Debug)]
struct PublicJwk {
    kid: Option<Box<str>>,
    key: PublicKey,
}

#[derive(Debug)]
enum PublicKey {
    Rsa {
        n: Box<[u8]>,
        e: Box<[u8]>,
    },
    /// Uncompressed SEC1 point: 0x04 ‖ x ‖ y.
    P256(Box<[u8]>),
}

/// Why a JWK Set is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("is not a JWK Set (a JSON object with a `keys` list)")]
    NotJwks,
    #[error("holds no RS256 or ES256 signing key (RSA of 2048 to 8192 bits, or EC P-256)")]
    NoUsableKey,
    #[error("holds more than {MAX_KEYS} keys")]
    TooManyKeys,
}

/// Why a token did not verify. The variants are reasons, never the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("signed with an algorithm other than RS256 or ES256")]
    Algorithm,
    #[error("signed with a key that is not in the key set")]
    UnknownKey,
    #[error("the signature does not verify")]
    Signature,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Rs256,
    Es256,
}

/// A compact JWS taken apart, not yet verified. It holds a bearer credential's parts, so
/// its `Debug` shows only the algorithm and the key id.
pub struct Unverified<'t> {
    algorithm: Algorithm,
    kid: Option<String>,
    /// `header.payload`: what the signature covers.
    signing_input: &'t str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl std::fmt::Debug for Unverified<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unverified")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// RFC 7515 §4.1.11: extensions the verifier must understand; credproxy knows none.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

impl<'t> Unverified<'t> {
    /// Splits and decodes `token`; refuses any algorithm but RS256 and ES256 here, so
    /// nothing downstream ever sees a `none` or HMAC token.
    pub fn parse(token: &'t str) -> Result<Self, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Malformed);
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or(VerifyError::Malformed)?;
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| VerifyError::Malformed)
        };
        let header: Header =
            serde_json::from_slice(&decode(header)?).map_err(|_| VerifyError::Malformed)?;
        let algorithm = match header.alg.as_str() {
            "RS256" => Algorithm::Rs256,
            "ES256" => Algorithm::Es256,
            _ => return Err(VerifyError::Algorithm),
        };
        if header.crit.is_some() {
            return Err(VerifyError::Malformed);
        }
        Ok(Self {
            algorithm,
            kid: header.kid,
            signing_input,
            payload: decode(payload)?,
            signature: decode(signature)?,
        })
    }

    /// The payload, unverified: read only to pick the key set it claims to be from.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Whether the header names a key `keys` lacks (a rotated set may have it).
    pub fn names_unknown_key(&self, keys: &Jwks) -> bool {
        self.kid
            .as_deref()
            .is_some_and(|kid| !keys.keys.iter().any(|k| k.kid.as_deref() == Some(kid)))
    }

    /// Verifies the signature with the key the header names (by `kid`), or, without a
    /// `kid`, with any key of the header's algorithm.
    pub fn verify(&self, keys: &Jwks) -> Result<(), VerifyError> {
        let mut candidates = keys
            .keys
            .iter()
            .filter(|k| self.kid.is_none() || k.kid.as_deref() == self.kid.as_deref())
            .filter(|k| k.key.algorithm() == self.algorithm)
            .peekable();
        if candidates.peek().is_none() {
            return Err(VerifyError::UnknownKey);
        }
        let message = self.signing_input.as_bytes();
        let verified = candidates.any(|k| k.key.verify(message, &self.signature));
        verified.then_some(()).ok_or(VerifyError::Signature)
    }
}

impl PublicKey {
    fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Rsa { .. } => Algorithm::Rs256,
            PublicKey::P256(_) => Algorithm::Es256,
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            PublicKey::P256(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
        }
    }
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

impl Jwks {
    /// The RS256 and ES256 signing keys of a JWK Set; other keys (encryption keys, other
    /// curves, other algorithms) are skipped, since sets often mix them.
    pub fn parse(json: &[u8]) -> Result<Self, JwksError> {
        let set: JwkSet = serde_json::from_slice(json).map_err(|_| JwksError::NotJwks)?;
        if set.keys.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys);
        }
        let keys: Box<[PublicJwk]> = set
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(PublicJwk::from_jwk)
            .collect();
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        let fingerprint = fingerprint(&keys);
        Ok(Self { keys, fingerprint })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `other` holds the same keys.
    pub fn same_keys(&self, other: &Jwks) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl PublicJwk {
    fn from_jwk(jwk: Jwk) -> Option<Self> {
        if jwk.usage.as_deref().is_some_and(|usage| usage != "sig") {
            return None;
        }
        let field = |value: &Option<String>| URL_SAFE_NO_PAD.decode(value.as_deref()?).ok();
        let key = match (jwk.kty.as_str(), jwk.alg.as_deref()) {
            ("RSA", None | Some("RS256")) => {
                let n = strip_leading_zeros(field(&jwk.n)?);
                let e = strip_leading_zeros(field(&jwk.e)?);
                // ring verifies 2048 to 8192 bits; a smaller key is refused here, at load.
                if !(256..=1024).contains(&n.len()) || e.is_empty() || e.len() > 4 {
                    return None;
                }
                PublicKey::Rsa {
                    n: n.into(),
                    e: e.into(),
                }
            }
            ("EC", None | Some("ES256")) if jwk.crv.as_deref() == Some("P-256") => {
                let (x, y) = (field(&jwk.x)?, field(&jwk.y)?);
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                PublicKey::P256(point.into())
            }
            _ => return None,
        };
        Some(Self {
            kid: jwk.kid.map(Into::into),
            key,
        })
    }
}

/// Every key's id and components, each length-prefixed, hashed.
fn fingerprint(keys: &[PublicJwk]) -> [u8; 32] {
    let mut canonical = Vec::new();
    let mut push = |part: &[u8]| {
        canonical.extend_from_slice(&(part.len() as u64).to_le_bytes());
        canonical.extend_from_slice(part);
    };
    for key in keys {
        push(key.kid.as_deref().unwrap_or_default().as_bytes());
        match &key.key {
            PublicKey::Rsa { n, e } => {
                push(b"RSA");
                push(n);
                push(e);
            }
            PublicKey::P256(point) => {
                push(b"P-256");
                push(point);
            }
        }
    }
    sha256(&canonical)
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    bytes.drain(..zeros);
    bytes
}

#[cfg(test)]
mod tests;
