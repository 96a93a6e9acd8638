//! Step 5: sending to the upstream through the pooled client (or the source's own TLS
//! client), with a bounded wait for the response headers.

use std::sync::Arc;

use http::{Request, Response, Version};
use hyper::body::Incoming;

use super::error::ProxyError;
use crate::transport::{
    self, tls, CallerBody, ClientSettings, HttpClient, OutboundBody, SourceTls,
};

#[derive(Debug, Clone)]
pub struct UpstreamClient {
    client: HttpClient,
    settings: ClientSettings,
}

impl UpstreamClient {
    /// A client that trusts the public web roots.
    pub fn new(settings: ClientSettings) -> Result<Self, rustls::Error> {
        Self::with_roots(settings, tls::public_roots())
    }

    /// A client that trusts exactly `roots`.
    pub fn with_roots(
        settings: ClientSettings,
        roots: rustls::RootCertStore,
    ) -> Result<Self, rustls::Error> {
        let config = tls::client_config(roots, None)?;
        Ok(Self {
            client: transport::build_client(&settings, config),
            settings,
        })
    }

    /// The shared pooled client, for token requests.
    pub fn http(&self) -> &HttpClient {
        &self.client
    }

    pub fn settings(&self) -> ClientSettings {
        self.settings
    }

    /// Sends a request (through the source's own TLS client, if it has one) and waits for
    /// the response headers; the body streams afterwards.
    pub async fn send(
        &self,
        mut request: Request<OutboundBody>,
        tls: Option<&Arc<SourceTls>>,
    ) -> Result<Response<Incoming>, ProxyError> {
        // The inbound version (h2c, say) says nothing about the upstream: ask for HTTP/1.1,
        // and the pool speaks HTTP/2 where ALPN negotiated it.
        *request.version_mut() = Version::HTTP_11;
        let client = match tls {
            None => &self.client,
            Some(tls) => tls.client(&self.settings),
        };
        match tokio::time::timeout(self.settings.response_timeout, client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) if CallerBody::caused(&error) => {
                Err(ProxyError::RequestBody(Box::new(error)))
            }
            Ok(Err(error)) => Err(ProxyError::UpstreamUnreachable(error)),
            Err(_) => Err(ProxyError::UpstreamTimeout),
        }
    }
}
