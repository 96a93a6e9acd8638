//! The request path: route → clean → inject → forward, and one exit that answers, logs
//! and counts once.

pub mod client;
pub mod error;
pub mod headers;
pub mod route;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

pub use client::{ClientSettings, UpstreamClient};
pub use error::ProxyError;

use crate::auth::{self, TokenOutcome};
use crate::config::{AuthType, Source};
use crate::store::Store;
use crate::telemetry::{self, AccessRecord};

/// A response body: the upstream's, streamed, or credproxy's own problem+json.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// The proxy service: shared by every connection.
#[derive(Debug)]
pub struct Proxy {
    store: Arc<Store>,
    client: UpstreamClient,
}

/// What one exchange learned along the way, for the access log.
#[derive(Default)]
struct Exchange {
    source: Option<Arc<Source>>,
    upstream_elapsed: Option<Duration>,
    token: Option<TokenOutcome>,
}

impl Proxy {
    pub fn new(store: Arc<Store>, client: UpstreamClient) -> Self {
        Self { store, client }
    }

    /// Handles one request that arrived on a connection accepted at `local_addr`.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        local_addr: SocketAddr,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let method = request.method().clone();
        let uri = request.uri().clone();
        let mut exchange = Exchange::default();

        let result = self.forward(request, local_addr, &mut exchange).await;

        let (response, error) = match result {
            Ok(response) => (response.map(Either::Left), None),
            Err(error) => (error.to_response().map(Either::Right), Some(error)),
        };
        telemetry::access_log(&AccessRecord {
            caller: None,
            source: exchange.source.as_deref(),
            method: &method,
            path: uri.path(),
            status: response.status(),
            total: started.elapsed(),
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
        // Route: one snapshot load and one map lookup; the guard is gone before any await.
        let target = route::target(&request, local_addr)?;
        let source = self
            .store
            .load()
            .source(&target.source_id)
            .cloned()
            .ok_or(ProxyError::UnknownSource)?;
        exchange.source = Some(Arc::clone(&source));
        let uri = route::upstream_uri(
            &source.upstream,
            target.rest,
            target.query,
            source.credentials.query(),
        )?;

        let (mut parts, body) = request.into_parts();
        headers::clean_request(&mut parts.headers, source.auth_type == AuthType::None);
        auth::inject(
            &source.credentials,
            &source.extra_headers,
            &mut parts.headers,
        );
        exchange.token = Some(TokenOutcome::None);
        parts.uri = uri;

        let sent = Instant::now();
        let result = self.client.send(Request::from_parts(parts, body)).await;
        exchange.upstream_elapsed = Some(sent.elapsed());
        let mut response = result?;
        headers::clean_response(response.headers_mut());
        Ok(response)
    }
}
