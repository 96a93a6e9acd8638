//! One accepted connection, from the TLS handshake to the last response: under the
//! first-head deadline, then hyper's HTTP/1 timers or the h2 idle timeout, then the
//! shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

use super::detect::{detect, Protocol, Rewind};
use super::framing::Guarded;
use super::{Connection, Handler, ListenerTls, ServerSettings};

/// The protocol builders of a listener, configured once.
pub(super) struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Builders {
    pub(super) fn new(settings: &ServerSettings) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout)
            .max_buf_size(settings.max_header_bytes.max(8192));
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(settings.max_h2_streams)
            .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20));
        Self { http1, http2 }
    }
}

/// A connection just accepted, and everything needed to serve it.
pub(super) struct Accepted<H> {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Its place under the connection limit, given back when it ends.
    pub slot: OwnedSemaphorePermit,
    pub handler: Arc<H>,
    pub builders: Arc<Builders>,
    pub settings: ServerSettings,
    pub tls: Option<Arc<ListenerTls>>,
    /// Stop taking requests, finish those in flight.
    pub shutdown: CancellationToken,
    /// The grace period is over: drop the connection.
    pub hard_stop: CancellationToken,
}

impl<H: Handler> Accepted<H> {
    pub(super) async fn serve(self) {
        let peer = self.peer;
        let deadline = Instant::now() + self.settings.header_read_timeout;
        let hard_stop = self.hard_stop.clone();
        tokio::select! {
            () = self.run(deadline) => {}
            () = hard_stop.cancelled() => {}
        }
        tracing::trace!(%peer, "Connection closed");
    }

    async fn run(self, deadline: Instant) {
        let Ok(local_addr) = self.stream.local_addr() else {
            return;
        };
        let _ = self.stream.set_nodelay(true);
        let peer = self.peer;
        let opened = open(self.stream, self.tls.as_deref());
        let (protocol, stream) = match tokio::time::timeout_at(deadline, opened).await {
            Ok(Ok(Some(opened))) => opened,
            Ok(Ok(None)) => return,
            Ok(Err(error)) => {
                return tracing::debug!(%peer, %error, "Connection failed before its first request")
            }
            Err(_) => {
                return tracing::debug!(%peer, "No request within the header-read timeout; closing")
            }
        };
        let (stream, framing_conflict) = Guarded::new(stream);
        let connection = Connection {
            local_addr,
            http1: protocol == Protocol::Http1,
            framing_conflict,
        };
        let activity = Arc::new(Activity::new());
        let state = Arc::new(H::ConnectionState::default());
        let service = {
            let (handler, activity) = (Arc::clone(&self.handler), Arc::clone(&activity));
            hyper::service::service_fn(move |request: Request<Incoming>| {
                let stream_open = activity.stream_opened();
                let (handler, connection) = (Arc::clone(&handler), connection.clone());
                let state = Arc::clone(&state);
                async move {
                    let response = handler.handle(request, &connection, &state).await;
                    Ok::<_, Infallible>(response.map(|body| Tracked {
                        body,
                        _open: stream_open,
                    }))
                }
            })
        };
        let io = TokioIo::new(stream);
        let limits = Limits {
            deadline,
            idle_timeout: self.settings.idle_timeout,
            linger: self.settings.header_read_timeout,
        };
        let driving = Driving {
            activity: &activity,
            protocol,
            limits,
            shutdown: &self.shutdown,
            peer,
        };
        match protocol {
            Protocol::Http1 => {
                drive(self.builders.http1.serve_connection(io, service), driving).await
            }
            Protocol::H2 => drive(self.builders.http2.serve_connection(io, service), driving).await,
        }
        drop(self.slot);
    }
}

type ClientStream = Either<TcpStream, tokio_rustls::server::TlsStream<TcpStream>>;

