//! Path handling: `proxy::route_request` on a request built from arbitrary bytes, then
//! `proxy::clean_and_inject` for the source it names, checking what the routing design
//! promises about the URI that would be forwarded.
//!
//! Input: one flags byte (bit 0: HTTP/2), then the request target, which must parse as an
//! `http::Uri`.
#![no_main]

use std::future::Future as _;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};

use credproxy::auth::oauth2::{TokenClient, TokenClientSettings};
use credproxy::config::{load_bytes, LoadOptions};
use credproxy::live::{self, Snapshot};
use credproxy::proxy::{clean_and_inject, route_request, ClientSettings, UpstreamClient};
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

static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(|| {
    let spec = load_bytes(
        Path::new("fuzz/route.yaml"),
        CONFIG.as_bytes(),
        LoadOptions::default(),
    )
    .expect("the route target's config loads");
    live::build(spec, None)
});

/// Never asked for a token: every source here is static.
static TOKENS: LazyLock<TokenClient> = LazyLock::new(|| {
    let client = UpstreamClient::new(ClientSettings::default()).expect("client");
    TokenClient::new(client.http().clone(), client.settings(), TokenClientSettings::default())
});

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// Whether any segment of `path`, fully percent-decoded and split on `/` and `\`, is `.`
/// or `..`, with or without `;` parameters: what an upstream that decodes and normalises
/// would step on.
fn has_dot_segment(path: &str) -> bool {
    let decoded: Vec<u8> = percent_decode(path.as_bytes()).collect();
    decoded.split(|&b| b == b'/' || b == b'\\').any(|s| {
        let s = s.split(|&b| b == b';').next().unwrap_or(s);
        s == b"." || s == b".."
    })
}

/// The name of one `name=value` pair as upstreams may read it (see `auth::query`).
fn read_name(pair: &str) -> String {
    let name = form_urlencoded::parse(pair.as_bytes())
        .next()
        .map(|(name, _)| name.into_owned())
        .unwrap_or_default();
    let name = name.split('[').next().unwrap_or("");
    name.to_ascii_lowercase().replace(['.', ' '], "_")
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
    let Ok(request) = Request::builder()
        .version(version)
        .uri(uri)
        .header("host", "127.0.0.1:8080")
        .body(())
    else {
        return;
    };
    let uri = request.uri().clone();
    let path = uri.path();

    // The model for HTTP/1: a target with an authority is local or refused.
    let local_authority = uri.authority().is_none_or(|a| {
        let host = a.host().trim_start_matches('[').trim_end_matches(']');
        a.port_u16() == Some(8080)
            && (host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1")
    });

    let routed = match route_request(&SNAPSHOT, &request, local()) {
        Err(e) => {
            // Never refuse a plain origin-form path without dot segments whose id decodes
            // to a configured source, unless the upstream target would start with `//`.
            let known = path.strip_prefix('/').and_then(|p| {
                let raw_id = p.split('/').next().unwrap_or("");
                let id = percent_decode(raw_id.as_bytes()).decode_utf8().ok()?;
                let source = SNAPSHOT.source(&id)?;
                let rest = &p[raw_id.len()..];
                Some(!(source.upstream.base_path.is_empty() && rest.starts_with("//")))
            });
            assert!(
                !(uri.authority().is_none() && !has_dot_segment(path) && known == Some(true)),
                "refused a plain path {path:?}: {e:?}"
            );
            return;
        }
        Ok(routed) => routed,
    };

    // Accepted: a path, no dot segment in any decoded form, split without losing a byte.
    assert!(path.starts_with('/'), "accepted a non-path target {uri}");
    assert!(!has_dot_segment(path), "accepted a dot segment: {path:?}");
    if version != Version::HTTP_2 {
        assert!(local_authority, "accepted a foreign authority: {uri}");
    }
    let rest = &path[routed.rest_start..];
    assert!(
        rest.is_empty() || rest.starts_with('/'),
        "rest {rest:?} of {path:?}"
    );
    let raw_id = &path[1..routed.rest_start];
    assert!(!raw_id.contains('/'), "id {raw_id:?} of {path:?}");
    assert_eq!(
        percent_decode(raw_id.as_bytes())
            .decode_utf8()
            .ok()
            .as_deref(),
        Some(&*routed.source.id)
    );

    let source = routed.source;
    let (mut parts, ()) = request.into_parts();
    let result = {
        let injected = pin!(clean_and_inject(
            &source,
            routed.rest_start,
            &mut parts,
            &TOKENS
        ));
        match injected.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => result.map(drop),
            Poll::Pending => panic!("a static source waited"),
        }
    };
    if let Err(e) = result {
        panic!("injection refused an accepted target {uri}: {e:?}");
    }
    let forwarded = parts.uri;
    let upstream = &source.upstream;

    // Scheme, host and port come from the config only.
    assert_eq!(forwarded.scheme(), Some(&upstream.scheme), "{forwarded}");
    assert_eq!(
        forwarded.authority().map(|a| a.as_str()),
        Some(upstream.authority.as_str()),
        "{forwarded}"
    );
    // The path is the base path, then the rest byte for byte, never starting with `//`.
    let fpath = forwarded.path();
    let expected_path = format!("{}{rest}", upstream.base_path);
    if expected_path.is_empty() {
        assert_eq!(fpath, "/");
    } else {
        assert_eq!(fpath, expected_path);
    }
    assert!(!fpath.starts_with("//"), "{forwarded}");
    assert!(
        !has_dot_segment(fpath),
        "forwarded a dot segment: {forwarded}"
    );

    match source.credentials.query() {
        None => assert_eq!(forwarded.query(), uri.query(), "{forwarded}"),
        Some(_) => {
            let query = forwarded
                .query()
                .expect("a query credential writes a query");
            let (key_pair, others) = query.split_once('&').unwrap_or((query, ""));
            let key: Vec<(String, String)> = form_urlencoded::parse(key_pair.as_bytes())
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(
                key,
                [(KEY_NAME.to_owned(), KEY_VALUE.to_owned())],
                "{query:?}"
            );
            // No other parameter an upstream could read as the key.
            for pair in others.split(['&', ';']) {
                assert_ne!(read_name(pair), KEY_NAME, "{query:?}");
            }
        }
    }

    // What the upstream client writes on the wire parses back to the same URI.
    let text = forwarded.to_string();
    let reparsed: Uri = text.parse().expect("the forwarded URI re-parses");
    assert_eq!(reparsed, forwarded, "{text}");
});
