//! The token-endpoint auth types (`oauth2`, `token_exchange`, `jwt_bearer`,
//! `google_service_account`) → an [`OAuthSpec`]: the grant, how the client authenticates,
//! what it asks for, and the TLS to the endpoint.

use std::sync::Arc;

use super::credential::CredentialReader;
use super::resolve::SecretRef;
use super::spec::{
    AuthType, ClientAuth, ExchangeSpec, Grant, GrantAssertion, LiveSecret, OAuthSpec,
    SignedAssertion, SignedBy, ACCESS_TOKEN_TYPE,
};
use super::tls;
use super::url::parse_http_url;
use super::yaml::{Node, Value};
use crate::jws::SigningKey;
use crate::secret::Secret;

/// Each `oauth2_client_auth` value, and the fields it uses.
const METHODS: [(&str, &[&str]); 7] = [
    ("basic", &["oauth2_client_secret"]),
    ("post", &["oauth2_client_secret"]),
    ("client_secret_jwt", &["oauth2_client_secret"]),
    (
        "private_key_jwt",
        &["oauth2_client_private_key", "oauth2_client_key_id"],
    ),
    ("client_assertion", &["oauth2_client_assertion"]),
    (
        "tls_client_auth",
        &["oauth2_tls_client_cert_file", "oauth2_tls_client_key_file"],
    ),
    ("none", &[]),
];

/// For `jwt_bearer` these fields make the grant's assertion, not the client's.
const GRANT_ASSERTION_FIELDS: [&str; 3] = [
    "oauth2_client_private_key",
    "oauth2_client_key_id",
    "oauth2_client_assertion",
];

/// Form parameters credproxy writes itself; `oauth2_extra_params` may not set them.
const OWN_PARAMS: [&str; 16] = [
    "grant_type",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "assertion",
    "scope",
    "audience",
    "resource",
    "subject_token",
    "subject_token_type",
    "actor_token",
    "actor_token_type",
    "requested_token_type",
    "refresh_token",
    "code",
];

/// Claims a signed assertion always carries; `jwt_bearer_claims` may not set them.
const OWN_CLAIMS: [&str; 7] = ["iss", "sub", "aud", "iat", "exp", "nbf", "jti"];

/// How long an assertion credproxy signs for a JWT-bearer grant lives (RFC 7523 leaves it
/// to the server; Google allows an hour at most, and so does DESIGN §7).
const GRANT_ASSERTION_LIFETIME_SECS: u64 = 300;

