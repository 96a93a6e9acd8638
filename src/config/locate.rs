//! Finds the line and column of a node in a YAML text, for problems found after parsing.
//!
//! serde_yaml keeps no spans, but it does attach the position of the event it was reading
//! to any error raised there. The locator walks the document to the node at `path` and
//! raises an error on it; the error's position is the node's. Runs only when a file is
//! already known to be bad, so the second pass costs nothing on a good load.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Line and column (1-based) of the value at `path` (map keys from the root), if present.
pub fn locate(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let walk = Walk { path };
    match walk.deserialize(deserializer) {
        Err(error) if error.to_string().contains(FOUND) => error
            .location()
            .map(|l| (l.line(), l.column()))
            .filter(|&(line, _)| line > 0),
        _ => None,
    }
}

const FOUND: &str = "credproxy-locate-found";

struct Walk<'a> {
    path: &'a [&'a str],
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.path.is_empty() {
            RaiseHere(FOUND).deserialize(deserializer)
        } else {
            deserializer.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == self.path[0] {
                return map.next_value_seed(Walk {
                    path: &self.path[1..],
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Fails on whatever node it is handed, with its message, so that serde_yaml stamps the
/// error with that node's position. Also used to report a duplicate key at the duplicate.
pub(super) struct RaiseHere<'m>(pub &'m str);

impl<'de> DeserializeSeed<'de> for RaiseHere<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RaiseHere<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(self.0))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(self.0))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(self.0))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(self.0))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(self.0))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(self.0))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(self.0))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::locate;

    const DOC: &str = "# header\nsources:\n  a:\n    upstream: http://a\n  'b.c':\n    auth_type: bearer\n    bearer_token: zz\n  d: {upstream: q, auth_type: none}\n";

    #[test]
    fn finds_block_and_flow_values() {
        assert_eq!(
            locate(DOC, &["sources", "b.c", "bearer_token"]),
            Some((7, 19))
        );
        assert_eq!(locate(DOC, &["sources", "a", "upstream"]), Some((4, 15)));
        assert_eq!(locate(DOC, &["sources", "d", "auth_type"]), Some((8, 31)));
    }

    #[test]
    fn absent_paths_have_no_location() {
        assert_eq!(locate(DOC, &["sources", "zz"]), None);
        assert_eq!(locate(DOC, &["sources", "a", "bearer_token"]), None);
        assert_eq!(locate("[1, 2]", &["sources"]), None);
    }
}
