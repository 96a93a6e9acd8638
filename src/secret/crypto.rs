//! `{ encrypted: "v1:…" }` values: AES-256-GCM under a master key, a random 96-bit nonce
//! per value, and a key id so that "another key" and "tampered" are told apart.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::Secret;

const ENCRYPTED_PREFIX: &str = "v1:";
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;

/// An AES-256-GCM master key for `{ encrypted: "v1:…" }` values.
#[derive(Clone)]
pub struct MasterKey {
    /// First bytes of a hash of the key, stored in each value, so a value encrypted under
    /// another key is reported as such rather than as tampered.
    id: [u8; KEY_ID_LEN],
    cipher: Aes256Gcm,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// Why a master key or an encrypted value could not be used. Never holds key or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("a master key must be the base64 of exactly 32 bytes")]
    BadKey,
    #[error(
        "an encrypted value needs the master key: set CREDPROXY_MASTER_KEY or --master-key-file"
    )]
    NoKey,
    #[error("is not a v1 encrypted value (`credproxy encrypt` makes them)")]
    Malformed,
    #[error("was encrypted under a different master key than the ones configured")]
    UnknownKey,
    #[error("failed authentication: the value was altered, or the key was")]
    Tampered,
    #[error("could not get random bytes for a nonce")]
    Random,
}

impl MasterKey {
    /// From the base64 of 32 bytes (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| CryptoError::BadKey)?,
        );
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| CryptoError::BadKey)?;
        let digest = Sha256::new_with_prefix(b"credproxy master key id\0")
            .chain_update(&*bytes)
            .finalize();
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Ok(Self { id, cipher })
    }

    /// Encrypts `plaintext` under a fresh random nonce: `v1:` + base64(key id ‖ nonce ‖
    /// ciphertext and tag). The key id is authenticated as associated data.
    pub fn encrypt(&self, plaintext: &str) -> Result<String, CryptoError> {
        let mut nonce = [0; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &self.id,
                },
            )
            .map_err(|_| CryptoError::Random)?;
        let mut blob = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + sealed.len());
        blob.extend_from_slice(&self.id);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(format!(
            "{ENCRYPTED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(blob)
        ))
    }
}

/// The keys that decrypt values: the current one and, during a rotation, the previous.
#[derive(Debug, Clone, Default)]
pub struct MasterKeys(Vec<MasterKey>);

impl MasterKeys {
    pub fn new(keys: impl IntoIterator<Item = MasterKey>) -> Self {
        Self(keys.into_iter().collect())
    }

    /// The key that encrypts new values.
    pub fn current(&self) -> Option<&MasterKey> {
        self.0.first()
    }

    pub fn decrypt(&self, value: &str) -> Result<Secret, CryptoError> {
        let encoded = value
            .trim()
            .strip_prefix(ENCRYPTED_PREFIX)
            .ok_or(CryptoError::Malformed)?;
        let blob = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| CryptoError::Malformed)?;
        if blob.len() < KEY_ID_LEN + NONCE_LEN + 16 {
            return Err(CryptoError::Malformed);
        }
        let (id, rest) = blob.split_at(KEY_ID_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        if self.0.is_empty() {
            return Err(CryptoError::NoKey);
        }
        let key = self
            .0
            .iter()
            .find(|k| k.id == id)
            .ok_or(CryptoError::UnknownKey)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Malformed)?;
        let plain = zeroize::Zeroizing::new(
            key.cipher
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: sealed,
                        aad: id,
                    },
                )
                .map_err(|_| CryptoError::Tampered)?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| CryptoError::Tampered)?;
        Ok(Secret::new(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([byte; 32]))
            .expect("key")
    }

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let k = key(1);
        let a = k.encrypt("hunter2").expect("encrypt");
        let b = k.encrypt("hunter2").expect("encrypt");
        assert!(a.starts_with("v1:") && a != b, "nonces must differ");
        assert!(!a.contains("hunter2"));
        let keys = MasterKeys::new([k]);
        assert_eq!(keys.decrypt(&a).expect("decrypt").expose(), "hunter2");
        assert_eq!(keys.decrypt(&b).expect("decrypt").expose(), "hunter2");
    }

    #[test]
    fn previous_key_still_decrypts_during_rotation() {
        let old = key(1).encrypt("s").expect("encrypt");
        let keys = MasterKeys::new([key(2), key(1)]);
        assert_eq!(keys.decrypt(&old).expect("decrypt").expose(), "s");
    }

    #[test]
    fn wrong_key_tampering_and_garbage_are_told_apart() {
        let value = key(1).encrypt("s").expect("encrypt");
        assert_eq!(
            MasterKeys::new([key(2)]).decrypt(&value).map(|_| ()),
            Err(CryptoError::UnknownKey)
        );
        assert_eq!(
            MasterKeys::default().decrypt(&value).map(|_| ()),
            Err(CryptoError::NoKey)
        );

        let mut blob = base64::engine::general_purpose::STANDARD
            .decode(&value[3..])
            .expect("b64");
        let last = blob.len() - 1;
        blob[last] ^= 1;
        let tampered = format!(
            "v1:{}",
            base64::engine::general_purpose::STANDARD.encode(&blob)
        );
        assert_eq!(
            MasterKeys::new([key(1)]).decrypt(&tampered).map(|_| ()),
            Err(CryptoError::Tampered)
        );

        for garbage in ["v2:abcd", "v1:not base64!", "v1:AAAA", "hunter2"] {
            assert_eq!(
                MasterKeys::new([key(1)]).decrypt(garbage).map(|_| ()),
                Err(CryptoError::Malformed)
            );
        }
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            MasterKey::from_base64("c2hvcnQ=").map(|_| ()),
            Err(CryptoError::BadKey)
        );
        assert_eq!(
            MasterKey::from_base64("%%%").map(|_| ()),
            Err(CryptoError::BadKey)
        );
    }
}
