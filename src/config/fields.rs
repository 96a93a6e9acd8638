//! Reading typed values out of a YAML map, and collecting what is wrong with them.
//!
//! A getter returns `None` both when a field is absent and when it is unusable; in the
//! second case it has reported why, at the value's line and column. Whether a field must
//! be present is the schema's business ([`Fields::check_keys`]), not the getters'.

use super::error::Problem;
use super::resolve::{Resolver, SecretRef};
use super::schema::{self, Need, Table};
use super::yaml::{Entry, Mark, Node, Value};
use crate::secret::Secret;

/// Every problem of one load, in the order found.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn add(
        &mut self,
        at: Option<Mark>,
        section: &str,
        field: Option<&str>,
        message: impl Into<String>,
    ) {
        self.0.push(Problem {
            location: at,
            section: (!section.is_empty()).then(|| section.to_owned()),
            field: field.map(str::to_owned),
            message: message.into(),
        });
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a key of a map is, for [`Fields::check_keys`].
pub enum KeyKind {
    /// In this map's table.
    Allowed,
    /// A field of this kind of map, but not here (another auth type's, say): the message.
    Misplaced(String),
    Unknown,
}

/// For [`Fields::check_keys`]: a map whose keys are exactly those of `table`.
pub fn only(table: Table) -> impl Fn(&str) -> KeyKind {
    move |key| {
        if table.iter().any(|(known, _)| *known == key) {
            KeyKind::Allowed
        } else {
            KeyKind::Unknown
        }
    }
}

/// The entries of one map, and the section its problems are reported under.
pub struct Fields<'a> {
    pub section: &'a str,
    pub at: Mark,
    pub entries: &'a [Entry],
}

impl<'a> Fields<'a> {
    /// The map `node` holds, or a problem saying it should be `what` (e.g. "a map of
    /// fields").
    pub fn of(node: &'a Node, section: &'a str, what: &str, p: &mut Problems) -> Option<Self> {
        match &node.value {
            Value::Map(entries) => Some(Self {
                section,
                at: node.at,
                entries,
            }),
            other => {
                p.add(
                    Some(node.at),
                    section,
                    None,
                    format!("must be {what}, not {}", other.kind()),
                );
                None
            }
        }
    }

    /// Reports unknown, misplaced and repeated keys. Unknown keys are never named (see
    /// [`schema::unknown_key_message`]); `known` is what a typo is matched against.
    pub fn check_keys<I>(
        &self,
        p: &mut Problems,
        what: &str,
        known: I,
        kind: impl Fn(&str) -> KeyKind,
    ) where
        I: Iterator<Item = &'static str> + Clone,
    {
        for (i, entry) in self.entries.iter().enumerate() {
            let name = &*entry.key.name;
            match kind(name) {
                KeyKind::Unknown => {
                    let message = schema::unknown_key_message(name, what, known.clone());
                    p.add(Some(entry.key.at), self.section, None, message);
                    continue;
                }
                KeyKind::Misplaced(message) => {
                    p.add(Some(entry.key.at), self.section, Some(name), message);
                }
                KeyKind::Allowed => {}
            }
            // Field maps are short: a scan is cheaper than a set.
            if self.entries[..i].iter().any(|e| *e.key.name == *name) {
                p.add(
                    Some(entry.key.at),
                    self.section,
                    None,
                    format!("duplicate {what} `{name}`"),
                );
            }
        }
    }

    /// Reports each required field of `table` that is absent (or null), at the map.
    pub fn require(&self, p: &mut Problems, table: Table) {
        for (name, need) in table {
            if let Need::Required(hint) = need {
                if self.node(name).is_none() {
                    let message = if hint.is_empty() {
                        "missing".to_owned()
                    } else {
                        format!("missing; {hint}")
                    };
                    p.add(Some(self.at), self.section, Some(name), message);
                }
            }
        }
    }

