//! The upstream's response headers on their way back: nothing in them may hand a caller
//! the source's credential.
//!
//! - The injected query key is removed from the URLs in `Location`, `Content-Location`,
//!   `Link` and `Refresh` (upstreams keep the query string in redirects and pagination).
//! - A `Location` under the upstream's base becomes `/{source_id}/…` (nginx's
//!   `proxy_redirect default`), so that clients keep going through credproxy.
//! - Any other header holding one of the source's secrets, or the token injected into this
//!   request, is dropped and counted. A secret shorter than [`MIN_SEARCHED`] bytes only
//!   matches a whole header value: searched inside text, it would match by chance.
//!
//! A response *body* is streamed as it is: an upstream that echoes the request in its body
//! shows the caller what credproxy sent. That is the upstream's behaviour to fix, and why
//! TRACE is never forwarded.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;

use super::headers::clean_response;
use crate::auth::QueryCredential;
use crate::config::spec::Upstream;
use crate::live::Source;
use crate::secret::Secret;

/// Shorter secrets are only matched as a whole header value.
pub const MIN_SEARCHED: usize = 8;

const URL_HEADERS: [HeaderName; 4] = [
    header::LOCATION,
    header::CONTENT_LOCATION,
    header::LINK,
    HeaderName::from_static("refresh"),
];

/// Cleans `headers` of hop-by-hop fields and of anything that could carry `source`'s
/// credential back; `issued` is the secret issued for this request (a bearer token, an
/// STS session token), if any.
pub fn scrub(headers: &mut HeaderMap, source: &Source, issued: Option<&[u8]>) {
    clean_response(headers);
    if let Some(query) = source.credentials.query() {
        for name in &URL_HEADERS {
            rewrite_values(headers, name, |text| strip_key(name, text, query));
        }
    }
    rewrite_values(headers, &header::LOCATION, |text| {
        under_upstream(text, &source.upstream, &source.proxy_prefix).map(Cow::Owned)
    });
    if source.needles.is_empty() && issued.is_none() {
        return;
    }
    let dropped = drop_secret_headers(headers, &source.needles, issued);
    if !dropped.is_empty() {
        source
            .metrics
            .response_headers_dropped
            .fetch_add(dropped.len() as u64, Ordering::Relaxed);
        tracing::warn!(source = %source.id, headers = ?dropped, "Dropped response headers that held the source's credential");
    }
}

/// Replaces each value of `name` that `rewrite` changes. Values that are not text are left.
fn rewrite_values<'a>(
    headers: &mut HeaderMap,
    name: &HeaderName,
    rewrite: impl Fn(&str) -> Option<Cow<'a, str>>,
) {
    if !headers.contains_key(name) {
        return;
    }
    let mut changed = false;
    let values: Vec<HeaderValue> = headers
        .get_all(name)
        .iter()
        .map(|value| {
            let new = value.to_str().ok().and_then(&rewrite);
            match new.and_then(|text| HeaderValue::from_str(&text).ok()) {
                Some(new) => {
                    changed = true;
                    new
                }
                None => value.clone(),
            }
        })
        .collect();
    if !changed {
        return;
    }
    let mut values = values.into_iter();
    // `insert` keeps the header where it was; further values follow it.
    if let Some(first) = values.next() {
        headers.insert(name.clone(), first);
    }
    for value in values {
        headers.append(name.clone(), value);
    }
}

/// `text` without the query key in the URL(s) it holds, or `None` when it has none.
fn strip_key<'a>(name: &HeaderName, text: &str, query: &QueryCredential) -> Option<Cow<'a, str>> {
    if *name == header::LINK {
        // `<url>; rel="next", <url>; rel="last"`: each URL is between angle brackets.
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut changed = false;
        while let Some(open) = rest.find('<') {
            let Some(close) = rest[open..].find('>').map(|i| open + i) else {
                break;
            };
            out.push_str(&rest[..=open]);
            let url = &rest[open + 1..close];
            match query.strip_from_url(url) {
                Some(stripped) => {
                    out.push_str(&stripped);
                    changed = true;
                }
                None => out.push_str(url),
            }
            rest = &rest[close..];
        }
        out.push_str(rest);
        return changed.then_some(Cow::Owned(out));
    }
    if *name == header::LOCATION || *name == header::CONTENT_LOCATION {
        return query.strip_from_url(text).map(Cow::Owned);
    }
    // Refresh: `5; url=https://…`.
    let at = text.to_ascii_lowercase().find("url=")? + 4;
    let stripped = query.strip_from_url(&text[at..])?;
    Some(Cow::Owned(format!("{}{stripped}", &text[..at])))
}

/// `/{source_id}/…` for a `Location` that points under the upstream's base: absolute
/// (`https://api.example.com/v1/x`), scheme-relative (`//api…`) or a path (`/v1/x`).
fn under_upstream(location: &str, upstream: &Upstream, prefix: &str) -> Option<String> {
    let scheme = upstream.scheme.as_str();
    let after_authority = if let Some(rest) = location
        .get(..scheme.len() + 3)
        .filter(|start| start.eq_ignore_ascii_case(&format!("{scheme}://")))
        .map(|start| &location[start.len()..])
    {
        same_authority(rest, &upstream.authority, scheme)?
    } else if let Some(rest) = location.strip_prefix("//") {
        same_authority(rest, &upstream.authority, scheme)?
    } else if location.starts_with('/') {
        location
    } else {
        return None;
    };
    let under = after_authority.strip_prefix(&*upstream.base_path)?;
    if !(under.is_empty() || under.starts_with(['/', '?', '#'])) {
        return None;
    }
    Some(format!("{prefix}{under}"))
}

/// The rest of `text` after an authority equal to `authority` (host case-insensitive,
/// default ports implied).
fn same_authority<'t>(text: &'t str, authority: &Authority, scheme: &str) -> Option<&'t str> {
    let end = text.find(['/', '?', '#']).unwrap_or(text.len());
    let found: Authority = text[..end].parse().ok()?;
    let default_port = if scheme == "https" { 443 } else { 80 };
    let same = found.host().eq_ignore_ascii_case(authority.host())
        && found.port_u16().unwrap_or(default_port) == authority.port_u16().unwrap_or(default_port);
    same.then_some(&text[end..])
}

/// Removes every header value that holds a needle or `token`; returns the names it removed
/// values of.
fn drop_secret_headers(
    headers: &mut HeaderMap,
    needles: &[Secret],
    token: Option<&[u8]>,
) -> Vec<HeaderName> {
    let holds_secret = |value: &HeaderValue| {
        let bytes = value.as_bytes();
        needles
            .iter()
            .map(|needle| needle.expose().as_bytes())
            .chain(token)
            .any(|needle| {
                if needle.len() < MIN_SEARCHED {
                    bytes == needle
                } else {
                    memchr::memmem::find(bytes, needle).is_some()
                }
            })
    };
    let mut offending: Vec<HeaderName> = Vec::new();
    for (name, value) in headers.iter() {
        if holds_secret(value) && !offending.contains(name) {
            offending.push(name.clone());
        }
    }
    for name in &offending {
        let kept: Vec<HeaderValue> = headers
            .get_all(name)
            .iter()
            .filter(|value| !holds_secret(value))
            .cloned()
            .collect();
        headers.remove(name);
        for value in kept {
            headers.append(name.clone(), value);
        }
    }
    offending
}

#[cfg(test)]
mod tests;
