//! A YAML document as a tree of nodes that know where they were written, built from
//! saphyr-parser's events under a budget.
//!
//! Owning the tree (instead of deserializing with serde) buys three things the config
//! needs: every problem found later names its line and column without parsing the file
//! again, so reporting N problems stays linear; no message is ever written by a
//! deserializer that might quote a value; and what a file may expand to is bounded before
//! it is built. Aliases repeat their anchor's content, so a 1 MB string aliased 3,000 times
//! would stand for 3 GB: the builder counts every node and every byte of text an alias
//! adds, and stops at the budget instead of allocating it.
//!
//! Scalars are held as [`Secret`]s: until the schema says which field a scalar belongs to,
//! any of them may be a credential.

use std::collections::HashMap;
use std::rc::Rc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::secret::Secret;

/// What one file may expand to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Collections inside collections, from the document root.
    pub max_depth: usize,
    /// Nodes in the expanded tree (keys, values and collections; aliases expanded).
    pub max_nodes: usize,
    /// Bytes of scalar text in the expanded tree.
    pub max_text: usize,
}

/// The schema nests five levels deep; a map of extra claims may nest more, but no config
/// needs 32. Two million nodes hold some 200,000 sources; twice the largest file's text
/// leaves aliases room without letting them multiply it.
pub const LIMITS: Limits = Limits {
    max_depth: 32,
    max_nodes: 2_000_000,
    max_text: 2 * crate::files::MAX_CONFIG_BYTES as usize,
};

/// A position in the file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub line: u32,
    pub column: u32,
}

impl Mark {
    fn of(span: &Span) -> Self {
        Mark {
            line: u32::try_from(span.start.line()).unwrap_or(u32::MAX),
            column: u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    pub at: Mark,
}

/// Shared, so that an alias costs a reference count, not a copy: memory stays that of
/// the file as written, however often an anchor is repeated.
#[derive(Debug, Clone)]
pub enum Value {
    /// `~`, `null`, or nothing at all (`key:`).
    Null,
    Scalar(Rc<Scalar>),
    Seq(Rc<[Node]>),
    /// Entries in file order; repeated keys are kept, for the schema to report.
    Map(Rc<[Entry]>),
}

#[derive(Debug, Clone)]
pub struct Scalar {
    pub text: Secret,
    /// Unquoted and untagged: YAML would read `4711` or `true` here as a number or a bool.
    pub plain: bool,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: Key,
    pub value: Node,
}

/// A mapping key: always text.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: Box<str>,
    pub at: Mark,
}

/// Why a file is not a usable YAML document. The message never quotes the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub at: Option<Mark>,
}

impl Scalar {
    /// Whether YAML's core schema reads this scalar as a number or a bool rather than text,
    /// with the same rules serde_yaml applied (so `0123` stays text).
    pub fn reads_as_non_text(&self) -> bool {
        self.plain && reads_as_number_or_bool(self.text.expose())
    }
}

impl Value {
    /// What kind of node this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Scalar(_) => "text",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

/// Parses one document; `None` when the file holds none (empty, or only comments).
pub fn parse(text: &str, limits: &Limits) -> Result<Option<Node>, ParseError> {
    let mut builder = Builder {
        limits,
        stack: Vec::new(),
        anchors: HashMap::new(),
        cost: Cost::default(),
        root: None,
        documents: 0,
    };
    let mut parser = Parser::new_from_str(text);
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| ParseError {
            message: scan_message(e.info()),
            at: Some(Mark {
                line: u32::try_from(e.marker().line()).unwrap_or(u32::MAX),
                column: u32::try_from(e.marker().col() + 1).unwrap_or(u32::MAX),
            }),
        })?;
        if builder.event(event, &span)? {
            break;
        }
    }
    Ok(builder.root)
}

/// Nodes and text bytes, as counted against the budget.
#[derive(Debug, Default, Clone, Copy)]
struct Cost {
    nodes: usize,
    text: usize,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, other: Cost) {
        self.nodes += other.nodes;
        self.text += other.text;
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        at: Mark,
        anchor: usize,
        cost: Cost,
    },
    Map {
        entries: Vec<Entry>,
        key: Option<Key>,
        at: Mark,
        anchor: usize,
        cost: Cost,
    },
}

struct Builder<'l> {
    limits: &'l Limits,
    stack: Vec<Frame>,
    /// Completed anchored nodes and what each costs to repeat.
    anchors: HashMap<usize, (Node, Cost)>,
    /// Everything built so far, aliases expanded.
    cost: Cost,
    root: Option<Node>,
    documents: usize,
}

