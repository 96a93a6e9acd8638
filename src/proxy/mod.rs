//! The request path: route → clean → inject → forward, and one exit that answers, logs
//! and counts once.

pub mod body;
pub mod client;
pub mod error;
pub mod framing;
pub mod headers;
pub mod route;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

pub use client::{ClientSettings, UpstreamClient};
pub use error::ProxyError;

use crate::auth::oauth2::{TokenClient, TokenClientSettings};
use crate::auth::subject::Subject;
use crate::auth::token_cache::TokenSource;
use crate::auth::{self, TokenOutcome};
use crate::config::{AuthType, Snapshot, Source};
use crate::metrics::{ProxyMetrics, UpstreamErrorKind};
use crate::server::Connection;
use crate::store::Store;
use crate::telemetry::{self, AccessRecord};
use body::OutboundBody;
use client::UpstreamBody;

/// Where a request goes: its source and the upstream URI.
pub struct Routed {
    pub source: Arc<Source>,
    pub uri: http::Uri,
}

/// Steps 1 and 2, caller check and route, on one snapshot: authenticates the caller when
/// the snapshot has `callers:`, checks the target, finds the source (one map lookup),
/// checks the caller may use it, and builds the upstream URI. Returns the caller's name.
pub fn route_request<B>(
    snapshot: &Snapshot,
    request: &Request<B>,
    local_addr: SocketAddr,
) -> Result<(Option<Arc<str>>, Routed), ProxyError> {
    let caller = match &snapshot.callers {
        Some(callers) => Some(callers.authenticate(request.headers())?),
        None => None,
    };
    let target = route::target(request, local_addr)?;
    let source = snapshot
        .source(&target.source_id)
        .cloned()
        .ok_or(ProxyError::UnknownSource)?;
    if caller.is_some_and(|caller| !caller.may_use(&source.id)) {
        return Err(ProxyError::CallerForbidden);
    }
    let uri = route::upstream_uri(
        &source.upstream,
        target.rest,
        target.query,
        source.credentials.query(),
    )?;
    Ok((caller.map(|c| Arc::clone(&c.name)), Routed { source, uri }))
}

/// Steps 3 and 4, clean and inject the static credentials. A token_exchange source reads
/// the caller's bearer first (cleaning removes it) and returns it as the subject.
pub fn clean_and_inject(source: &Source, parts: &mut Parts) -> Result<Option<Subject>, ProxyError> {
    let subject = match source.credentials.token_source() {
        Some(tokens) if tokens.needs_subject() => Some(Subject::from_headers(&parts.headers)?),
        _ => None,
    };
    headers::clean_request(&mut parts.headers, source.auth_type == AuthType::None);
    auth::inject(
        &source.credentials,
        &source.extra_headers,
        &mut parts.headers,
    );
    Ok(subject)
}

/// A response body: the upstream's, streamed, or credproxy's own problem+json.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// The proxy service: shared by every connection.
#[derive(Debug)]
pub struct Proxy {
    store: Arc<Store>,
    client: UpstreamClient,
    tokens: TokenClient,
    metrics: Arc<ProxyMetrics>,
}

/// What one exchange learned along the way, for the access log.
#[derive(Default)]
struct Exchange {
    caller: Option<Arc<str>>,
    source: Option<Arc<Source>>,
    upstream_elapsed: Option<Duration>,
    token: Option<TokenOutcome>,
}

impl Proxy {
    pub fn new(
        store: Arc<Store>,
        client: UpstreamClient,
        token_settings: TokenClientSettings,
    ) -> Self {
        let tokens = TokenClient::new(client.http().clone(), token_settings);
        Self {
            store,
            client,
            tokens,
            metrics: Arc::default(),
        }
    }

    /// The proxy's counters, for the admin listener.
    pub fn metrics(&self) -> Arc<ProxyMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Handles one request that arrived on `connection`.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        connection: Connection,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let method = request.method().clone();
        let uri = request.uri().clone();
        let mut exchange = Exchange::default();

        let result = if connection.framing_conflict() {
            // Never forwarded: the upstream could frame this body differently.
            Err(ProxyError::BadRequest(
                "Content-Length and Transfer-Encoding must not both be sent",
            ))
        } else {
            self.forward(request, connection.local_addr, &mut exchange)
                .await
        };

