//! The `callers:` section → [`CallerSpec`]s, checked against the sources.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::fields::{only, Fields, Problems};
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
    let known = Known { ids, valid };
    for entry in entries.iter() {
        let name = &*entry.key.name;
        if !names.insert(name) {
            let message = format!("duplicate caller `{name}`");
            p.add(Some(entry.key.at), "callers", None, message);
            continue;
        }
        if let Some(caller) = caller(entry, &known, &mut hashes, p) {
            out.push(caller);
        }
    }
    out
}

/// The source ids a caller's list is checked against.
struct Known<'a> {
    ids: &'a HashSet<&'a str>,
    valid: &'a HashMap<&'a str, &'a Arc<str>>,
}

/// One entry under `callers:`; `hashes` are the tokens of the callers before it.
fn caller<'e>(
    entry: &'e Entry,
    known: &Known<'_>,
    hashes: &mut HashMap<[u8; 32], &'e str>,
    p: &mut Problems,
) -> Option<CallerSpec> {
    let name = &*entry.key.name;
    let section = format!("callers.{name}");
    let fields = Fields::of(&entry.value, &section, "a map of caller fields", p)?;
    fields.check_keys(
        p,
        "field",
        schema::names(schema::CALLER),
        only(schema::CALLER),
    );
    fields.require(p, schema::CALLER);
    let hash = fields.text(p, "token_sha256").and_then(|hex| {
        let hash = parse_sha256_hex(hex);
        if hash.is_none() {
            let message = "must be 64 hex digits (the SHA-256 of the token)";
            fields.report(p, "token_sha256", message);
        }
        hash
    });
    if let Some(twin) = hash.and_then(|hash| hashes.insert(hash, name)) {
        let message = format!("is the same token as caller `{twin}`; each caller needs its own");
        fields.report(p, "token_sha256", message);
    }
    let access = fields
        .list(p, "sources")
        .and_then(|listed| access(&fields, &listed, known.ids, known.valid, p));
    Some(CallerSpec {
        name: Arc::from(name),
        token_sha256: hash?,
        access: access?,
    })
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
fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
