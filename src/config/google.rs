//! `google_service_account`: Google's OAuth 2.0 server-to-server flow from the service
//! account's JSON key alone: credproxy signs the documented JWT grant and posts it to the
//! key's `token_uri`.

use std::sync::Arc;

use serde::Deserialize;

use super::credential::CredentialReader;
use super::spec::{ClientAuth, Grant, GrantAssertion, OAuthSpec, SignedAssertion, SignedBy};
use super::tls;
use super::url::parse_http_url;
use crate::jws::SigningKey;
use crate::secret::Secret;

impl CredentialReader<'_, '_, '_> {
    /// Google's JWT grant, from the service account's JSON key alone.
    pub(super) fn google(&mut self) -> Option<OAuthSpec> {
        #[derive(Deserialize)]
        struct Key {
            #[serde(rename = "type")]
            kind: Option<String>,
            client_email: String,
            private_key: Secret,
            private_key_id: Option<String>,
            token_uri: String,
        }
        let json = self.secret("google_service_account_key");
        let override_url = self.url("oauth2_token_url");
        let scopes = self.scopes();
        let token_tls = tls::profile(
            self.fields,
            self.resolver,
            self.problems,
            &tls::TOKEN_ENDPOINT,
        );
        let field = "google_service_account_key";
        let key: Key = match serde_json::from_str::<Key>(json?.expose()) {
            Ok(key)
                if key
                    .kind
                    .as_deref()
                    .is_none_or(|kind| kind == "service_account") =>
            {
                key
            }
            // serde's messages may quote the text: never passed on.
            _ => {
                let message = "is not a Google service-account JSON key (type service_account, \
                               with client_email, private_key and token_uri)";
                self.fields.report(self.problems, field, message);
                return None;
            }
        };
        let signing_key = match SigningKey::from_pem(key.private_key.expose()) {
            Ok(signing_key) => signing_key,
            Err(why) => {
                self.fields
                    .report(self.problems, field, format!("private_key {why}"));
                return None;
            }
        };
        let token_uri = match parse_http_url(&key.token_uri) {
            Ok(uri) => uri,
            Err(why) => {
                self.fields
                    .report(self.problems, field, format!("token_uri {why}"));
                return None;
            }
        };
        let scopes = scopes?;
        let mut claims = serde_json::Map::new();
        claims.insert("scope".into(), scopes.join(" ").into());
        Some(OAuthSpec {
            token_url: override_url.unwrap_or_else(|| token_uri.clone()),
            grant: Grant::JwtBearer(GrantAssertion::Signed(Box::new(SignedAssertion {
                signed_by: SignedBy {
                    key: Arc::new(signing_key),
                    kid: key.private_key_id,
                },
                issuer: key.client_email,
                subject: None,
                claims,
                lifetime_secs: 3600,
                jti: false,
            }))),
            client_id: None,
            client_auth: ClientAuth::None,
            // In the assertion's `scope` claim, as Google documents, not in the form.
            scopes: Vec::new(),
            audience: None,
            resources: Vec::new(),
            extra_params: Vec::new(),
            assertion_audience: Some(token_uri.to_string()),
            token_tls: token_tls?,
        })
    }
}
