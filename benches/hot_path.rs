//! The per-request work before the upstream call, on a prebuilt snapshot: caller check,
//! route, clean, inject (and for `oauth2`, the cached-token lookup), per auth type; for
//! `sigv4`, the signature too; and for callers with rules or a JWT (warm cache), what the
//! caller check adds; and `basic+trace`, what a request's spans add with tracing on
//! (off, the request path only tests an `Option`: the variants above are that path).
//! `cargo bench --bench hot_path`.
//!
//! Before timing, it prints the heap allocations each variant makes per request, counted
//! by a wrapping global allocator: the number the hot path is driven towards zero on.

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use credproxy::auth::token_client::{TokenClient, TokenClientSettings};
use credproxy::auth::Credentials;
use credproxy::config::load_bytes;
use credproxy::proxy::trace::RequestTrace;
use credproxy::proxy::{self, ClientSettings, UpstreamClient};
use credproxy::store::Store;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};

/// Takes the batches and drops them: the export is the batch thread's, not the request's.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        drop(black_box(batch));
        Ok(())
    }
}

/// Counts allocations (and reallocations) made through the global allocator.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The caller's token in the `callers` variants, and its SHA-256.
const CALLER_TOKEN: &str = "bench-caller-token";
/// A caller held to rules (DESIGN §9).
const RULED_TOKEN: &str = "bench-ruled-token";

fn sources_yaml(token_url: &str, with_callers: bool) -> String {
    let mut yaml = format!(
        r#"
sources:
  open: {{ upstream: "http://127.0.0.1:9/v1", auth_type: none }}
  basic: {{ upstream: "http://127.0.0.1:9/v1", auth_type: http_basic, basic_username: user, basic_password: pass }}
  header-key: {{ upstream: "http://127.0.0.1:9/v1", auth_type: api_key, api_key_name: X-API-Key, api_key_value: k }}
  query-key: {{ upstream: "http://127.0.0.1:9/v1", auth_type: api_key, api_key_name: key, api_key_value: k, api_key_in: query }}
  bearer: {{ upstream: "http://127.0.0.1:9/v1", auth_type: bearer, bearer_token: t }}
  oauth2: {{ upstream: "http://127.0.0.1:9/v1", auth_type: oauth2, oauth2_token_url: "{token_url}", oauth2_client_id: c, oauth2_client_secret: s }}
  sigv4: {{ upstream: "http://127.0.0.1:9/v1", auth_type: aws_sigv4, aws_region: us-east-1, aws_service: execute-api, aws_access_key_id: AKIAIOSFODNN7EXAMPLE, aws_secret_access_key: s }}
"#
    );
    if with_callers {
        yaml.push_str(&format!(
            "callers:\n  other: {{ token_sha256: {}, sources: [open] }}\n  bench: {{ token_sha256: {}, sources: [\"*\"] }}\n",
            credproxy::caller::token_sha256_hex("someone-else"),
            credproxy::caller::token_sha256_hex(CALLER_TOKEN),
        ));
    }
    yaml
}

fn request(id: &str) -> Request<()> {
    request_as(id, CALLER_TOKEN)
}

fn request_as(id: &str, caller_token: &str) -> Request<()> {
    Request::get(format!(
        "/{id}/repos/owner/name/issues?state=open&per_page=100"
    ))
    .header("host", "127.0.0.1:8080")
    .header("user-agent", "bench/1.0")
    .header("accept", "application/json")
    .header("authorization", "Bearer caller")
    .header(
        "proxy-authorization",
        HeaderValue::from_str(&format!("Bearer {caller_token}")).expect("header"),
    )
    .body(())
    .expect("request")
}

/// `callers:` with a token caller held to rules and a JWT caller on a key file in `dir`;
/// the JWT that caller presents.
fn identity_callers(dir: &Path) -> (String, String) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let key = credproxy::jws::SigningKey::from_pem(&pair.serialize_pem()).expect("key");
    let mut jwk = key.public_jwk();
    jwk["kid"] = "bench".into();
    let set = serde_json::json!({ "keys": [jwk] }).to_string();
    std::fs::write(dir.join("jwks.json"), set).expect("jwks");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://issuer.example", "aud": ["credproxy"], "sub": "system:serviceaccount:agents:bench",
        "exp": now + 86_400, "iat": now,
    });
    let jwt = credproxy::jws::sign(&key, Some("bench"), &claims).expect("jwt");
    let yaml = format!(
        "callers:\n  other: {{ token_sha256: {}, sources: [open] }}\n  \
         ruled:\n    token_sha256: {}\n    sources: [basic]\n    rules:\n      - source: basic\n        methods: [GET]\n        paths: [\"/repos/*/name/**\", \"/users/*\"]\n  \
         workload:\n    jwt: {{ issuer: \"https://issuer.example\", audience: credproxy, jwks_file: jwks.json, subject: \"system:serviceaccount:agents:*\" }}\n    sources: [\"*\"]\n",
        credproxy::caller::token_sha256_hex("someone-else"),
        credproxy::caller::token_sha256_hex(RULED_TOKEN),
    );
    (yaml, jwt.expose().to_owned())
}