        let (response, error) = match result {
            Ok(response) => (response.map(Either::Left), None),
            Err(error) => (error.to_response().map(Either::Right), Some(error)),
        };
        let total = started.elapsed();
        self.metrics.duration.observe(total);
        match &exchange.source {
            Some(source) => source.metrics.requests.count(response.status()),
            None => self.metrics.unrouted.count(response.status()),
        }
        if let Some(kind) = error.as_ref().and_then(UpstreamErrorKind::of) {
            self.metrics.upstream_error(kind);
        }
        telemetry::access_log(&AccessRecord {
            caller: exchange.caller.as_deref(),
            source: exchange.source.as_deref(),
            method: &method,
            path: uri.path(),
            status: response.status(),
            total,
            upstream: exchange.upstream_elapsed,
            token: exchange.token.unwrap_or(TokenOutcome::None),
            error: error.as_ref(),
        });
        response
    }

    async fn forward(
        &self,
        request: Request<Incoming>,
        local_addr: SocketAddr,
        exchange: &mut Exchange,
    ) -> Result<Response<Incoming>, ProxyError> {
        // One snapshot for the caller check and the route; the guard is gone before any await.
        let (caller, routed) = route_request(&self.store.load(), &request, local_addr)?;
        exchange.caller = caller;
        exchange.source = Some(Arc::clone(&routed.source));
        let source = routed.source;
        let (mut parts, body) = request.into_parts();
        let subject = clean_and_inject(&source, &mut parts)?;
        parts.uri = routed.uri;

        let tokens = source.credentials.token_source();
        match tokens {
            None => {
                exchange.token = Some(TokenOutcome::None);
                self.send(Request::from_parts(parts, Either::Left(body)), exchange)
                    .await
            }
            Some(tokens) => {
                self.forward_with_token(tokens, subject.as_ref(), parts, body, exchange)
                    .await
            }
        }
    }

    /// Injects an OAuth2 token and forwards; an upstream 401 on a cached token drops it and
    /// retries once with a new one, when the body can be sent again.
    async fn forward_with_token(
        &self,
        tokens: &Arc<TokenSource>,
        subject: Option<&Subject>,
        mut parts: Parts,
        body: Incoming,
        exchange: &mut Exchange,
    ) -> Result<Response<Incoming>, ProxyError> {
        let token = tokens.token(&self.tokens, subject).await?;
        exchange.token = Some(token.outcome);
        parts.headers.insert(AUTHORIZATION, token.header.clone());
        if token.outcome != TokenOutcome::Cached {
            return self
                .send(Request::from_parts(parts, Either::Left(body)), exchange)
                .await;
        }
        let bytes = match body::read_if_small(body).await? {
            OutboundBody::Streaming(body) => {
                return self
                    .send(Request::from_parts(parts, Either::Left(body)), exchange)
                    .await;
            }
            OutboundBody::Replayable(bytes) => bytes,
        };
        let mut retry = Request::new(Either::Right(Full::new(bytes.clone())));
        *retry.method_mut() = parts.method.clone();
        *retry.uri_mut() = parts.uri.clone();
        *retry.headers_mut() = parts.headers.clone();

        let response = self
            .send(
                Request::from_parts(parts, Either::Right(Full::new(bytes))),
                exchange,
            )
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        tokens.invalidate(&token);
        let fresh = tokens.token(&self.tokens, subject).await?;
        tracing::debug!(source = ?exchange.source.as_ref().map(|s| &s.id), "Upstream refused a cached token; retrying once with a new one");
        exchange.token = Some(fresh.outcome);
        retry
            .headers_mut()
            .insert(AUTHORIZATION, fresh.header.clone());
        self.send(retry, exchange).await
    }

    async fn send(
        &self,
        request: Request<UpstreamBody>,
        exchange: &mut Exchange,
    ) -> Result<Response<Incoming>, ProxyError> {
        let sent = Instant::now();
        let tls = exchange
            .source
            .as_ref()
            .and_then(|source| source.tls.as_deref());
        let result = self.client.send(request, tls).await;
        *exchange.upstream_elapsed.get_or_insert(Duration::ZERO) += sent.elapsed();
        let mut response = result?;
        headers::clean_response(response.headers_mut());
        Ok(response)
    }
}
