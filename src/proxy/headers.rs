//! Header cleaning, both directions: what must not cross the proxy.
//!
//! Runs before injection, so that nothing a client sends (its own `Authorization`, or
//! `Connection: authorization`) can remove or duplicate the credential credproxy adds.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::transport::headers::HOP_BY_HOP;

/// What cleaning took off a request that the next steps need.
#[derive(Debug, Default)]
pub struct Removed {
    /// The caller's `Authorization`, unless it was forwarded: a token exchange reads its
    /// subject token from it.
    pub authorization: Option<HeaderValue>,
    /// Whether the request had a `Host` (an HTTP/1.1 request must, RFC 9112 §3.2).
    pub host: bool,
}

/// Step 3: prepares a caller's headers for the upstream. The caller's `Authorization` is
/// removed unless `forward_authorization` (`auth_type: none`, where it is the
/// credential). `Host` goes too: the upstream client sets it from the upstream URI.
pub fn clean_request(headers: &mut HeaderMap, forward_authorization: bool) -> Removed {
    remove_hop_by_hop(headers);
    let host = headers.remove(header::HOST).is_some();
    let authorization = if forward_authorization {
        None
    } else {
        headers.remove(header::AUTHORIZATION)
    };
    Removed {
        authorization,
        host,
    }
}

/// Prepares an upstream's response headers for the client (the hop-by-hop part; see
/// [`super::response`] for the rest).
pub fn clean_response(headers: &mut HeaderMap) {
    remove_hop_by_hop(headers);
}

fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        remove_connection_listed(headers);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Removes every header named in `Connection` (RFC 9110 §7.6.1).
fn remove_connection_listed(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn removes_hop_by_hop_and_connection_listed_headers() {
        let mut headers = map(&[
            ("connection", "X-Secret-Hop, authorization"),
            ("connection", "keep-alive"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Bearer caller"),
            ("host", "localhost:8080"),
            ("authorization", "Bearer mine"),
            ("accept", "application/json"),
        ]);
        let removed = clean_request(&mut headers, true);
        assert!(removed.host && removed.authorization.is_none());
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn authorization_is_kept_only_when_asked_and_handed_back_otherwise() {
        let mut headers = map(&[("authorization", "Bearer mine")]);
        let removed = clean_request(&mut headers, false).authorization;
        assert_eq!(
            removed.as_ref().map(|v| v.as_bytes()),
            Some(&b"Bearer mine"[..])
        );
        assert!(headers.is_empty());
        let mut headers = map(&[("authorization", "Bearer mine")]);
        clean_request(&mut headers, true);
        assert_eq!(headers.len(), 1);
    }

    #[test]
    fn response_keeps_end_to_end_headers() {
        let mut headers = map(&[
            ("transfer-encoding", "chunked"),
            ("content-type", "text/event-stream"),
            ("www-authenticate", "Bearer"),
        ]);
        clean_response(&mut headers);
        assert_eq!(headers.len(), 2);
    }
}