/// A token endpoint answering every request with the same long-lived token.
fn start_token_endpoint(runtime: &tokio::runtime::Runtime) -> String {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|_request| async {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(
                            br#"{"access_token":"bench-token","token_type":"Bearer","expires_in":86400}"#,
                        )))
                        .expect("response"),
                )
            });
            tokio::spawn(
                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned(),
            );
        }
    });
    format!("http://{addr}/token")
}

/// Polls a future that must be ready at once (a cache hit never waits).
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the hot path waited"),
    }
}

struct Bench {
    store: Store,
    tokens: TokenClient,
    local: SocketAddr,
}

impl Bench {
    /// The hot path for one request: what `Proxy::forward` does before the upstream call.
    /// (The original variants only: their instruction count is what before/after pairs
    /// compare.)
    #[inline(never)]
    fn run(&self, request: Request<()>) -> Request<()> {
        self.forward(request, None)
    }

    /// [`Self::forward`] for the caller variants, counted apart from [`Self::run`] (the
    /// `black_box` keeps the compiler from merging the two into one function).
    #[inline(never)]
    fn identified(&self, request: Request<()>) -> Request<()> {
        black_box(self.forward(request, None))
    }

    /// What `Proxy::forward` does before the upstream call; with a tracer, the request's
    /// spans too, as `Proxy` makes them (server and upstream span, both ended; the batch
    /// processor takes them to an exporter that drops them). Without one, the trace costs
    /// what it costs the proxy: a test of an `Option`.
    fn forward(&self, request: Request<()>, tracer: Option<&SdkTracer>) -> Request<()> {
        let mut trace = tracer.map(|tracer| RequestTrace::start(tracer, &request));
        let routed =
            proxy::route_request(&self.store.load(), &request, self.local).expect("routes");
        let (mut parts, body) = request.into_parts();
        let injecting = trace.as_ref().map(|trace| {
            trace.routed(&parts.method, &routed.source);
            std::time::SystemTime::now()
        });
        let injected = ready(proxy::clean_and_inject(
            &routed.source,
            routed.rest_start,
            &mut parts,
            &self.tokens,
        ))
        .expect("injects");
        if let (Some(mut trace), Some(started)) = (trace.take(), injecting) {
            trace.credential(injected.outcome, started);
            trace.upstream_call(&routed.source, &mut parts.headers);
            trace.upstream_done(Some(http::StatusCode::OK));
            trace.finish(http::StatusCode::OK, injected.outcome, None);
        }
        drop(injected);
        Request::from_parts(parts, body)
    }

    /// [`Self::forward`] with tracing on.
    #[inline(never)]
    fn traced(&self, tracer: &SdkTracer, request: Request<()>) -> Request<()> {
        self.forward(request, Some(tracer))
    }

    /// [`Self::run`] for the SigV4 source, then the signature (over an empty body: hashing
    /// a body costs the same wherever it is done). `run` stays as it is: its instruction
    /// count is what RESULTS.md's before/after pairs compare.
    fn signed(&self, request: Request<()>) -> Request<()> {
        let (mut parts, body) = self.run(request).into_parts();
        let snapshot = self.store.load();
        let Some(Credentials::Signed(signer)) = snapshot.source("sigv4").map(|s| &s.credentials)
        else {
            panic!("sigv4 signs");
        };
        let (keys, _) = ready(signer.keys(&self.tokens)).expect("static keys");
        signer
            .sign_head(&mut parts, &keys, Some(b""))
            .expect("signs");
        Request::from_parts(parts, body)
    }
}

const VARIANTS: [(&str, bool); 7] = [
    ("open", false),
    ("basic", false),
    ("header-key", false),
    ("query-key", false),
    ("bearer", false),
    ("oauth2", false),
    ("basic", true),
];

fn name(id: &str, with_callers: bool) -> String {
    if with_callers {
        format!("{id}+callers")
    } else {
        id.to_owned()
    }
}

