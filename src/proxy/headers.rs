//! Header cleaning, both directions: what must not cross the proxy.
//!
//! Runs before injection, so that nothing a client sends (its own `Authorization`, or
//! `Connection: authorization`) can remove or duplicate the credential credproxy adds.

use http::header::{self, HeaderMap, HeaderName};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the
/// proxy's own authentication headers, which belong to the hop to credproxy.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Prepares a client's headers for the upstream. `keep_authorization` is true only for
/// `auth_type: none`, where the caller's own `Authorization` is the credential. `Host`
/// goes too: the upstream client sets it from the upstream URI.
pub fn clean_request(headers: &mut HeaderMap, keep_authorization: bool) {
    remove_hop_by_hop(headers);
    headers.remove(header::HOST);
    if !keep_authorization {
        headers.remove(header::AUTHORIZATION);
    }
}

/// Prepares an upstream's response headers for the client.
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
    use http::HeaderValue;

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
        clean_request(&mut headers, true);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn authorization_is_kept_only_when_asked() {
        let mut headers = map(&[("authorization", "Bearer mine")]);
        clean_request(&mut headers, false);
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