impl CredentialReader<'_, '_, '_> {
    pub(super) fn oauth(&mut self, auth_type: AuthType) -> Option<OAuthSpec> {
        if auth_type == AuthType::GoogleServiceAccount {
            return self.google();
        }
        let token_url = self.url("oauth2_token_url");
        let grant = match auth_type {
            AuthType::TokenExchange => Some(Grant::TokenExchange(self.exchange())),
            AuthType::JwtBearer => self.grant_assertion().map(Grant::JwtBearer),
            _ => Some(Grant::ClientCredentials),
        };
        let default_auth = if auth_type == AuthType::JwtBearer {
            "none"
        } else {
            "basic"
        };
        let client_auth = self.client_auth(auth_type, default_auth);
        let client_id = self.optional_text("oauth2_client_id");
        if client_id.is_none() && client_auth.as_ref().is_some_and(|a| *a != ClientAuth::None) {
            let message = format!(
                "missing; oauth2_client_auth `{}` needs it",
                client_auth.as_ref().map_or("", ClientAuth::as_str)
            );
            self.fields
                .report(self.problems, "oauth2_client_id", message);
        }
        let scopes = self.scopes();
        let resources = self.resources();
        let extra_params = self.extra_params();
        let token_tls = tls::profile(
            self.fields,
            self.resolver,
            self.problems,
            &tls::TOKEN_ENDPOINT,
        );
        Some(OAuthSpec {
            token_url: token_url?,
            grant: grant?,
            client_id,
            client_auth: client_auth?,
            scopes: scopes?,
            audience: self.optional_text("oauth2_audience"),
            resources: resources?,
            extra_params: extra_params?,
            assertion_audience: self.optional_text("oauth2_assertion_audience"),
            token_tls: token_tls?,
        })
    }

    fn exchange(&mut self) -> ExchangeSpec {
        ExchangeSpec {
            audience: self.optional_text("token_exchange_audience"),
            resource: self.optional_text("token_exchange_resource"),
            subject_token_type: self
                .optional_text("token_exchange_subject_token_type")
                .unwrap_or_else(|| ACCESS_TOKEN_TYPE.to_owned()),
            requested_token_type: self.optional_text("token_exchange_requested_token_type"),
            subject_token: self.secret("token_exchange_subject_token"),
            actor_token: self.secret("token_exchange_actor_token"),
            actor_token_type: self
                .optional_text("token_exchange_actor_token_type")
                .unwrap_or_else(|| ACCESS_TOKEN_TYPE.to_owned()),
        }
    }

    /// `oauth2_client_auth` and the fields of the chosen method; a field of another method
    /// is a problem (a secret left lying around, or a method misread).
    fn client_auth(&mut self, auth_type: AuthType, default: &str) -> Option<ClientAuth> {
        let method = self
            .fields
            .text(self.problems, "oauth2_client_auth")
            .unwrap_or(default);
        let jwt_bearer = auth_type == AuthType::JwtBearer;
        let Some((method, uses)) = METHODS.iter().find(|(name, _)| *name == method) else {
            let names: Vec<&str> = METHODS.iter().map(|(name, _)| *name).collect();
            let message = format!("unknown value; one of {}", names.join(", "));
            self.fields
                .report(self.problems, "oauth2_client_auth", message);
            return None;
        };
        if jwt_bearer && matches!(*method, "private_key_jwt" | "client_assertion") {
            self.fields.report(
                self.problems,
                "oauth2_client_auth",
                "for jwt_bearer the key and the assertion fields make the grant: one of none, \
                 basic, post, client_secret_jwt, tls_client_auth",
            );
            return None;
        }
        for (_, fields) in METHODS {
            for field in fields {
                let grant_field = jwt_bearer && GRANT_ASSERTION_FIELDS.contains(field);
                if !uses.contains(field) && !grant_field && self.fields.node(field).is_some() {
                    let message = format!("does not apply to oauth2_client_auth `{method}`");
                    self.fields.report(self.problems, field, message);
                }
            }
        }
        match *method {
            "basic" => self
                .needed_secret("oauth2_client_secret", method)
                .map(ClientAuth::Basic),
            "post" => self
                .needed_secret("oauth2_client_secret", method)
                .map(ClientAuth::Post),
            "client_secret_jwt" => self
                .needed_secret("oauth2_client_secret", method)
                .map(ClientAuth::SecretJwt),
            "private_key_jwt" => self
                .signed_by("oauth2_client_private_key", "oauth2_client_key_id", method)
                .map(ClientAuth::PrivateKeyJwt),
            "client_assertion" => {
                if self.fields.node("oauth2_client_assertion").is_none() {
                    self.missing("oauth2_client_assertion", method);
                }
                self.live_secret("oauth2_client_assertion")
                    .map(ClientAuth::Assertion)
            }
            "tls_client_auth" => {
                for field in ["oauth2_tls_client_cert_file", "oauth2_tls_client_key_file"] {
                    if self.fields.node(field).is_none() {
                        self.missing(field, method);
                    }
                }
                Some(ClientAuth::TlsClientAuth)
            }
            _ => Some(ClientAuth::None),
        }
    }

    /// The assertion of a `jwt_bearer` grant: signed with `oauth2_client_private_key`, or
    /// the ready-made `oauth2_client_assertion`.
    fn grant_assertion(&mut self) -> Option<GrantAssertion> {
        let key = self.fields.node("oauth2_client_private_key").is_some();
        let ready_made = self.fields.node("oauth2_client_assertion").is_some();
        match (key, ready_made) {
            (true, true) | (false, false) => {
                let message = "set one of oauth2_client_private_key (credproxy signs the \
                               assertion) or oauth2_client_assertion (a ready-made JWT)";
                let field = if key {
                    "oauth2_client_assertion"
                } else {
                    "oauth2_client_private_key"
                };
                self.fields.report(self.problems, field, message);
                None
            }
            (false, true) => {
                for field in [
                    "oauth2_client_key_id",
                    "jwt_bearer_issuer",
                    "jwt_bearer_subject",
                    "jwt_bearer_claims",
                ] {
                    if self.fields.node(field).is_some() {
                        self.fields.report(
                            self.problems,
                            field,
                            "does not apply to a ready-made assertion (oauth2_client_assertion)",
                        );
                    }
                }
                self.live_secret("oauth2_client_assertion")
                    .map(GrantAssertion::ReadyMade)
            }
            (true, false) => {
                let signed_by =
                    self.signed_by("oauth2_client_private_key", "oauth2_client_key_id", "");
                let issuer = self.optional_text("jwt_bearer_issuer");
                if issuer.is_none() {
                    self.missing("jwt_bearer_issuer", "the signed assertion's iss");
                }
                let claims = self.claims();
                let issuer = issuer?;
                // `sub` defaults to the issuer (DESIGN §7).
                let subject = self
                    .optional_text("jwt_bearer_subject")
                    .unwrap_or_else(|| issuer.clone());
                Some(GrantAssertion::Signed(Box::new(SignedAssertion {
                    signed_by: signed_by?,
                    subject: Some(subject),
                    issuer,
                    claims: claims?,
                    lifetime_secs: GRANT_ASSERTION_LIFETIME_SECS,
                    jti: true,
                })))
            }
        }
    }

    pub(super) fn url(&mut self, name: &str) -> Option<http::Uri> {
        let text = self.fields.text(self.problems, name)?;
        match parse_http_url(text) {
            Ok(uri) => Some(uri),
            Err(why) => {
                self.fields.report(self.problems, name, why);
                None
            }
        }
    }

    /// A private key (PEM secret) and its optional `kid`.
    fn signed_by(&mut self, key_field: &str, kid_field: &str, method: &str) -> Option<SignedBy> {
        if self.fields.node(key_field).is_none() && !method.is_empty() {
            self.missing(key_field, method);
        }
        let pem = self.secret(key_field)?;
        let key = match SigningKey::from_pem(pem.expose()) {
            Ok(key) => key,
            Err(why) => {
                self.fields
                    .report(self.problems, key_field, why.to_string());
                return None;
            }
        };
        Some(SignedBy {
            key: Arc::new(key),
            kid: self.optional_text(kid_field),
        })
    }

    /// A secret that is read again for every token request when it is a `{ file: }`.
    pub(super) fn live_secret(&mut self, name: &str) -> Option<LiveSecret> {
        let file = match self.fields.node(name).map(SecretRef::from_node) {
            Some(Ok(SecretRef::File(path))) => Some(self.resolver.path_of(&path)),
            _ => None,
        };
        // Resolved now too: a file that cannot be read is a load error, and is watched.
        let secret = self.secret(name)?;
        Some(file.map_or(LiveSecret::Value(secret), LiveSecret::File))
    }

    fn needed_secret(&mut self, name: &str, method: &str) -> Option<Secret> {
        if self.fields.node(name).is_none() {
            self.missing(name, method);
        }
        self.secret(name)
    }

    fn missing(&mut self, name: &str, needed_by: &str) {
        let message = if needed_by.contains(' ') {
            format!("missing; {needed_by}")
        } else {
            format!("missing; oauth2_client_auth `{needed_by}` needs it")
        };
        self.fields.report(self.problems, name, message);
    }

    /// `oauth2_resource`: one absolute URI or a list of them.
    fn resources(&mut self) -> Option<Vec<String>> {
        let Some(node) = self.fields.node("oauth2_resource") else {
            return Some(Vec::new());
        };
        let texts: Vec<&str> = match &node.value {
            Value::Scalar(_) => vec![self.fields.text(self.problems, "oauth2_resource")?],
            _ => self.fields.list(self.problems, "oauth2_resource")?,
        };
        let absolute = |text: &&str| {
            text.split_once(':').is_some_and(|(scheme, rest)| {
                !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                    && !rest.is_empty()
            }) && !text.contains(['#', ' '])
        };
        if !texts.iter().all(absolute) {
            self.fields.report(
                self.problems,
                "oauth2_resource",
                "each resource must be an absolute URI without a fragment (RFC 8707)",
            );
            return None;
        }
        Some(texts.into_iter().map(str::to_owned).collect())
    }

    /// `oauth2_extra_params`: form parameters credproxy does not write itself.
    fn extra_params(&mut self) -> Option<Vec<(String, Secret)>> {
        let Some(entries) = self.fields.map(self.problems, "oauth2_extra_params") else {
            return self
                .fields
                .node("oauth2_extra_params")
                .is_none()
                .then(Vec::new);
        };
        let section = format!("{}.oauth2_extra_params", self.fields.section);
        let before = self.problems.len();
        let mut params = Vec::with_capacity(entries.len());
        for entry in entries.iter() {
            let name = &*entry.key.name;
            if name.is_empty() || OWN_PARAMS.contains(&name) {
                let message = "is a parameter credproxy sets itself";
                self.problems
                    .add(Some(entry.key.at), &section, Some(name), message);
                continue;
            }
            let value = super::fields::secret_at(
                self.problems,
                self.resolver,
                &section,
                name,
                &entry.value,
            );
            if let Some(value) = value {
                self.secrets.push(value.clone());
                params.push((name.to_owned(), value));
            }
        }
        (self.problems.len() == before).then_some(params)
    }

    /// `jwt_bearer_claims`: extra claims of the signed assertion.
    fn claims(&mut self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let Some(entries) = self.fields.map(self.problems, "jwt_bearer_claims") else {
            return self
                .fields
                .node("jwt_bearer_claims")
                .is_none()
                .then(serde_json::Map::new);
        };
        let section = format!("{}.jwt_bearer_claims", self.fields.section);
        let mut claims = serde_json::Map::new();
        for entry in entries.iter() {
            let name = &*entry.key.name;
            if OWN_CLAIMS.contains(&name) {
                let message = "is a claim credproxy sets itself";
                self.problems
                    .add(Some(entry.key.at), &section, Some(name), message);
                continue;
            }
            claims.insert(name.to_owned(), json(&entry.value));
        }
        Some(claims)
    }
}

/// A YAML node as JSON: plain scalars that YAML reads as numbers or booleans become
/// those, other scalars strings.
fn json(node: &Node) -> serde_json::Value {
    match &node.value {
        Value::Null => serde_json::Value::Null,
        Value::Scalar(scalar) => {
            let text = scalar.text.expose();
            if scalar.reads_as_non_text() {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
                    return value;
                }
            }
            serde_json::Value::from(text)
        }
        Value::Seq(items) => items.iter().map(json).collect(),
        Value::Map(entries) => entries
            .iter()
            .map(|e| (e.key.name.to_string(), json(&e.value)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}
