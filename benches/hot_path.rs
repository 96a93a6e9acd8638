//! The per-request work before the upstream call: route, clean, inject, build the URI,
//! on a prebuilt snapshot, per auth type. `cargo bench --bench hot_path`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;

use credproxy::config::load_bytes;
use credproxy::proxy;
use credproxy::store::Store;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::Request;

const SOURCES: &str = r#"
sources:
  open: { upstream: "http://127.0.0.1:9/v1", auth_type: none }
  basic: { upstream: "http://127.0.0.1:9/v1", auth_type: http_basic, basic_username: user, basic_password: pass }
  header-key: { upstream: "http://127.0.0.1:9/v1", auth_type: api_key, api_key_name: X-API-Key, api_key_value: k }
  query-key: { upstream: "http://127.0.0.1:9/v1", auth_type: api_key, api_key_name: key, api_key_value: k, api_key_in: query }
  bearer: { upstream: "http://127.0.0.1:9/v1", auth_type: bearer, bearer_token: t }
"#;

fn request(id: &str) -> Request<()> {
    Request::get(format!(
        "/{id}/repos/owner/name/issues?state=open&per_page=100"
    ))
    .header("host", "127.0.0.1:8080")
    .header("user-agent", "bench/1.0")
    .header("accept", "application/json")
    .header("authorization", "Bearer caller")
    .body(())
    .expect("request")
}

fn hot_path(c: &mut Criterion) {
    let store = Store::new(
        load_bytes(
            Path::new("bench.yaml"),
            SOURCES.as_bytes(),
            Default::default(),
        )
        .expect("config"),
    );
    let local: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
    let mut group = c.benchmark_group("hot_path");
    for id in ["open", "basic", "header-key", "query-key", "bearer"] {
        group.bench_function(id, |b| {
            b.iter_batched(
                || request(id),
                |request| {
                    let (_, routed) =
                        proxy::route_request(&store.load(), &request, local).expect("routes");
                    let (mut parts, body) = request.into_parts();
                    proxy::clean_and_inject(&routed.source, &mut parts).expect("injects");
                    parts.uri = routed.uri;
                    black_box(Request::from_parts(parts, body))
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
