use super::*;

fn local() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("addr")
}

fn request(uri: &str) -> Request<()> {
    Request::builder()
        .uri(uri)
        .header("host", "127.0.0.1:8080")
        .body(())
        .expect("request")
}

#[test]
fn splits_source_and_rest() {
    let req = request("/github/repos/a%2Fb?x=1&y");
    let t = target(&req, local()).expect("routes");
    assert_eq!(t.source_id, "github");
    assert_eq!(t.rest, "/repos/a%2Fb");
    assert_eq!(&req.uri().path()[t.rest_start..], "/repos/a%2Fb");

    let req = request("/my%20source");
    let t = target(&req, local()).expect("routes");
    assert_eq!((t.source_id.as_ref(), t.rest), ("my source", ""));
    assert_eq!(t.rest_start, "/my%20source".len());
}

#[test]
fn refuses_dot_segments_raw_encoded_and_with_parameters() {
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
        "/src/..;/x",
        "/src/.;/x",
        "/src/%2e%2e;x=1/y",
        "/src/..%3Bx/y",
        "/src/.;jsessionid=1",
        "/..;/x",
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
        "/src/...;x",
        "/src/a;..",
    ] {
        assert!(target(&request(path), local()).is_ok(), "{path}");
    }
}

#[test]
fn an_upstream_target_never_starts_with_two_slashes() {
    assert!(matches!(
        check_rest("", "//evil.example/x"),
        Err(ProxyError::BadRequest(_))
    ));
    assert!(check_rest("", "/a//b").is_ok());
    assert!(
        check_rest("/v1", "//x").is_ok(),
        "/v1//x does not start with //"
    );
    assert!(check_rest("", "").is_ok());
}

#[test]
fn echoing_and_tunnelling_methods_are_refused() {
    for method in ["TRACE", "TRACK", "track", "CONNECT"] {
        let req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri("/src/x")
            .header("host", "a")
            .body(())
            .expect("request");
        assert!(
            matches!(target(&req, local()), Err(ProxyError::MethodNotAllowed)),
            "{method}"
        );
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
