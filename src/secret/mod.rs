//! The one type that holds a secret, and the encryption of values at rest ([`crypto`]).
//!
//! `Secret` prints `[redacted]` through `Debug` and `Display`, has no `Serialize`, and hands
//! its value out only through [`Secret::expose`], so a grep for `expose` finds every place a
//! secret leaves this type. The bytes are zeroed when the value is dropped.

mod crypto;

pub use crypto::{CryptoError, MasterKey, MasterKeys};

use http::HeaderValue;

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use zeroize::Zeroizing;

/// A credential: a password, API key, token or client secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret value. Call only where the value goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why secret text cannot be a header value. Never carries the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderValueError {
    #[error("must not be empty")]
    Empty,
    #[error("is not a valid HTTP header value (control characters such as CR, LF or NUL)")]
    Invalid,
}

/// A header value built from secret text and marked sensitive, so that hyper's HPACK
/// encoder never indexes it and its `Debug` prints `Sensitive`.
pub fn sensitive_header_value(text: &str) -> Result<HeaderValue, HeaderValueError> {
    if text.is_empty() {
        return Err(HeaderValueError::Empty);
    }
    let mut value =
        HeaderValue::from_bytes(text.as_bytes()).map_err(|_| HeaderValueError::Invalid)?;
    value.set_sensitive(true);
    Ok(value)
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Deserializes from a JSON string (an issued token in a token response). A wrong shape is
/// reported by kind only: serde's own messages would quote the value.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;

        impl Visitor<'_> for SecretVisitor {
            type Value = Secret;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(E::custom("a secret must be a string"))
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(E::custom("a secret must be a string"))
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(E::custom("a secret must be a string"))
            }

            fn visit_i128<E: de::Error>(self, _: i128) -> Result<Secret, E> {
                Err(E::custom("a secret must be a string"))
            }

            fn visit_u128<E: de::Error>(self, _: u128) -> Result<Secret, E> {
                Err(E::custom("a secret must be a string"))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(E::custom("a secret must be a string"))
            }
        }

        deserializer.deserialize_string(SecretVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn deserializes_strings_and_never_quotes_other_shapes() {
        let s: Secret = serde_json::from_str("\"0123\"").expect("string");
        assert_eq!(s.expose(), "0123");
        for other in ["[\"hunter2\"]", "31415926535897932384626433832795", "true"] {
            let err = serde_json::from_str::<Secret>(other).expect_err(other);
            assert!(!err.to_string().contains("hunter2"), "{err}");
            assert!(!err.to_string().contains("314159"), "{err}");
        }
    }
}
