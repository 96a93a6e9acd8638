//! Traces, when `--otlp-endpoint` (or `OTEL_EXPORTER_OTLP_ENDPOINT`) is set: the
//! OpenTelemetry SDK's tracer, W3C trace context in and out, and an OTLP/HTTP (protobuf)
//! exporter.
//!
//! Finished spans go into the SDK's batch queue (bounded; a full queue drops spans, never
//! waits) and its own thread exports them with reqwest's blocking client: no export is on
//! the request path, and a slow or dead collector costs requests nothing. With no endpoint
//! there is no tracer at all, and the request path only tests an `Option`.
//!
//! What goes into a span is the request path's choice (`proxy/trace.rs`); the rule is the
//! access log's: ids, kinds, statuses and outcomes, never a secret, a query string or a
//! caller's token.

use std::time::Duration;

use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::Context;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::transport::tls;

pub use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer};
pub use opentelemetry::KeyValue;

/// How long one export may take before the batch thread gives up on it.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// The value is not repeated: a collector URL may carry a key.
    #[error("--otlp-endpoint must be an http:// or https:// URL")]
    Endpoint,
    #[error("cannot set up TLS for the OTLP exporter: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot build the OTLP exporter's HTTP client: {0}")]
    Client(String),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

/// The tracer and its provider: cheap to clone (both are reference counted).
#[derive(Clone, Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Tracing {
    /// Starts the exporter for `endpoint`, the OTLP base URL (traces go to
    /// `{endpoint}/v1/traces`, as with `OTEL_EXPORTER_OTLP_ENDPOINT`). The SDK reads the
    /// rest of its settings from the standard variables: `OTEL_EXPORTER_OTLP_HEADERS`,
    /// `OTEL_SERVICE_NAME`, `OTEL_BSP_*`.
    ///
    /// Call it outside the async runtime: reqwest's blocking client runs a runtime of its
    /// own, which must not be made (or dropped) inside another.
    pub fn start(endpoint: &str) -> Result<Self, TracingError> {
        let base = endpoint.trim_end_matches('/');
        let scheme_ok = base.starts_with("http://") || base.starts_with("https://");
        let uri = match base.parse::<http::Uri>() {
            Ok(uri) if scheme_ok => uri,
            _ => return Err(TracingError::Endpoint),
        };
        let tls = tls::client_config(tls::public_roots(), None)?;
        let client = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(EXPORT_TIMEOUT)
            // A collector's redirect would take the exporter's headers (often an API key)
            // to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TracingError::Client(e.to_string()))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{base}/v1/traces"))
            .with_http_client(client)
            .build()
            .map_err(|e| TracingError::Exporter(e.to_string()))?;
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("credproxy");
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer("credproxy");
        // The host only: a URL's user-info or path may hold a collector's key.
        tracing::info!(
            collector = uri.host().unwrap_or("?"),
            "Exporting traces over OTLP/HTTP"
        );
        Ok(Self { provider, tracer })
    }

    pub fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// Exports what is queued and stops the export thread. Outside the async runtime,
    /// like [`Self::start`].
    pub fn shutdown(&self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "Could not export the last spans");
        }
    }
}

/// The caller's trace context (`traceparent`, `tracestate`), or an empty one when it sent
/// none or a malformed one.
pub fn extract(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes `cx`'s span as `traceparent` (and its `tracestate`) into `headers`, replacing
/// what the caller sent: a `tracestate` that came without a valid `traceparent` belongs
/// to no trace of ours and goes.
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    headers.remove("tracestate");
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}