/// The TLS handshake, if the listener has TLS, then the protocol: from ALPN, else from the
/// first bytes. `None` when the client closed first.
async fn open(
    stream: TcpStream,
    tls: Option<&ListenerTls>,
) -> std::io::Result<Option<(Protocol, Rewind<ClientStream>)>> {
    let stream = match tls {
        None => Either::Left(stream),
        Some(tls) => {
            let stream = tls.acceptor().accept(stream).await?;
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                return Ok(Some((Protocol::H2, Rewind::plain(Either::Right(stream)))));
            }
            Either::Right(stream)
        }
    };
    detect(stream).await
}

#[derive(Clone, Copy)]
struct Limits {
    /// A complete request head must have arrived by then.
    deadline: Instant,
    idle_timeout: Duration,
    /// How long a connection told to close (GOAWAY) may take before it is dropped.
    linger: Duration,
}

/// What [`drive`] watches besides the connection itself.
#[derive(Clone, Copy)]
struct Driving<'a> {
    activity: &'a Activity,
    protocol: Protocol,
    limits: Limits,
    shutdown: &'a CancellationToken,
    peer: SocketAddr,
}

/// Runs `connection` to its end: dropped if no request head arrives by the deadline;
/// for h2, closed with GOAWAY after the idle timeout with no open stream; closed
/// gracefully on shutdown.
async fn drive<C>(connection: C, driving: Driving<'_>)
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let Driving {
        activity,
        protocol,
        limits,
        shutdown,
        peer,
    } = driving;
    let mut connection = pin!(connection);
    // For h2 the idle timeout may come first (it is short in tests, long in production).
    let mut check_at = Some(match protocol {
        Protocol::Http1 => limits.deadline,
        Protocol::H2 => limits.deadline.min(Instant::now() + limits.idle_timeout),
    });
    let mut drop_at: Option<Instant> = None;
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "Connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !closing => {
                // In-flight requests finish; the listener's grace period bounds them.
                connection.as_mut().graceful_shutdown();
                closing = true;
                check_at = None;
            }
            () = sleep_until(check_at), if check_at.is_some() => {
                let now = Instant::now();
                if !activity.started() {
                    if now < limits.deadline {
                        check_at = Some(limits.deadline);
                        continue;
                    }
                    tracing::debug!(%peer, "No request within the header-read timeout; closing");
                    return;
                }
                // HTTP/1: hyper's own timer bounds the wait between requests from here.
                if protocol == Protocol::Http1 {
                    check_at = None;
                    continue;
                }
                check_at = match activity.idle_since() {
                    None => Some(now + limits.idle_timeout),
                    Some(since) if now >= since + limits.idle_timeout => None,
                    Some(since) => Some(since + limits.idle_timeout),
                };
                if check_at.is_none() {
                    tracing::debug!(%peer, "Idle h2 connection; sending GOAWAY");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                    drop_at = Some(now + limits.linger);
                }
            }
            () = sleep_until(drop_at), if drop_at.is_some() => return,
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Streams in flight on one connection, and since when there were none.
struct Activity {
    born: Instant,
    started: AtomicBool,
    open: AtomicUsize,
    /// Milliseconds after `born` when the last stream ended.
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            born: Instant::now(),
            started: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    fn stream_opened(self: &Arc<Self>) -> StreamOpen {
        self.started.store(true, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::AcqRel);
        StreamOpen(Arc::clone(self))
    }

    fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// When the connection last had no open stream, or `None` while one is open.
    fn idle_since(&self) -> Option<Instant> {
        (self.open.load(Ordering::Acquire) == 0)
            .then(|| self.born + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed)))
    }
}

/// Held by a response body until it is done or dropped: the stream is open until then.
struct StreamOpen(Arc<Activity>);

impl Drop for StreamOpen {
    fn drop(&mut self) {
        let activity = &self.0;
        let ms = u64::try_from(activity.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.idle_since_ms.store(ms, Ordering::Relaxed);
        activity.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its stream counted as open.
struct Tracked<B> {
    body: B,
    _open: StreamOpen,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
