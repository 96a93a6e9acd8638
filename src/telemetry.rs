//! Logging: the subscriber, the one access-log event per request, and how errors are
//! printed. Takes plain values: it imports nothing of credproxy.
//!
//! Dependencies are capped below their own trace levels whatever `RUST_LOG` says: h2 logs
//! frames (request paths with their query strings) at debug and trace, and a query may
//! carry a caller's data or an API key.

use std::fmt::Write as _;
use std::time::Duration;

use http::{Method, StatusCode};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber: `RUST_LOG` (default `info`), written to stderr.
pub fn init(format: LogFormat) {
    let env = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let caps = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("h2", LevelFilter::INFO)
        .with_target("hyper", LevelFilter::DEBUG)
        .with_target("hyper_util", LevelFilter::DEBUG)
        .with_target("rustls", LevelFilter::DEBUG)
        .with_target("tokio_rustls", LevelFilter::DEBUG);
    let filter = env.and(caps);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = match format {
        LogFormat::Text => fmt.with_ansi(false).boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed(),
    };
    // A second init (in-process tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}

/// One finished exchange, as the access log sees it: plain values only.
pub struct AccessRecord<'a> {
    pub caller: Option<&'a str>,
    /// A JWT caller's `sub`.
    pub subject: Option<&'a str>,
    pub source: Option<&'a str>,
    pub auth_type: Option<&'a str>,
    pub method: &'a Method,
    /// The path only: query strings are never logged.
    pub path: &'a str,
    pub status: StatusCode,
    pub total: Duration,
    pub upstream: Option<Duration>,
    pub token: &'static str,
    /// The problem code of a request credproxy answered itself.
    pub code: Option<&'static str>,
    pub error: Option<&'a (dyn std::error::Error + 'static)>,
}

/// Emits the access-log event (target `credproxy::access`, level INFO) for one request,
/// at the time its response headers are sent.
pub fn access_log(record: &AccessRecord<'_>) {
    let upstream_ms = record.upstream.map(millis);
    let total_ms = millis(record.total);
    tracing::info!(
        target: "credproxy::access",
        caller = record.caller.unwrap_or("-"),
        subject = record.subject.unwrap_or("-"),
        source = record.source.unwrap_or("-"),
        auth_type = record.auth_type.unwrap_or("-"),
        method = %record.method,
        path = record.path,
        status = record.status.as_u16(),
        total_ms,
        upstream_ms,
        token = record.token,
        code = record.code,
        error = record.error.map(|e| tracing::field::display(error_chain(e))),
        "Request"
    );
}

/// Milliseconds with microsecond precision (`1.234`), which is what a reader wants.
fn millis(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1e3
}

/// `error: cause: cause`, for logs; a client only ever sees a fixed detail. An error whose
/// message already ends with its cause's (a `{0}` in a thiserror format) is not repeated.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let next_text = next.to_string();
        if !text.ends_with(&next_text) {
            let _ = write!(text, ": {next_text}");
        }
        cause = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("outer")]
        Plain(#[source] Inner),
        #[error("outer: {0}")]
        Quoting(#[source] Inner),
    }

    #[test]
    fn causes_are_printed_once() {
        assert_eq!(error_chain(&Outer::Plain(Inner)), "outer: inner");
        assert_eq!(error_chain(&Outer::Quoting(Inner)), "outer: inner");
    }
}
