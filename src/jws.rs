//! Compact JWS (RFC 7515) for the assertions credproxy signs: RS256 and ES256 with ring's
//! key pairs, HS256 with a shared secret (RFC 7518 §3); [`verify`] checks RS256 and ES256
//! tokens against a JWK Set.
//!
//! ring, already the TLS crypto provider, signs RSA PKCS#1 v1.5 and ECDSA P-256; the
//! `rsa` crate is not in the tree (RUSTSEC-2023-0071). A compact JWS is three base64url
//! parts joined by dots: small enough to own. Every signed token is a [`Secret`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::PrivateKeyDer;

use crate::digest::sha256;
use crate::secret::Secret;

pub mod verify;

pub use verify::{Jwks, JwksError, Unverified, VerifyError};

/// A private key credproxy signs assertions with.
pub struct SigningKey {
    pair: Pair,
    /// SHA-256 of the key's DER: keys are equal when their bytes are.
    fingerprint: [u8; 32],
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, [redacted])", self.algorithm())
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl Eq for SigningKey {}

/// Why a key cannot be used. Never holds the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("holds no PEM private key")]
    NotPem,
    #[error("is not an RSA key of at least 2048 bits or a P-256 EC key (PKCS#8, PKCS#1 or SEC1)")]
    Unsupported,
}

/// Why a JWS could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("could not get random bytes")]
    Random,
    #[error("the signing operation failed")]
    Sign,
}

impl SigningKey {
    /// RSA as PKCS#8 or PKCS#1, P-256 as PKCS#8 or SEC1; the first key in the text.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| KeyError::NotPem)?;
        let bytes = zeroize::Zeroizing::new(der.secret_der().to_vec());
        let rng = SystemRandom::new();
        let pair = match &der {
            PrivateKeyDer::Pkcs1(_) => RsaKeyPair::from_der(&bytes).map(Pair::Rsa).ok(),
            PrivateKeyDer::Pkcs8(_) => {
                RsaKeyPair::from_pkcs8(&bytes)
                    .map(Pair::Rsa)
                    .ok()
                    .or_else(|| {
                        EcdsaKeyPair::from_pkcs8(
                            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                            &bytes,
                            &rng,
                        )
                        .map(Pair::Ec)
                        .ok()
                    })
            }
            PrivateKeyDer::Sec1(_) => {
                let pkcs8 = zeroize::Zeroizing::new(p256_sec1_to_pkcs8(&bytes));
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
                    .map(Pair::Ec)
                    .ok()
            }
            _ => None,
        };
        Ok(Self {
            pair: pair.ok_or(KeyError::Unsupported)?,
            fingerprint: sha256(&bytes),
        })
    }

    /// `RS256` or `ES256`.
    pub fn algorithm(&self) -> &'static str {
        match self.pair {
            Pair::Rsa(_) => "RS256",
            Pair::Ec(_) => "ES256",
        }
    }

    /// The public key as a JWK (for tests and for registering the key with an IdP).
    pub fn public_jwk(&self) -> serde_json::Value {
        match &self.pair {
            Pair::Rsa(pair) => {
                let public = pair.public();
                let components: signature::RsaPublicKeyComponents<Vec<u8>> = public.into();
                serde_json::json!({
                    "kty": "RSA",
                    "n": URL_SAFE_NO_PAD.encode(components.n),
                    "e": URL_SAFE_NO_PAD.encode(components.e),
                })
            }
            Pair::Ec(pair) => {
                // Uncompressed point: 0x04 ‖ x ‖ y.
                let point = pair.public_key().as_ref();
                serde_json::json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(point.get(1..33).unwrap_or_default()),
                    "y": URL_SAFE_NO_PAD.encode(point.get(33..65).unwrap_or_default()),
                })
            }
        }
    }

    fn sign_input(&self, input: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, input, &mut signature)
                    .map_err(|_| SignError::Sign)?;
                Ok(signature)
            }
            Pair::Ec(pair) => pair
                .sign(&rng, input)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| SignError::Sign),
        }
    }
}

/// `header.claims.signature`, signed with `key`; `kid` goes into the header when given.
pub fn sign(
    key: &SigningKey,
    kid: Option<&str>,
    claims: &serde_json::Value,
) -> Result<Secret, SignError> {
    let mut header = serde_json::json!({ "alg": key.algorithm(), "typ": "JWT" });
    if let Some(kid) = kid {
        header["kid"] = serde_json::Value::from(kid);
    }
    let input = signing_input(&header, claims);
    let signature = key.sign_input(input.as_bytes())?;
    Ok(Secret::new(format!(
        "{}.{}",
        &*input,
        URL_SAFE_NO_PAD.encode(signature)
    )))
}

/// An HS256 JWS, keyed with `secret` (client_secret_jwt).
pub fn sign_hs256(secret: &Secret, claims: &serde_json::Value) -> Secret {
    let header = serde_json::json!({ "alg": "HS256", "typ": "JWT" });
    let input = signing_input(&header, claims);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
    let tag = ring::hmac::sign(&key, input.as_bytes());
    Secret::new(format!(
        "{}.{}",
        &*input,
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    ))
}

/// A fresh `jti`: 128 random bits, base64url.
pub fn random_id() -> Result<String, SignError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SignError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn signing_input(
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    ))
}

/// Wraps a SEC1 `ECPrivateKey` for P-256 in a PKCS#8 `PrivateKeyInfo`, the only form ring
/// reads: SEQUENCE { INTEGER 0, SEQUENCE { id-ecPublicKey, prime256v1 }, OCTET STRING }.
fn p256_sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    const ALGORITHM: &[u8] = &[
        0x30, 0x13, // SEQUENCE
        0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, // id-ecPublicKey
        0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, // prime256v1
    ];
    let mut body = vec![0x02, 0x01, 0x00]; // INTEGER 0
    body.extend_from_slice(ALGORITHM);
    body.push(0x04); // OCTET STRING
    push_der_length(&mut body, sec1.len());
    body.extend_from_slice(sec1);
    let mut out = vec![0x30]; // SEQUENCE
    push_der_length(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

fn push_der_length(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
        _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
    }
}

#[cfg(test)]
mod tests;