fn hot_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let token_url = start_token_endpoint(&runtime);
    let client = UpstreamClient::new(ClientSettings::default()).expect("client");
    let tokens = TokenClient::new(
        client.http().clone(),
        client.settings(),
        TokenClientSettings::default(),
    );
    let local: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
    let bench = |with_callers| {
        let yaml = sources_yaml(&token_url, with_callers);
        let spec = load_bytes(Path::new("bench.yaml"), yaml.as_bytes(), Default::default())
            .expect("config");
        Arc::new(Bench {
            store: Store::new(credproxy::live::build(spec, None)),
            tokens: tokens.clone(),
            local,
        })
    };
    let (plain, with_callers) = (bench(false), bench(true));
    let dir = tempfile::tempdir().expect("tempdir");
    let (callers_yaml, jwt) = identity_callers(dir.path());
    let identities = {
        let yaml = sources_yaml(&token_url, false) + &callers_yaml;
        let spec = load_bytes(
            &dir.path().join("bench.yaml"),
            yaml.as_bytes(),
            Default::default(),
        )
        .expect("config");
        Arc::new(Bench {
            store: Store::new(credproxy::live::build(spec, None)),
            tokens: tokens.clone(),
            local,
        })
    };
    // The caller variants: a token caller held to rules, and a JWT caller whose token was
    // verified once (the cache is warm from the allocation count below on).
    let identity_variants = [("basic+rules", RULED_TOKEN), ("basic+jwt", jwt.as_str())];
    // Fetch the OAuth2 token once, so that the measured path is the cached one.
    let _guard = runtime.enter();
    for bench in [&plain, &with_callers] {
        let source = bench
            .store
            .load()
            .source("oauth2")
            .cloned()
            .expect("oauth2");
        let tokens = source.credentials.token_source().expect("token source");
        runtime
            .block_on(tokens.get(&bench.tokens, None))
            .expect("first token");
    }

    println!("heap allocations per request (route, clean, inject):");
    for (id, callers) in VARIANTS {
        let bench = if callers { &with_callers } else { &plain };
        const N: u64 = 10_000;
        let mut allocations = 0;
        for _ in 0..N {
            let request = request(id);
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            let forwarded = bench.run(request);
            allocations += ALLOCATIONS.load(Ordering::Relaxed) - before;
            drop(forwarded);
        }
        println!(
            "  {:<16} {:.2}",
            name(id, callers),
            allocations as f64 / N as f64
        );
    }

    for (name, token) in identity_variants {
        const N: u64 = 10_000;
        let mut allocations = 0;
        for _ in 0..N {
            let request = request_as("basic", token);
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            let forwarded = identities.identified(request);
            allocations += ALLOCATIONS.load(Ordering::Relaxed) - before;
            drop(forwarded);
        }
        println!("  {name:<16} {:.2}", allocations as f64 / N as f64);
    }

    let mut allocations = 0;
    const SIGNED: u64 = 1_000;
    for _ in 0..SIGNED {
        let request = request("sigv4");
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let forwarded = plain.signed(request);
        allocations += ALLOCATIONS.load(Ordering::Relaxed) - before;
        drop(forwarded);
    }
    println!(
        "  {:<16} {:.2}",
        "sigv4 (signed)",
        allocations as f64 / SIGNED as f64
    );

    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(Discard)
        .build();
    let tracer = provider.tracer("bench");
    let mut allocations = 0;
    const TRACED: u64 = 10_000;
    for _ in 0..TRACED {
        let request = request("basic");
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let forwarded = plain.traced(&tracer, request);
        allocations += ALLOCATIONS.load(Ordering::Relaxed) - before;
        drop(forwarded);
    }
    println!(
        "  {:<16} {:.2}",
        "basic+trace",
        allocations as f64 / TRACED as f64
    );

    let mut group = c.benchmark_group("hot_path");
    group.bench_function("basic+trace", |b| {
        b.iter_batched(
            || request("basic"),
            |request| black_box(plain.traced(&tracer, request)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("sigv4", |b| {
        b.iter_batched(
            || request("sigv4"),
            |request| black_box(plain.signed(request)),
            BatchSize::SmallInput,
        )
    });
    for (name, token) in identity_variants {
        group.bench_function(name, |b| {
            b.iter_batched(
                || request_as("basic", token),
                |request| black_box(identities.identified(request)),
                BatchSize::SmallInput,
            )
        });
    }
    for (id, callers) in VARIANTS {
        let bench = if callers { &with_callers } else { &plain };
        group.bench_function(name(id, callers), |b| {
            b.iter_batched(
                || request(id),
                |request| black_box(bench.run(request)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
