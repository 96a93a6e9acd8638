//! From the raw file to runtime sources: every rule that relates fields to each other.
//!
//! Validation does not stop at the first problem: it collects all of them, each with its
//! source id, field and position, so `credproxy check` can list everything to fix at once.
//! Messages never include a field's value.

use std::sync::Arc;

use http::uri::Scheme;
use http::{HeaderName, HeaderValue, Uri};

use super::error::Problem;
use super::file::{FileCaller, FileConfig, FileSource, UniqueMap};
use super::locate::locate;
use super::resolve::{Resolver, SecretRef};
use super::snapshot::{AuthType, Snapshot, Source, Upstream};
use super::LoadOptions;
use crate::auth::oauth2::{ClientAuth, ExchangeSettings, OAuthSettings, ACCESS_TOKEN_TYPE};
use crate::auth::token_cache::TokenSource;
use crate::auth::{Credentials, StaticCredentialError};
use crate::caller::{parse_sha256_hex, Access, Caller, Callers};
use crate::proxy::client::UpstreamTls;
use crate::proxy::headers::is_hop_by_hop;
use crate::secret::Secret;

/// A valid file's sources (in file order) and callers.
pub(super) type Built = (Vec<Arc<Source>>, Option<Callers>);

/// Builds the runtime sources and callers of a parsed file, resolving its secret
/// references, or returns every problem found in it. OAuth2 sources whose settings equal
/// those of the same source in `previous` keep its token cache, and every source keeps
/// its metrics.
pub(super) fn build(
    file: FileConfig,
    text: &str,
    resolver: &mut Resolver<'_>,
    options: &LoadOptions<'_>,
) -> Result<Built, Vec<Problem>> {
    let mut checker = Checker {
        text,
        resolver,
        previous: options.previous,
        problems: Vec::new(),
    };
    let mut sources = Vec::with_capacity(file.sources.0.len());
    for (id, raw) in file.sources.0 {
        if let Some(source) = checker.source(&id, raw) {
            sources.push(Arc::new(source));
        }
    }
    let callers = match file.callers {
        Some(callers) => Some(checker.callers(callers, &sources)),
        None if options.require_callers => {
            checker.report(
                &[],
                Some("callers"),
                "required: credproxy listens on a non-loopback address, where anyone who can \
                 connect could use the credentials. Add callers (see `credproxy hash-token`), \
                 listen on loopback, or pass --allow-unauthenticated",
            );
            None
        }
        None => None,
    };
    if checker.problems.is_empty() {
        Ok((sources, callers))
    } else {
        Err(checker.problems)
    }
}

struct Checker<'a, 'r> {
    text: &'a str,
    resolver: &'a mut Resolver<'r>,
    previous: Option<&'a Snapshot>,
    problems: Vec<Problem>,
}

impl Checker<'_, '_> {
    /// Records a problem at `path` (map keys from the root); `field`, when given, is
    /// appended to the path to find the position.
    fn report(&mut self, path: &[&str], field: Option<&str>, message: impl Into<String>) {
        let mut full: Vec<&str> = path.to_vec();
        full.extend(field);
        // A missing field has no position of its own: point at its parent instead.
        let location = locate(self.text, &full).or_else(|| locate(self.text, path));
        self.problems.push(Problem {
            location,
            section: Some(path.join(".")),
            field: field.map(str::to_owned),
            message: message.into(),
        });
    }

