//! A caller's `rules:` → [`RuleSpec`]s: per source, the methods and paths it may use.
//! Patterns are compiled here, once, for the request path to match without allocating.

use std::sync::Arc;

use http::Method;

use super::super::fields::{only, Fields, Problems};
use super::super::schema;
use super::super::spec::{Access, RuleSpec};
use super::super::yaml::Value;
use super::Known;
use crate::path_pattern::PathPattern;

/// `Some(None)`: no `rules:`, the caller may do anything with its sources. `None`: a
/// problem was reported.
pub(super) fn rules(
    caller: &Fields<'_>,
    access: Option<&Access>,
    known: &Known<'_>,
    p: &mut Problems,
) -> Option<Option<Box<[RuleSpec]>>> {
    let Some(entry) = caller.entries.iter().find(|e| &*e.key.name == "rules") else {
        return Some(None);
    };
    let items = match &entry.value.value {
        Value::Seq(items) => items,
        // Every rule commented out: "no limits" and "nothing" are both plausible readings.
        Value::Null => {
            let message = "is empty; write `rules: []` to allow this caller nothing, or delete \
                           the key to allow it all of its sources";
            caller.report(p, "rules", message);
            return None;
        }
        other => {
            let message = format!("must be a list of rules, not {}", other.kind());
            caller.report(p, "rules", message);
            return None;
        }
    };
    let before = p.len();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let section = format!("{}.rules[{i}]", caller.section);
        let what = "a map with source, and methods or paths";
        let Some(fields) = Fields::of(item, &section, what, p) else {
            continue;
        };
        if let Some(rule) = rule(&fields, access, known, p) {
            out.push(rule);
        }
    }
    (p.len() == before).then(|| Some(out.into()))
}

fn rule(
    fields: &Fields<'_>,
    access: Option<&Access>,
    known: &Known<'_>,
    p: &mut Problems,
) -> Option<RuleSpec> {
    fields.check_keys(p, "field", schema::names(schema::RULE), only(schema::RULE));
    fields.require(p, schema::RULE);
    let source = fields
        .text(p, "source")
        .and_then(|id| source(fields, id, access, known, p));
    let methods = match fields.list(p, "methods") {
        Some(listed) => Some(Some(methods(fields, &listed, p)?)),
        None => fields.node("methods").is_none().then_some(None),
    };
    let paths = match fields.list(p, "paths") {
        Some(listed) => Some(Some(paths(fields, &listed, p)?)),
        None => fields.node("paths").is_none().then_some(None),
    };
    Some(RuleSpec {
        source: source?,
        methods: methods?,
        paths: paths?,
    })
}

/// A source of the file that is also on the caller's `sources`.
fn source(
    fields: &Fields<'_>,
    id: &str,
    access: Option<&Access>,
    known: &Known<'_>,
    p: &mut Problems,
) -> Option<Arc<str>> {
    let Some(valid) = known.valid.get(id) else {
        if !known.ids.contains(id) {
            fields.report(p, "source", format!("names unknown source `{id}`"));
        }
        return None;
    };
    match access {
        Some(Access::Only(ids)) if !ids.iter().any(|allowed| **allowed == *id) => {
            let message = format!("`{id}` is not on this caller's `sources`");
            fields.report(p, "source", message);
            None
        }
        _ => Some(Arc::clone(valid)),
    }
}

fn methods(fields: &Fields<'_>, listed: &[&str], p: &mut Problems) -> Option<Box<[Method]>> {
    each(fields, "methods", "any method", listed, p, |_, text| {
        method(text)
    })
}

fn paths(fields: &Fields<'_>, listed: &[&str], p: &mut Problems) -> Option<Box<[PathPattern]>> {
    each(fields, "paths", "any path", listed, p, |i, text| {
        PathPattern::parse(text).map_err(|why| format!("entry {} {why}", i + 1))
    })
}

/// Every entry of the non-empty list `name`, parsed; each unusable one is a problem.
fn each<T>(
    fields: &Fields<'_>,
    name: &str,
    any: &str,
    listed: &[&str],
    p: &mut Problems,
    parse: impl Fn(usize, &str) -> Result<T, String>,
) -> Option<Box<[T]>> {
    if listed.is_empty() {
        let message = format!("is empty, so the rule allows nothing; leave it out to allow {any}");
        fields.report(p, name, message);
        return None;
    }
    let before = p.len();
    let mut out = Vec::with_capacity(listed.len());
    for (i, text) in listed.iter().enumerate() {
        match parse(i, text) {
            Ok(item) => out.push(item),
            Err(why) => fields.report(p, name, why),
        }
    }
    (p.len() == before).then(|| out.into())
}

/// An upper-case method name that credproxy forwards. Methods are case-sensitive, so
/// `get` would never match a `GET`.
fn method(text: &str) -> Result<Method, String> {
    let upper = text.to_ascii_uppercase();
    if upper == "TRACE" || upper == "TRACK" || upper == "CONNECT" {
        return Err(format!("`{upper}` is never forwarded"));
    }
    let token = !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-');
    if !token {
        return Err("holds something that is not a method name, e.g. GET".to_owned());
    }
    if text != upper {
        return Err(format!("method names are case-sensitive: write `{upper}`"));
    }
    Method::from_bytes(text.as_bytes()).map_err(|_| "holds an invalid method name".to_owned())
}
