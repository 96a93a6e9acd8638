use super::*;
use crate::config::spec::QueryKey;

fn upstream(url: &str) -> Upstream {
    let uri: Uri = url.parse().expect("uri");
    Upstream {
        scheme: uri.scheme().cloned().expect("scheme"),
        authority: uri.authority().cloned().expect("authority"),
        base_path: uri.path().trim_end_matches('/').into(),
    }
}

/// The upstream URI for an inbound `/src{rest}?{query}`.
fn joined(base: &str, inbound: &str, key: Option<&QueryCredential>) -> String {
    let inbound: Uri = inbound.parse().expect("inbound");
    upstream_uri(&upstream(base), &inbound, "/src".len(), key)
        .expect("uri")
        .to_string()
}

#[test]
fn joins_with_exactly_one_slash() {
    for (base, inbound, want) in [
        (
            "https://api.example.com/v1",
            "/src/pets",
            "https://api.example.com/v1/pets",
        ),
        (
            "https://api.example.com/v1/",
            "/src/pets",
            "https://api.example.com/v1/pets",
        ),
        (
            "https://api.example.com/v1",
            "/src",
            "https://api.example.com/v1",
        ),
        (
            "https://api.example.com",
            "/src",
            "https://api.example.com/",
        ),
        (
            "https://api.example.com/",
            "/src/",
            "https://api.example.com/",
        ),
        (
            "http://127.0.0.1:9/",
            "/src/a%2Fb",
            "http://127.0.0.1:9/a%2Fb",
        ),
    ] {
        assert_eq!(joined(base, inbound, None), want, "{base} + {inbound}");
    }
}

#[test]
fn query_passes_through_or_gets_the_key_first() {
    let base = "https://api.example.com/v1";
    assert_eq!(
        joined(base, "/src/pets?limit=1&q=%20", None),
        "https://api.example.com/v1/pets?limit=1&q=%20"
    );
    let key = QueryCredential::new(&QueryKey {
        name: "key".into(),
        value: Secret::new("k"),
    });
    assert_eq!(
        joined(base, "/src/pets?key=mine&limit=1", Some(&key)),
        "https://api.example.com/v1/pets?key=k&limit=1"
    );
    assert_eq!(
        joined(base, "/src/pets", Some(&key)),
        "https://api.example.com/v1/pets?key=k"
    );
}

#[test]
fn needles_hold_the_secrets_and_their_encoded_forms() {
    let basic = Credentials::Header {
        name: http::header::AUTHORIZATION,
        value: HeaderValue::from_static("Basic dXNlcjpwYXNz"),
    };
    let needles = response_needles(&basic, vec![Secret::new("pass"), Secret::new("pass")]);
    let texts: Vec<&str> = needles.iter().map(Secret::expose).collect();
    assert_eq!(texts, ["dXNlcjpwYXNz", "pass"]);
    let query = Credentials::Query(QueryCredential::new(&QueryKey {
        name: "k".into(),
        value: Secret::new("a b&c"),
    }));
    let needles = response_needles(&query, vec![Secret::new("a b&c")]);
    let texts: Vec<&str> = needles.iter().map(Secret::expose).collect();
    assert_eq!(texts, ["a b&c", "a%20b%26c"]);
}
