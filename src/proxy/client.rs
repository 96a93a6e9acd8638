//! The pooled upstream clients: HTTP/1.1 and HTTP/2 (by ALPN), rustls with the public web
//! roots, bounded connect and response-header waits, and one client per source that
//! brings its own CA or client certificate (hyper's pool does not key on TLS settings).

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::error::ProxyError;

/// A request body on its way upstream: the caller's, streamed, or one credproxy holds
/// whole (a replayable small body, a token request's form).
pub type UpstreamBody = Either<Incoming, Full<Bytes>>;

/// The pooled hyper client every outbound request uses, token requests included.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

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

/// A source's own TLS settings (`tls_ca_file`, `tls_client_cert_file`/`_key_file`), built
/// at load time. Its client is made on first use with the proxy's settings and kept by a
/// reload that finds the same files, so its connection pool survives.
pub struct UpstreamTls {
    /// SHA-256 of the PEM files, to tell whether a reload changed anything.
    pub fingerprint: [u8; 32],
    config: rustls::ClientConfig,
    client: OnceLock<HttpClient>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls").finish_non_exhaustive()
    }
}

/// Which of a source's TLS files a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsInput {
    Ca,
    ClientCert,
    ClientKey,
}

impl TlsInput {
    /// The `sources.yaml` field naming the file.
    pub fn field(self) -> &'static str {
        match self {
            TlsInput::Ca => "tls_ca_file",
            TlsInput::ClientCert => "tls_client_cert_file",
            TlsInput::ClientKey => "tls_client_key_file",
        }
    }
}

/// Why a source's TLS files could not be used. Names the problem, never file contents.
#[derive(Debug, thiserror::Error)]
#[error("{problem}")]
pub struct TlsFileError {
    pub input: TlsInput,
    problem: String,
}

impl TlsFileError {
    fn new(input: TlsInput, problem: impl Into<String>) -> Self {
        Self {
            input,
            problem: problem.into(),
        }
    }
}

impl UpstreamTls {
    /// Public roots plus `ca` (if any), and `cert`+`key` as client certificate (if any).
    pub fn from_files(
        ca: Option<&Path>,
        client: Option<(&Path, &Path)>,
    ) -> Result<Self, TlsFileError> {
        use sha2::{Digest, Sha256};
        let mut fingerprint = Sha256::new();
        let mut read = |path: &Path, input: TlsInput| {
            let bytes = std::fs::read(path).map_err(|e| {
                TlsFileError::new(input, format!("cannot read {}: {e}", path.display()))
            })?;
            fingerprint.update((bytes.len() as u64).to_le_bytes());
            fingerprint.update(&bytes);
            Ok::<_, TlsFileError>(bytes)
        };
        let certificates = |pem: &[u8], input: TlsInput| {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .filter_map(Result::ok)
                .collect();
            if certs.is_empty() {
                return Err(TlsFileError::new(input, "holds no PEM certificate"));
            }
            Ok(certs)
        };
        let mut roots = public_roots();
        if let Some(ca) = ca {
            for cert in certificates(&read(ca, TlsInput::Ca)?, TlsInput::Ca)? {
                roots.add(cert).map_err(|e| {
                    TlsFileError::new(TlsInput::Ca, format!("not a usable CA certificate: {e}"))
                })?;
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFileError::new(TlsInput::Ca, e.to_string()))?
        .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = certificates(&read(cert, TlsInput::ClientCert)?, TlsInput::ClientCert)?;
                let key_pem = zeroize::Zeroizing::new(read(key, TlsInput::ClientKey)?);
                let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
                    TlsFileError::new(TlsInput::ClientKey, "holds no PEM private key")
                })?;
                builder.with_client_auth_cert(chain, private).map_err(|e| {
                    TlsFileError::new(
                        TlsInput::ClientKey,
                        format!("does not fit the certificate: {e}"),
                    )
                })?
            }
        };
        Ok(Self {
            fingerprint: fingerprint.finalize().into(),
            config,
            client: OnceLock::new(),
        })
    }
}

fn public_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots
}

fn build_client(settings: &ClientSettings, tls: rustls::ClientConfig) -> HttpClient {
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

#[derive(Debug, Clone)]
pub struct UpstreamClient {
    client: HttpClient,
    settings: ClientSettings,
}

impl UpstreamClient {
    /// A client that trusts the public web roots (Mozilla's, compiled in: no system
    /// certificate store is needed, so a scratch image works).
    pub fn new(settings: ClientSettings) -> Result<Self, rustls::Error> {
        Self::with_roots(settings, public_roots())
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
        Ok(Self {
            client: build_client(&settings, tls),
            settings,
        })
    }

    /// The shared pooled client, for token requests.
    pub fn http(&self) -> &HttpClient {
        &self.client
    }

    /// Sends a request (through the source's own TLS client, if it has one) and waits for
    /// the response headers; the body streams afterwards.
    pub async fn send(
        &self,
        mut request: Request<UpstreamBody>,
        tls: Option<&UpstreamTls>,
    ) -> Result<Response<Incoming>, ProxyError> {
        // The inbound version (h2c, say) says nothing about the upstream: ask for HTTP/1.1,
        // and the pool speaks HTTP/2 where ALPN negotiated it.
        *request.version_mut() = Version::HTTP_11;
        let client = match tls {
            None => &self.client,
            Some(tls) => tls
                .client
                .get_or_init(|| build_client(&self.settings, tls.config.clone())),
        };
        match tokio::time::timeout(self.settings.response_timeout, client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(ProxyError::UpstreamUnreachable(error)),
            Err(_) => Err(ProxyError::UpstreamTimeout),
        }
    }
}
