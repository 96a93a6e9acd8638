//! The form POST of a token request: the grant (client_credentials, RFC 8693 token
//! exchange, RFC 7523 JWT bearer), what is asked for, and the client's authentication,
//! with a fresh assertion (new `jti`, `iat` now) for each request that needs one.

use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request};
use http_body_util::Full;
use zeroize::Zeroizing;

use super::lifetime::unix_now;
use super::token_client::TokenError;
use crate::config::spec::{
    ClientAuth, Grant, GrantAssertion, OAuthSpec, SignedAssertion, SignedBy,
};
use crate::jws;
use crate::secret::Secret;

const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const JWT_BEARER_CLIENT_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long a client assertion credproxy signs lives (DESIGN §7).
const CLIENT_ASSERTION_LIFETIME_SECS: u64 = 60;

/// The token request for `oauth`; `subject` is the subject token of an exchange.
pub fn build_request(
    oauth: &OAuthSpec,
    subject: Option<&Secret>,
) -> Result<Request<Full<Bytes>>, TokenError> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    grant(oauth, subject, &mut form)?;
    if !oauth.scopes.is_empty() {
        form.append_pair("scope", &oauth.scopes.join(" "));
    }
    for resource in &oauth.resources {
        form.append_pair("resource", resource);
    }
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(oauth.token_url.clone())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json");
    if let Some(value) = client_auth(oauth, &mut form)? {
        builder = builder.header(AUTHORIZATION, value);
    }
    for (name, value) in &oauth.extra_params {
        form.append_pair(name, value.expose());
    }
    let body = Zeroizing::new(form.finish());
    builder
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .map_err(|_| TokenError::Request("the token request is not valid HTTP".into()))
}

type Form = form_urlencoded::Serializer<'static, String>;

fn grant(oauth: &OAuthSpec, subject: Option<&Secret>, form: &mut Form) -> Result<(), TokenError> {
    match &oauth.grant {
        Grant::ClientCredentials => {
            form.append_pair("grant_type", "client_credentials");
            if let Some(audience) = &oauth.audience {
                form.append_pair("audience", audience);
            }
        }
        Grant::TokenExchange(exchange) => {
            form.append_pair("grant_type", TOKEN_EXCHANGE_GRANT);
            if let Some(subject) = exchange.subject_token.as_ref().or(subject) {
                form.append_pair("subject_token", subject.expose());
            }
            form.append_pair("subject_token_type", &exchange.subject_token_type);
            if let Some(audience) = exchange.audience.as_ref().or(oauth.audience.as_ref()) {
                form.append_pair("audience", audience);
            }
            if let Some(resource) = &exchange.resource {
                form.append_pair("resource", resource);
            }
            if let Some(requested) = &exchange.requested_token_type {
                form.append_pair("requested_token_type", requested);
            }
            if let Some(actor) = &exchange.actor_token {
                form.append_pair("actor_token", actor.expose());
                form.append_pair("actor_token_type", &exchange.actor_token_type);
            }
        }
        Grant::JwtBearer(assertion) => {
            form.append_pair("grant_type", JWT_BEARER_GRANT);
            let assertion = match assertion {
                GrantAssertion::Signed(signed) => grant_assertion(oauth, signed)?,
                GrantAssertion::ReadyMade(live) => live.read().map_err(TokenError::Request)?,
            };
            form.append_pair("assertion", assertion.expose());
            if let Some(audience) = &oauth.audience {
                form.append_pair("audience", audience);
            }
        }
    }
    Ok(())
}

/// Writes the client's authentication into `form`, or returns the `Authorization` value
/// it needs (client_secret_basic).
fn client_auth(oauth: &OAuthSpec, form: &mut Form) -> Result<Option<HeaderValue>, TokenError> {
    let client_id = oauth.client_id.as_deref().unwrap_or_default();
    match &oauth.client_auth {
        ClientAuth::Basic(secret) => {
            // RFC 6749 §2.3.1: form-encode id and secret, then Basic.
            let pair = Zeroizing::new(format!(
                "{}:{}",
                form_encode(client_id),
                Zeroizing::new(form_encode(secret.expose())).as_str()
            ));
            let header = Zeroizing::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(&*pair)
            ));
            let mut value = HeaderValue::from_str(&header).map_err(|_| {
                TokenError::Request("the client credentials are not valid in a header".into())
            })?;
            value.set_sensitive(true);
            return Ok(Some(value));
        }
        ClientAuth::Post(secret) => {
            form.append_pair("client_id", client_id);
            form.append_pair("client_secret", secret.expose());
        }
        ClientAuth::SecretJwt(secret) => {
            let assertion = jws::sign_hs256(secret, &client_claims(oauth, client_id)?);
            append_client_assertion(form, client_id, &assertion);
        }
        ClientAuth::PrivateKeyJwt(SignedBy { key, kid }) => {
            let claims = client_claims(oauth, client_id)?;
            let assertion = jws::sign(key, kid.as_deref(), &claims).map_err(sign_error)?;
            append_client_assertion(form, client_id, &assertion);
        }
        ClientAuth::Assertion(live) => {
            let assertion = live.read().map_err(TokenError::Request)?;
            append_client_assertion(form, client_id, &assertion);
        }
        ClientAuth::TlsClientAuth | ClientAuth::None => {
            if !client_id.is_empty() {
                form.append_pair("client_id", client_id);
            }
        }
    }
    Ok(None)
}

fn append_client_assertion(form: &mut Form, client_id: &str, assertion: &Secret) {
    form.append_pair("client_assertion_type", JWT_BEARER_CLIENT_ASSERTION);
    form.append_pair("client_assertion", assertion.expose());
    form.append_pair("client_id", client_id);
}

/// RFC 7523 §3 claims of a client assertion: `iss` = `sub` = the client id.
fn client_claims(oauth: &OAuthSpec, client_id: &str) -> Result<serde_json::Value, TokenError> {
    let now = unix_now();
    Ok(serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience(oauth),
        "jti": jws::random_id().map_err(sign_error)?,
        "iat": now,
        "exp": now + CLIENT_ASSERTION_LIFETIME_SECS,
    }))
}

/// The assertion of a JWT-bearer grant, signed now.
fn grant_assertion(oauth: &OAuthSpec, signed: &SignedAssertion) -> Result<Secret, TokenError> {
    let now = unix_now();
    let mut claims = signed.claims.clone();
    claims.insert("iss".into(), signed.issuer.clone().into());
    if let Some(subject) = &signed.subject {
        claims.insert("sub".into(), subject.clone().into());
    }
    claims.insert("aud".into(), audience(oauth).into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + signed.lifetime_secs).into());
    if signed.jti {
        claims.insert("jti".into(), jws::random_id().map_err(sign_error)?.into());
    }
    let SignedBy { key, kid } = &signed.signed_by;
    jws::sign(key, kid.as_deref(), &claims.into()).map_err(sign_error)
}

fn audience(oauth: &OAuthSpec) -> String {
    oauth
        .assertion_audience
        .clone()
        .unwrap_or_else(|| oauth.token_url.to_string())
}

fn sign_error(error: jws::SignError) -> TokenError {
    TokenError::Request(format!("cannot sign the assertion: {error}"))
}

fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests;
