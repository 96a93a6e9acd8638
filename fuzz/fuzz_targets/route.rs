//! Path handling: `proxy::route::target` on a request built from arbitrary bytes, then
//! `proxy::route::upstream_uri` for the source it names (or a fixed one), checking what
//! the routing design promises.
//!
//! Input: one flags byte (bit 0: HTTP/2; bits 1-2: the source to forward to when the id
//! names none), then the request target, which must parse as an `http::Uri`.
#![no_main]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use credproxy::config::{load_bytes, LoadOptions, Snapshot, Source};
use credproxy::proxy::route::{target, upstream_uri};
use http::{Request, Uri, Version};
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode;

const CONFIG: &str = r#"
sources:
  bearer:
    upstream: https://api.example.com/v1/
    auth_type: bearer
    bearer_token: t0ken
  query:
    upstream: http://127.0.0.1:9/base/path
    auth_type: api_key
    api_key_name: api_key
    api_key_value: "s3cr&t=v 1"
    api_key_in: query
  root:
    upstream: https://root.example.com:8443
    auth_type: none
"#;

const KEY_NAME: &str = "api_key";
const KEY_VALUE: &str = "s3cr&t=v 1";
const FALLBACK: [&str; 4] = ["bearer", "query", "root", "bearer"];

static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(|| {
    load_bytes(
        Path::new("fuzz/route.yaml"),
        CONFIG.as_bytes(),
        LoadOptions::default(),
    )
    .expect("the route target's config loads")
});

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// Whether any segment of `path`, fully percent-decoded and split on `/` and `\`, is `.`
/// or `..`: what an upstream that decodes and normalises would step on.
fn has_dot_segment(path: &str) -> bool {
    let decoded: Vec<u8> = percent_decode(path.as_bytes()).collect();
    decoded
        .split(|&b| b == b'/' || b == b'\\')
        .any(|s| s == b"." || s == b"..")
}

/// The form-decoded name of one `name=value` pair.
fn pair_name(pair: &str) -> String {
    form_urlencoded::parse(pair.as_bytes())
        .next()
        .map(|(name, _)| name.into_owned())
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(uri) = Uri::try_from(rest) else {
        return;
    };
    let version = if flags & 1 == 1 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let Ok(request) = Request::builder().version(version).uri(uri).body(()) else {
        return;
    };
    let uri = request.uri();
    let path = uri.path();

    let routed = target(&request, local());

    // The model for HTTP/1: a target with an authority is local or refused.
    let local_authority = uri.authority().is_none_or(|a| {
        let host = a.host().trim_start_matches('[').trim_end_matches(']');
        a.port_u16() == Some(8080)
            && (host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1")
    });

    let t = match routed {
        Err(e) => {
            // Never refuse a plain origin-form path without dot segments whose id decodes.
            let id_utf8 = path.strip_prefix('/').is_some_and(|p| {
                let raw_id = p.split('/').next().unwrap_or("");
                percent_decode(raw_id.as_bytes()).decode_utf8().is_ok()
            });
            assert!(
                !(uri.authority().is_none()
                    && path.starts_with('/')
                    && !has_dot_segment(path)
                    && id_utf8),
                "refused a plain path {path:?}: {e:?}"
            );
            return;
        }
        Ok(t) => t,
    };

    // Accepted: a path, no dot segment in any decoded form, split without losing a byte.
    assert!(path.starts_with('/'), "accepted a non-path target {uri}");
    assert!(!has_dot_segment(path), "accepted a dot segment: {path:?}");
    if version != Version::HTTP_2 {
        assert!(local_authority, "accepted a foreign authority: {uri}");
    }
    assert!(
        t.rest.is_empty() || t.rest.starts_with('/'),
        "rest {:?} of {path:?}",
        t.rest
    );
    let raw_id = &path[1..path.len() - t.rest.len()];
    assert_eq!(format!("/{raw_id}{}", t.rest), path);
    assert!(!raw_id.contains('/'), "id {raw_id:?} of {path:?}");
    assert_eq!(
        percent_decode(raw_id.as_bytes())
            .decode_utf8()
            .ok()
            .as_deref(),
        Some(t.source_id.as_ref())
    );
    assert_eq!(t.query, uri.query());

    let source: Arc<Source> = SNAPSHOT
        .source(&t.source_id)
        .or_else(|| SNAPSHOT.source(FALLBACK[usize::from(flags >> 1) & 3]))
        .cloned()
        .expect("fallback source exists");
    let upstream = &source.upstream;
    let credential = source.credentials.query();

    let forwarded = match upstream_uri(upstream, t.rest, t.query, credential) {
        Ok(forwarded) => forwarded,
        Err(e) => panic!("upstream_uri refused an accepted target {uri}: {e:?}"),
    };

    // Scheme, host and port come from the config only.
    assert_eq!(forwarded.scheme(), Some(&upstream.scheme), "{forwarded}");
    assert_eq!(
        forwarded.authority().map(|a| a.as_str()),
        Some(upstream.authority.as_str()),
        "{forwarded}"
    );
    // The path is the base path, then the rest byte for byte.
    let fpath = forwarded.path();
    assert!(fpath.starts_with(&*upstream.base_path), "{forwarded}");
    let expected_path = format!("{}{}", upstream.base_path, t.rest);
    if expected_path.is_empty() {
        assert_eq!(fpath, "/");
    } else {
        assert_eq!(fpath, expected_path);
    }
    assert!(
        !has_dot_segment(fpath),
        "forwarded a dot segment: {forwarded}"
    );

    match credential {
        None => assert_eq!(forwarded.query(), t.query, "{forwarded}"),
        Some(_) => {
            let query = forwarded
                .query()
                .expect("a query credential writes a query");
            let keys: Vec<String> = form_urlencoded::parse(query.as_bytes())
                .filter(|(name, _)| name == KEY_NAME)
                .map(|(_, value)| value.into_owned())
                .collect();
            assert_eq!(keys, [KEY_VALUE], "key parameters in {query:?}");
            // Every other parameter keeps its bytes and order; the key goes last.
            let mut expected: Vec<&str> = t
                .query
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty() && pair_name(p) != KEY_NAME)
                .collect();
            let key_pair = query.rsplit('&').next().unwrap_or("");
            assert_eq!(pair_name(key_pair), KEY_NAME, "{query:?}");
            expected.push(key_pair);
            assert_eq!(query, expected.join("&"), "from {:?}", t.query);
        }
    }

    // What the upstream client writes on the wire parses back to the same URI.
    let text = forwarded.to_string();
    let reparsed: Uri = text.parse().expect("the forwarded URI re-parses");
    assert_eq!(reparsed, forwarded, "{text}");
    assert_eq!(
        reparsed.path_and_query().map(|p| p.as_str()),
        forwarded.path_and_query().map(|p| p.as_str())
    );
});
