//! Reload costs: loading a file of 10,000 sources into a live snapshot, and the time from a file write to the
//! new snapshot being in effect with the real watcher (debounce included). And what a file
//! of 100,000 sources costs the admin status page: one page, and a filter over them all.
//! `cargo bench --bench reload`.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use credproxy::config::{self, LoadOptions};
use credproxy::live;
use credproxy::secret::MasterKeys;
use credproxy::store::Store;
use credproxy::watch::{self, Reloader};
use criterion::{criterion_group, criterion_main, Criterion};

/// `count` sources of the four static kinds, in the shape a UI-generated file has.
fn sources(count: usize, token: &str) -> String {
    let mut yaml = String::from("sources:\n");
    for i in 0..count {
        let _ = match i % 4 {
            0 => write!(yaml, "  3f2b8c1e-0000-4000-8000-{i:012}:\n    upstream: https://api{i}.example.com/v1\n    auth_type: bearer\n    bearer_token: {token}-{i}\n"),
            1 => write!(yaml, "  3f2b8c1e-0000-4000-8000-{i:012}:\n    upstream: https://api{i}.example.com\n    auth_type: http_basic\n    basic_username: user{i}\n    basic_password: {token}-{i}\n"),
            2 => write!(yaml, "  3f2b8c1e-0000-4000-8000-{i:012}:\n    upstream: https://api{i}.example.com\n    auth_type: api_key\n    api_key_name: X-API-Key\n    api_key_value: {token}-{i}\n    headers:\n      X-Client: credproxy\n"),
            _ => write!(yaml, "  3f2b8c1e-0000-4000-8000-{i:012}:\n    upstream: https://api{i}.example.com\n    auth_type: api_key\n    api_key_name: key\n    api_key_value: {token}-{i}\n    api_key_in: query\n"),
        };
    }
    yaml
}

fn load_10k(c: &mut Criterion) {
    let yaml = sources(10_000, "secret");
    let mut group = c.benchmark_group("reload");
    group.sample_size(20);
    // The replaced snapshot is dropped after the swap, off the reload's critical path.
    group.bench_function("load_10k_sources", |b| {
        b.iter_with_large_drop(|| {
            let spec = config::load_bytes(
                Path::new("bench.yaml"),
                yaml.as_bytes(),
                LoadOptions::default(),
            )
            .expect("loads");
            live::build(spec, None)
        })
    });
    group.finish();
}

fn status_page_100k(c: &mut Criterion) {
    use credproxy::admin::status::{self, Query};
    let yaml = sources(100_000, "secret");
    let spec = config::load_bytes(
        Path::new("bench.yaml"),
        yaml.as_bytes(),
        LoadOptions::default(),
    )
    .expect("loads");
    let snapshot = live::build(spec, None);
    let mut group = c.benchmark_group("status_page");
    group.sample_size(20);
    group.bench_function("100k_sources_first_page", |b| {
        b.iter(|| status::render(&snapshot, None, &Query::default()))
    });
    // Every id and upstream is searched; few match.
    let filter = Query::parse(Some("q=api99999"));
    group.bench_function("100k_sources_filtered", |b| {
        b.iter(|| status::render(&snapshot, None, &filter))
    });
    group.finish();
}

fn change_to_effect(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sources.yaml");
    std::fs::write(&path, sources(10, "a")).expect("write");
    let spec = config::load(&path, LoadOptions::default()).expect("loads");
    let store = Arc::new(Store::new(live::build(spec, None)));
    let reloader = Arc::new(Reloader::new(
        Arc::clone(&store),
        path.clone(),
        MasterKeys::default(),
        false,
    ));
    let _handle = runtime.block_on(async { watch::spawn(reloader, true).expect("watch") });

    let mut group = c.benchmark_group("reload");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    let mut flip = false;
    group.bench_function("file_write_to_new_snapshot", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                flip = !flip;
                let before = store.load().meta.generation;
                let started = Instant::now();
                std::fs::write(&path, sources(10, if flip { "b" } else { "a" })).expect("write");
                while store.load().meta.generation == before {
                    std::thread::sleep(Duration::from_millis(1));
                }
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, load_10k, status_page_100k, change_to_effect);
criterion_main!(benches);
