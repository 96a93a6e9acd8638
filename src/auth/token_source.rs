//! Bearer tokens from an issuer: an OAuth2 token endpoint (every grant of §4 and §7) or a
//! GitHub App installation (§8). Both are injected as `Authorization: Bearer`, cached by
//! the rules of §4, and dropped after an upstream 401, so they share one cache type.

use std::sync::Arc;

use http::HeaderValue;

use super::github_app::GitHubAppIssuer;
use super::oauth2::OAuthIssuer;
use super::token_cache::{CredentialCache, Issue, Issued, Keyed};
use super::token_client::{TokenClient, TokenError};
use crate::config::spec::{CredentialSpec, Grant};
use crate::secret::Secret;

/// A source's cached `Authorization` header values.
pub type TokenSource = CredentialCache<TokenIssuer>;

#[derive(Debug)]
pub enum TokenIssuer {
    /// Boxed: an OAuth2 issuer's settings are many times a GitHub App's.
    OAuth(Box<OAuthIssuer>),
    GitHubApp(GitHubAppIssuer),
}

impl TokenIssuer {
    /// Whether `spec` is what this issuer was made from: then its cached tokens stay
    /// right across a reload.
    pub fn issues_for(&self, spec: &CredentialSpec) -> bool {
        match (self, spec) {
            (TokenIssuer::OAuth(issuer), CredentialSpec::OAuth2(oauth)) => issuer.spec == **oauth,
            (TokenIssuer::GitHubApp(issuer), CredentialSpec::GitHubApp(app)) => {
                issuer.spec == **app
            }
            _ => false,
        }
    }
}

impl Issue for TokenIssuer {
    /// `Bearer <token>`, marked sensitive.
    type Value = HeaderValue;
    type Client = TokenClient;

    async fn issue(
        &self,
        client: &TokenClient,
        subject: Option<&Secret>,
    ) -> Result<Issued<HeaderValue>, TokenError> {
        match self {
            TokenIssuer::OAuth(issuer) => issuer.issue(client, subject).await,
            TokenIssuer::GitHubApp(issuer) => issuer.issue(client).await,
        }
    }
}

/// A token source for an issuer: one token, or one per caller's subject for an exchange
/// of the caller's own token.
pub fn token_source(source_id: Arc<str>, issuer: TokenIssuer) -> TokenSource {
    let keyed = match &issuer {
        TokenIssuer::OAuth(oauth) => match &oauth.spec.grant {
            Grant::TokenExchange(exchange) if exchange.subject_token.is_none() => Keyed::PerSubject,
            _ => Keyed::Single,
        },
        TokenIssuer::GitHubApp(_) => Keyed::Single,
    };
    CredentialCache::new(source_id, issuer, keyed)
}
