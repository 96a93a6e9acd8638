//! A fake upstream that records what it received and answers as the test says.

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

pub type UpstreamBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
type HandlerFuture = Pin<Box<dyn Future<Output = Response<UpstreamBody>> + Send>>;
type Handler = Arc<dyn Fn(Request<Incoming>) -> HandlerFuture + Send + Sync>;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query, exactly as received.
    pub target: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    /// All values of a header, as strings.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let values = self.header_values(name);
        assert!(
            values.len() <= 1,
            "header {name} received {} times: {values:?}",
            values.len()
        );
        values.into_iter().next()
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
}

/// A request's whole body (empty if it broke off): what the test servers here read.
pub async fn read_body(request: Request<Incoming>) -> Bytes {
    request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

pub fn full(body: impl Into<Bytes>) -> UpstreamBody {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

impl Upstream {
    /// Records every request (buffering its body) and answers `200 ok`.
    pub async fn recording() -> Self {
        Self::start(None, None).await
    }

    /// Records the head of every request and answers with `handler`, which gets the
    /// request with its body unread (the recorded body is then empty).
    pub async fn with_handler<F, Fut>(handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<UpstreamBody>> + Send + 'static,
    {
        Self::start(
            None,
            Some(Arc::new(move |r| Box::pin(handler(r)) as HandlerFuture)),
        )
        .await
    }

    /// An API that refuses revoked tokens: 401 when the bearer token is in `revoked`,
    /// else 200; the body is `{Authorization}|{request body length}`, so a test sees which
    /// token (and how much body) each attempt carried.
    pub async fn refusing(revoked: Arc<Mutex<HashSet<String>>>) -> Self {
        Self::with_handler(move |request| {
            let revoked = Arc::clone(&revoked);
            async move {
                let auth = request
                    .headers()
                    .get("authorization")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default();
                let body = read_body(request).await;
                let token = auth.trim_start_matches("Bearer ");
                let refused = revoked.lock().expect("revoked").contains(token);
                let mut response = Response::new(full(format!("{auth}|{}", body.len())));
                if refused {
                    *response.status_mut() = http::StatusCode::UNAUTHORIZED;
                }
                response
            }
        })
        .await
    }

    /// A TLS upstream offering h2 and http/1.1 by ALPN; records and answers `200 ok`.
    pub async fn tls_recording(tls: Arc<rustls::ServerConfig>) -> Self {
        Self::start(Some(tls), None).await
    }

    async fn start(tls: Option<Arc<rustls::ServerConfig>>, handler: Option<Handler>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (rec, conns) = (Arc::clone(&requests), Arc::clone(&connections));
        tokio::spawn(async move {
            let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                conns.fetch_add(1, Ordering::SeqCst);
                let (rec, handler, acceptor) =
                    (Arc::clone(&rec), handler.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let (rec, handler) = (Arc::clone(&rec), handler.clone());
                        async move { Ok::<_, Infallible>(answer(request, &rec, handler).await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            requests,
            connections,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("requests lock").clone()
    }

    /// The `Authorization` each request carried, in the order they arrived (empty where
    /// none did).
    pub fn authorizations(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r.header("authorization").unwrap_or_default())
            .collect()
    }

    /// The only request received so far.
    pub fn single(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(
            requests.len(),
            1,
            "expected one request upstream, got {requests:#?}"
        );
        requests.into_iter().next().expect("one request")
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn answer(
    request: Request<Incoming>,
    rec: &Mutex<Vec<Recorded>>,
    handler: Option<Handler>,
) -> Response<UpstreamBody> {
    let mut recorded = Recorded {
        method: request.method().clone(),
        target: request
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        version: request.version(),
        headers: request.headers().clone(),
        body: Bytes::new(),
    };
    if let Some(handler) = handler {
        rec.lock().expect("requests lock").push(recorded);
        return handler(request).await;
    }
    recorded.body = read_body(request).await;
    rec.lock().expect("requests lock").push(recorded);
    Response::new(full("ok"))
}

/// A CA, and a server config for `127.0.0.1` and `localhost` signed by it.
pub fn test_tls() -> (rustls::RootCertStore, Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("leaf params");
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).expect("add ca");
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).expect("leaf key der");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .expect("server cert");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (roots, Arc::new(config))
}

/// A response body the test writes into, frame by frame.
pub fn channel_body(
    buffer: usize,
) -> (
    http_body_util::channel::Sender<Bytes, Infallible>,
    UpstreamBody,
) {
    let (tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(buffer);
    (tx, body.map_err(|never: Infallible| match never {}).boxed())
}
