//! The pooled upstream client: HTTP/1.1 and HTTP/2 (by ALPN), rustls with the public
//! web roots, bounded connect and response-header waits.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::error::ProxyError;

/// Timeouts for talking to upstreams.
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

/// A request body on its way upstream: the caller's, streamed, or one credproxy holds
/// whole (a replayable small body, a token request's form).
pub type UpstreamBody = Either<Incoming, Full<Bytes>>;

/// The pooled hyper client every outbound request uses, token requests included.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

#[derive(Debug, Clone)]
pub struct UpstreamClient {
    client: HttpClient,
    response_timeout: Duration,
}

impl UpstreamClient {
    /// A client that trusts the public web roots (Mozilla's, compiled in: no system
    /// certificate store is needed, so a scratch image works).
    pub fn new(settings: ClientSettings) -> Result<Self, rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Self::with_roots(settings, roots)
    }

    /// A client that trusts exactly `roots`.
    pub fn with_roots(
        settings: ClientSettings,
        roots: rustls::RootCertStore,
    ) -> Result<Self, rustls::Error> {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));

        // ALPN is left to hyper-rustls, which sets h2 and http/1.1 itself.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);

        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(settings.pool_idle_timeout)
            .build(https);
        Ok(Self {
            client,
            response_timeout: settings.response_timeout,
        })
    }

    /// The underlying pooled client, for token requests.
    pub fn http(&self) -> &HttpClient {
        &self.client
    }

    /// Sends a request and waits for the response headers; the body streams afterwards.
    pub async fn send(
        &self,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, ProxyError> {
        // The inbound version (h2c, say) says nothing about the upstream: ask for HTTP/1.1,
        // and the pool speaks HTTP/2 where ALPN negotiated it.
        *request.version_mut() = Version::HTTP_11;
        match tokio::time::timeout(self.response_timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(ProxyError::UpstreamUnreachable(error)),
            Err(_) => Err(ProxyError::UpstreamTimeout),
        }
    }
}
