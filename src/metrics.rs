//! Counters: plain atomics, counted on the hot path and read at scrape time.
//!
//! Requests are counted with `fetch_add` on counters that already exist (per source, made
//! at load time and carried across reloads), so the hot path neither locks nor hashes a
//! label set. Rendering them as Prometheus text is the admin listener's, a layer above.
//! (prometheus-client's own `Histogram` takes a mutex per observation; the histogram here
//! is atomics too.)

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;

/// Responses by status class (1xx … 5xx).
#[derive(Debug, Default)]
pub struct StatusCounters([AtomicU64; 5]);

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl StatusCounters {
    pub fn count(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.0[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Responses of one class, 1 to 5 (`class(2)`: the 2xx).
    pub fn class(&self, class: u8) -> u64 {
        let index = usize::from(class.clamp(1, 5)) - 1;
        self.0[index].load(Ordering::Relaxed)
    }

    /// Classes seen so far: a series appears with its first request, so a file of many
    /// sources does not make a scrape of many zeros.
    pub fn values(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        CLASSES
            .iter()
            .zip(&self.0)
            .map(|(class, n)| (*class, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
    }
}

/// Per-source counters; a reload hands them to the source's successor.
#[derive(Debug, Default)]
pub struct SourceMetrics {
    pub requests: StatusCounters,
    /// The status of the source's latest response (0: none yet), for the status page.
    last_status: AtomicU16,
    /// Response headers dropped because they held one of the source's secrets.
    pub response_headers_dropped: AtomicU64,
}

impl SourceMetrics {
    /// Counts a response to a request for the source.
    pub fn answered(&self, status: StatusCode) {
        self.requests.count(status);
        self.last_status.store(status.as_u16(), Ordering::Relaxed);
    }

    /// The status of the latest response, once there was one.
    pub fn last_status(&self) -> Option<u16> {
        match self.last_status.load(Ordering::Relaxed) {
            0 => None,
            status => Some(status),
        }
    }
}

/// Request latency in fixed buckets (seconds).
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BOUNDS.len()],
    overflow: AtomicU64,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

pub const BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: Default::default(),
            overflow: AtomicU64::new(0),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        match BOUNDS.iter().position(|bound| seconds <= *bound) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Cumulative-free bucket counts by upper bound (the last is +Inf), the sum in
    /// seconds and the count.
    pub fn read(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let buckets = BOUNDS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| (*bound, n.load(Ordering::Relaxed)))
            .chain(std::iter::once((
                f64::INFINITY,
                self.overflow.load(Ordering::Relaxed),
            )))
            .collect();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (buckets, sum, self.count.load(Ordering::Relaxed))
    }
}

/// Why forwarding failed, as a metric label.
#[derive(Debug, Clone, Copy)]
pub enum UpstreamErrorKind {
    Connect,
    Protocol,
    Timeout,
}

impl UpstreamErrorKind {
    pub const ALL: [UpstreamErrorKind; 3] = [Self::Connect, Self::Protocol, Self::Timeout];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Protocol => "protocol",
            Self::Timeout => "timeout",
        }
    }
}

/// Why a caller was turned away (407 or 403), as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerRejection {
    MissingToken,
    UnknownToken,
    JwtAlgorithm,
    JwtIssuer,
    JwtUnknownKey,
    JwtSignature,
    JwtExpired,
    JwtNotYetValid,
    JwtClaims,
    JwtAudience,
    JwtSubject,
    /// A known caller, outside its `sources`.
    Source,
    /// A known caller, matching none of its `rules`.
    Rule,
}

impl CallerRejection {
    pub const ALL: [CallerRejection; 13] = [
        Self::MissingToken,
        Self::UnknownToken,
        Self::JwtAlgorithm,
        Self::JwtIssuer,
        Self::JwtUnknownKey,
        Self::JwtSignature,
        Self::JwtExpired,
        Self::JwtNotYetValid,
        Self::JwtClaims,
        Self::JwtAudience,
        Self::JwtSubject,
        Self::Source,
        Self::Rule,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::UnknownToken => "unknown_token",
            Self::JwtAlgorithm => "jwt_algorithm",
            Self::JwtIssuer => "jwt_issuer",
            Self::JwtUnknownKey => "jwt_unknown_key",
            Self::JwtSignature => "jwt_signature",
            Self::JwtExpired => "jwt_expired",
            Self::JwtNotYetValid => "jwt_not_yet_valid",
            Self::JwtClaims => "jwt_claims",
            Self::JwtAudience => "jwt_audience",
            Self::JwtSubject => "jwt_subject",
            Self::Source => "source",
            Self::Rule => "rule",
        }
    }
}

/// The proxy's own counters, shared with the admin listener.
#[derive(Debug, Default)]
pub struct ProxyMetrics {
    pub duration: LatencyHistogram,
    /// Requests that matched no source (rejected callers, bad paths, unknown ids).
    pub unrouted: StatusCounters,
    upstream_errors: [AtomicU64; 3],
    caller_rejections: [AtomicU64; CallerRejection::ALL.len()],
}

impl ProxyMetrics {
    pub fn caller_rejected(&self, why: CallerRejection) {
        self.caller_rejections[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn caller_rejections(&self, why: CallerRejection) -> u64 {
        self.caller_rejections[why as usize].load(Ordering::Relaxed)
    }

    pub fn upstream_error(&self, kind: UpstreamErrorKind) {
        self.upstream_errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn upstream_errors(&self, kind: UpstreamErrorKind) -> u64 {
        self.upstream_errors[kind as usize].load(Ordering::Relaxed)
    }
}
