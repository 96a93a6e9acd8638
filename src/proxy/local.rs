//! Step 5 for a plain-HTTP/1 upstream, inside the downstream connection's own task.
//!
//! The pooled client runs each upstream connection as a task of its own: a request
//! crosses a channel to it, and its response and body come back through others, with a
//! wake-up at every hop. Here a downstream HTTP/1 connection keeps its own upstream
//! connection (hyper's `client::conn::http1`, so hyper still owns the protocol) and polls
//! it from the request's future and then from the response body, so a request and its
//! response never leave the task they arrived on.
//!
//! HTTP/1 serves one request at a time, so the connection's slot is never contended: the
//! upstream connection is taken when a request starts and given back when its response
//! body has ended. A response dropped before its end takes the upstream connection with
//! it, since the connection's state is then unknown.
//!
//! A caller's connection is bound to the first upstream it uses; requests to others go
//! through the pool. So a proxied connection holds at most one upstream connection of its
//! own, and the descriptor budget (two per connection, see `cli::serve`) still holds.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::error::ProxyError;
use crate::transport::{CallerBody, ClientSettings, OutboundBody};

type Connection = http1::Connection<TokioIo<TcpStream>, OutboundBody>;

/// A downstream connection's own upstream connection.
#[derive(Debug, Default)]
pub struct LocalUpstream {
    /// The upstream this connection's requests go to on their own connection.
    bound: OnceLock<Authority>,
    /// Its connection, while no request uses it.
    idle: Mutex<Option<Idle>>,
}

struct Idle {
    authority: Authority,
    send: http1::SendRequest<OutboundBody>,
    connection: Pin<Box<Connection>>,
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idle")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl LocalUpstream {
    /// Whether a request to `uri` goes this way: plain `http://` (TLS upstreams and
    /// HTTP/2 by ALPN stay with the pool), to the upstream this connection is bound to, or
    /// to any while it is bound to none.
    pub fn takes(&self, uri: &Uri) -> bool {
        let Some(authority) = uri.authority() else {
            return false;
        };
        uri.scheme_str() == Some("http") && self.bound.get().is_none_or(|bound| bound == authority)
    }

    /// Sends `request` (absolute URI, `http://`) and waits for the response head; the
    /// body streams afterwards, still driven by this task.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<OutboundBody>,
        settings: &ClientSettings,
    ) -> Result<Response<LocalBody>, ProxyError> {
        let Some(authority) = request.uri().authority().cloned() else {
            return Err(ProxyError::BadRequest("the upstream URI has no host"));
        };
        let _ = self.bound.set(authority.clone());
        // Origin form on the wire, and the Host the pooled client would have set.
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *request.uri_mut() = Uri::from(path);
        *request.version_mut() = Version::HTTP_11;
        if !request.headers().contains_key(HOST) {
            if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                request.headers_mut().insert(HOST, host);
            }
        }
        let exchange = async {
            if let Some(mut reused) = self.take(&authority).await {
                match exchange(&mut reused, request).await {
                    Ok(response) => return Ok((reused, response)),
                    // The upstream closed it as the request was about to go: hyper gave the
                    // request back unsent, so it goes once more on a new connection.
                    Err(Failed::Unsent(again, _)) => request = *again,
                    Err(failed) => return Err(failed.into()),
                }
            }
            let mut fresh = connect(authority, settings).await?;
            let response = exchange(&mut fresh, request).await?;
            Ok::<_, ProxyError>((fresh, response))
        };
        let (upstream, response) =
            match tokio::time::timeout(settings.response_timeout, exchange).await {
                Ok(result) => result?,
                Err(_) => return Err(ProxyError::UpstreamTimeout),
            };
        Ok(response.map(|body| LocalBody {
            body,
            ended: false,
            upstream: Some(upstream),
            home: Arc::clone(self),
        }))
    }

    /// The idle connection to `authority`, if it is still open.
    async fn take(&self, authority: &Authority) -> Option<Idle> {
        let mut idle = self
            .idle
            .lock()
            .ok()?
            .take()
            .filter(|idle| idle.authority == *authority)?;
        // One poll: a connection the upstream closed while idle has seen its EOF by now.
        let alive = poll_fn(|cx| {
            Poll::Ready(idle.connection.as_mut().poll(cx).is_pending() && !idle.send.is_closed())
        })
        .await;
        alive.then_some(idle)
    }

    fn give_back(&self, connection: Idle) {
        if let Ok(mut idle) = self.idle.lock() {
            *idle = Some(connection);
        }
    }
}

