//! URLs in the config: absolute http(s), with a host and no credentials, query or fragment.
//! The value is never quoted back: a URL may carry a password.

use http::uri::Scheme;
use http::Uri;

use super::spec::Upstream;

const NOT_ABSOLUTE: &str = "is not an absolute URL; write it as https://host[:port][/base/path]";

pub fn parse_http_url(text: &str) -> Result<Uri, &'static str> {
    // Checked before parsing: the http crate rejects these with a vaguer error.
    let Some((_, after_scheme)) = text.split_once("://") else {
        return Err(NOT_ABSOLUTE);
    };
    if after_scheme.split('/').next().unwrap_or("").contains('@') {
        return Err("must not contain credentials; use auth_type http_basic instead");
    }
    let uri: Uri = text
        .parse()
        .map_err(|_| "is not a valid absolute http(s) URL")?;
    match uri.scheme() {
        Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS => {}
        Some(_) => return Err("must use the http or https scheme"),
        None => return Err(NOT_ABSOLUTE),
    }
    if uri.authority().is_none_or(|a| a.host().is_empty()) {
        return Err("has no host");
    }
    if uri.query().is_some() {
        return Err("must not contain a query; use api_key_in: query for a key parameter");
    }
    Ok(uri)
}

pub fn parse_upstream(text: &str) -> Result<Upstream, &'static str> {
    let uri = parse_http_url(text)?;
    match (uri.scheme(), uri.authority()) {
        (Some(scheme), Some(authority)) => Ok(Upstream {
            scheme: scheme.clone(),
            authority: authority.clone(),
            base_path: uri.path().trim_end_matches('/').into(),
        }),
        _ => Err(NOT_ABSOLUTE),
    }
}