    fn callers(&mut self, raw: UniqueMap<FileCaller>, sources: &[Arc<Source>]) -> Callers {
        let mut callers: Vec<Caller> = Vec::with_capacity(raw.0.len());
        let mut seen: Vec<([u8; 32], String)> = Vec::with_capacity(raw.0.len());
        for (name, caller) in raw.0 {
            let path = ["callers", name.as_str()];
            let hash = match caller.token_sha256.as_deref() {
                None => {
                    self.report(
                        &path,
                        Some("token_sha256"),
                        "missing; `credproxy hash-token` prints it",
                    );
                    None
                }
                Some(hex) => match parse_sha256_hex(hex) {
                    Some(hash) => Some(hash),
                    None => {
                        self.report(
                            &path,
                            Some("token_sha256"),
                            "must be 64 hex digits (the SHA-256 of the token)",
                        );
                        None
                    }
                },
            };
            if let Some(hash) = hash {
                if let Some((_, twin)) = seen.iter().find(|(seen, _)| *seen == hash) {
                    let message =
                        format!("is the same token as caller `{twin}`; each caller needs its own");
                    self.report(&path, Some("token_sha256"), message);
                }
                seen.push((hash, name.clone()));
            }
            let access = match caller.sources.as_deref() {
                None => {
                    self.report(
                        &path,
                        Some("sources"),
                        "missing; list source ids, or [\"*\"] for all",
                    );
                    None
                }
                Some([all]) if all == "*" => Some(Access::All),
                Some(ids) => {
                    let mut allowed = Vec::with_capacity(ids.len());
                    for id in ids {
                        match sources.iter().find(|s| *s.id == **id) {
                            Some(source) => allowed.push(Arc::clone(&source.id)),
                            None if id == "*" => {
                                self.report(
                                    &path,
                                    Some("sources"),
                                    "\"*\" stands alone: it already means every source",
                                );
                            }
                            None => self.report(
                                &path,
                                Some("sources"),
                                format!("names unknown source `{id}`"),
                            ),
                        }
                    }
                    Some(Access::Only(allowed))
                }
            };
            if let (Some(hash), Some(access)) = (hash, access) {
                callers.push(Caller::new(Arc::from(name.as_str()), hash, access));
            }
        }
        Callers::new(callers)
    }

    fn source(&mut self, id: &str, raw: FileSource) -> Option<Source> {
        let path = ["sources", id];
        let before = self.problems.len();

        if id.is_empty() || id.contains('/') {
            self.report(
                &path,
                None,
                "a source id must be non-empty and contain no '/'",
            );
        }
        let upstream = match raw.upstream.as_deref() {
            None => {
                self.report(
                    &path,
                    Some("upstream"),
                    "missing; set the upstream base URL, e.g. https://api.example.com/v1",
                );
                None
            }
            Some(text) => match parse_upstream(text) {
                Ok(upstream) => Some(upstream),
                Err(why) => {
                    self.report(&path, Some("upstream"), why);
                    None
                }
            },
        };
        let auth_type = match raw.auth_type.as_deref() {
            None => {
                self.report(
                    &path,
                    Some("auth_type"),
                    format!("missing; one of {}", auth_type_list()),
                );
                None
            }
            Some(text) => match AuthType::parse(text) {
                Some(auth_type) => Some(auth_type),
                None => {
                    self.report(
                        &path,
                        Some("auth_type"),
                        format!("unknown auth_type `{text}`; one of {}", auth_type_list()),
                    );
                    None
                }
            },
        };

        for field in present_fields(&raw) {
            if let Some(auth_type) = auth_type {
                if !applies_to(field, auth_type) {
                    self.report(
                        &path,
                        Some(field),
                        format!("does not apply to auth_type `{auth_type}`; remove it or change auth_type"),
                    );
                }
            }
        }

        let credentials = auth_type.and_then(|auth_type| self.credentials(&path, auth_type, &raw));
        let extra_headers = self.extra_headers(&path, &raw, credentials.as_ref());

        if self.problems.len() > before {
            return None;
        }
        Some(Source {
            id: Arc::from(id),
            upstream: upstream?,
            auth_type: auth_type?,
            credentials: credentials?,
            extra_headers,
            tls: self.upstream_tls(&path, &raw)?,
            metrics: self
                .previous
                .and_then(|snapshot| snapshot.source(id))
                .map_or_else(Default::default, |previous| Arc::clone(&previous.metrics)),
        })
    }

