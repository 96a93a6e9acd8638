//! Listeners and connections: HTTP/1.1 and h2c on one port, limits that keep slow, silent
//! or numerous clients from holding the proxy, and a graceful shutdown that stops
//! accepting and lets in-flight requests finish.
//!
//! Every connection must complete a request head within the header-read timeout, counted
//! from the accept: the TLS handshake, the bytes that tell HTTP/1 from h2c, and the first
//! request all fall under it, so a socket that sends nothing (or half a preface, or only
//! answers PINGs) cannot keep a slot. After that, hyper bounds the wait between HTTP/1
//! requests, and an h2 connection with no open stream is closed (GOAWAY) after the idle
//! timeout. Per-connection work is in [`conn`].

/// `AsyncWrite` for a stream wrapper that only watches what is read (`Rewind`, `Guarded`):
/// every write goes straight to its `inner` stream.
macro_rules! write_through {
    ($wrapper:ident) => {
        impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<S> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                data: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}

mod conn;
mod detect;
mod framing;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use tls::ListenerTls;

/// Connection-level settings of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    /// The listener's name in logs (`proxy`, `admin`).
    pub name: &'static str,
    /// Time from accept to a complete request head (TLS handshake and protocol detection
    /// included), and between HTTP/1 requests on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// An h2 connection with no open stream for this long is closed.
    pub idle_timeout: Duration,
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
            name: "proxy",
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_header_bytes: 64 * 1024,
            max_h2_streams: 256,
            shutdown_grace: Duration::from_secs(25),
        }
    }
}

impl ServerSettings {
    /// The admin listener's: few connections and short timeouts of its own, so that no
    /// flood of proxy connections (or of admin ones) keeps `/healthz` from answering a
    /// probe for long.
    pub fn admin(proxy: &ServerSettings) -> Self {
        Self {
            name: "admin",
            header_read_timeout: proxy.header_read_timeout.min(Duration::from_secs(5)),
            idle_timeout: proxy.idle_timeout.min(Duration::from_secs(30)),
            max_connections: 64,
            max_header_bytes: 16 * 1024,
            max_h2_streams: 16,
            shutdown_grace: proxy.shutdown_grace,
        }
    }
}

/// What a handler knows of the connection a request came on.
#[derive(Debug, Clone)]
pub struct Connection {
    pub local_addr: SocketAddr,
    /// HTTP/1 (one request at a time), not h2.
    pub http1: bool,
    framing_conflict: Arc<AtomicBool>,
}

impl Connection {
    /// Whether a request head on this connection carried both `Content-Length` and
    /// `Transfer-Encoding` (see [`framing`]).
    pub fn framing_conflict(&self) -> bool {
        self.framing_conflict.load(Ordering::Acquire)
    }
}

/// Something that answers requests on a listener.
pub trait Handler: Send + Sync + 'static {
    type Body: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Unpin
        + 'static;

    /// What the handler keeps for one connection, from request to request (made when the
    /// connection opens, dropped when it closes).
    type ConnectionState: Default + Send + Sync + 'static;

    fn handle(
        &self,
        request: Request<Incoming>,
        connection: &Connection,
        state: &Arc<Self::ConnectionState>,
    ) -> impl Future<Output = Response<Self::Body>> + Send;
}

/// Accepts connections on `listener` until `shutdown` is cancelled, then waits up to the
/// grace period for open connections to finish their requests, and closes the rest.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    settings: ServerSettings,
    shutdown: CancellationToken,
    tls: Option<Arc<ListenerTls>>,
) {
    let builders = Arc::new(conn::Builders::new(&settings));
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let connections = TaskTracker::new();
    let hard_stop = CancellationToken::new();

    loop {
        // A free connection slot first: at the limit, new clients wait in the backlog.
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                tracing::debug!(
                    listener = settings.name,
                    max_connections = settings.max_connections,
                    "At the connection limit; new clients wait in the listen backlog"
                );
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = shutdown.cancelled() => break,
                }
            }
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
        let accepted = conn::Accepted {
            stream,
            peer,
            slot,
            handler: Arc::clone(&handler),
            builders: Arc::clone(&builders),
            settings,
            tls: tls.clone(),
            shutdown: shutdown.clone(),
            hard_stop: hard_stop.clone(),
        };
        connections.spawn(accepted.serve());
    }

    drop(listener);
    connections.close();
    tokio::select! {
        () = connections.wait() => {}
        () = tokio::time::sleep(settings.shutdown_grace) => {
            tracing::warn!(grace_s = settings.shutdown_grace.as_secs(), "Shutdown grace period over; closing the remaining connections");
            hard_stop.cancel();
            connections.wait().await;
        }
    }
}
