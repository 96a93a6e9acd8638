//! Logging: the subscriber, the one access-log event per request, and how errors are
//! printed. Takes plain values: it imports nothing of credproxy.
//!
//! Dependencies are capped below their own trace levels whatever `RUST_LOG` says: h2 logs
//! frames (request paths with their query strings) at debug and trace, and a query may
//! carry a caller's data or an API key.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use http::{Method, StatusCode};
use tracing::level_filters::LevelFilter;
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
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

/// Lines the log queue holds before it drops (about 5 MiB of access-log lines).
const LOG_QUEUE_LINES: usize = 16_384;

/// The writer's count of lines dropped because the queue was full.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Keeps the log writer running; dropping it writes out what is queued. Hold it until exit.
#[must_use = "the log stops being written when this is dropped"]
pub struct LogGuard(#[allow(dead_code)] Option<WorkerGuard>);

/// Installs the global subscriber: `RUST_LOG` (default `info`), written to stderr.
///
/// Events are formatted on the thread that emits them and queued; a thread of its own
/// writes them out through a buffer, so a burst of access-log lines becomes a few
/// `write(2)`s off the request path, and a stderr that stops draining (a stuck log
/// collector) costs dropped lines, counted in [`dropped_log_lines`], never a blocked
/// request.
pub fn init(format: LogFormat) -> LogGuard {
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
    let (writer, guard) = queued(std::io::BufWriter::new(std::io::stderr()), LOG_QUEUE_LINES);
    let dropped = writer.error_counter();
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let layer = match format {
        LogFormat::Text => fmt.with_ansi(false).boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed(),
    };
    // A second init (in-process tests) keeps the first subscriber.
    let installed = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init()
        .is_ok();
    if installed {
        let _ = DROPPED.set(dropped);
    }
    LogGuard(installed.then_some(guard))
}

/// A non-blocking writer over `out` that queues at most `lines`, dropping the rest.
fn queued<W: std::io::Write + Send + 'static>(out: W, lines: usize) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(lines)
        .thread_name("credproxy-log")
        .finish(out)
}

/// Log lines dropped so far because stderr did not keep up.
pub fn dropped_log_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
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

    /// A writer that takes nothing until `release` is sent: a log collector that stopped
    /// reading.
    struct Stalled(
        std::sync::mpsc::Receiver<()>,
        std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    );

    impl std::io::Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.recv();
            self.1.lock().expect("sink").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_stderr_drops_lines_and_counts_them_without_blocking() {
        use std::io::Write as _;
        let (release, stalled) = std::sync::mpsc::channel();
        let sink = std::sync::Arc::default();
        let (mut writer, guard) = queued(Stalled(stalled, std::sync::Arc::clone(&sink)), 4);
        let counter = writer.error_counter();
        // The worker takes one line and blocks on it; four wait in the queue; the rest go.
        for i in 0..20 {
            writer
                .write_all(format!("line {i}\n").as_bytes())
                .expect("never blocks");
        }
        let dropped = counter.dropped_lines();
        assert!((15..=16).contains(&dropped), "{dropped} dropped");
        for _ in 0..20 {
            let _ = release.send(());
        }
        drop(guard); // writes out what was queued
        let written = String::from_utf8(sink.lock().expect("sink").clone()).expect("utf8");
        assert_eq!(
            written.lines().count() as u64 + dropped as u64,
            20,
            "{written}"
        );
        assert!(written.starts_with("line 0\n"), "{written}");
    }

    #[test]
    fn causes_are_printed_once() {
        assert_eq!(error_chain(&Outer::Plain(Inner)), "outer: inner");
        assert_eq!(error_chain(&Outer::Quoting(Inner)), "outer: inner");
    }
}
