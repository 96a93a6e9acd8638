use super::*;
use crate::auth::Credentials;
use crate::secret::Secret;

fn local() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("addr")
}

fn request(uri: &str) -> Request<()> {
    Request::builder().uri(uri).body(()).expect("request")
}

fn upstream(url: &str) -> Upstream {
    let uri: Uri = url.parse().expect("uri");
    Upstream {
        scheme: uri.scheme().cloned().expect("scheme"),
        authority: uri.authority().cloned().expect("authority"),
        base_path: uri.path().trim_end_matches('/').into(),
    }
}

#[test]
fn splits_source_rest_and_query() {
    let req = request("/github/repos/a%2Fb?x=1&y");
    let t = target(&req, local()).expect("routes");
    assert_eq!(t.source_id, "github");
    assert_eq!(t.rest, "/repos/a%2Fb");
    assert_eq!(t.query, Some("x=1&y"));

    let req = request("/my%20source");
    let t = target(&req, local()).expect("routes");
    assert_eq!(
        (t.source_id.as_ref(), t.rest, t.query),
        ("my source", "", None)
    );
}

#[test]
fn refuses_dot_segments_raw_and_encoded() {
    for path in [
        "/src/../etc",
        "/src/./x",
        "/src/a/..",
        "/src/%2e%2e/x",
        "/src/%2E./x",
        "/src/.%2e",
        "/src/..%2Fx",
        "/src/x%2F..%2Fy",
        "/src/..%5Cx",
        "/../x",
        "/%2e%2e",
    ] {
        let err = target(&request(path), local()).expect_err(path);
        assert!(matches!(err, ProxyError::BadRequest(_)), "{path}: {err:?}");
    }
    for path in [
        "/src/...",
        "/src/.hidden",
        "/src/a..b",
        "/src/%2e%2e%2e",
        "/src/%252e%252e",
    ] {
        assert!(target(&request(path), local()).is_ok(), "{path}");
    }
}

#[test]
fn absolute_form_must_name_the_proxy() {
    assert!(target(&request("http://127.0.0.1:8080/src/x"), local()).is_ok());
    assert!(target(&request("http://localhost:8080/src/x"), local()).is_ok());
    for uri in [
        "http://evil.example/src/x",
        "http://127.0.0.1:9999/src/x",
        "http://10.0.0.1:8080/x",
    ] {
        let err = target(&request(uri), local()).expect_err(uri);
        assert!(matches!(err, ProxyError::BadRequest(_)));
    }
}

#[test]
fn joins_with_exactly_one_slash() {
    for (base, rest, want) in [
        (
            "https://api.example.com/v1",
            "/pets",
            "https://api.example.com/v1/pets",
        ),
        (
            "https://api.example.com/v1/",
            "/pets",
            "https://api.example.com/v1/pets",
        ),
        (
            "https://api.example.com/v1",
            "",
            "https://api.example.com/v1",
        ),
        ("https://api.example.com", "", "https://api.example.com/"),
        ("https://api.example.com/", "/", "https://api.example.com/"),
        ("http://127.0.0.1:9/", "/a%2Fb", "http://127.0.0.1:9/a%2Fb"),
    ] {
        let uri = upstream_uri(&upstream(base), rest, None, None).expect("uri");
        assert_eq!(uri.to_string(), want, "{base} + {rest}");
    }
}

#[test]
fn query_passes_through_or_gets_the_key() {
    let up = upstream("https://api.example.com/v1");
    let uri = upstream_uri(&up, "/pets", Some("limit=1&q=%20"), None).expect("uri");
    assert_eq!(
        uri.to_string(),
        "https://api.example.com/v1/pets?limit=1&q=%20"
    );

    let key = Credentials::api_key_query("key", &Secret::new("k")).expect("credential");
    let uri = upstream_uri(&up, "/pets", Some("key=mine&limit=1"), key.query()).expect("uri");
    assert_eq!(
        uri.to_string(),
        "https://api.example.com/v1/pets?limit=1&key=k"
    );
}
