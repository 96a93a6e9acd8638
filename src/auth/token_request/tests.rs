use std::path::PathBuf;
use std::sync::Arc;

use http_body_util::BodyExt;

use super::*;
use crate::config::spec::{ExchangeSpec, LiveSecret, ACCESS_TOKEN_TYPE};
use crate::jws::SigningKey;

fn settings(client_auth: ClientAuth, grant: Grant) -> OAuthSpec {
    OAuthSpec {
        token_url: "http://idp.test/oauth/token".parse().expect("uri"),
        grant,
        client_id: Some("my client".into()),
        client_auth,
        scopes: vec!["a.read".into(), "b".into()],
        audience: Some("aud".into()),
        resources: Vec::new(),
        extra_params: Vec::new(),
        assertion_audience: None,
        token_tls: None,
    }
}

fn basic() -> ClientAuth {
    ClientAuth::Basic(Secret::new("s3cr:t&"))
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

fn get<'f>(form: &'f [(String, String)], key: &str) -> Option<&'f str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The claims of a compact JWS, and its header's `alg`/`kid`.
fn jwt(token: &str) -> (serde_json::Value, serde_json::Value) {
    let decode = |part: &str| {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .expect("base64url");
        serde_json::from_slice::<serde_json::Value>(&bytes).expect("json")
    };
    let mut parts = token.split('.');
    let header = decode(parts.next().expect("header"));
    let claims = decode(parts.next().expect("claims"));
    (header, claims)
}

fn ec_key() -> Arc<SigningKey> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    Arc::new(SigningKey::from_pem(&pair.serialize_pem()).expect("key"))
}

#[tokio::test]
async fn client_credentials_with_basic_auth() {
    let request =
        build_request(&settings(basic(), Grant::ClientCredentials), None).expect("request");
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
    let post = ClientAuth::Post(Secret::new("s3cr:t&"));
    let request = build_request(&settings(post, Grant::ClientCredentials), None).expect("request");
    assert!(request.headers().get(AUTHORIZATION).is_none());
    let form = form_of(request).await;
    assert_eq!(get(&form, "client_id"), Some("my client"));
    assert_eq!(get(&form, "client_secret"), Some("s3cr:t&"));
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
        &settings(basic(), Grant::TokenExchange(exchange)),
        Some(&Secret::new("subject")),
    )
    .expect("request");
    let form = form_of(request).await;
    assert_eq!(get(&form, "grant_type"), Some(TOKEN_EXCHANGE_GRANT));
    assert_eq!(get(&form, "subject_token"), Some("subject"));
    assert_eq!(get(&form, "subject_token_type"), Some(ACCESS_TOKEN_TYPE));
    assert_eq!(get(&form, "audience"), Some("orders"));
    assert_eq!(get(&form, "resource"), Some("https://orders.test"));
    assert_eq!(
        get(&form, "requested_token_type"),
        Some("urn:ietf:params:oauth:token-type:jwt")
    );
    assert_eq!(get(&form, "actor_token"), Some("actor"));
    assert_eq!(get(&form, "scope"), Some("a.read b"));
}