    /// The value of `name`, unless it is absent or null.
    pub fn node(&self, name: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|e| *e.key.name == *name)
            .map(|e| &e.value)
            .filter(|node| !matches!(node.value, Value::Null))
    }

    /// Reports a problem with `name`, at its value (or at the map when it is absent).
    pub fn report(&self, p: &mut Problems, name: &str, message: impl Into<String>) {
        let at = self.node(name).map_or(self.at, |node| node.at);
        p.add(Some(at), self.section, Some(name), message);
    }

    /// Non-empty text (a number written unquoted is text here too).
    pub fn text(&self, p: &mut Problems, name: &str) -> Option<&'a str> {
        let node = self.node(name)?;
        match &node.value {
            Value::Scalar(scalar) if scalar.text.is_empty() => {
                p.add(
                    Some(node.at),
                    self.section,
                    Some(name),
                    "must not be empty; remove it instead",
                );
                None
            }
            Value::Scalar(scalar) => Some(scalar.text.expose()),
            other => {
                p.add(
                    Some(node.at),
                    self.section,
                    Some(name),
                    format!("must be text, not {}", other.kind()),
                );
                None
            }
        }
    }

    /// A non-negative integer written as digits (`8388608`), at most `max`.
    pub fn count(&self, p: &mut Problems, name: &str, max: u64) -> Option<u64> {
        let text = self.text(p, name)?;
        let parsed = text
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse::<u64>().ok())
            .flatten();
        match parsed {
            Some(n) if n <= max => Some(n),
            Some(_) => {
                self.report(p, name, format!("must be at most {max}"));
                None
            }
            None => {
                self.report(p, name, "must be a whole number of bytes, e.g. 8388608");
                None
            }
        }
    }

    /// `true` or `false`.
    pub fn flag(&self, p: &mut Problems, name: &str) -> Option<bool> {
        match self.text(p, name)? {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                self.report(p, name, "must be true or false");
                None
            }
        }
    }

    /// A list of text.
    pub fn list(&self, p: &mut Problems, name: &str) -> Option<Vec<&'a str>> {
        let node = self.node(name)?;
        let Value::Seq(items) = &node.value else {
            p.add(
                Some(node.at),
                self.section,
                Some(name),
                format!("must be a list, not {}", node.value.kind()),
            );
            return None;
        };
        let mut texts = Vec::with_capacity(items.len());
        for item in items.iter() {
            match &item.value {
                Value::Scalar(scalar) => texts.push(scalar.text.expose()),
                other => {
                    p.add(
                        Some(item.at),
                        self.section,
                        Some(name),
                        format!("must be a list of text, not of {}", other.kind()),
                    );
                    return None;
                }
            }
        }
        Some(texts)
    }

    /// A nested map's entries.
    pub fn map(&self, p: &mut Problems, name: &str) -> Option<&'a [Entry]> {
        let node = self.node(name)?;
        match &node.value {
            Value::Map(entries) => Some(entries),
            other => {
                p.add(
                    Some(node.at),
                    self.section,
                    Some(name),
                    format!("must be a map, not {}", other.kind()),
                );
                None
            }
        }
    }

    /// A secret, resolved; see [`secret_at`].
    pub fn secret(
        &self,
        p: &mut Problems,
        resolver: &mut Resolver<'_>,
        name: &str,
    ) -> Option<Secret> {
        secret_at(p, resolver, self.section, name, self.node(name)?)
    }
}

/// The secret `node` holds or refers to; unusable, unresolvable or empty is a problem at
/// it, reported under `section`.`field`.
pub fn secret_at(
    p: &mut Problems,
    resolver: &mut Resolver<'_>,
    section: &str,
    field: &str,
    node: &Node,
) -> Option<Secret> {
    let resolved = SecretRef::from_node(node).and_then(|reference| resolver.resolve(&reference));
    match resolved {
        Ok(secret) if secret.is_empty() => {
            p.add(Some(node.at), section, Some(field), "must not be empty");
            None
        }
        Ok(secret) => Some(secret),
        Err(why) => {
            p.add(Some(node.at), section, Some(field), why);
            None
        }
    }
}