    fn credentials(
        &mut self,
        path: &[&str],
        auth_type: AuthType,
        raw: &FileSource,
    ) -> Option<Credentials> {
        let built = match auth_type {
            AuthType::None => return Some(Credentials::None),
            AuthType::HttpBasic => {
                let username =
                    self.required_str(path, "basic_username", raw.basic_username.as_deref());
                let password =
                    self.required_secret(path, "basic_password", raw.basic_password.as_ref());
                let (username, password) = (username?, password?);
                if username.contains(':') {
                    self.report(
                        path,
                        Some("basic_username"),
                        StaticCredentialError::ColonInUsername.to_string(),
                    );
                    return None;
                }
                ("basic_password", Credentials::basic(username, &password))
            }
            AuthType::Bearer => {
                let token =
                    self.required_secret(path, "bearer_token", raw.bearer_token.as_ref())?;
                ("bearer_token", Credentials::bearer(&token))
            }
            AuthType::ApiKey => {
                let name = self.required_str(path, "api_key_name", raw.api_key_name.as_deref());
                let value = self.required_secret(path, "api_key_value", raw.api_key_value.as_ref());
                let location = match raw.api_key_in.as_deref() {
                    None | Some("header") => Some(false),
                    Some("query") => Some(true),
                    Some(other) => {
                        self.report(
                            path,
                            Some("api_key_in"),
                            format!("unknown value `{other}`; one of header, query"),
                        );
                        None
                    }
                };
                let (name, value, in_query) = (name?, value?, location?);
                if in_query {
                    ("api_key_value", Credentials::api_key_query(name, &value))
                } else {
                    match Credentials::api_key_header(name, &value) {
                        Err(StaticCredentialError::InvalidHeaderName) => {
                            self.report(
                                path,
                                Some("api_key_name"),
                                StaticCredentialError::InvalidHeaderName.to_string(),
                            );
                            return None;
                        }
                        Ok(c) if is_reserved_header(c.header_name()) => {
                            self.report(path, Some("api_key_name"), "names a header credproxy manages itself (hop-by-hop, Host or a length)");
                            return None;
                        }
                        other => ("api_key_value", other),
                    }
                }
            }
            AuthType::OAuth2 | AuthType::TokenExchange => {
                let settings = self.oauth_settings(path, auth_type, raw)?;
                let previous = self
                    .previous
                    .and_then(|snapshot| snapshot.source(path[1]))
                    .and_then(|source| source.credentials.token_source());
                let tokens = match previous {
                    // Unchanged settings: the cached tokens are still right.
                    Some(tokens) if *tokens.settings() == settings => Arc::clone(tokens),
                    _ => Arc::new(TokenSource::new(Arc::from(path[1]), settings)),
                };
                return Some(Credentials::OAuth2(tokens));
            }
        };
        let (field, result) = built;
        match result {
            Ok(credentials) => Some(credentials),
            Err(why) => {
                self.report(path, Some(field), why.to_string());
                None
            }
        }
    }

    /// The source's own TLS client settings, read (and recorded for watching) now. A
    /// reload that finds the same file contents keeps the previous client and its pool.
    fn upstream_tls(
        &mut self,
        path: &[&str],
        raw: &FileSource,
    ) -> Option<Option<Arc<UpstreamTls>>> {
        let ca = raw
            .tls_ca_file
            .as_deref()
            .map(|p| self.resolver.watched_path(p));
        let client = match (&raw.tls_client_cert_file, &raw.tls_client_key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((
                self.resolver.watched_path(cert),
                self.resolver.watched_path(key),
            )),
            (Some(_), None) => {
                self.report(
                    path,
                    Some("tls_client_key_file"),
                    "missing; a client certificate needs its key",
                );
                return None;
            }
            (None, Some(_)) => {
                self.report(
                    path,
                    Some("tls_client_cert_file"),
                    "missing; a client key needs its certificate",
                );
                return None;
            }
        };
        if ca.is_none() && client.is_none() {
            return Some(None);
        }
        let client_paths = client.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
        match UpstreamTls::from_files(ca.as_deref(), client_paths) {
            Ok(tls) => {
                let previous = self
                    .previous
                    .and_then(|snapshot| snapshot.source(path[1]))
                    .and_then(|source| source.tls.as_ref())
                    .filter(|previous| previous.fingerprint == tls.fingerprint);
                Some(Some(previous.map_or_else(|| Arc::new(tls), Arc::clone)))
            }
            Err(error) => {
                let field = error.input.field();
                self.report(path, Some(field), error.to_string());
                None
            }
        }
    }