#[tokio::test]
async fn client_assertions_carry_fresh_rfc7523_claims() {
    let key = ec_key();
    let auth = ClientAuth::PrivateKeyJwt(SignedBy {
        key: Arc::clone(&key),
        kid: Some("k1".into()),
    });
    let oauth = settings(auth, Grant::ClientCredentials);
    let first = form_of(build_request(&oauth, None).expect("request")).await;
    let second = form_of(build_request(&oauth, None).expect("request")).await;
    assert_eq!(
        get(&first, "client_assertion_type"),
        Some(JWT_BEARER_CLIENT_ASSERTION)
    );
    assert_eq!(get(&first, "client_id"), Some("my client"));
    let (header, claims) = jwt(get(&first, "client_assertion").expect("assertion"));
    assert_eq!(
        header,
        serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": "k1" })
    );
    assert_eq!(claims["iss"], "my client");
    assert_eq!(claims["sub"], "my client");
    assert_eq!(claims["aud"], "http://idp.test/oauth/token");
    let (iat, exp) = (
        claims["iat"].as_u64().expect("iat"),
        claims["exp"].as_u64().expect("exp"),
    );
    assert_eq!(exp - iat, 60);
    assert!(claims["jti"].as_str().expect("jti").len() >= 22);
    let (_, again) = jwt(get(&second, "client_assertion").expect("assertion"));
    assert_ne!(
        claims["jti"], again["jti"],
        "a new jti for every token request"
    );

    let mut oauth = settings(
        ClientAuth::SecretJwt(Secret::new("shared")),
        Grant::ClientCredentials,
    );
    oauth.assertion_audience = Some("https://idp.test".into());
    let form = form_of(build_request(&oauth, None).expect("request")).await;
    let (header, claims) = jwt(get(&form, "client_assertion").expect("assertion"));
    assert_eq!(header["alg"], "HS256");
    assert_eq!(claims["aud"], "https://idp.test");
}

#[tokio::test]
async fn a_ready_made_assertion_is_read_for_each_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("token");
    std::fs::write(&path, "first.jwt\n").expect("write");
    let oauth = settings(
        ClientAuth::Assertion(LiveSecret::File(path.clone())),
        Grant::ClientCredentials,
    );
    let form = form_of(build_request(&oauth, None).expect("request")).await;
    assert_eq!(get(&form, "client_assertion"), Some("first.jwt"));
    std::fs::write(&path, "second.jwt\n").expect("rotate");
    let form = form_of(build_request(&oauth, None).expect("request")).await;
    assert_eq!(get(&form, "client_assertion"), Some("second.jwt"));
    std::fs::remove_file(&path).expect("remove");
    let error = build_request(&oauth, None).expect_err("gone");
    assert!(matches!(error, TokenError::Request(_)), "{error:?}");
}

#[tokio::test]
async fn resources_and_extra_params_are_sent_and_public_clients_send_their_id() {
    let mut oauth = settings(ClientAuth::None, Grant::ClientCredentials);
    oauth.resources = vec!["https://a.test".into(), "https://b.test/api".into()];
    oauth.extra_params = vec![("tenant".into(), Secret::new("t-1"))];
    let form = form_of(build_request(&oauth, None).expect("request")).await;
    let resources: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "resource")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(resources, ["https://a.test", "https://b.test/api"]);
    assert_eq!(get(&form, "tenant"), Some("t-1"));
    assert_eq!(get(&form, "client_id"), Some("my client"));
    assert_eq!(get(&form, "client_secret"), None);
}

#[tokio::test]
async fn a_jwt_bearer_grant_signs_its_assertion() {
    let mut claims = serde_json::Map::new();
    claims.insert("scope".into(), "x y".into());
    let assertion = SignedAssertion {
        signed_by: SignedBy {
            key: ec_key(),
            kid: None,
        },
        issuer: "robot@example".into(),
        subject: None,
        claims,
        lifetime_secs: 3600,
        jti: false,
    };
    let mut oauth = settings(
        ClientAuth::None,
        Grant::JwtBearer(GrantAssertion::Signed(Box::new(assertion))),
    );
    oauth.client_id = None;
    oauth.scopes = Vec::new();
    oauth.audience = None;
    oauth.assertion_audience = Some("https://oauth2.example/token".into());
    let form = form_of(build_request(&oauth, None).expect("request")).await;
    assert_eq!(get(&form, "grant_type"), Some(JWT_BEARER_GRANT));
    assert_eq!(get(&form, "client_id"), None);
    let (_, claims) = jwt(get(&form, "assertion").expect("assertion"));
    let mut names: Vec<&str> = claims
        .as_object()
        .expect("claims")
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    // Google's documented claims, nothing more.
    assert_eq!(names, ["aud", "exp", "iat", "iss", "scope"]);
    assert_eq!(claims["aud"], "https://oauth2.example/token");
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        3600
    );
}
