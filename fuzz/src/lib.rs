//! Helpers shared by the fuzz targets: an independent walk over a YAML document, used by
//! the config targets to skip inputs that would make `load_bytes` read a device file, and
//! to tell where a marker secret sits.

use std::fmt;
use std::path::{Component, Path};

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};

/// The marker secret: the config targets check that no load error ever quotes it.
pub const MARKER: &str = "hunter2-fuzz";

/// Keys whose values an error message may quote by design: the reference inside
/// `{ env: … }`, `{ file: … }` and `{ encrypted: … }`, which names where a secret is, not
/// the secret, and a caller's source list (`names unknown source `x``).
const ECHOED: [&str; 4] = ["env", "file", "encrypted", "sources"];

/// What a walk over a YAML document found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The document parsed as YAML (syntax, one document, limits), whatever its shape.
    pub parsed: bool,
    /// The marker occurs in a key, a tag, or the value of an [`ECHOED`] key: a place an
    /// error may quote, so the leak check does not apply.
    pub marker_outside_secrets: bool,
    /// A `file:` value that is absolute, climbs with `..`, or names a device directory:
    /// a load would read outside the fuzz directory (`/dev/zero` never ends), so skip.
    pub unsafe_file_ref: bool,
}

impl Scan {
    pub fn of(text: &str) -> Self {
        let mut scan = Scan::default();
        let deserializer = serde_yaml::Deserializer::from_str(text);
        let node = Node {
            scan: &mut scan,
            parent: None,
            in_key: false,
        };
        let parsed = node.deserialize(deserializer).is_ok();
        scan.parsed = parsed;
        scan
    }
}

/// Whether `load_bytes` may read this `file:` reference while fuzzing.
fn safe_file_ref(value: &str) -> bool {
    let path = Path::new(value);
    let mut components = path.components();
    let first_ok = match components.next() {
        Some(Component::Normal(first)) => !matches!(first.to_str(), Some("dev" | "proc" | "sys")),
        _ => false,
    };
    first_ok && components.all(|c| matches!(c, Component::Normal(_))) && !value.contains('\0')
}

struct Node<'s> {
    scan: &'s mut Scan,
    /// The key this node is the value of (or, for a sequence item, its sequence's key).
    parent: Option<String>,
    in_key: bool,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    /// The node's text when it is a scalar (to use as a parent key).
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Node<'_> {
    fn text(self, v: &str) -> Option<String> {
        if v.contains(MARKER) {
            let echoed = self.parent.as_deref().is_some_and(|p| ECHOED.contains(&p));
            if self.in_key || echoed {
                self.scan.marker_outside_secrets = true;
            }
        }
        if !self.in_key && self.parent.as_deref() == Some("file") && !safe_file_ref(v) {
            self.scan.unsafe_file_ref = true;
        }
        Some(v.to_owned())
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.text(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(self.text(&v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(self.text(&v.to_string()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
        Ok(self.text(&v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(self.text(&v.to_string()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
        Ok(self.text(&v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(self.text(&v.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq
            .next_element_seed(Node {
                scan: &mut *self.scan,
                parent: self.parent.clone(),
                in_key: self.in_key,
            })?
            .is_some()
        {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while let Some(key) = map.next_key_seed(Node {
            scan: &mut *self.scan,
            parent: None,
            in_key: true,
        })? {
            map.next_value_seed(Node {
                scan: &mut *self.scan,
                parent: key,
                in_key: self.in_key,
            })?;
        }
        Ok(None)
    }

    /// A tagged node (`!tag value`): the tag is treated like a key.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        use serde::de::VariantAccess;
        let (tag, variant) = data.variant::<String>()?;
        if tag.contains(MARKER) {
            self.scan.marker_outside_secrets = true;
        }
        variant.newtype_variant_seed(self)
    }
}

/// Loads `bytes` as `fuzz.yaml`, the way `credproxy check` would, and checks the result:
/// a loaded snapshot is consistent, and an error never quotes [`MARKER`] when the marker
/// sits only in secret values. Inputs whose `file:` references could reach a device
/// file are skipped. Returns whether the input was loaded at all.
pub fn load_and_check(bytes: &[u8]) -> bool {
    use credproxy::config::{load_bytes, LoadOptions};

    let scan = std::str::from_utf8(bytes).ok().map(Scan::of);
    if scan.as_ref().is_some_and(|s| s.unsafe_file_ref) {
        return false;
    }
    match load_bytes(Path::new("fuzz.yaml"), bytes, LoadOptions::default()) {
        Ok(spec) => {
            let snapshot = credproxy::live::build(spec, None);
            for source in snapshot.sources() {
                let found = snapshot.source(&source.id).expect("every source by its id");
                assert!(std::sync::Arc::ptr_eq(found, source));
                assert!(!source.id.is_empty() && !source.id.contains('/'));
                assert!(!source
                    .id
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control()));
                let upstream = &source.upstream;
                assert!(!upstream.base_path.ends_with('/'), "{upstream}");
                assert!(source.proxy_prefix.starts_with('/'));
            }
        }
        Err(error) => {
            let text = error.to_string();
            assert!(
                !error.problems.is_empty(),
                "an error with no problem: {text}"
            );
            let marker_in_secret_only = scan.is_some_and(|s| !s.marker_outside_secrets);
            let input = String::from_utf8_lossy(bytes);
            if marker_in_secret_only && input.contains(MARKER) {
                assert!(
                    !text.contains(MARKER),
                    "the error quotes the secret marker:\n{text}\n--- input:\n{input}"
                );
            }
        }
    }
    true
}
