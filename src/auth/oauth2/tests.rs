use super::*;

#[test]
fn parses_success_in_its_variants() {
    let default = Duration::from_secs(300);
    let ok = |body: &str| parse_response(StatusCode::OK, body.as_bytes(), default);
    let t = ok(r#"{"access_token":"x","token_type":"Bearer","expires_in":3600}"#).expect("token");
    assert_eq!(
        (t.value.expose(), t.lifetime),
        ("x", Duration::from_secs(3600))
    );
    assert_eq!(
        ok(r#"{"access_token":"x","expires_in":"3599"}"#)
            .expect("string")
            .lifetime,
        Duration::from_secs(3599)
    );
    assert_eq!(
        ok(r#"{"access_token":"x"}"#).expect("no expiry").lifetime,
        default
    );
    let created = parse_response(StatusCode::CREATED, br#"{"access_token":"x"}"#, default);
    assert!(created.is_ok(), "any 2xx is a success");
    for bad in [
        r#"{"expires_in":3}"#,
        "not json",
        r#"{"access_token":""}"#,
        r#"{"access_token":"x","expires_in":-1}"#,
    ] {
        assert_eq!(
            ok(bad).map(|_| ()),
            Err(TokenError::InvalidResponse { status: 200 }),
            "{bad}"
        );
    }
}

#[test]
fn errors_carry_status_and_a_plausible_code_only() {
    let default = Duration::from_secs(1);
    let err = parse_response(
        StatusCode::UNAUTHORIZED,
        br#"{"error":"invalid_client"}"#,
        default,
    )
    .map(|_| ());
    assert_eq!(
        err,
        Err(TokenError::Refused {
            status: 401,
            error: Some("invalid_client".into())
        })
    );
    let err = parse_response(
        StatusCode::BAD_REQUEST,
        br#"{"error":"<script>secret token x</script>"}"#,
        default,
    );
    assert_eq!(
        err.map(|_| ()),
        Err(TokenError::Refused {
            status: 400,
            error: None
        })
    );
    let err = parse_response(
        StatusCode::BAD_REQUEST,
        br#"{"error":"invalid_grant"}"#,
        default,
    )
    .map(|_| ());
    assert!(err.expect_err("refused").is_subject_rejected());
}
