//! Metrics: plain atomics on the hot path, Prometheus text at scrape time.
//!
//! Requests are counted with `fetch_add` on counters that already exist (per source, made
//! at load time and carried across reloads), so the hot path neither locks nor hashes a
//! label set. A prometheus-client `Collector` walks the current snapshot when `/metrics`
//! is scraped. (prometheus-client's own `Histogram` takes a mutex per observation; the
//! histogram here is atomics too.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::proxy::ProxyError;
use crate::store::Store;
use crate::watch::ReloadStats;

// === Hot-path counters ===

/// Responses by status class (1xx … 5xx).
#[derive(Debug, Default)]
pub struct StatusCounters([AtomicU64; 5]);

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl StatusCounters {
    pub fn count(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.0[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Classes seen so far: a series appears with its first request, so a file of many
    /// sources does not make a scrape of many zeros.
    fn values(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        CLASSES
            .iter()
            .zip(&self.0)
            .map(|(class, n)| (*class, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
    }
}

/// Per-source request counters; a reload hands them to the source's successor.
#[derive(Debug, Default)]
pub struct SourceMetrics {
    pub requests: StatusCounters,
}

/// Request latency in fixed buckets (seconds).
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BOUNDS.len()],
    overflow: AtomicU64,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

const BOUNDS: [f64; 14] = [
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
}

/// Why forwarding failed, as a metric label.
#[derive(Debug, Clone, Copy)]
pub enum UpstreamErrorKind {
    Connect,
    Protocol,
    Timeout,
}

impl UpstreamErrorKind {
    const ALL: [UpstreamErrorKind; 3] = [Self::Connect, Self::Protocol, Self::Timeout];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Protocol => "protocol",
            Self::Timeout => "timeout",
        }
    }

    pub fn of(error: &ProxyError) -> Option<Self> {
        match error {
            ProxyError::UpstreamUnreachable(e) if e.is_connect() => Some(Self::Connect),
            ProxyError::UpstreamUnreachable(_) => Some(Self::Protocol),
            ProxyError::UpstreamTimeout => Some(Self::Timeout),
            _ => None,
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
}

impl ProxyMetrics {
    pub fn upstream_error(&self, kind: UpstreamErrorKind) {
        self.upstream_errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }
}

// === Scrape ===

/// Renders everything as Prometheus text at scrape time.
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
}

impl Exporter {
    pub fn new(
        store: Arc<Store>,
        proxy: Arc<ProxyMetrics>,
        reloads: Option<Arc<dyn ReloadStatsSource>>,
    ) -> Self {
        let mut registry = Registry::with_prefix("credproxy");
        registry.register_collector(Box::new(SnapshotCollector {
            store,
            proxy,
            reloads,
        }));
        Self { registry }
    }

    /// OpenMetrics text.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Where reload counters come from (the reloader; absent in tests without one).
pub trait ReloadStatsSource: std::fmt::Debug + Send + Sync {
    fn reload_stats(&self) -> &ReloadStats;
}

impl ReloadStatsSource for crate::watch::Reloader {
    fn reload_stats(&self) -> &ReloadStats {
        &self.stats
    }
}

#[derive(Debug)]
struct SnapshotCollector {
    store: Arc<Store>,
    proxy: Arc<ProxyMetrics>,
    reloads: Option<Arc<dyn ReloadStatsSource>>,
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.store.load_full();
        let now = tokio::time::Instant::now();

        let mut family = encoder.encode_descriptor(
            "requests",
            "Requests by source and status class",
            None,
            MetricType::Counter,
        )?;
        for (class, n) in self.proxy.unrouted.values() {
            family
                .encode_family(&[("source", "-"), ("class", class)])?
                .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }
        for source in snapshot.sources() {
            for (class, n) in source.metrics.requests.values() {
                family
                    .encode_family(&[("source", &*source.id), ("class", class)])?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }

        let histogram = &self.proxy.duration;
        let buckets: Vec<(f64, u64)> = BOUNDS
            .iter()
            .zip(&histogram.buckets)
            .map(|(bound, n)| (*bound, n.load(Ordering::Relaxed)))
            .chain(std::iter::once((
                f64::INFINITY,
                histogram.overflow.load(Ordering::Relaxed),
            )))
            .collect();
        encoder
            .encode_descriptor(
                "request_duration_seconds",
                "Time to the response headers",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(
                histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
                histogram.count.load(Ordering::Relaxed),
                &buckets,
                None,
            )?;

        let mut family = encoder.encode_descriptor(
            "upstream_errors",
            "Failed upstream exchanges by kind",
            None,
            MetricType::Counter,
        )?;
        for kind in UpstreamErrorKind::ALL {
            let n = self.proxy.upstream_errors[kind as usize].load(Ordering::Relaxed);
            family
                .encode_family(&[("kind", kind.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }

        let token_sources: Vec<_> = snapshot
            .sources()
            .iter()
            .filter_map(|s| s.credentials.token_source().map(|t| (&*s.id, t)))
            .collect();
        let mut family = encoder.encode_descriptor(
            "token_requests",
            "Token endpoint requests by source and result",
            None,
            MetricType::Counter,
        )?;
        for (id, tokens) in &token_sources {
            for (result, n) in [
                ("ok", &tokens.stats.requests_ok),
                ("error", &tokens.stats.requests_failed),
            ] {
                family
                    .encode_family(&[("source", *id), ("result", result)])?
                    .encode_counter::<NoLabelSet, _, u64>(&n.load(Ordering::Relaxed), None)?;
            }
        }
        for (name, help, pick) in [
            ("token_cache_hits", "Requests served a cached token", 0),
            ("token_cache_misses", "Requests that waited for a token", 1),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (id, tokens) in &token_sources {
                let n = if pick == 0 {
                    &tokens.stats.cache_hits
                } else {
                    &tokens.stats.cache_misses
                };
                family
                    .encode_family(&[("source", *id)])?
                    .encode_counter::<NoLabelSet, _, u64>(&n.load(Ordering::Relaxed), None)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "token_expiry_seconds",
            "Seconds until the cached token of a source may no longer be injected",
            None,
            MetricType::Gauge,
        )?;
        for (id, tokens) in &token_sources {
            if let Some(until) = tokens.usable_until() {
                let seconds = until.saturating_duration_since(now).as_secs_f64();
                family
                    .encode_family(&[("source", *id)])?
                    .encode_gauge(&seconds)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "token_last_refresh_success",
            "1 if the last token request of a source succeeded, 0 if it failed",
            None,
            MetricType::Gauge,
        )?;
        for (id, tokens) in &token_sources {
            if let Some(ok) = tokens.stats.last_result() {
                family
                    .encode_family(&[("source", *id)])?
                    .encode_gauge(&i64::from(ok))?;
            }
        }

        if let Some(reloads) = &self.reloads {
            let stats = reloads.reload_stats();
            let mut family = encoder.encode_descriptor(
                "config_reloads",
                "Config reloads by result",
                None,
                MetricType::Counter,
            )?;
            for (result, n) in [
                ("applied", &stats.applied),
                ("unchanged", &stats.unchanged),
                ("rejected", &stats.rejected),
            ] {
                family
                    .encode_family(&[("result", result)])?
                    .encode_counter::<NoLabelSet, _, u64>(&n.load(Ordering::Relaxed), None)?;
            }
            let last = stats.last_success_unix.load(Ordering::Relaxed) as i64;
            encoder
                .encode_descriptor(
                    "config_last_reload_success_timestamp_seconds",
                    "When the config last loaded successfully",
                    None,
                    MetricType::Gauge,
                )?
                .encode_gauge(&last)?;
        }
        let generation = snapshot.meta.generation as i64;
        encoder
            .encode_descriptor(
                "config_generation",
                "Generation of the config in effect",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&generation)?;
        Ok(())
    }
}