    fn oauth_settings(
        &mut self,
        path: &[&str],
        auth_type: AuthType,
        raw: &FileSource,
    ) -> Option<OAuthSettings> {
        let token_url = match raw.oauth2_token_url.as_deref() {
            None => {
                self.report(path, Some("oauth2_token_url"), "missing");
                None
            }
            Some(text) => match parse_http_url(text) {
                Ok(uri) => Some(uri),
                Err(why) => {
                    self.report(path, Some("oauth2_token_url"), why);
                    None
                }
            },
        };
        let client_id =
            self.required_str(path, "oauth2_client_id", raw.oauth2_client_id.as_deref());
        let client_secret = self.required_secret(
            path,
            "oauth2_client_secret",
            raw.oauth2_client_secret.as_ref(),
        );
        let client_auth = match raw.oauth2_client_auth.as_deref() {
            None | Some("basic") => Some(ClientAuth::Basic),
            Some("post") => Some(ClientAuth::Post),
            Some(other) => {
                self.report(
                    path,
                    Some("oauth2_client_auth"),
                    format!("unknown value `{other}`; one of basic, post"),
                );
                None
            }
        };
        let scopes = raw.oauth2_scopes.clone().unwrap_or_default();
        let scopes_ok = scopes
            .iter()
            .all(|s| !s.is_empty() && !s.contains(char::is_whitespace));
        if !scopes_ok {
            self.report(
                path,
                Some("oauth2_scopes"),
                "each scope must be non-empty and contain no spaces",
            );
        }
        let audience = self.optional_str(path, "oauth2_audience", raw.oauth2_audience.as_deref());
        let exchange = (auth_type == AuthType::TokenExchange).then(|| ExchangeSettings {
            audience: self.optional_str(
                path,
                "token_exchange_audience",
                raw.token_exchange_audience.as_deref(),
            ),
            resource: self.optional_str(
                path,
                "token_exchange_resource",
                raw.token_exchange_resource.as_deref(),
            ),
            subject_token_type: self
                .optional_str(
                    path,
                    "token_exchange_subject_token_type",
                    raw.token_exchange_subject_token_type.as_deref(),
                )
                .unwrap_or_else(|| ACCESS_TOKEN_TYPE.to_owned()),
            requested_token_type: self.optional_str(
                path,
                "token_exchange_requested_token_type",
                raw.token_exchange_requested_token_type.as_deref(),
            ),
            subject_token: self.optional_secret(
                path,
                "token_exchange_subject_token",
                raw.token_exchange_subject_token.as_ref(),
            ),
            actor_token: self.optional_secret(
                path,
                "token_exchange_actor_token",
                raw.token_exchange_actor_token.as_ref(),
            ),
            actor_token_type: self
                .optional_str(
                    path,
                    "token_exchange_actor_token_type",
                    raw.token_exchange_actor_token_type.as_deref(),
                )
                .unwrap_or_else(|| ACCESS_TOKEN_TYPE.to_owned()),
        });
        if !scopes_ok {
            return None;
        }
        Some(OAuthSettings {
            token_url: token_url?,
            client_id: client_id?.to_owned(),
            client_secret: client_secret?,
            client_auth: client_auth?,
            scopes,
            audience,
            exchange,
        })
    }

