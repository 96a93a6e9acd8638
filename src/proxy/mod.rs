//! The request path, DESIGN.md §1: caller check → route → clean → inject → forward, and
//! one exit that answers, logs and counts once.

pub mod body;
pub mod client;
pub mod error;
pub mod headers;
pub mod local;
pub mod response;
pub mod route;
pub mod trace;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

pub use crate::transport::ClientSettings;
pub use client::UpstreamClient;
pub use error::ProxyError;
pub use local::{LocalBody, LocalUpstream};

use crate::auth::token_client::{TokenClient, TokenClientSettings};
use crate::auth::{self, Injected, Injection, TokenOutcome};
use crate::caller::{jwks, CallerError, Callers};
use crate::live::{Snapshot, Source};
use crate::metrics::ProxyMetrics;
use crate::store::Store;
use crate::telemetry::{self, AccessRecord};
use crate::transport::{BufferedBodies, CallerBody, OutboundBody, Payload};
use trace::RequestTrace;

/// What the connection a request came on knows about it.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The address the connection arrived on (an absolute-form target must name it).
    pub local_addr: SocketAddr,
    /// A request head on this connection carried both `Content-Length` and
    /// `Transfer-Encoding`: the request is refused, since an upstream could frame it
    /// differently.
    pub framing_conflict: bool,
    /// An HTTP/1 connection's own upstream connection (see [`local`]), with
    /// `--upstream-per-caller`; `None` otherwise and for h2, whose streams share the pool.
    pub upstream: Option<Arc<LocalUpstream>>,
}

/// Where a request goes, decided by steps 1 and 2 on one snapshot.
pub struct Routed {
    pub caller: Option<Arc<str>>,
    /// A JWT caller's `sub`.
    pub subject: Option<Arc<str>>,
    pub source: Arc<Source>,
    /// Where the path after `/{source_id}` starts.
    pub rest_start: usize,
}

/// Steps 1 and 2, caller check and route: authenticates the caller when the snapshot has
/// `callers:`, checks the target, finds the source (one map lookup) and holds the caller
/// to its sources and rules.
pub fn route_request<B>(
    snapshot: &Snapshot,
    request: &Request<B>,
    local_addr: SocketAddr,
) -> Result<Routed, ProxyError> {
    let caller = match &snapshot.callers {
        Some(callers) => Some(callers.authenticate(request.headers())?),
        None => None,
    };
    let target = route::target(request, local_addr)?;
    let source = snapshot
        .source(&target.source_id)
        .ok_or(ProxyError::UnknownSource)?;
    if let Some(caller) = &caller {
        caller
            .caller
            .permits(&source.id, request.method(), target.rest)
            .map_err(ProxyError::CallerForbidden)?;
    }
    route::check_rest(&source.upstream.base_path, target.rest)?;
    let (caller, subject) = match caller {
        Some(c) => (Some(Arc::clone(&c.caller.name)), c.subject),
        None => (None, None),
    };
    Ok(Routed {
        caller,
        subject,
        source: Arc::clone(source),
        rest_start: target.rest_start,
    })
}

/// Steps 3 and 4 on a routed request's head: clean the caller's headers, then inject the
/// source's credential (fetching a token if it has to).
pub async fn clean_and_inject(
    source: &Source,
    rest_start: usize,
    parts: &mut Parts,
    tokens: &TokenClient,
) -> Result<Injected, ProxyError> {
    let credentials = &source.credentials;
    let removed = headers::clean_request(
        &mut parts.headers,
        credentials.forwards_caller_authorization(),
    );
    // RFC 9112 §3.2. Checked here, where cleaning has looked the header up anyway.
    if !removed.host && parts.version == Version::HTTP_11 {
        return Err(ProxyError::BadRequest(
            "an HTTP/1.1 request needs a Host header",
        ));
    }
    let injection = Injection {
        credentials,
        extra_headers: &source.extra_headers,
        upstream: &source.upstream,
        rest_start,
        caller_authorization: removed.authorization,
    };
    Ok(auth::inject(injection, parts, tokens).await?)
}

/// Keeps the JWT callers' remote key sets fetched, for as long as the store lives (inside
/// a runtime; without one, the request path fetches a set when it first needs it).
fn spawn_key_refresh(store: &Arc<Store>, tokens: &TokenClient) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let store = Arc::downgrade(store);
    let sets = move || {
        let snapshot = store.upgrade()?.load_full();
        let sets = snapshot.callers.iter().flat_map(Callers::remote_keys);
        Some(sets.cloned().collect())
    };
    runtime.spawn(jwks::keep_fresh(sets, tokens.clone()));
}

/// An upstream's response body: through the pool, or on the connection's own upstream.
pub type UpstreamBody = Either<Incoming, LocalBody>;

