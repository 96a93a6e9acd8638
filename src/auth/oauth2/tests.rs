use super::*;
use crate::config::spec::{ExchangeSpec, ACCESS_TOKEN_TYPE};
use http_body_util::BodyExt;

fn settings(client_auth: ClientAuth, exchange: Option<ExchangeSpec>) -> OAuthSpec {
    OAuthSpec {
        token_url: "http://idp.test/oauth/token".parse().expect("uri"),
        client_id: "my client".into(),
        client_secret: Secret::new("s3cr:t&"),
        client_auth,
        scopes: vec!["a.read".into(), "b".into()],
        audience: Some("aud".into()),
        exchange,
    }
}

async fn form_of(request: Request<Full<Bytes>>) -> Vec<(String, String)> {
    let body = request
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    form_urlencoded::parse(&body).into_owned().collect()
}

#[tokio::test]
async fn client_credentials_with_basic_auth() {
    let request = build_request(&settings(ClientAuth::Basic, None), None);
    let basic = request.headers()[AUTHORIZATION]
        .to_str()
        .expect("ascii")
        .to_owned();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim_start_matches("Basic "))
        .expect("base64");
    assert_eq!(decoded, b"my+client:s3cr%3At%26");
    assert!(request.headers()[AUTHORIZATION].is_sensitive());
    assert_eq!(
        form_of(request).await,
        [
            ("grant_type", "client_credentials"),
            ("audience", "aud"),
            ("scope", "a.read b")
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
}

#[tokio::test]
async fn client_credentials_with_post_auth() {
    let request = build_request(&settings(ClientAuth::Post, None), None);
    assert!(request.headers().get(AUTHORIZATION).is_none());
    let form = form_of(request).await;
    assert!(form.contains(&("client_id".into(), "my client".into())));
    assert!(form.contains(&("client_secret".into(), "s3cr:t&".into())));
}

#[tokio::test]
async fn token_exchange_form() {
    let exchange = ExchangeSpec {
        audience: Some("orders".into()),
        resource: Some("https://orders.test".into()),
        subject_token_type: ACCESS_TOKEN_TYPE.into(),
        requested_token_type: Some("urn:ietf:params:oauth:token-type:jwt".into()),
        subject_token: None,
        actor_token: Some(Secret::new("actor")),
        actor_token_type: ACCESS_TOKEN_TYPE.into(),
    };
    let request = build_request(
        &settings(ClientAuth::Basic, Some(exchange)),
        Some(&Secret::new("subject")),
    );
    let form = form_of(request).await;
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("grant_type"), Some(TOKEN_EXCHANGE_GRANT));
    assert_eq!(get("subject_token"), Some("subject"));
    assert_eq!(get("subject_token_type"), Some(ACCESS_TOKEN_TYPE));
    assert_eq!(get("audience"), Some("orders"));
    assert_eq!(get("resource"), Some("https://orders.test"));
    assert_eq!(
        get("requested_token_type"),
        Some("urn:ietf:params:oauth:token-type:jwt")
    );
    assert_eq!(get("actor_token"), Some("actor"));
    assert_eq!(get("scope"), Some("a.read b"));
}

#[test]
fn parses_success_in_its_variants() {
    let default = Duration::from_secs(300);
    let ok = |body: &str| parse_response(StatusCode::OK, body.as_bytes(), default);
    let t = ok(r#"{"access_token":"x","token_type":"Bearer","expires_in":3600}"#).expect("token");
    assert_eq!(
        (t.access_token.expose(), t.lifetime),
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
            oauth_error: Some("invalid_client".into())
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
            oauth_error: None
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
