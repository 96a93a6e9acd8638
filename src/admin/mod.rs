//! The admin listener: the status page, liveness, readiness, metrics and the config in
//! effect (never a secret).

mod export;
pub mod status;

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

pub use export::Exporter;

use crate::caller::CallerKind;
use crate::config::spec::{Access, RuleSpec};
use crate::path_pattern::PathPattern;
use crate::problem::response as problem_response;
use crate::store::Store;
use crate::watch::Reloader;

/// Serves `/` (the status page), `/healthz` (the process answers), `/readyz` (a config
/// is loaded and the listeners are bound: the admin listener starts after the proxy's),
/// `/metrics` and `/config`.
#[derive(Debug)]
pub struct Admin {
    store: Arc<Store>,
    exporter: Exporter,
    reloads: Option<Arc<Reloader>>,
}

impl Admin {
    pub fn new(store: Arc<Store>, exporter: Exporter, reloads: Option<Arc<Reloader>>) -> Self {
        Self {
            store,
            exporter,
            reloads,
        }
    }

    pub fn respond<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return problem_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "The admin endpoints answer GET.",
            );
        }
        match request.uri().path() {
            "/" => self.status_page(request.uri().query()),
            "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
            "/readyz" => {
                if self.store.load().meta.generation > 0 {
                    text(StatusCode::OK, "text/plain", "ready\n".into())
                } else {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        "no config loaded\n".into(),
                    )
                }
            }
            "/metrics" => match self.exporter.render() {
                Ok(body) => text(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
                Err(_) => problem_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "metrics_error",
                    "Could not render the metrics.",
                ),
            },
            "/config" => text(StatusCode::OK, "application/json", self.config_json()),
            _ => problem_response(
                StatusCode::NOT_FOUND,
                "not_found",
                "No such admin endpoint.",
            ),
        }
    }

    fn status_page(&self, query: Option<&str>) -> Response<Full<Bytes>> {
        let snapshot = self.store.load_full();
        let reloads = self.reloads.as_ref().map(|r| &r.stats);
        let page = status::render(&snapshot, reloads, &status::Query::parse(query));
        let mut response = text(StatusCode::OK, "text/html; charset=utf-8", page);
        let headers = response.headers_mut();
        // No script, no frames, nothing from elsewhere: only the page's own styles.
        headers.insert(
            http::header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
            ),
        );
        headers.insert(
            http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        response
    }

    /// Generation, load time, content hash, and per source its id, auth type and
    /// upstream; per caller its name and sources. No secret, no caller hash.
    fn config_json(&self) -> String {
        let snapshot = self.store.load_full();
        let meta = &snapshot.meta;
        let hash = crate::digest::hex(&meta.content_sha256);
        let sources: Vec<serde_json::Value> = snapshot
            .sources()
            .iter()
            .map(|s| {
                serde_json::json!({
                    "id": &*s.id,
                    "auth_type": s.auth_type.as_str(),
                    "upstream": s.upstream.to_string(),
                })
            })
            .collect();
        let callers: Option<Vec<serde_json::Value>> = snapshot.callers.as_ref().map(|callers| {
            callers
                .iter()
                .map(|c| {
                    let sources = match c.access() {
                        Access::All => serde_json::json!(["*"]),
                        Access::Only(ids) => {
                            serde_json::json!(ids.iter().map(|id| &**id).collect::<Vec<_>>())
                        }
                    };
                    let mut caller = serde_json::json!({ "name": &*c.name, "sources": sources });
                    if let CallerKind::Jwt { issuer, subject } = &c.kind {
                        caller["jwt"] =
                            serde_json::json!({ "issuer": &**issuer, "subject": subject });
                    }
                    if let Some(rules) = c.rules() {
                        caller["rules"] = rules.iter().map(rule_json).collect();
                    }
                    caller
                })
                .collect()
        });
        serde_json::json!({
            "path": meta.path.display().to_string(),
            "generation": meta.generation,
            "loaded_at_unix": meta.loaded_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "content_sha256": hash,
            "sources": sources,
            "callers": callers,
        })
        .to_string()
    }
}

/// A rule as written: its methods and path patterns, `null` for "any".
fn rule_json(rule: &RuleSpec) -> serde_json::Value {
    let methods = rule
        .methods
        .as_ref()
        .map(|methods| methods.iter().map(Method::as_str).collect::<Vec<_>>());
    let paths = rule
        .paths
        .as_ref()
        .map(|paths| paths.iter().map(PathPattern::as_str).collect::<Vec<_>>());
    serde_json::json!({ "source": &*rule.source, "methods": methods, "paths": paths })
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
