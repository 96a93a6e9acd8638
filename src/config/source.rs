//! One entry under `sources:` → a [`SourceSpec`], or every problem found in it.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use super::credential::CredentialReader;
use super::fields::{secret_at, Fields, KeyKind, Problems};
use super::resolve::Resolver;
use super::schema;
use super::spec::{AuthType, CredentialSpec, SourceSpec};
use super::tls;
use super::url::parse_upstream;
use super::yaml::{Key, Node, Value};
use crate::secret::{sensitive_header_value, Secret};
use crate::transport::headers::is_hop_by_hop;

pub(super) fn source(
    key: &Key,
    node: &Node,
    resolver: &mut Resolver<'_>,
    p: &mut Problems,
) -> Option<SourceSpec> {
    let id = &*key.name;
    let section = format!("sources.{id}");
    let before = p.len();
    if id.is_empty() || id.contains('/') || id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        p.add(
            Some(key.at),
            &section,
            None,
            "a source id must be non-empty and contain no '/', whitespace or control characters (it is a URL path segment)",
        );
    }
    let fields = Fields::of(node, &section, "a map of source fields", p)?;
    let auth_type = fields.text(p, "auth_type").and_then(|text| {
        let parsed = AuthType::parse(text);
        if parsed.is_none() {
            let types: Vec<&str> = AuthType::ALL.map(AuthType::as_str).to_vec();
            fields.report(
                p,
                "auth_type",
                format!("unknown auth_type; one of {}", types.join(", ")),
            );
        }
        parsed
    });
    fields.check_keys(p, "field", schema::source_fields(), |name| {
        key_kind(name, auth_type)
    });
    fields.require(p, schema::SOURCE);
    for table in auth_type.map_or(&[][..], schema::auth_fields) {
        fields.require(p, table);
    }

    let upstream = fields
        .text(p, "upstream")
        .and_then(|text| match parse_upstream(text) {
            Ok(upstream) => Some(upstream),
            Err(why) => {
                fields.report(p, "upstream", why);
                None
            }
        });
    let mut reader = CredentialReader {
        fields: &fields,
        resolver,
        problems: p,
        secrets: Vec::new(),
    };
    let credential = auth_type.and_then(|auth_type| reader.build(auth_type, id));
    let mut secrets = reader.secrets;
    let extra_headers = extra_headers(&fields, credential.as_ref(), resolver, p, &mut secrets);
    let tls = tls::profile(&fields, resolver, p, &tls::UPSTREAM);

    if p.len() > before {
        return None;
    }
    Some(SourceSpec {
        id: Arc::from(id),
        upstream: upstream?,
        auth_type: auth_type?,
        credential: credential?,
        extra_headers,
        tls: tls?,
        secrets,
    })
}

fn key_kind(name: &str, auth_type: Option<AuthType>) -> KeyKind {
    let in_table = |table: schema::Table| table.iter().any(|(field, _)| *field == name);
    if in_table(schema::SOURCE) {
        return KeyKind::Allowed;
    }
    if !schema::is_source_field(name) {
        return KeyKind::Unknown;
    }
    match auth_type {
        // Until the auth type is known, any source field may belong.
        None => KeyKind::Allowed,
        Some(auth_type) if schema::is_field_of(auth_type, name) => KeyKind::Allowed,
        Some(auth_type) => KeyKind::Misplaced(format!(
            "does not apply to auth_type `{auth_type}`; remove it or change auth_type"
        )),
    }
}

/// Headers a source must not set: those that describe the connection or the message
/// framing, which credproxy and hyper own.
pub fn is_reserved_header(name: &HeaderName) -> bool {
    is_hop_by_hop(name) || name == http::header::HOST || name == http::header::CONTENT_LENGTH
}

/// The `headers:` map: valid names credproxy does not own, each once, values secrets.
fn extra_headers(
    fields: &Fields<'_>,
    credential: Option<&CredentialSpec>,
    resolver: &mut Resolver<'_>,
    p: &mut Problems,
    secrets: &mut Vec<Secret>,
) -> Vec<(HeaderName, HeaderValue)> {
    let Some(entries) = fields.map(p, "headers") else {
        return Vec::new();
    };
    let section = format!("{}.headers", fields.section);
    let mut out: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(entries.len());
    for entry in entries {
        let name = &*entry.key.name;
        let problem = |p: &mut Problems, message: &str| {
            p.add(Some(entry.key.at), &section, Some(name), message);
        };
        if matches!(entry.value.value, Value::Null) {
            // Never named: `{ X-Key: a,b }` makes the tail of a value an entry of its own.
            p.add(
                Some(entry.key.at),
                &section,
                None,
                "an entry has no value; quote values that hold a comma (in `{ a: b, c }` the comma starts a new entry)",
            );
            continue;
        }
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            problem(p, "is not a valid HTTP header name");
            continue;
        };
        if is_reserved_header(&header) {
            problem(
                p,
                "names a header credproxy manages itself (hop-by-hop, Host or a length)",
            );
            continue;
        }
        if credential.is_some_and(|credential| credential.sets_header(&header)) {
            problem(p, "is the header the source's auth_type already sets");
            continue;
        }
        if out.iter().any(|(seen, _)| *seen == header) {
            problem(p, "is listed twice (header names are case-insensitive)");
            continue;
        }
        let Some(value) = secret_at(p, resolver, &section, name, &entry.value) else {
            continue;
        };
        match sensitive_header_value(value.expose()) {
            Ok(header_value) => out.push((header, header_value)),
            Err(why) => p.add(Some(entry.value.at), &section, Some(name), why.to_string()),
        }
        secrets.push(value);
    }
    out
}
