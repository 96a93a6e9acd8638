//! Step 2 of the request path: `/{source_id}/{rest}?{query}` → the source.
//!
//! The scheme, host and port of a forwarded request always come from the config (the
//! upstream URI is assembled with the credential, in [`crate::auth::inject`]). The rest of
//! the path and the query pass byte for byte (`%2F` stays `%2F`), but a path with a `.` or
//! `..` segment, raw or percent-encoded, is refused: an upstream that normalises it would
//! let a caller step outside the source's base path.

use std::borrow::Cow;
use std::net::SocketAddr;

use http::uri::Authority;
use http::{Method, Request, Version};
use percent_encoding::percent_decode_str;

use super::error::ProxyError;

/// Where a request points, borrowed from its URI.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The first path segment, percent-decoded.
    pub source_id: Cow<'a, str>,
    /// Everything after the source id: empty, or starting with `/`.
    pub rest: &'a str,
    /// Where `rest` starts in the path.
    pub rest_start: usize,
}

/// Checks the request's method and target and splits the path into source id and rest.
pub fn target<B>(request: &Request<B>, local_addr: SocketAddr) -> Result<Target<'_>, ProxyError> {
    check_method(request.method())?;
    check_authority(request, local_addr)?;
    let path = request.uri().path();
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
        rest_start: 1 + raw_id.len(),
    })
}

/// The upstream request-target must not start with `//`: some servers read it as a
/// network-path reference to another host.
pub fn check_rest(base_path: &str, rest: &str) -> Result<(), ProxyError> {
    if base_path.is_empty() && rest.starts_with("//") {
        return Err(ProxyError::BadRequest(
            "the path after the source id must not start with '//'",
        ));
    }
    Ok(())
}

/// Methods that are never forwarded: `TRACE` (and Microsoft's `TRACK`) make an upstream
/// echo the request back, injected credential included; `CONNECT` would make credproxy a
/// tunnel.
fn check_method(method: &Method) -> Result<(), ProxyError> {
    let refused = *method == Method::TRACE
        || *method == Method::CONNECT
        || method.as_str().eq_ignore_ascii_case("TRACK");
    if refused {
        return Err(ProxyError::MethodNotAllowed);
    }
    Ok(())
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

/// `.` and `..`, also when percent-encoded, with a `;` parameter (`..;x`, which Tomcat,
/// Jetty and Spring read as `..`), and also as parts of a segment whose decoded form holds
/// a `/` or `\` that an upstream might split on (`..%2F`).
fn is_dot_segment(segment: &str) -> bool {
    let is_dots = |s: &[u8]| {
        matches!(
            s,
            [b'.'] | [b'.', b'.'] | [b'.', b';', ..] | [b'.', b'.', b';', ..]
        )
    };
    if !segment.contains(['%', '\\']) {
        return is_dots(segment.as_bytes());
    }
    let decoded: Cow<'_, [u8]> = percent_decode_str(segment).into();
    decoded.split(|&b| b == b'/' || b == b'\\').any(is_dots)
}

#[cfg(test)]
mod tests;
