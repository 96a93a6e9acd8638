//! An API key sent as a query parameter (`api_key_in: query`).
//!
//! The caller must not be able to send a second key that the upstream takes instead of
//! ours, nor see ours come back in a redirect. Upstreams disagree on which of two values
//! of one parameter wins and on how they read names, so every caller parameter that any
//! of them could read as the key's name is dropped: names are compared percent-decoded
//! (`+` is a space), ignoring ASCII case, up to a `[` (`key[]=…` is PHP's array form), and
//! with `.` and space read as `_` (PHP's renaming). Both `&` and `;` separate parameters.
//! The key itself goes first, for the upstreams that take the first value.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::config::spec::QueryKey;
use crate::secret::Secret;

/// Everything but RFC 3986's unreserved characters is percent-encoded.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug)]
pub struct QueryCredential {
    /// The name as upstreams read it (see the module docs), to recognise a caller's copy.
    normalized_name: Box<[u8]>,
    /// `name=value`, percent-encoded, ready to append.
    encoded_pair: Secret,
    /// The value as it appears in a URL, to find it in a response.
    encoded_value: Secret,
}

impl QueryCredential {
    pub fn new(key: &QueryKey) -> Self {
        let value = utf8_percent_encode(key.value.expose(), QUERY_COMPONENT).to_string();
        let pair = format!(
            "{}={value}",
            utf8_percent_encode(&key.name, QUERY_COMPONENT)
        );
        Self {
            normalized_name: normalized(&key.name).collect(),
            encoded_pair: Secret::new(pair),
            encoded_value: Secret::new(value),
        }
    }

    /// Writes the key, then `query` without any parameter an upstream could read as the
    /// key's name. Other parameters keep their bytes, order and separators.
    pub fn write_query(&self, query: Option<&str>, out: &mut String) {
        out.push_str(self.encoded_pair.expose());
        let mut first = true;
        for (separator, pair) in pairs(query.unwrap_or("")) {
            if pair.is_empty() || self.is_key(pair) {
                continue;
            }
            // Always `&` after the key: an upstream that splits only on `&` would read a
            // `;` and what follows as part of the key's value.
            out.push(if first { '&' } else { separator.unwrap_or('&') });
            out.push_str(pair);
            first = false;
        }
    }

    /// The length [`Self::write_query`] writes when it drops no parameter (an upper bound).
    pub fn max_query_len(&self, query: Option<&str>) -> usize {
        self.encoded_pair.expose().len() + query.map_or(0, |query| query.len() + 1)
    }

    /// `url` without any parameter of the key's name in its query, or `None` when it has
    /// none (the usual case: nothing is allocated).
    pub fn strip_from_url(&self, url: &str) -> Option<String> {
        let start = url.find('?')? + 1;
        let end = url[start..].find('#').map_or(url.len(), |i| start + i);
        let query = &url[start..end];
        if !pairs(query).any(|(_, pair)| self.is_key(pair)) {
            return None;
        }
        let mut out = String::with_capacity(url.len());
        out.push_str(&url[..start]);
        let mut first = true;
        for (separator, pair) in pairs(query) {
            if pair.is_empty() || self.is_key(pair) {
                continue;
            }
            if !first {
                out.push(separator.unwrap_or('&'));
            }
            out.push_str(pair);
            first = false;
        }
        if first {
            out.pop(); // the `?` of a query that is now empty
        }
        out.push_str(&url[end..]);
        Some(out)
    }

    /// The key's value as it appears in a URL.
    pub fn encoded_value(&self) -> &Secret {
        &self.encoded_value
    }

    fn is_key(&self, pair: &str) -> bool {
        let raw_name = pair.split_once('=').map_or(pair, |(name, _)| name);
        normalized(raw_name).eq(self.normalized_name.iter().copied())
    }
}

/// The parameters of a query, each with the separator before it (`None` for the first).
fn pairs(query: &str) -> impl Iterator<Item = (Option<char>, &str)> {
    let mut rest = Some(query);
    let mut separator = None;
    std::iter::from_fn(move || {
        let text = rest?;
        let this = separator;
        match text.find(['&', ';']) {
            Some(i) => {
                separator = text[i..].chars().next();
                rest = Some(&text[i + 1..]);
                Some((this, &text[..i]))
            }
            None => {
                rest = None;
                Some((this, text))
            }
        }
    })
}

