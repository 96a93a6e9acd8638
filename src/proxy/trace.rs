//! One proxied request as spans, when tracing is on: a server span in the caller's trace
//! (W3C `traceparent`/`tracestate`), a child for a token fetch the request waited for, and
//! a client child for the upstream call, whose context the upstream receives.
//!
//! Attributes: the method, the source id and auth type, the status, the token outcome and
//! the error code (the access log's fields). Never the path's query, a header value, a
//! secret or a caller's token.

use std::borrow::Cow;
use std::time::SystemTime;

use http::{HeaderMap, Request, StatusCode};
use opentelemetry::Context;
use opentelemetry_sdk::trace::SdkTracer;

use crate::auth::TokenOutcome;
use crate::live::Source;
use crate::otel::{self, KeyValue, Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};

/// The method as a span name and attribute: the standard ones without a copy.
fn method_name(method: &http::Method) -> Cow<'static, str> {
    use http::Method;
    Cow::Borrowed(match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => return Cow::Owned(method.as_str().to_owned()),
    })
}

pub struct RequestTrace {
    tracer: SdkTracer,
    /// The caller's context with the server span in it.
    server: Context,
    /// The upstream call's span, from its start until the response headers (or the
    /// failure).
    upstream: Option<Context>,
}

impl RequestTrace {
    pub fn start<B>(tracer: &SdkTracer, request: &Request<B>) -> Self {
        let parent = otel::extract(request.headers());
        let method = method_name(request.method());
        let span = tracer
            .span_builder(method.clone())
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("http.request.method", method)])
            .start_with_context(tracer, &parent);
        Self {
            tracer: tracer.clone(),
            server: parent.with_span(span),
            upstream: None,
        }
    }

    /// The request found its source: the span is named after it.
    pub fn routed(&self, method: &http::Method, source: &Source) {
        let span = self.server.span();
        span.update_name(format!("{method} {}", source.id));
        span.set_attributes([
            KeyValue::new("credproxy.source.id", std::sync::Arc::clone(&source.id)),
            KeyValue::new("credproxy.auth_type", source.auth_type.as_str()),
        ]);
    }

    /// The credential is on the request; when it took a token request, that wait (from
    /// `started`) becomes a child span.
    pub fn credential(&self, outcome: TokenOutcome, started: SystemTime) {
        if outcome != TokenOutcome::Fetched {
            return;
        }
        let mut span = self
            .tracer
            .span_builder("token fetch")
            .with_kind(SpanKind::Internal)
            .with_start_time(started)
            .with_attributes([KeyValue::new("credproxy.token", outcome.as_str())])
            .start_with_context(&self.tracer, &self.server);
        span.end();
    }

    /// The upstream call begins: its span starts, and `headers` (the outbound request's)
    /// carry its context instead of the caller's.
    pub fn upstream_call(&mut self, source: &Source, headers: &mut HeaderMap) {
        let upstream = &source.upstream;
        let span = self
            .tracer
            .span_builder("upstream")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("server.address", upstream.authority.host().to_owned()),
                KeyValue::new("url.scheme", upstream.scheme.to_string()),
            ])
            .start_with_context(&self.tracer, &self.server);
        let cx = self.server.with_span(span);
        otel::inject(&cx, headers);
        self.upstream = Some(cx);
    }

    /// The upstream answered (its status) or could not be reached (`None`).
    pub fn upstream_done(&mut self, status: Option<StatusCode>) {
        let Some(cx) = self.upstream.take() else {
            return;
        };
        let span = cx.span();
        match status {
            Some(status) => {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                ));
            }
            None => span.set_status(Status::error("no response from the upstream")),
        }
        span.end();
    }

    /// The answer went to the caller: the server span ends with its outcome.
    pub fn finish(mut self, status: StatusCode, token: TokenOutcome, code: Option<&'static str>) {
        self.upstream_done(None);
        let span = self.server.span();
        span.set_attributes([
            KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
            KeyValue::new("credproxy.token", token.as_str()),
        ]);
        if let Some(code) = code {
            span.set_attribute(KeyValue::new("error.type", code));
        }
        if status.is_server_error() {
            span.set_status(Status::error(code.unwrap_or("server error")));
        }
        span.end();
    }
}
