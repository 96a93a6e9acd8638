//! Shared fakes for the integration tests: a recording upstream (plain or TLS with ALPN),
//! the proxy in-process or as the real binary, and HTTP clients. Every server binds
//! `127.0.0.1:0`; readiness is a bound socket or a log line, never a sleep.

pub mod binary;
pub mod client;
pub mod collector;
pub mod helper;
pub mod moto;
pub mod provider;
pub mod token_endpoint;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use credproxy::auth::token_client::TokenClientSettings;
use credproxy::metrics::ProxyMetrics;
use credproxy::proxy::{ClientSettings, Proxy, UpstreamClient};
use credproxy::secret::MasterKeys;
use credproxy::server::{self, ServerSettings};
use credproxy::store::Store;
use credproxy::watch::{ReloadHandle, Reloader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Settings for an in-process proxy; the defaults are the binary's.
#[derive(Default)]
pub struct Options {
    pub client: ClientSettings,
    pub tokens: TokenClientSettings,
    /// Trust exactly these roots for https upstreams (the public roots if `None`).
    pub roots: Option<rustls::RootCertStore>,
    pub server: ServerSettings,
    /// `--upstream-per-caller`.
    pub upstream_per_caller: bool,
}

/// The proxy server running inside the test's runtime.
pub struct InProcessProxy {
    pub addr: SocketAddr,
    pub store: Arc<Store>,
    pub metrics: Arc<ProxyMetrics>,
    /// Set by [`InProcessProxy::watching`].
    pub reloader: Option<Arc<Reloader>>,
    pub reload: Option<ReloadHandle>,
    shutdown: CancellationToken,
}

impl InProcessProxy {
    pub async fn start(yaml: &str) -> Self {
        Self::start_with(yaml, Options::default()).await
    }

    /// Loads `path` and reloads it on changes, with the real directory watcher.
    pub async fn watching(path: &std::path::Path, keys: MasterKeys) -> Self {
        let options = credproxy::config::LoadOptions {
            keys: Some(&keys),
            ..Default::default()
        };
        let spec = credproxy::config::load(path, options)
            .unwrap_or_else(|e| panic!("test config rejected: {e}"));
        let mut proxy = Self::serve(credproxy::live::build(spec, None), Options::default()).await;
        let reloader = Arc::new(Reloader::new(
            Arc::clone(&proxy.store),
            path.to_path_buf(),
            keys,
            false,
        ));
        proxy.reload = Some(credproxy::watch::spawn(Arc::clone(&reloader), true).expect("watch"));
        proxy.reloader = Some(reloader);
        proxy
    }

    pub async fn start_with(yaml: &str, options: Options) -> Self {
        let spec = credproxy::config::load_bytes(
            std::path::Path::new("test.yaml"),
            yaml.as_bytes(),
            Default::default(),
        )
        .unwrap_or_else(|e| panic!("test config rejected: {e}"));
        Self::serve(credproxy::live::build(spec, None), options).await
    }

    async fn serve(snapshot: credproxy::live::Snapshot, options: Options) -> Self {
        let Options {
            client: settings,
            tokens,
            roots,
            server: server_settings,
            upstream_per_caller,
        } = options;
        let store = Arc::new(Store::new(snapshot));
        let client = match roots {
            Some(roots) => UpstreamClient::with_roots(settings, roots),
            None => UpstreamClient::new(settings),
        }
        .expect("upstream client");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let shutdown = CancellationToken::new();
        let proxy = Proxy::new(Arc::clone(&store), client, tokens)
            .with_upstream_per_caller(upstream_per_caller);
        let metrics = proxy.metrics();
        tokio::spawn(server::serve(
            listener,
            Arc::new(proxy),
            server_settings,
            shutdown.clone(),
            None,
        ));
        Self {
            addr,
            store,
            metrics,
            reloader: None,
            reload: None,
            shutdown,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for InProcessProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Upper bound for anything a test waits on, so a hang fails instead of blocking CI.
pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `condition` until it holds, or fails the test after [`WAIT`]. For state that
/// changes in the background (a reload), where there is no event to await.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Awaits `future` or fails the test after [`WAIT`].
pub async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}
