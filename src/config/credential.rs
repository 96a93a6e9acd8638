//! Each auth type's fields → its [`CredentialSpec`]. Static credentials are encoded here,
//! once: a request then costs a header insert. The token-endpoint types are in `oauth.rs`,
//! SigV4 in `aws.rs`, GitHub Apps in `github.rs`.

use base64::Engine as _;
use http::HeaderName;
use zeroize::Zeroizing;

use super::fields::{Fields, Problems};
use super::resolve::Resolver;
use super::spec::{AuthType, CredentialSpec, QueryKey};
use crate::secret::{sensitive_header_value, Secret};

/// Reads one source's credential fields. Every secret resolved is pushed onto `secrets`.
pub struct CredentialReader<'f, 'r, 'p> {
    pub fields: &'f Fields<'f>,
    pub resolver: &'f mut Resolver<'r>,
    pub problems: &'p mut Problems,
    pub secrets: Vec<Secret>,
}

impl CredentialReader<'_, '_, '_> {
    pub fn build(&mut self, auth_type: AuthType, source_id: &str) -> Option<CredentialSpec> {
        match auth_type {
            AuthType::None => Some(CredentialSpec::None),
            AuthType::HttpBasic => self.http_basic(),
            AuthType::Bearer => {
                let token = self.secret("bearer_token")?;
                let value = Zeroizing::new(format!("Bearer {}", token.expose()));
                self.header(http::header::AUTHORIZATION, &value, "bearer_token")
            }
            AuthType::ApiKey => self.api_key(),
            AuthType::OAuth2
            | AuthType::TokenExchange
            | AuthType::JwtBearer
            | AuthType::GoogleServiceAccount => self
                .oauth(auth_type)
                .map(|oauth| CredentialSpec::OAuth2(Box::new(oauth))),
            AuthType::AwsSigV4 => self
                .aws(source_id)
                .map(|aws| CredentialSpec::AwsSigV4(Box::new(aws))),
            AuthType::GitHubApp => self
                .github_app()
                .map(|app| CredentialSpec::GitHubApp(Box::new(app))),
        }
    }

    fn http_basic(&mut self) -> Option<CredentialSpec> {
        let username = self.fields.text(self.problems, "basic_username");
        let password = self.secret("basic_password");
        let (username, password) = (username?, password?);
        if username.contains(':') {
            self.fields.report(
                self.problems,
                "basic_username",
                "must not contain ':' (RFC 7617)",
            );
            return None;
        }
        let pair = Zeroizing::new(format!("{username}:{}", password.expose()));
        let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*pair));
        let value = Zeroizing::new(format!("Basic {}", &*encoded));
        self.header(http::header::AUTHORIZATION, &value, "basic_password")
    }

    fn api_key(&mut self) -> Option<CredentialSpec> {
        let name = self.fields.text(self.problems, "api_key_name");
        let value = self.secret("api_key_value");
        let in_query = match self.fields.text(self.problems, "api_key_in") {
            None | Some("header") => Some(false),
            Some("query") => Some(true),
            Some(_) => {
                self.fields.report(
                    self.problems,
                    "api_key_in",
                    "unknown value; one of header, query",
                );
                None
            }
        };
        let (name, value, in_query) = (name?, value?, in_query?);
        if in_query {
            return Some(CredentialSpec::Query(QueryKey {
                name: name.into(),
                value,
            }));
        }
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            self.fields.report(
                self.problems,
                "api_key_name",
                "is not a valid HTTP header name",
            );
            return None;
        };
        if super::source::is_reserved_header(&header) {
            self.fields.report(
                self.problems,
                "api_key_name",
                "names a header credproxy manages itself (hop-by-hop, Host or a length)",
            );
            return None;
        }
        self.header(header, value.expose(), "api_key_value")
    }

    /// A header credential from secret text; `field` is where the text came from.
    fn header(&mut self, name: HeaderName, text: &str, field: &str) -> Option<CredentialSpec> {
        match sensitive_header_value(text) {
            Ok(value) => Some(CredentialSpec::Header { name, value }),
            Err(why) => {
                self.fields.report(self.problems, field, why.to_string());
                None
            }
        }
    }

    pub(super) fn scopes(&mut self) -> Option<Vec<String>> {
        let Some(scopes) = self.fields.list(self.problems, "oauth2_scopes") else {
            return self.fields.node("oauth2_scopes").is_none().then(Vec::new);
        };
        if scopes
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            self.fields.report(
                self.problems,
                "oauth2_scopes",
                "each scope must be non-empty and contain no spaces",
            );
            return None;
        }
        Some(scopes.into_iter().map(str::to_owned).collect())
    }

    pub(super) fn optional_text(&mut self, name: &str) -> Option<String> {
        self.fields.text(self.problems, name).map(str::to_owned)
    }

    /// A secret field, resolved and remembered as one of the source's secrets.
    pub fn secret(&mut self, name: &str) -> Option<Secret> {
        let secret = self.fields.secret(self.problems, self.resolver, name)?;
        self.secrets.push(secret.clone());
        Some(secret)
    }
}
