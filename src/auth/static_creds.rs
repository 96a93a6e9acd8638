//! Static credentials: HTTP Basic, bearer tokens and API keys, header or query.

use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use zeroize::Zeroizing;

use super::Credentials;
use crate::secret::Secret;

/// Why a credential could not be built. Never carries the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StaticCredentialError {
    #[error("must not be empty")]
    Empty,
    #[error("is not a valid HTTP header value (control characters such as CR, LF or NUL)")]
    InvalidHeaderValue,
    #[error("is not a valid HTTP header name")]
    InvalidHeaderName,
    #[error("must not contain ':' (RFC 7617)")]
    ColonInUsername,
}

impl Credentials {
    pub fn basic(username: &str, password: &Secret) -> Result<Self, StaticCredentialError> {
        let pair = Zeroizing::new(format!("{username}:{}", password.expose()));
        let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*pair));
        let value = Zeroizing::new(format!("Basic {}", &*encoded));
        Ok(Credentials::Header {
            name: http::header::AUTHORIZATION,
            value: sensitive_header_value(&value)?,
        })
    }

    pub fn bearer(token: &Secret) -> Result<Self, StaticCredentialError> {
        let value = Zeroizing::new(format!("Bearer {}", token.expose()));
        Ok(Credentials::Header {
            name: http::header::AUTHORIZATION,
            value: sensitive_header_value(&value)?,
        })
    }

    pub fn api_key_header(name: &str, key: &Secret) -> Result<Self, StaticCredentialError> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| StaticCredentialError::InvalidHeaderName)?;
        Ok(Credentials::Header {
            name,
            value: sensitive_header_value(key.expose())?,
        })
    }

    pub fn api_key_query(name: &str, key: &Secret) -> Result<Self, StaticCredentialError> {
        if name.is_empty() {
            return Err(StaticCredentialError::Empty);
        }
        let pair = format!(
            "{}={}",
            utf8_percent_encode(name, QUERY_COMPONENT),
            utf8_percent_encode(key.expose(), QUERY_COMPONENT)
        );
        Ok(Credentials::Query(QueryCredential {
            name: name.into(),
            encoded_pair: Secret::new(pair),
        }))
    }
}

/// Builds a header value from secret text and marks it sensitive, so that hyper's HPACK
/// encoder never indexes it and `Debug` prints `Sensitive`.
pub fn sensitive_header_value(text: &str) -> Result<HeaderValue, StaticCredentialError> {
    if text.is_empty() {
        return Err(StaticCredentialError::Empty);
    }
    let mut value = HeaderValue::from_bytes(text.as_bytes())
        .map_err(|_| StaticCredentialError::InvalidHeaderValue)?;
    value.set_sensitive(true);
    Ok(value)
}

/// Everything but RFC 3986's unreserved characters is percent-encoded.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An API key sent as a query parameter.
#[derive(Debug)]
pub struct QueryCredential {
    /// The parameter name as configured (not encoded), to recognise a caller's own copy.
    name: Box<str>,
    /// `name=value`, percent-encoded, ready to append.
    encoded_pair: Secret,
}

impl QueryCredential {
    /// Appends `query` to `out` without any parameter named like the key, then the key.
    /// Other parameters keep their bytes and order.
    pub fn write_query(&self, query: Option<&str>, out: &mut String) {
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            if self.is_same_name(pair) {
                continue;
            }
            out.push_str(pair);
            out.push('&');
        }
        out.push_str(self.encoded_pair.expose());
    }

    /// The length [`Self::write_query`] writes when it drops no parameter (an upper bound).
    pub fn max_query_len(&self, query: Option<&str>) -> usize {
        query.map_or(0, |query| query.len() + 1) + self.encoded_pair.expose().len()
    }

    fn is_same_name(&self, pair: &str) -> bool {
        let raw_name = pair.split_once('=').map_or(pair, |(name, _)| name);
        if !raw_name.contains(['%', '+']) {
            return raw_name == &*self.name;
        }
        // Form encoding: `+` is a space.
        let spaced = raw_name.replace('+', " ");
        percent_decode_str(&spaced).decode_utf8_lossy() == *self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_value(credentials: &Credentials) -> &HeaderValue {
        match credentials {
            Credentials::Header { value, .. } => value,
            other => panic!("expected a header credential, got {other:?}"),
        }
    }

    #[test]
    fn basic_is_base64_of_user_colon_password() {
        let c = Credentials::basic("user", &Secret::new("pass")).expect("valid");
        assert_eq!(header_value(&c), "Basic dXNlcjpwYXNz");
        assert!(header_value(&c).is_sensitive());
    }

    #[test]
    fn bearer_and_api_key_headers() {
        let c = Credentials::bearer(&Secret::new("tok")).expect("valid");
        assert_eq!(header_value(&c), "Bearer tok");
        let c = Credentials::api_key_header("X-API-Key", &Secret::new("k1")).expect("valid");
        assert_eq!(c.header_name().map(HeaderName::as_str), Some("x-api-key"));
        assert_eq!(header_value(&c), "k1");
    }

    #[test]
    fn control_characters_are_rejected_without_the_value() {
        let err = Credentials::bearer(&Secret::new("a\r\nX-Evil: 1")).expect_err("CRLF");
        assert_eq!(err, StaticCredentialError::InvalidHeaderValue);
        assert!(!err.to_string().contains("Evil"));
    }

    fn rewritten(name: &str, key: &str, query: Option<&str>) -> String {
        let c = Credentials::api_key_query(name, &Secret::new(key)).expect("valid");
        let credential = c.query().expect("query credential");
        let mut out = String::new();
        credential.write_query(query, &mut out);
        assert!(out.len() <= credential.max_query_len(query), "{out}");
        out
    }

    #[test]
    fn max_query_len_is_exact_when_no_parameter_is_dropped() {
        let c = Credentials::api_key_query("api_key", &Secret::new("s3cr&t")).expect("valid");
        let credential = c.query().expect("query credential");
        for query in [None, Some("a=1"), Some("a=1&b=%2F")] {
            let mut out = String::new();
            credential.write_query(query, &mut out);
            assert_eq!(out.len(), credential.max_query_len(query));
        }
    }

    #[test]
    fn query_key_replaces_same_named_parameters() {
        assert_eq!(rewritten("api_key", "s3cr&t", None), "api_key=s3cr%26t");
        assert_eq!(
            rewritten("api_key", "k", Some("a=1&api_key=mine&b=%2F&api%5Fkey=x")),
            "a=1&b=%2F&api_key=k"
        );
        assert_eq!(rewritten("my key", "k", Some("my+key=1&x")), "x&my%20key=k");
        assert_eq!(rewritten("k", "v", Some("&&")), "k=v");
    }
}
