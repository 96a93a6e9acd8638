//! A caller's `jwt:` map → [`JwtCallerSpec`]: whose tokens it accepts and where their
//! verification keys come from.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use http::uri::Scheme;

use super::super::fields::{only, Fields, Problems};
use super::super::resolve::Resolver;
use super::super::schema;
use super::super::spec::{JwksSpec, JwtCallerSpec, SubjectPattern};
use super::super::tls;
use super::super::url::parse_http_url;
use super::super::yaml::Node;
use crate::jws::Jwks;

/// The (issuer, audience, subject) of the JWT callers read so far, and whose they are:
/// two callers that accept the same tokens would make which one a token is ambiguous.
#[derive(Default)]
pub(super) struct Accepted<'e>(HashMap<[Box<str>; 3], &'e str>);

pub(super) fn jwt<'e>(
    node: &Node,
    caller_section: &str,
    name: &'e str,
    accepted: &mut Accepted<'e>,
    resolver: &mut Resolver<'_>,
    p: &mut Problems,
) -> Option<JwtCallerSpec> {
    let section = format!("{caller_section}.jwt");
    let what = "a map with issuer, audience and jwks_file or jwks_url";
    let fields = Fields::of(node, &section, what, p)?;
    fields.check_keys(
        p,
        "field",
        schema::names(schema::JWT_CALLER),
        only(schema::JWT_CALLER),
    );
    fields.require(p, schema::JWT_CALLER);
    let issuer = fields.text(p, "issuer");
    let audience = fields.text(p, "audience");
    let subject_text = fields.text(p, "subject");
    // `Some(None)`: a `subject` that was reported as unusable.
    let subject = subject_text.map(|text| subject(&fields, text, p));
    let keys = keys(&fields, resolver, p);
    let (issuer, audience) = (issuer?, audience?);
    let key = [issuer, audience, subject_text.unwrap_or_default()].map(Box::from);
    if let Some(twin) = accepted.0.insert(key, name) {
        let message = format!(
            "accepts the same tokens as caller `{twin}` (same issuer, audience and subject); \
             give each its own subject"
        );
        fields.report(p, "subject", message);
    }
    Some(JwtCallerSpec {
        issuer: Arc::from(issuer),
        audience: audience.into(),
        keys: keys?,
        subject: match subject {
            Some(parsed) => Some(parsed?),
            None => None,
        },
    })
}

/// `system:serviceaccount:agents:runner`, or `system:serviceaccount:agents:*`.
fn subject(fields: &Fields<'_>, text: &str, p: &mut Problems) -> Option<SubjectPattern> {
    let (stem, prefix) = match text.strip_suffix('*') {
        Some(stem) => (stem, true),
        None => (text, false),
    };
    if stem.contains('*') {
        let message = "may end in `*` (a prefix), but has no other `*`";
        fields.report(p, "subject", message);
        return None;
    }
    Some(match prefix {
        true => SubjectPattern::Prefix(stem.into()),
        false => SubjectPattern::Exact(stem.into()),
    })
}

/// `jwks_file` (read and checked now) or `jwks_url` (fetched by the live snapshot).
fn keys(fields: &Fields<'_>, resolver: &mut Resolver<'_>, p: &mut Problems) -> Option<JwksSpec> {
    let file = fields.text(p, "jwks_file");
    let url = fields.text(p, "jwks_url");
    match (file, url) {
        (Some(file), None) => {
            if fields.node("jwks_ca_file").is_some() {
                let message = "is for an https `jwks_url`; a `jwks_file` is read from disk";
                fields.report(p, "jwks_ca_file", message);
            }
            let path = Path::new(file);
            let bytes = resolver
                .read_file(path)
                .map_err(|why| fields.report(p, "jwks_file", why))
                .ok()?;
            match Jwks::parse(&bytes) {
                Ok(keys) => Some(JwksSpec::File {
                    path: resolver.path_of(path),
                    keys: Arc::new(keys),
                }),
                Err(why) => {
                    fields.report(p, "jwks_file", why.to_string());
                    None
                }
            }
        }
        (None, Some(text)) => {
            let url = match parse_http_url(text) {
                Ok(url) if url.scheme() == Some(&Scheme::HTTPS) || is_loopback(&url) => url,
                Ok(_) => {
                    let message = "must be https (or http to a loopback address): whoever \
                                   can change the keys in transit can sign for any caller";
                    fields.report(p, "jwks_url", message);
                    return None;
                }
                Err(why) => {
                    fields.report(p, "jwks_url", why);
                    return None;
                }
            };
            if url.scheme() == Some(&Scheme::HTTP) && fields.node("jwks_ca_file").is_some() {
                fields.report(p, "jwks_ca_file", "is for an https `jwks_url`");
                return None;
            }
            let tls = tls::profile(fields, resolver, p, &tls::JWKS)?;
            Some(JwksSpec::Url { url, tls })
        }
        (Some(_), Some(_)) => {
            fields.report(p, "jwks_url", "set `jwks_file` or `jwks_url`, not both");
            None
        }
        (None, None) => {
            let message = "missing: set `jwks_file` (a JWK Set on disk) or `jwks_url` (e.g. \
                           https://kubernetes.default.svc/openid/v1/jwks)";
            fields.report(p, "jwks_url", message);
            None
        }
    }
}

fn is_loopback(url: &http::Uri) -> bool {
    let host = url.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
