//! The `callers:` section → [`CallerSpec`]s, checked against the sources.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::fields::{Fields, KeyKind, Problems};
use super::schema;
use super::spec::{Access, CallerSpec};
use super::yaml::{Entry, Node, Value};

/// Every caller of a `callers:` map. `ids` are all the source ids of the file, also those
/// of sources that had problems (so a caller naming one is not reported twice); `valid`
/// are the loaded ones.
pub(super) fn callers(
    node: &Node,
    ids: &HashSet<&str>,
    valid: &HashMap<&str, &Arc<str>>,
    p: &mut Problems,
) -> Vec<CallerSpec> {
    let entries: &[Entry] = match &node.value {
        Value::Map(entries) => entries,
        // `callers:` with every entry commented out: refusing everyone and checking nobody
        // are both plausible readings, and the wrong one opens the proxy.
        Value::Null => {
            p.add(
                Some(node.at),
                "callers",
                None,
                "is empty; write `callers: {}` to refuse every caller, or delete the key to turn caller checks off",
            );
            return Vec::new();
        }
        other => {
            p.add(
                Some(node.at),
                "callers",
                None,
                format!(
                    "must be a map of caller names to settings, not {}",
                    other.kind()
                ),
            );
            return Vec::new();
        }
    };
    let mut out: Vec<CallerSpec> = Vec::with_capacity(entries.len());
    let mut names = HashSet::with_capacity(entries.len());
    // Also of callers that have other problems, so a shared token is always reported.
    let mut hashes: HashMap<[u8; 32], &str> = HashMap::with_capacity(entries.len());
    for entry in entries {
        let name = &*entry.key.name;
        let section = format!("callers.{name}");
        if !names.insert(name) {
            p.add(
                Some(entry.key.at),
                "callers",
                None,
                format!("duplicate caller `{name}`"),
            );
            continue;
        }
        let Some(fields) = Fields::of(&entry.value, &section, "a map of caller fields", p) else {
            continue;
        };
        fields.check_keys(p, "field", schema::names(schema::CALLER), |field| {
            if schema::CALLER.iter().any(|(known, _)| *known == field) {
                KeyKind::Allowed
            } else {
                KeyKind::Unknown
            }
        });
        fields.require(p, schema::CALLER);
        let hash = fields.text(p, "token_sha256").and_then(|hex| {
            let hash = parse_sha256_hex(hex);
            if hash.is_none() {
                fields.report(
                    p,
                    "token_sha256",
                    "must be 64 hex digits (the SHA-256 of the token)",
                );
            }
            hash
        });
        if let Some(hash) = hash {
            if let Some(twin) = hashes.insert(hash, name) {
                let message =
                    format!("is the same token as caller `{twin}`; each caller needs its own");
                fields.report(p, "token_sha256", message);
            }
        }
        let access = fields
            .list(p, "sources")
            .map(|listed| access(&fields, &listed, ids, valid, p));
        if let (Some(token_sha256), Some(Some(access))) = (hash, access) {
            out.push(CallerSpec {
                name: Arc::from(name),
                token_sha256,
                access,
            });
        }
    }
    out
}

fn access(
    fields: &Fields<'_>,
    listed: &[&str],
    ids: &HashSet<&str>,
    valid: &HashMap<&str, &Arc<str>>,
    p: &mut Problems,
) -> Option<Access> {
    if listed == ["*"] {
        return Some(Access::All);
    }
    let mut allowed = Vec::with_capacity(listed.len());
    let before = p.len();
    for id in listed {
        if *id == "*" {
            fields.report(
                p,
                "sources",
                "\"*\" stands alone: it already means every source",
            );
        } else if let Some(id) = valid.get(id) {
            allowed.push(Arc::clone(id));
        } else if !ids.contains(id) {
            fields.report(p, "sources", format!("names unknown source `{id}`"));
        }
    }
    (p.len() == before).then_some(Access::Only(allowed))
}

/// 64 hex digits (either case).
pub fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