impl Builder<'_> {
    /// Takes one event; true once the stream has ended.
    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<bool, ParseError> {
        let at = Mark::of(span);
        match event {
            Event::StreamEnd => return Ok(true),
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(error(
                        "holds more than one YAML document; keep one (drop the second `---`)",
                        at,
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let tagged_str = match tag {
                    None => false,
                    Some(tag) if tag.is_yaml_core_schema() && tag.suffix == "str" => true,
                    Some(_) => {
                        return Err(error("YAML tags other than !!str are not supported", at))
                    }
                };
                let plain = style == ScalarStyle::Plain && !tagged_str;
                self.scalar(text.into_owned(), plain, anchor, at)?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.open(tag.is_some(), at)?;
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    at,
                    anchor,
                    cost: Cost { nodes: 1, text: 0 },
                });
            }
            Event::MappingStart(anchor, tag) => {
                self.open(tag.is_some(), at)?;
                self.stack.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    at,
                    anchor,
                    cost: Cost { nodes: 1, text: 0 },
                });
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(at)?,
            Event::Alias(anchor) => self.alias(anchor, at)?,
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
        }
        Ok(false)
    }

    fn scalar(
        &mut self,
        text: String,
        plain: bool,
        anchor: usize,
        at: Mark,
    ) -> Result<(), ParseError> {
        let value = if plain && is_null(&text) {
            Value::Null
        } else {
            Value::Scalar(Rc::new(Scalar {
                text: Secret::new(text),
                plain,
            }))
        };
        let cost = Cost {
            nodes: 1,
            text: match &value {
                Value::Scalar(s) => s.text.expose().len(),
                _ => 0,
            },
        };
        self.charge(cost, at, false)?;
        self.complete(Node { value, at }, anchor, cost)
    }

    /// The end of the innermost list or map.
    fn close(&mut self, at: Mark) -> Result<(), ParseError> {
        let (node, anchor, cost) = match self.stack.pop() {
            Some(Frame::Seq {
                items,
                at,
                anchor,
                cost,
            }) => (
                Node {
                    value: Value::Seq(items.into()),
                    at,
                },
                anchor,
                cost,
            ),
            Some(Frame::Map {
                entries,
                at,
                anchor,
                cost,
                ..
            }) => (
                Node {
                    value: Value::Map(entries.into()),
                    at,
                },
                anchor,
                cost,
            ),
            None => return Err(error("is not well-formed YAML", at)),
        };
        self.complete(node, anchor, cost)
    }

    fn alias(&mut self, anchor: usize, at: Mark) -> Result<(), ParseError> {
        let Some((node, cost)) = self.anchors.get(&anchor) else {
            return Err(error(
                "has an alias to an anchor that is not complete yet (a node cannot contain itself)",
                at,
            ));
        };
        // Counted as if copied: whoever walks the tree walks every repetition.
        let (mut node, cost) = (node.clone(), *cost);
        self.charge(cost, at, true)?;
        node.at = at;
        self.complete(node, 0, cost)
    }

    /// Checks a list or map about to start: no tag, not too deep, within the budget.
    fn open(&mut self, tagged: bool, at: Mark) -> Result<(), ParseError> {
        if tagged {
            return Err(error("YAML tags are not supported on lists and maps", at));
        }
        if self.stack.len() >= self.limits.max_depth {
            return Err(error(
                format!(
                    "nests lists and maps more than {} deep",
                    self.limits.max_depth
                ),
                at,
            ));
        }
        self.charge(Cost { nodes: 1, text: 0 }, at, false)
    }

    /// Counts `cost` against the budget.
    fn charge(&mut self, cost: Cost, at: Mark, alias: bool) -> Result<(), ParseError> {
        self.cost += cost;
        let why = if alias {
            " (aliases repeat their anchor's content)"
        } else {
            ""
        };
        if self.cost.nodes > self.limits.max_nodes {
            return Err(error(
                format!(
                    "expands to more than {} YAML nodes{why}",
                    self.limits.max_nodes
                ),
                at,
            ));
        }
        if self.cost.text > self.limits.max_text {
            return Err(error(
                format!(
                    "expands to more than {} bytes of text{why}",
                    self.limits.max_text
                ),
                at,
            ));
        }
        Ok(())
    }

    /// A finished node: remembered under its anchor, then placed in its parent.
    fn complete(&mut self, node: Node, anchor: usize, cost: Cost) -> Result<(), ParseError> {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), cost));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq {
                items, cost: sum, ..
            }) => {
                items.push(node);
                *sum += cost;
            }
            Some(Frame::Map {
                entries,
                key,
                cost: sum,
                ..
            }) => {
                *sum += cost;
                match key.take() {
                    Some(key) => entries.push(Entry { key, value: node }),
                    None => match node.value {
                        Value::Scalar(scalar) => {
                            *key = Some(Key {
                                name: scalar.text.expose().into(),
                                at: node.at,
                            })
                        }
                        Value::Null => return Err(error("has a map entry without a key", node.at)),
                        _ => {
                            return Err(error(
                                "has a list or map as a map key; keys must be text",
                                node.at,
                            ))
                        }
                    },
                }
            }
        }
        Ok(())
    }
}

fn error(message: impl Into<String>, at: Mark) -> ParseError {
    ParseError {
        message: message.into(),
        at: Some(at),
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// The parser's own message, without the character it may quote (`` unexpected character:
/// `x' ``): one character of a secret is still part of it.
fn scan_message(info: &str) -> String {
    if info.contains("recursion limit") {
        return "nests lists and maps too deep".to_owned();
    }
    let cut = info.find(['`', '\'', '"']).unwrap_or(info.len());
    let message = info[..cut].trim_end().trim_end_matches(':');
    format!("is not valid YAML: {message}")
}

/// YAML 1.2 core-schema booleans, integers (decimal, `0x`, `0o`, `0b`) and finite floats,
/// except digits with a leading zero, which stay text.
fn reads_as_number_or_bool(text: &str) -> bool {
    if matches!(text, "true" | "True" | "TRUE" | "false" | "False" | "FALSE") {
        return true;
    }
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if unsigned.is_empty() || unsigned.starts_with(['+', '-']) {
        return false;
    }
    let digits_of = |prefix: &str, radix: u32| {
        unsigned
            .strip_prefix(prefix)
            .is_some_and(|digits| !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix)))
    };
    if digits_of("0x", 16) || digits_of("0o", 8) || digits_of("0b", 2) {
        return true;
    }
    let leading_zero = unsigned.len() > 1
        && unsigned.starts_with('0')
        && unsigned.bytes().all(|b| b.is_ascii_digit());
    if leading_zero {
        return false;
    }
    if unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") || matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    unsigned.parse::<f64>().is_ok_and(f64::is_finite)
}

#[cfg(test)]
mod tests;
