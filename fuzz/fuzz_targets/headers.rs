//! Header cleaning: `proxy::headers::clean_request` on a header map built from arbitrary
//! name/value pairs. No hop-by-hop header, `Host`, or header named in `Connection` may
//! remain; `Authorization` goes unless it is kept; every other header stays, values and
//! order intact.
#![no_main]

use arbitrary::Arbitrary;
use credproxy::proxy::headers::clean_request;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "host",
];

/// Names the fuzzer can pick by index, so that hop-by-hop headers and `Connection`
/// lists naming them are common.
const KNOWN: [&str; 18] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "host",
    "authorization",
    "Authorization",
    "x-secret-hop",
    "X-Secret-Hop",
    "accept",
    "content-type",
    "x-api-key",
    "cookie",
];

const SEPARATORS: [&str; 4] = [",", ", ", " ,\t", ",,"];

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Raw(Vec<u8>),
    /// A `Connection`-style list of known names.
    Names(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    keep_authorization: bool,
    headers: Vec<(Name, Value)>,
}

fn known(index: u8) -> &'static str {
    KNOWN[usize::from(index) % KNOWN.len()]
}

fn build(input: &Input) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in &input.headers {
        let name = match name {
            Name::Known(i) => HeaderName::from_bytes(known(*i).as_bytes()),
            Name::Raw(bytes) => HeaderName::from_bytes(bytes),
        };
        let value = match value {
            Value::Raw(bytes) => HeaderValue::from_bytes(bytes),
            Value::Names(indices) => {
                let mut list = String::new();
                for &i in indices {
                    if !list.is_empty() {
                        list.push_str(SEPARATORS[usize::from(i >> 6)]);
                    }
                    list.push_str(known(i & 0x3f));
                }
                HeaderValue::from_str(&list)
            }
        };
        if let (Ok(name), Ok(value)) = (name, value) {
            map.append(name, value);
        }
    }
    map
}

/// The headers `Connection` names, read from the values that are visible ASCII.
fn connection_listed(map: &HeaderMap) -> Vec<HeaderName> {
    map.get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect()
}

fuzz_target!(|input: Input| {
    let before = build(&input);
    let mut after = before.clone();
    clean_request(&mut after, input.keep_authorization);

    let mut removed: Vec<HeaderName> = HOP_BY_HOP
        .iter()
        .map(|n| HeaderName::from_static(n))
        .collect();
    if !input.keep_authorization {
        removed.push(http::header::AUTHORIZATION);
    }
    removed.extend(connection_listed(&before));

    for name in &removed {
        assert!(
            !after.contains_key(name),
            "{name} survived (keep_authorization {}): {after:?}",
            input.keep_authorization
        );
    }
    for name in after.keys() {
        assert!(before.contains_key(name), "{name} appeared");
    }
    for name in before.keys() {
        if removed.contains(name) {
            continue;
        }
        let was: Vec<&HeaderValue> = before.get_all(name).iter().collect();
        let is: Vec<&HeaderValue> = after.get_all(name).iter().collect();
        assert_eq!(was, is, "{name} changed");
    }
});