    /// An optional text field: absent is fine, present must not be empty.
    fn optional_str(&mut self, path: &[&str], field: &str, value: Option<&str>) -> Option<String> {
        match value {
            Some("") => {
                self.report(path, Some(field), "must not be empty; remove it instead");
                None
            }
            other => other.map(str::to_owned),
        }
    }

    fn extra_headers(
        &mut self,
        path: &[&str],
        raw: &FileSource,
        credentials: Option<&Credentials>,
    ) -> Vec<(HeaderName, HeaderValue)> {
        let Some(headers) = &raw.headers else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(headers.0.len());
        for (name, value) in &headers.0 {
            let header_path: Vec<&str> = path.iter().copied().chain(["headers"]).collect();
            let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
                self.report(&header_path, Some(name), "is not a valid HTTP header name");
                continue;
            };
            if is_reserved_header(Some(&header_name)) {
                self.report(
                    &header_path,
                    Some(name),
                    "names a header credproxy manages itself (hop-by-hop, Host or a length)",
                );
                continue;
            }
            if credentials.and_then(Credentials::header_name) == Some(&header_name) {
                self.report(
                    &header_path,
                    Some(name),
                    "is the header the source's auth_type already sets",
                );
                continue;
            }
            if out.iter().any(|(seen, _)| *seen == header_name) {
                self.report(
                    &header_path,
                    Some(name),
                    "is listed twice (header names are case-insensitive)",
                );
                continue;
            }
            let Some(value) = self.required_secret(&header_path, name, Some(value)) else {
                continue;
            };
            match crate::auth::sensitive_header_value(value.expose()) {
                Ok(header_value) => out.push((header_name, header_value)),
                Err(why) => self.report(&header_path, Some(name), why.to_string()),
            }
        }
        out
    }

    fn required_str<'v>(
        &mut self,
        path: &[&str],
        field: &str,
        value: Option<&'v str>,
    ) -> Option<&'v str> {
        match value {
            Some(v) if !v.is_empty() => Some(v),
            Some(_) => {
                self.report(path, Some(field), "must not be empty");
                None
            }
            None => {
                self.report(path, Some(field), "missing");
                None
            }
        }
    }

    /// Resolves a required secret; missing, unresolvable or empty is a problem.
    fn required_secret(
        &mut self,
        path: &[&str],
        field: &str,
        value: Option<&SecretRef>,
    ) -> Option<Secret> {
        let Some(reference) = value else {
            self.report(path, Some(field), "missing");
            return None;
        };
        self.optional_secret(path, field, Some(reference))
    }

    /// Resolves an optional secret; present but unresolvable or empty is a problem.
    fn optional_secret(
        &mut self,
        path: &[&str],
        field: &str,
        value: Option<&SecretRef>,
    ) -> Option<Secret> {
        match self.resolver.resolve(value?) {
            Ok(secret) if secret.is_empty() => {
                self.report(path, Some(field), "must not be empty");
                None
            }
            Ok(secret) => Some(secret),
            Err(why) => {
                self.report(path, Some(field), why);
                None
            }
        }
    }
}

fn auth_type_list() -> String {
    AuthType::ALL.map(AuthType::as_str).join(", ")
}

const NOT_ABSOLUTE: &str = "is not an absolute URL; write it as https://host[:port][/base/path]";

/// An absolute http(s) URL with a host and no credentials, query or fragment. The value is
/// never quoted back: a URL may carry a password.
fn parse_http_url(text: &str) -> Result<Uri, &'static str> {
    // Checked before parsing: the http crate rejects these with a vaguer error.
    let Some((_, after_scheme)) = text.split_once("://") else {
        return Err(NOT_ABSOLUTE);
    };
    if after_scheme.split('/').next().unwrap_or("").contains('@') {
        return Err("must not contain credentials; use auth_type http_basic instead");
    }
    let uri: Uri = text
        .parse()
        .map_err(|_| "is not a valid absolute http(s) URL")?;
    match uri.scheme() {
        Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS => {}
        Some(_) => return Err("must use the http or https scheme"),
        None => return Err(NOT_ABSOLUTE),
    }
    if uri.authority().is_none_or(|a| a.host().is_empty()) {
        return Err("has no host");
    }
    if uri.query().is_some() {
        return Err("must not contain a query; use api_key_in: query for a key parameter");
    }
    Ok(uri)
}

