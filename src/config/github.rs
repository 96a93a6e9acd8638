//! `github_app` → a [`GitHubAppSpec`]: the App, its installation, its key, and what the
//! installation token may be narrowed to (DESIGN §8).

use std::sync::Arc;

use super::credential::CredentialReader;
use super::spec::{GitHubAppId, GitHubAppSpec};
use super::url::parse_http_url;
use crate::jws::SigningKey;

const DEFAULT_API_URL: &str = "https://api.github.com";
/// GitHub's own limit for `repositories` in one token request.
const MAX_REPOSITORIES: usize = 500;
const PERMISSION_LEVELS: [&str; 3] = ["read", "write", "admin"];

impl CredentialReader<'_, '_, '_> {
    pub(super) fn github_app(&mut self) -> Option<GitHubAppSpec> {
        let app_id = self.app_id();
        let installation_id = self
            .fields
            .text(self.problems, "github_installation_id")
            .and_then(|text| {
                let id = text
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| text.parse::<u64>().ok())
                    .flatten()
                    .filter(|id| *id > 0);
                if id.is_none() {
                    self.fields.report(
                        self.problems,
                        "github_installation_id",
                        "must be the installation's numeric id",
                    );
                }
                id
            });
        let private_key = self.app_key();
        let api_url = match self.fields.node("github_api_url") {
            None => Some(DEFAULT_API_URL.to_owned()),
            Some(_) => self
                .fields
                .text(self.problems, "github_api_url")
                .and_then(|text| match parse_http_url(text) {
                    Ok(_) => Some(text.trim_end_matches('/').to_owned()),
                    Err(why) => {
                        self.fields.report(self.problems, "github_api_url", why);
                        None
                    }
                }),
        };
        let permissions = self.permissions();
        let repositories = self.repositories();
        Some(GitHubAppSpec {
            app_id: app_id?,
            installation_id: installation_id?,
            private_key: private_key?,
            api_url: api_url?,
            permissions: permissions?,
            repositories: repositories?,
        })
    }

    /// A number (the App id), or a client id (`Iv23…`); both go into the JWT's `iss`.
    fn app_id(&mut self) -> Option<GitHubAppId> {
        let text = self.fields.text(self.problems, "github_app_id")?;
        if text.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(id) = text.parse::<u64>() {
                return Some(GitHubAppId::Number(id));
            }
        }
        let client_id = text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !client_id {
            self.fields.report(
                self.problems,
                "github_app_id",
                "must be the App's numeric id or its client id (letters, digits, . _ -)",
            );
            return None;
        }
        Some(GitHubAppId::Text(text.to_owned()))
    }

    fn app_key(&mut self) -> Option<Arc<SigningKey>> {
        let pem = self.secret("github_private_key")?;
        match SigningKey::from_pem(pem.expose()) {
            Ok(key) if key.algorithm() == "RS256" => Some(Arc::new(key)),
            Ok(_) => {
                self.fields.report(
                    self.problems,
                    "github_private_key",
                    "must be an RSA key: GitHub verifies App JWTs with RS256",
                );
                None
            }
            Err(why) => {
                self.fields
                    .report(self.problems, "github_private_key", why.to_string());
                None
            }
        }
    }

    /// `github_permissions: { contents: read, issues: write }`.
    fn permissions(&mut self) -> Option<Vec<(String, String)>> {
        let field = "github_permissions";
        if self.fields.node(field).is_none() {
            return Some(Vec::new());
        }
        let entries = self.fields.map(self.problems, field)?;
        let mut permissions = Vec::with_capacity(entries.len());
        let mut valid = true;
        for entry in entries.iter() {
            let name = &*entry.key.name;
            let level = match &entry.value.value {
                super::yaml::Value::Scalar(scalar) => Some(scalar.text.expose()),
                _ => None,
            };
            let name_ok =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            match level {
                Some(level) if name_ok && PERMISSION_LEVELS.contains(&level) => {
                    permissions.push((name.to_owned(), level.to_owned()));
                }
                // Neither the name nor the value is quoted back: a misplaced secret could be
                // either.
                _ => {
                    self.fields.report(
                        self.problems,
                        field,
                        "each entry must be a permission name (e.g. contents) and one of read, \
                         write, admin",
                    );
                    valid = false;
                }
            }
        }
        valid.then_some(permissions)
    }

    /// Repository names, without the owner (the installation's account is the owner).
    fn repositories(&mut self) -> Option<Vec<String>> {
        let field = "github_repositories";
        if self.fields.node(field).is_none() {
            return Some(Vec::new());
        }
        let names = self.fields.list(self.problems, field)?;
        if names.len() > MAX_REPOSITORIES {
            self.fields.report(
                self.problems,
                field,
                format!("lists more than {MAX_REPOSITORIES} repositories, GitHub's limit"),
            );
            return None;
        }
        let valid = |name: &str| {
            !name.is_empty()
                && name.len() <= 100
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        if !names.iter().all(|name| valid(name)) {
            self.fields.report(
                self.problems,
                field,
                "each entry must be a repository name without its owner (letters, digits, . _ -)",
            );
            return None;
        }
        Some(names.into_iter().map(str::to_owned).collect())
    }
}
