//! The field tables: which keys each part of `sources.yaml` has, and which an auth type
//! requires. They drive the unknown-, misplaced- and missing-field checks, so a new auth
//! type is one entry here plus the function that builds its credential.

use super::spec::AuthType;

/// Whether a field must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// With a hint for the "missing" message (may be empty).
    Required(&'static str),
    Optional,
}

use Need::{Optional, Required};

pub type Table = &'static [(&'static str, Need)];

/// The top level of the file.
pub const FILE: Table = &[
    ("sources", Required("a map of source ids to their settings")),
    ("callers", Optional),
];

/// Fields every source may have, whatever its auth type.
pub const SOURCE: Table = &[
    (
        "upstream",
        Required("set the upstream base URL, e.g. https://api.example.com/v1"),
    ),
    (
        "auth_type",
        Required(
            "one of none, http_basic, api_key, bearer, oauth2, token_exchange, jwt_bearer, \
             google_service_account, aws_sigv4, github_app",
        ),
    ),
    ("headers", Optional),
    ("tls_ca_file", Optional),
    ("tls_client_cert_file", Optional),
    ("tls_client_key_file", Optional),
];

/// Every token-endpoint source: where to ask, how to authenticate, what to ask for.
const TOKEN_ENDPOINT: Table = &[
    ("oauth2_token_url", Required("")),
    ("oauth2_client_auth", Optional),
    ("oauth2_client_secret", Optional),
    ("oauth2_client_private_key", Optional),
    ("oauth2_client_key_id", Optional),
    ("oauth2_client_assertion", Optional),
    ("oauth2_tls_client_cert_file", Optional),
    ("oauth2_tls_client_key_file", Optional),
    ("oauth2_assertion_audience", Optional),
    ("oauth2_scopes", Optional),
    ("oauth2_audience", Optional),
    ("oauth2_resource", Optional),
    ("oauth2_extra_params", Optional),
    ("oauth2_token_ca_file", Optional),
];

const CLIENT_ID: Table = &[("oauth2_client_id", Required(""))];

const OPTIONAL_CLIENT_ID: Table = &[("oauth2_client_id", Optional)];

const TOKEN_EXCHANGE: Table = &[
    ("token_exchange_audience", Optional),
    ("token_exchange_resource", Optional),
    ("token_exchange_subject_token_type", Optional),
    ("token_exchange_requested_token_type", Optional),
    ("token_exchange_subject_token", Optional),
    ("token_exchange_actor_token", Optional),
    ("token_exchange_actor_token_type", Optional),
];

const JWT_BEARER: Table = &[
    ("jwt_bearer_issuer", Optional),
    ("jwt_bearer_subject", Optional),
    ("jwt_bearer_claims", Optional),
];

const GOOGLE_SERVICE_ACCOUNT: Table = &[
    (
        "google_service_account_key",
        Required("the service account's JSON key, usually { file: /path/key.json }"),
    ),
    ("oauth2_scopes", Required("the scopes the token is for")),
    ("oauth2_token_url", Optional),
    ("oauth2_token_ca_file", Optional),
];

/// AWS SigV4: where and for what to sign, then static keys or a role (checked together
/// in `aws.rs`: exactly one of the two).
const AWS_SIGV4: Table = &[
    (
        "aws_region",
        Required("the region to sign for, e.g. us-east-1"),
    ),
    (
        "aws_service",
        Required("the signing name of the service, e.g. s3, execute-api, bedrock, es, lambda"),
    ),
    ("aws_access_key_id", Optional),
    ("aws_secret_access_key", Optional),
    ("aws_session_token", Optional),
    ("aws_role_arn", Optional),
    ("aws_web_identity_token", Optional),
    ("aws_role_session_name", Optional),
    ("aws_sts_endpoint", Optional),
    ("aws_max_signed_body", Optional),
    ("aws_unsigned_payload", Optional),
];

const GITHUB_APP: Table = &[
    (
        "github_app_id",
        Required("the App's id (a number) or its client id"),
    ),
    (
        "github_installation_id",
        Required("the installation's numeric id"),
    ),
    (
        "github_private_key",
        Required("the App's private key (PEM), usually { file: /path/app.pem }"),
    ),
    ("github_api_url", Optional),
    ("github_permissions", Optional),
    ("github_repositories", Optional),
];