/// A response body: the upstream's, streamed, or credproxy's own problem+json.
pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// The proxy service: shared by every connection.
#[derive(Debug)]
pub struct Proxy {
    store: Arc<Store>,
    client: UpstreamClient,
    tokens: TokenClient,
    /// The budget for bodies read whole (to sign them, or to send them again).
    bodies: BufferedBodies,
    /// HTTP/1 callers' connections get upstream connections of their own ([`local`]).
    upstream_per_caller: bool,
    /// With `--otlp-endpoint`: every request becomes spans ([`trace`]).
    tracer: Option<opentelemetry_sdk::trace::SdkTracer>,
    metrics: Arc<ProxyMetrics>,
}

/// What one exchange learned along the way, for the access log and the trace.
#[derive(Default)]
struct Exchange {
    caller: Option<Arc<str>>,
    subject: Option<Arc<str>>,
    source: Option<Arc<Source>>,
    upstream_elapsed: Option<Duration>,
    token: Option<TokenOutcome>,
    trace: Option<RequestTrace>,
}

impl Proxy {
    pub fn new(
        store: Arc<Store>,
        client: UpstreamClient,
        token_settings: TokenClientSettings,
    ) -> Self {
        let tokens = TokenClient::new(client.http().clone(), client.settings(), token_settings);
        spawn_key_refresh(&store, &tokens);
        // A body has as long to arrive as an upstream has to answer.
        let bodies = BufferedBodies::new(
            BufferedBodies::DEFAULT_BYTES,
            client.settings().response_timeout,
        );
        Self {
            store,
            client,
            tokens,
            bodies,
            upstream_per_caller: false,
            tracer: None,
            metrics: Arc::default(),
        }
    }

    /// Traces every request with `tracer` (see [`trace`]).
    pub fn with_tracer(mut self, tracer: Option<opentelemetry_sdk::trace::SdkTracer>) -> Self {
        self.tracer = tracer;
        self
    }

    /// The proxy for another worker thread: the same store, counters, token client and
    /// body budget, with `client`'s upstream pool of its own, so that one worker's
    /// requests never wait on connection tasks that another worker's thread runs.
    pub fn with_pool(&self, client: UpstreamClient) -> Self {
        Self {
            store: Arc::clone(&self.store),
            client,
            tokens: self.tokens.clone(),
            bodies: self.bodies.clone(),
            upstream_per_caller: self.upstream_per_caller,
            tracer: self.tracer.clone(),
            metrics: Arc::clone(&self.metrics),
        }
    }

    /// Sends HTTP/1 callers' requests to plain-http upstreams on connections of their
    /// own ([`local`]) instead of the shared pool: less CPU per request, one upstream
    /// connection (and its buffers) per caller connection.
    pub fn with_upstream_per_caller(mut self, on: bool) -> Self {
        self.upstream_per_caller = on;
        self
    }

    /// Whether callers' HTTP/1 connections bring their own upstream connection in
    /// [`Inbound::upstream`].
    pub fn upstream_per_caller(&self) -> bool {
        self.upstream_per_caller
    }

    /// Sets the budget for bodies held in memory (default
    /// [`BufferedBodies::DEFAULT_BYTES`]).
    pub fn with_body_buffer(mut self, bytes: u64) -> Self {
        self.bodies = BufferedBodies::new(bytes, self.client.settings().response_timeout);
        self
    }

    /// The proxy's counters, for the admin listener.
    pub fn metrics(&self) -> Arc<ProxyMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Handles one request; the one exit: answers, counts and logs once.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        inbound: Inbound,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let method = request.method().clone();
        let uri = request.uri().clone();
        let mut exchange = Exchange {
            trace: self
                .tracer
                .as_ref()
                .map(|t| RequestTrace::start(t, &request)),
            ..Exchange::default()
        };

        let result = if inbound.framing_conflict {
            Err(ProxyError::BadRequest(
                "Content-Length and Transfer-Encoding must not both be sent",
            ))
        } else {
            self.forward(request, &inbound, &mut exchange).await
        };

