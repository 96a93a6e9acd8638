//! The pooled outbound client: HTTP/1.1 and HTTP/2 (by ALPN) over rustls, with bounded
//! connects.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::body::OutboundBody;

/// The pooled hyper client every outbound request uses, token requests included.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, OutboundBody>;

/// Timeouts and pooling for talking to other hosts.
#[derive(Debug, Clone, Copy)]
pub struct ClientSettings {
    /// TCP connect only; TLS and the response fall under `response_timeout`.
    pub connect_timeout: Duration,
    /// From sending the request until the response headers arrive (→ 504).
    pub response_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(90),
        }
    }
}

/// A pooled client over `tls`.
pub fn build_client(settings: &ClientSettings, tls: rustls::ClientConfig) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(settings.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));

    // ALPN is left to hyper-rustls, which sets h2 and http/1.1 itself (and panics if the
    // config already has protocols).
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);

    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(settings.pool_idle_timeout)
        .build(https)
}

/// One TLS profile's client (a source's own CA or client certificate): hyper's pool does
/// not key on TLS settings, so each profile needs a client of its own. It is made on first
/// use, and whoever holds this keeps its connection pool.
pub struct SourceTls {
    pub fingerprint: [u8; 32],
    config: Arc<rustls::ClientConfig>,
    client: OnceLock<HttpClient>,
}

impl std::fmt::Debug for SourceTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceTls").finish_non_exhaustive()
    }
}

impl SourceTls {
    pub fn new(config: Arc<rustls::ClientConfig>, fingerprint: [u8; 32]) -> Self {
        Self {
            fingerprint,
            config,
            client: OnceLock::new(),
        }
    }

    pub fn client(&self, settings: &ClientSettings) -> &HttpClient {
        self.client
            .get_or_init(|| build_client(settings, (*self.config).clone()))
    }
}