/// The fields of each auth type, besides [`SOURCE`]: the union of its tables.
pub fn auth_fields(auth_type: AuthType) -> &'static [Table] {
    match auth_type {
        AuthType::None => &[],
        AuthType::HttpBasic => &[&[
            ("basic_username", Required("")),
            ("basic_password", Required("")),
        ]],
        AuthType::ApiKey => &[&[
            ("api_key_name", Required("")),
            ("api_key_value", Required("")),
            ("api_key_in", Optional),
        ]],
        AuthType::Bearer => &[&[("bearer_token", Required(""))]],
        AuthType::OAuth2 => &[TOKEN_ENDPOINT, CLIENT_ID],
        AuthType::TokenExchange => &[TOKEN_ENDPOINT, CLIENT_ID, TOKEN_EXCHANGE],
        AuthType::JwtBearer => &[TOKEN_ENDPOINT, OPTIONAL_CLIENT_ID, JWT_BEARER],
        AuthType::GoogleServiceAccount => &[GOOGLE_SERVICE_ACCOUNT],
        AuthType::AwsSigV4 => &[AWS_SIGV4],
        AuthType::GitHubApp => &[GITHUB_APP],
    }
}

/// Whether `name` is one of `auth_type`'s fields.
pub fn is_field_of(auth_type: AuthType, name: &str) -> bool {
    auth_fields(auth_type)
        .iter()
        .any(|table| table.iter().any(|(field, _)| *field == name))
}

/// Fields of one entry under `callers:`.
pub const CALLER: Table = &[
    // One of `token_sha256` and `jwt` (checked in `callers.rs`).
    ("token_sha256", Optional),
    ("jwt", Optional),
    ("sources", Required("list source ids, or [\"*\"] for all")),
    ("rules", Optional),
];

/// A caller's `jwt:` map; one of `jwks_file` and `jwks_url` (checked in `callers.rs`).
pub const JWT_CALLER: Table = &[
    ("issuer", Required("the `iss` its tokens carry")),
    (
        "audience",
        Required("the `aud` its tokens must carry, e.g. credproxy"),
    ),
    ("jwks_file", Optional),
    ("jwks_url", Optional),
    ("jwks_ca_file", Optional),
    ("subject", Optional),
];

/// One entry of a caller's `rules:`.
pub const RULE: Table = &[
    ("source", Required("the source id this rule is about")),
    ("methods", Optional),
    ("paths", Optional),
];

/// Whether `name` is a source field of any auth type.
pub fn is_source_field(name: &str) -> bool {
    source_fields().any(|field| field == name)
}

/// Every source field name, common ones first; names shared by auth types repeat.
pub fn source_fields() -> impl Iterator<Item = &'static str> + Clone {
    SOURCE
        .iter()
        .chain(
            AuthType::ALL
                .into_iter()
                .flat_map(auth_fields)
                .flat_map(|table| table.iter()),
        )
        .map(|(name, _)| *name)
}

/// The known name closest to an unknown `key`, when one is close enough to be a typo.
fn suggest(key: &str, known: impl Iterator<Item = &'static str>) -> Option<&'static str> {
    known
        .map(|name| (strsim::jaro_winkler(key, name), name))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| name)
}

/// The message for an unknown key: never the key itself (a comma in an unquoted flow
/// value, `{ bearer_token: hunter2,rest }`, turns the tail of a secret into a key).
pub fn unknown_key_message<I>(key: &str, what: &str, known: I) -> String
where
    I: Iterator<Item = &'static str> + Clone,
{
    if let Some(name) = suggest(key, known.clone()) {
        return format!("unknown {what}; did you mean `{name}`?");
    }
    let mut names: Vec<&str> = Vec::new();
    for name in known {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let listed: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    format!("unknown {what}; the known ones are {}", listed.join(", "))
}

/// The names of a table.
pub fn names(table: Table) -> impl Iterator<Item = &'static str> + Clone {
    table.iter().map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion_and_other_keys_do_not() {
        let fields = || source_fields();
        assert_eq!(suggest("basic_pasword", fields()), Some("basic_password"));
        assert_eq!(suggest("bearer_tokne", fields()), Some("bearer_token"));
        assert_eq!(suggest("upstrem", fields()), Some("upstream"));
        assert_eq!(suggest("correcthorseSECRET", fields()), None);
    }

    #[test]
    fn every_auth_type_requires_something_unless_it_is_none() {
        for auth_type in AuthType::ALL {
            let required = auth_fields(auth_type)
                .iter()
                .flat_map(|table| table.iter())
                .any(|(_, need)| matches!(need, Required(_)));
            assert_eq!(required, auth_type != AuthType::None, "{auth_type}");
        }
        let hint = SOURCE
            .iter()
            .find_map(|(name, need)| match need {
                Required(hint) if *name == "auth_type" => Some(*hint),
                _ => None,
            })
            .expect("auth_type hint");
        let all: Vec<&str> = AuthType::ALL.map(AuthType::as_str).to_vec();
        assert_eq!(hint, format!("one of {}", all.join(", ")));
    }
}
