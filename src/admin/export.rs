//! `/metrics`: the counters of [`crate::metrics`] and the live snapshot, rendered as
//! OpenMetrics text by a prometheus-client collector when scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::auth::token_cache::{CacheState, TokenStats};
use crate::live::Snapshot;
use crate::metrics::{CallerRejection, ProxyMetrics, UpstreamErrorKind};
use crate::store::Store;
use crate::watch::Reloader;

/// Renders everything as Prometheus text at scrape time.
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
}

impl Exporter {
    pub fn new(
        store: Arc<Store>,
        proxy: Arc<ProxyMetrics>,
        reloads: Option<Arc<Reloader>>,
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

#[derive(Debug)]
struct SnapshotCollector {
    store: Arc<Store>,
    proxy: Arc<ProxyMetrics>,
    reloads: Option<Arc<Reloader>>,
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.store.load_full();
        self.requests(&mut encoder, &snapshot)?;
        let token_sources: Vec<(&str, &dyn CacheState)> = snapshot
            .sources()
            .iter()
            .filter_map(|s| s.credentials.cache().map(|cache| (&*s.id, cache)))
            .collect();
        token_counters(&mut encoder, &token_sources)?;
        token_gauges(&mut encoder, &token_sources)?;
        self.config(&mut encoder, &snapshot)
    }
}

type Fmt = Result<(), std::fmt::Error>;

/// One counter row of a family.
fn counter(family: &mut MetricEncoder<'_>, labels: &[(&str, &str)], n: u64) -> Fmt {
    family
        .encode_family(&labels)?
        .encode_counter::<NoLabelSet, _, u64>(&n, None)
}

impl SnapshotCollector {
    /// Requests, their duration, upstream errors and headers dropped from responses.
    fn requests(&self, encoder: &mut DescriptorEncoder, snapshot: &Snapshot) -> Fmt {
        let mut family = encoder.encode_descriptor(
            "requests",
            "Requests by source and status class",
            None,
            MetricType::Counter,
        )?;
        for (class, n) in self.proxy.unrouted.values() {
            counter(&mut family, &[("source", "-"), ("class", class)], n)?;
        }
        for source in snapshot.sources() {
            for (class, n) in source.metrics.requests.values() {
                counter(&mut family, &[("source", &source.id), ("class", class)], n)?;
            }
        }

        let (buckets, sum, count) = self.proxy.duration.read();
        encoder
            .encode_descriptor(
                "request_duration_seconds",
                "Time to the response headers",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;

        let mut family = encoder.encode_descriptor(
            "upstream_errors",
            "Failed upstream exchanges by kind",
            None,
            MetricType::Counter,
        )?;
        for kind in UpstreamErrorKind::ALL {
            counter(
                &mut family,
                &[("kind", kind.as_str())],
                self.proxy.upstream_errors(kind),
            )?;
        }

        let mut family = encoder.encode_descriptor(
            "caller_rejections",
            "Requests turned away at the caller check, by reason (407, or 403 for source and rule)",
            None,
            MetricType::Counter,
        )?;
        for why in CallerRejection::ALL {
            let n = self.proxy.caller_rejections(why);
            if n > 0 {
                counter(&mut family, &[("reason", why.as_str())], n)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "jwks_fetch_failures",
            "Failed fetches of a JWT caller's jwks_url (the last good key set is kept)",
            None,
            MetricType::Counter,
        )?;
        for keys in snapshot.callers.iter().flat_map(|c| c.remote_keys()) {
            let n = keys.failures.load(Ordering::Relaxed);
            // One issuer may publish at two URLs; a `jwks_url` holds no credential or query.
            let url = keys.url.to_string();
            counter(&mut family, &[("issuer", &keys.issuer), ("url", &url)], n)?;
        }

        encoder
            .encode_descriptor(
                "log_lines_dropped",
                "Log lines dropped because stderr did not keep up (the log queue was full)",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, _, u64>(&crate::telemetry::dropped_log_lines(), None)?;

        let mut family = encoder.encode_descriptor(
            "response_headers_dropped",
            "Response headers dropped because they held a source's credential",
            None,
            MetricType::Counter,
        )?;
        for source in snapshot.sources() {
            let n = source
                .metrics
                .response_headers_dropped
                .load(Ordering::Relaxed);
            if n > 0 {
                counter(&mut family, &[("source", &source.id)], n)?;
            }
        }
        Ok(())
    }

    /// Reloads and the config in effect.
    fn config(&self, encoder: &mut DescriptorEncoder, snapshot: &Snapshot) -> Fmt {
        if let Some(reloads) = &self.reloads {
            let stats = &reloads.stats;
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
                counter(
                    &mut family,
                    &[("result", result)],
                    n.load(Ordering::Relaxed),
                )?;
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
            .encode_gauge(&generation)
    }
}

/// A `result` label (empty: none) and the counter it reads.
type Results = &'static [(&'static str, fn(&TokenStats) -> &AtomicU64)];

/// Token requests, forced refreshes, cache hits and misses, per source with a cache
/// (OAuth2, GitHub App, SigV4 with a role).
fn token_counters(encoder: &mut DescriptorEncoder, sources: &[(&str, &dyn CacheState)]) -> Fmt {
    let families: [(&str, &str, Results); 4] = [
        (
            "token_requests",
            "Token endpoint requests by source and result",
            &[
                ("ok", |s| &s.requests_ok),
                ("error", |s| &s.requests_failed),
            ],
        ),
        (
            "token_forced_refreshes",
            "Cached tokens an upstream refused: dropped for a new one, or held down",
            &[
                ("dropped", |s| &s.forced_refreshes),
                ("held_down", |s| &s.forced_refreshes_held),
            ],
        ),
        (
            "token_cache_hits",
            "Requests served a cached token",
            &[("", |s| &s.cache_hits)],
        ),
        (
            "token_cache_misses",
            "Requests that waited for a token",
            &[("", |s| &s.cache_misses)],
        ),
    ];
    for (name, help, results) in families {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (id, tokens) in sources {
            for (result, pick) in results {
                let n = pick(tokens.stats()).load(Ordering::Relaxed);
                if result.is_empty() {
                    counter(&mut family, &[("source", id)], n)?;
                } else {
                    counter(&mut family, &[("source", id), ("result", result)], n)?;
                }
            }
        }
    }
    Ok(())
}

/// When each cached token expires, and whether its last refresh succeeded.
fn token_gauges(encoder: &mut DescriptorEncoder, sources: &[(&str, &dyn CacheState)]) -> Fmt {
    let now = tokio::time::Instant::now();
    let mut family = encoder.encode_descriptor(
        "token_expiry_seconds",
        "Seconds until the cached token of a source may no longer be injected",
        None,
        MetricType::Gauge,
    )?;
    for (id, tokens) in sources {
        if let Some(until) = tokens.schedule().map(|s| s.usable_until) {
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
    for (id, tokens) in sources {
        if let Some(ok) = tokens.stats().last_result() {
            family
                .encode_family(&[("source", *id)])?
                .encode_gauge(&i64::from(ok))?;
        }
    }
    Ok(())
}
