//! Routing: `/{source_id}/{rest}?{query}` → the source, and the URI to forward to.
//!
//! The scheme, host and port of a forwarded request always come from the config. The rest
//! of the path and the query pass byte for byte (`%2F` stays `%2F`), but a path with a `.`
//! or `..` segment, raw or percent-encoded, is refused: an upstream that normalises it
//! would let a caller step outside the source's base path.

use std::borrow::Cow;
use std::net::SocketAddr;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{Request, Uri, Version};
use percent_encoding::percent_decode_str;

use super::error::ProxyError;
use crate::auth::QueryCredential;
use crate::config::Upstream;

/// Where a request points, borrowed from its URI.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The first path segment, percent-decoded.
    pub source_id: Cow<'a, str>,
    /// Everything after the source id: empty, or starting with `/`.
    pub rest: &'a str,
    pub query: Option<&'a str>,
}

/// Checks the request target and splits it into source id, rest and query.
pub fn target<B>(request: &Request<B>, local_addr: SocketAddr) -> Result<Target<'_>, ProxyError> {
    check_authority(request, local_addr)?;
    let uri = request.uri();
    let path = uri.path();
    if !path.starts_with('/') {
        return Err(ProxyError::BadRequest("the request target must be a path"));
    }
    if path.split('/').any(is_dot_segment) {
        return Err(ProxyError::BadRequest(
            "the path must not contain '.' or '..' segments",
        ));
    }
    let after_slash = &path[1..];
    let (raw_id, rest) = match after_slash.find('/') {
        Some(end) => after_slash.split_at(end),
        None => (after_slash, ""),
    };
    let source_id = percent_decode_str(raw_id)
        .decode_utf8()
        .map_err(|_| ProxyError::UnknownSource)?;
    Ok(Target {
        source_id,
        rest,
        query: uri.query(),
    })
}

/// An absolute-form request (`GET http://host/…`, HTTP/1 only: in HTTP/2 the authority is
/// the Host) is accepted only when it names credproxy itself; anything else is a client
/// using credproxy as a forward proxy, which it is not.
fn check_authority<B>(request: &Request<B>, local_addr: SocketAddr) -> Result<(), ProxyError> {
    if request.version() == Version::HTTP_2 {
        return Ok(());
    }
    match request.uri().authority() {
        None => Ok(()),
        Some(authority) if names_local(authority, local_addr) => Ok(()),
        Some(_) => Err(ProxyError::BadRequest(
            "absolute-form request targets must name this proxy; send /{source_id}/path instead",
        )),
    }
}

fn names_local(authority: &Authority, local_addr: SocketAddr) -> bool {
    if authority.port_u16() != Some(local_addr.port()) {
        return false;
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse() == Ok(local_addr.ip())
}

/// `.` and `..`, also when percent-encoded, and also as parts of a segment whose decoded
/// form holds a `/` or `\` that an upstream might split on (`..%2F`).
fn is_dot_segment(segment: &str) -> bool {
    let is_dots = |s: &[u8]| s == b"." || s == b"..";
    if !segment.contains(['%', '\\']) {
        return is_dots(segment.as_bytes());
    }
    let decoded: Cow<'_, [u8]> = percent_decode_str(segment).into();
    decoded.split(|&b| b == b'/' || b == b'\\').any(is_dots)
}

/// The URI to forward to: `{upstream}{rest}?{query}`, with the source's API key written
/// into the query when it goes there.
pub fn upstream_uri(
    upstream: &Upstream,
    rest: &str,
    query: Option<&str>,
    query_credential: Option<&QueryCredential>,
) -> Result<Uri, ProxyError> {
    // Sized exactly (in the usual cases), so that `Bytes::from` adopts the buffer as is
    // instead of allocating a second block to share it: one allocation per request.
    let path_len = (upstream.base_path.len() + rest.len()).max(1);
    let query_len = match (query_credential, query) {
        (Some(credential), _) => 1 + credential.max_query_len(query),
        (None, Some(query)) => 1 + query.len(),
        (None, None) => 0,
    };
    let mut path = String::with_capacity(path_len + query_len);
    path.push_str(&upstream.base_path);
    path.push_str(rest);
    if path.is_empty() {
        path.push('/');
    }
    match (query_credential, query) {
        (Some(credential), _) => {
            path.push('?');
            credential.write_query(query, &mut path);
        }
        (None, Some(query)) => {
            path.push('?');
            path.push_str(query);
        }
        (None, None) => {}
    }
    let path_and_query = PathAndQuery::from_maybe_shared(Bytes::from(path))
        .map_err(|_| ProxyError::BadRequest("the request target is not a valid URI path"))?;
    Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| ProxyError::BadRequest("the request target is not a valid URI path"))
}

#[cfg(test)]
mod tests;
