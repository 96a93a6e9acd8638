//! `/metrics`: the counters of [`crate::metrics`] and the live snapshot, rendered as
//! OpenMetrics text by a prometheus-client collector when scraped.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::metrics::{ProxyMetrics, UpstreamErrorKind};
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
            let n = self.proxy.upstream_errors(kind);
            family
                .encode_family(&[("kind", kind.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }

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
                family
                    .encode_family(&[("source", &*source.id)])?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
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
        let mut family = encoder.encode_descriptor(
            "token_forced_refreshes",
            "Cached tokens an upstream refused: dropped for a new one, or held down",
            None,
            MetricType::Counter,
        )?;
        for (id, tokens) in &token_sources {
            for (result, n) in [
                ("dropped", &tokens.stats.forced_refreshes),
                ("held_down", &tokens.stats.forced_refreshes_held),
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
