//! Listeners and connections: HTTP/1.1 and h2c on one port, limits that keep slow or
//! numerous clients from holding the proxy, and a graceful shutdown that stops accepting
//! and lets in-flight requests finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

use crate::proxy::framing::Guarded;

pub mod tls;

pub use tls::ListenerTls;

/// Connection-level settings shared by the proxy and admin listeners.
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    /// Time a client gets to send a request's headers (HTTP/1), including the wait for
    /// the next request on a kept-alive connection: the bound on slow or idle clients.
    pub header_read_timeout: Duration,
    /// Open connections at most; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Largest request head (HTTP/1) or header list (HTTP/2) accepted (→ 431).
    pub max_header_bytes: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub max_h2_streams: u32,
    /// How long in-flight requests may run on after shutdown begins.
    pub shutdown_grace: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_header_bytes: 64 * 1024,
            max_h2_streams: 256,
            shutdown_grace: Duration::from_secs(25),
        }
    }
}

/// What a handler knows of the connection a request came on.
#[derive(Debug, Clone)]
pub struct Connection {
    pub local_addr: SocketAddr,
    framing_conflict: Arc<AtomicBool>,
}

impl Connection {
    /// Whether a request head on this connection carried both `Content-Length` and
    /// `Transfer-Encoding` (see [`crate::proxy::framing`]).
    pub fn framing_conflict(&self) -> bool {
        self.framing_conflict.load(Ordering::Acquire)
    }
}

/// Something that answers requests on a listener.
pub trait Handler: Send + Sync + 'static {
    type Body: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;

    fn handle(
        &self,
        request: Request<Incoming>,
        connection: &Connection,
    ) -> impl Future<Output = Response<Self::Body>> + Send;
}

/// Accepts connections on `listener` until `shutdown` is cancelled, then waits up to the
/// grace period for open connections to finish their requests. With `tls`, each
/// connection first completes a TLS handshake (bounded by the header-read timeout).
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    settings: ServerSettings,
    shutdown: CancellationToken,
    tls: Option<Arc<ListenerTls>>,
) {
    let builder = Arc::new(builder(&settings));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(settings.max_connections));

    loop {
        // A free connection slot first: at the limit, new clients wait in the backlog.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(%error, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(local_addr) = stream.local_addr() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (handler, builder, tls, watcher) = (
            Arc::clone(&handler),
            Arc::clone(&builder),
            tls.clone(),
            graceful.watcher(),
        );
        tokio::spawn(async move {
            let stream = match tls {
                None => Either::Left(stream),
                Some(tls) => {
                    let handshake = tokio::time::timeout(
                        settings.header_read_timeout,
                        tls.acceptor().accept(stream),
                    );
                    match handshake.await {
                        Ok(Ok(stream)) => Either::Right(stream),
                        Ok(Err(error)) => {
                            return tracing::debug!(%peer, %error, "TLS handshake failed")
                        }
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            };
            let (stream, framing_conflict) = Guarded::new(stream);
            let connection = Connection {
                local_addr,
                framing_conflict,
            };
            let service = hyper::service::service_fn(move |request| {
                let (handler, connection) = (Arc::clone(&handler), connection.clone());
                async move { Ok::<_, Infallible>(handler.handle(request, &connection).await) }
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %error, "Connection ended with an error");
            }
            drop(slot);
        });
    }

    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(settings.shutdown_grace) => {
            tracing::warn!(grace_s = settings.shutdown_grace.as_secs(), "Shutdown grace period over; closing the remaining connections");
        }
    }
}

fn builder(settings: &ServerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_h2_streams)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

impl Handler for crate::proxy::Proxy {
    type Body = crate::proxy::ProxyBody;

    fn handle(
        &self,
        request: Request<Incoming>,
        connection: &Connection,
    ) -> impl Future<Output = Response<Self::Body>> + Send {
        crate::proxy::Proxy::handle(self, request, connection.clone())
    }
}