async fn connect(authority: Authority, settings: &ClientSettings) -> Result<Idle, ProxyError> {
    let port = authority.port_u16().unwrap_or(80);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let stream = match tokio::time::timeout(
        settings.connect_timeout,
        TcpStream::connect((host, port)),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(ProxyError::UpstreamConnect(Box::new(error))),
        Err(_) => {
            let error = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
            return Err(ProxyError::UpstreamConnect(Box::new(error)));
        }
    };
    let _ = stream.set_nodelay(true);
    let (send, connection) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|error| ProxyError::UpstreamConnect(Box::new(error)))?;
    Ok(Idle {
        authority,
        send,
        connection: Box::pin(connection),
    })
}

/// Why an exchange failed; `Unsent` gives the request back (hyper had not written it).
enum Failed {
    Unsent(Box<Request<OutboundBody>>, hyper::Error),
    Sent(hyper::Error),
}

impl From<Failed> for ProxyError {
    fn from(failed: Failed) -> Self {
        let error = match failed {
            Failed::Unsent(_, error) | Failed::Sent(error) => error,
        };
        if CallerBody::caused(&error) {
            ProxyError::RequestBody(Box::new(error))
        } else {
            ProxyError::UpstreamProtocol(Box::new(error))
        }
    }
}

/// Sends the request on `upstream` and drives the connection until the response head.
async fn exchange(
    upstream: &mut Idle,
    request: Request<OutboundBody>,
) -> Result<Response<Incoming>, Failed> {
    let Idle {
        send, connection, ..
    } = upstream;
    let mut open = true;
    if let Err(error) = drive(connection, &mut open, send.ready()).await {
        return Err(Failed::Unsent(Box::new(request), error));
    }
    match drive(connection, &mut open, send.try_send_request(request)).await {
        Ok(response) => Ok(response),
        Err(mut error) => match error.take_message() {
            Some(request) => Err(Failed::Unsent(Box::new(request), error.into_error())),
            None => Err(Failed::Sent(error.into_error())),
        },
    }
}

/// Awaits `future` while polling `connection`, which does the reading and writing; a
/// connection that ends (closed, or broken) makes `future` fail on its next poll.
async fn drive<F: Future>(
    connection: &mut Pin<Box<Connection>>,
    open: &mut bool,
    future: F,
) -> F::Output {
    let mut future = std::pin::pin!(future);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(output);
        }
        if *open && connection.as_mut().poll(cx).is_ready() {
            *open = false;
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    })
    .await
}

/// An upstream response body read on the downstream connection's task; it drives the
/// upstream connection while it is read, and gives it back once it has ended.
pub struct LocalBody {
    body: Incoming,
    ended: bool,
    upstream: Option<Idle>,
    home: Arc<LocalUpstream>,
}

impl std::fmt::Debug for LocalBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBody").finish_non_exhaustive()
    }
}

impl Body for LocalBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(upstream) = &mut this.upstream {
            if upstream.connection.as_mut().poll(cx).is_ready() {
                // Closed: what it delivered is still in the body; it cannot be reused.
                this.upstream = None;
            }
        }
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.ended = true;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for LocalBody {
    fn drop(&mut self) {
        if self.is_end_stream() {
            if let Some(upstream) = self.upstream.take() {
                self.home.give_back(upstream);
            }
        }
    }
}