/// A parameter name as upstreams read it: `+` → space, percent-decoded, cut at `[`,
/// `.` and space → `_`, ASCII lower case.
fn normalized(raw: &str) -> impl Iterator<Item = u8> + '_ {
    let bytes = raw.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let byte = *bytes.get(i)?;
        i += 1;
        let decoded = match byte {
            b'+' => b' ',
            b'%' => match (bytes.get(i).and_then(hex), bytes.get(i + 1).and_then(hex)) {
                (Some(high), Some(low)) => {
                    i += 2;
                    high << 4 | low
                }
                _ => b'%',
            },
            other => other,
        };
        Some(decoded)
    })
    .take_while(|&b| b != b'[')
    .map(|b| match b {
        b'.' | b' ' => b'_',
        other => other.to_ascii_lowercase(),
    })
}

fn hex(byte: &u8) -> Option<u8> {
    (*byte as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(name: &str, value: &str) -> QueryCredential {
        QueryCredential::new(&QueryKey {
            name: name.into(),
            value: Secret::new(value),
        })
    }

    fn rewritten(name: &str, key: &str, query: Option<&str>) -> String {
        let credential = credential(name, key);
        let mut out = String::new();
        credential.write_query(query, &mut out);
        assert!(out.len() <= credential.max_query_len(query), "{out}");
        out
    }

    #[test]
    fn max_query_len_is_exact_when_no_parameter_is_dropped() {
        let credential = credential("api_key", "s3cr&t");
        for query in [None, Some("a=1"), Some("a=1&b=%2F")] {
            let mut out = String::new();
            credential.write_query(query, &mut out);
            assert_eq!(out.len(), credential.max_query_len(query), "{out}");
        }
    }

    #[test]
    fn the_key_goes_first_and_every_look_alike_is_dropped() {
        assert_eq!(rewritten("api_key", "s3cr&t", None), "api_key=s3cr%26t");
        assert_eq!(
            rewritten("api_key", "k", Some("a=1&api_key=mine&b=%2F&api%5Fkey=x")),
            "api_key=k&a=1&b=%2F"
        );
        assert_eq!(rewritten("my key", "k", Some("my+key=1&x")), "my%20key=k&x");
        assert_eq!(rewritten("k", "v", Some("&&")), "k=v");
        for look_alike in [
            "API_KEY=x",
            "Api_Key=x",
            "api_key[]=x",
            "api_key%5B%5D=x",
            "api_key[0]=x",
            "api.key=x",
            "api%2Ekey=x",
            "api+key=x",
            "api_key",
        ] {
            assert_eq!(
                rewritten("api_key", "k", Some(&format!("a=1;{look_alike};b=2"))),
                "api_key=k&a=1;b=2",
                "{look_alike}"
            );
        }
        assert_eq!(
            rewritten("api_key", "k", Some("api_keys=1&xapi_key=2")),
            "api_key=k&api_keys=1&xapi_key=2"
        );
        // The key is always followed by `&`, whatever separated what follows it.
        assert_eq!(
            rewritten("api_key", "k", Some(";a=1;b=2")),
            "api_key=k&a=1;b=2"
        );
        assert_eq!(
            rewritten("api_key", "k", Some("api_key=x;a=1")),
            "api_key=k&a=1"
        );
    }

    #[test]
    fn urls_lose_the_key_and_keep_everything_else() {
        let c = credential("api_key", "SECRET");
        assert_eq!(
            c.strip_from_url("/x/?page=1&api_key=SECRET").as_deref(),
            Some("/x/?page=1")
        );
        assert_eq!(
            c.strip_from_url("https://api.example.com/v1/p?API_KEY=SECRET&page=2#top")
                .as_deref(),
            Some("https://api.example.com/v1/p?page=2#top")
        );
        assert_eq!(
            c.strip_from_url("/p?api_key=SECRET#f").as_deref(),
            Some("/p#f")
        );
        assert_eq!(c.strip_from_url("/p?page=2"), None);
        assert_eq!(c.strip_from_url("/p#api_key=x"), None);
    }
}
