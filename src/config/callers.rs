//! The `callers:` section → [`CallerSpec`]s, checked against the sources: who a caller
//! is (a token hash, or a JWT issuer's workloads: [`jwt`]), which sources it may use, and
//! what it may do with them ([`rules`]).

mod jwt;
mod rules;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::fields::{only, Fields, Problems};
use super::resolve::Resolver;
use super::schema;
use super::spec::{Access, CallerIdentity, CallerSpec};
use super::yaml::{Entry, Node, Value};

/// Every caller of a `callers:` map. `ids` are all the source ids of the file, also those
/// of sources that had problems (so a caller naming one is not reported twice); `valid`
/// are the loaded ones.
pub(super) fn callers(
    node: &Node,
    ids: &HashSet<&str>,
    valid: &HashMap<&str, &Arc<str>>,
    resolver: &mut Resolver<'_>,
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
    let mut issuers = jwt::Accepted::default();
    let known = Known { ids, valid };
    for entry in entries.iter() {
        let name = &*entry.key.name;
        if !names.insert(name) {
            let message = format!("duplicate caller `{name}`");
            p.add(Some(entry.key.at), "callers", None, message);
            continue;
        }
        let seen = Seen {
            hashes: &mut hashes,
            issuers: &mut issuers,
        };
        if let Some(caller) = caller(entry, &known, seen, resolver, p) {
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

/// What the callers before this one accept, so no two accept the same token.
struct Seen<'s, 'e> {
    hashes: &'s mut HashMap<[u8; 32], &'e str>,
    issuers: &'s mut jwt::Accepted<'e>,
}

/// One entry under `callers:`.
fn caller<'e>(
    entry: &'e Entry,
    known: &Known<'_>,
    seen: Seen<'_, 'e>,
    resolver: &mut Resolver<'_>,
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
    let identity = match (fields.node("token_sha256"), fields.node("jwt")) {
        (Some(_), None) => {
            token_hash(&fields, name, seen.hashes, p).map(CallerIdentity::TokenSha256)
        }
        (None, Some(node)) => {
            jwt::jwt(node, &section, name, seen.issuers, resolver, p).map(CallerIdentity::Jwt)
        }
        (Some(_), Some(_)) => {
            let message = "a caller is either a token (`token_sha256`) or a JWT issuer's workloads (`jwt:`), not both";
            fields.report(p, "jwt", message);
            None
        }
        (None, None) => {
            let message =
                "missing: set `token_sha256` (`credproxy hash-token` prints it) or `jwt:`";
            fields.report(p, "token_sha256", message);
            None
        }
    };
    let access = fields
        .list(p, "sources")
        .and_then(|listed| access(&fields, &listed, known.ids, known.valid, p));
    let rules = rules::rules(&fields, access.as_ref(), known, p);
    Some(CallerSpec {
        name: Arc::from(name),
        identity: identity?,
        access: access?,
        rules: rules?,
    })
}

/// `token_sha256`, unless another caller has the same token.
fn token_hash<'e>(
    fields: &Fields<'_>,
    name: &'e str,
    hashes: &mut HashMap<[u8; 32], &'e str>,
    p: &mut Problems,
) -> Option<[u8; 32]> {
    let hex = fields.text(p, "token_sha256")?;
    let Some(hash) = parse_sha256_hex(hex) else {
        let message = "must be 64 hex digits (the SHA-256 of the token)";
        fields.report(p, "token_sha256", message);
        return None;
    };
    if let Some(twin) = hashes.insert(hash, name) {
        let message = format!("is the same token as caller `{twin}`; each caller needs its own");
        fields.report(p, "token_sha256", message);
    }
    Some(hash)
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