fn parse_upstream(text: &str) -> Result<Upstream, &'static str> {
    let uri = parse_http_url(text)?;
    match (uri.scheme(), uri.authority()) {
        (Some(scheme), Some(authority)) => Ok(Upstream {
            scheme: scheme.clone(),
            authority: authority.clone(),
            base_path: uri.path().trim_end_matches('/').into(),
        }),
        _ => Err(NOT_ABSOLUTE),
    }
}

/// Headers a source must not set: those that describe the connection or the message
/// framing, which credproxy and hyper own.
fn is_reserved_header(name: Option<&HeaderName>) -> bool {
    name.is_some_and(|name| {
        is_hop_by_hop(name) || name == http::header::HOST || name == http::header::CONTENT_LENGTH
    })
}

/// Names of the optional fields set in `raw`, in schema order.
fn present_fields(raw: &FileSource) -> Vec<&'static str> {
    let fields: [(&'static str, bool); 23] = [
        ("basic_username", raw.basic_username.is_some()),
        ("basic_password", raw.basic_password.is_some()),
        ("api_key_name", raw.api_key_name.is_some()),
        ("api_key_value", raw.api_key_value.is_some()),
        ("api_key_in", raw.api_key_in.is_some()),
        ("bearer_token", raw.bearer_token.is_some()),
        ("oauth2_token_url", raw.oauth2_token_url.is_some()),
        ("oauth2_client_id", raw.oauth2_client_id.is_some()),
        ("oauth2_client_secret", raw.oauth2_client_secret.is_some()),
        ("oauth2_scopes", raw.oauth2_scopes.is_some()),
        ("oauth2_audience", raw.oauth2_audience.is_some()),
        ("oauth2_client_auth", raw.oauth2_client_auth.is_some()),
        (
            "token_exchange_audience",
            raw.token_exchange_audience.is_some(),
        ),
        (
            "token_exchange_resource",
            raw.token_exchange_resource.is_some(),
        ),
        (
            "token_exchange_subject_token_type",
            raw.token_exchange_subject_token_type.is_some(),
        ),
        (
            "token_exchange_requested_token_type",
            raw.token_exchange_requested_token_type.is_some(),
        ),
        (
            "token_exchange_subject_token",
            raw.token_exchange_subject_token.is_some(),
        ),
        (
            "token_exchange_actor_token",
            raw.token_exchange_actor_token.is_some(),
        ),
        (
            "token_exchange_actor_token_type",
            raw.token_exchange_actor_token_type.is_some(),
        ),
        ("tls_ca_file", raw.tls_ca_file.is_some()),
        ("tls_client_cert_file", raw.tls_client_cert_file.is_some()),
        ("tls_client_key_file", raw.tls_client_key_file.is_some()),
        ("headers", raw.headers.is_some()),
    ];
    fields
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| name)
        .collect()
}

/// Whether an auth-specific field belongs to `auth_type`. `headers` and `tls_*` apply to all.
fn applies_to(field: &str, auth_type: AuthType) -> bool {
    if field == "headers" || field.starts_with("tls_") {
        return true;
    }
    match auth_type {
        AuthType::None => false,
        AuthType::HttpBasic => field.starts_with("basic_"),
        AuthType::ApiKey => field.starts_with("api_key_"),
        AuthType::Bearer => field == "bearer_token",
        AuthType::OAuth2 => field.starts_with("oauth2_"),
        AuthType::TokenExchange => {
            field.starts_with("oauth2_") || field.starts_with("token_exchange_")
        }
    }
}