        let (response, error) = match result {
            Ok(response) => (response.map(Either::Left), None),
            Err(error) => (error.to_response().map(Either::Right), Some(error)),
        };
        let total = started.elapsed();
        self.metrics.duration.observe(total);
        match &exchange.source {
            Some(source) => source.metrics.answered(response.status()),
            None => self.metrics.unrouted.count(response.status()),
        }
        if let Some(kind) = error.as_ref().and_then(ProxyError::upstream_error_kind) {
            self.metrics.upstream_error(kind);
        }
        if let Some(why) = error.as_ref().and_then(ProxyError::caller_rejection) {
            self.metrics.caller_rejected(why);
        }
        let token = exchange.token.unwrap_or(TokenOutcome::None);
        if let Some(trace) = exchange.trace.take() {
            trace.finish(
                response.status(),
                token,
                error.as_ref().map(ProxyError::code),
            );
        }
        let source = exchange.source.as_deref();
        telemetry::access_log(&AccessRecord {
            caller: exchange.caller.as_deref(),
            subject: exchange.subject.as_deref(),
            source: source.map(|s| &*s.id),
            auth_type: source.map(|s| s.auth_type.as_str()),
            method: &method,
            path: uri.path(),
            status: response.status(),
            total,
            upstream: exchange.upstream_elapsed,
            token: token.as_str(),
            code: error.as_ref().map(ProxyError::code),
            error: error
                .as_ref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
        });
        response
    }

    async fn forward(
        &self,
        request: Request<Incoming>,
        inbound: &Inbound,
        exchange: &mut Exchange,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        let local_addr = inbound.local_addr;
        let own = inbound.upstream.as_ref();
        // One snapshot for the caller check and the route; the guard is gone before any await.
        let routed = match route_request(&self.store.load(), &request, local_addr) {
            // A JWT naming a key its issuer may have added since the last fetch: fetch
            // (rate-limited by the key set), then check once more.
            Err(ProxyError::CallerUnauthenticated(CallerError::FetchKeys(keys))) => {
                keys.fetch(&self.tokens).await;
                route_request(&self.store.load(), &request, local_addr)?
            }
            routed => routed?,
        };
        exchange.caller = routed.caller;
        exchange.subject = routed.subject;
        exchange.source = Some(Arc::clone(&routed.source));
        let source = routed.source;
        let (mut parts, body) = request.into_parts();
        // The clock is read for the trace only.
        let injecting = exchange.trace.as_ref().map(|trace| {
            trace.routed(&parts.method, &source);
            SystemTime::now()
        });
        let mut injected =
            clean_and_inject(&source, routed.rest_start, &mut parts, &self.tokens).await?;
        exchange.token = Some(injected.outcome);
        if let (Some(trace), Some(started)) = (exchange.trace.as_mut(), injecting) {
            trace.credential(injected.outcome, started);
            // Before signing: a signature may cover the headers.
            trace.upstream_call(&source, &mut parts.headers);
        }
        let payload = auth::sign(
            &source.credentials,
            &injected,
            &mut parts,
            CallerBody::new(body),
            &self.bodies,
        )
        .await?;
        if !injected.may_retry() {
            let request = Request::from_parts(parts, payload.into_outbound());
            return self.send(&source, request, &injected, own, exchange).await;
        }

        // A cached token may have been revoked early: an upstream 401 gets one retry with a
        // new token, when the body can be sent again.
        let bytes = match body::replayable(payload, &self.bodies).await? {
            Payload::Streaming(body) => {
                let request = Request::from_parts(parts, Either::Left(body));
                return self.send(&source, request, &injected, own, exchange).await;
            }
            Payload::Whole(whole) => whole,
        };
        let mut retry = Request::new(Either::Right(Full::new(bytes.bytes.clone())));
        *retry.method_mut() = parts.method.clone();
        *retry.uri_mut() = parts.uri.clone();
        *retry.headers_mut() = parts.headers.clone();
        let first = Request::from_parts(parts, Either::Right(Full::new(bytes.bytes.clone())));
        let response = self.send(&source, first, &injected, own, exchange).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let reinjected = auth::reinject_after_refusal(
            &source.credentials,
            &mut injected,
            retry.headers_mut(),
            &self.tokens,
        )
        .await?;
        let Some(outcome) = reinjected else {
            return Ok(response);
        };
        tracing::debug!(source = %source.id, "Upstream refused a cached token; retrying once with a new one");
        exchange.token = Some(outcome);
        self.send(&source, retry, &injected, own, exchange).await
    }

    /// Step 5: on the connection's own upstream connection for a plain-HTTP/1 upstream
    /// (see [`local`]), else through the pool.
    async fn send(
        &self,
        source: &Source,
        request: Request<OutboundBody>,
        injected: &Injected,
        own: Option<&Arc<LocalUpstream>>,
        exchange: &mut Exchange,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        let sent = Instant::now();
        let result = match own {
            Some(own) if own.takes(request.uri()) => {
                let settings = self.client.settings();
                own.send(request, &settings)
                    .await
                    .map(|r| r.map(Either::Right))
            }
            _ => {
                let response = self.client.send(request, source.tls.as_ref()).await;
                response.map(|r| r.map(Either::Left))
            }
        };
        *exchange.upstream_elapsed.get_or_insert(Duration::ZERO) += sent.elapsed();
        if let Some(trace) = exchange.trace.as_mut() {
            trace.upstream_done(result.as_ref().ok().map(Response::status));
        }
        let mut response = result?;
        response::scrub(response.headers_mut(), source, injected.sent_secret());
        Ok(response)
    }
}
