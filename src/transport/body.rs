//! Request bodies on their way out: the caller's, streamed as it arrives, or read whole
//! first, when it must be hashed for a signature (SigV4) or kept to be sent again (a retry
//! after an upstream refused a cached token).
//!
//! Reading a body whole holds it in memory, so every such read is bounded three ways: the
//! body's own limit, a deadline (a caller that stops sending holds no buffer for ever), and
//! one budget of buffered bytes for the whole process. Without the budget, ten thousand
//! connections each sending an 8 MiB body to a signing source would ask for 80 GiB; with
//! it, the rest wait their turn (and time out) instead.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A request body on its way out: the caller's, streamed, or bytes credproxy holds whole
/// (a body read before sending, a token request's form).
pub type OutboundBody = Either<CallerBody, Full<Bytes>>;

/// The caller's request body, streamed on. Its errors are tagged, so that a malformed body
/// (a bad chunk size, a client that went away) is told apart from a failing upstream.
#[derive(Debug)]
pub struct CallerBody(Incoming);

impl CallerBody {
    pub fn new(body: Incoming) -> Self {
        Self(body)
    }

    /// Whether `error` (from sending a request) came from a caller's body.
    pub fn caused(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut cause = Some(error);
        while let Some(error) = cause {
            if error.is::<CallerBodyError>() {
                return true;
            }
            cause = error.source();
        }
        false
    }
}

/// Reading the caller's body failed.
#[derive(Debug, thiserror::Error)]
#[error("the caller's request body: {0}")]
pub struct CallerBodyError(#[source] hyper::Error);

impl Body for CallerBody {
    type Data = Bytes;
    type Error = CallerBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, CallerBodyError>>> {
        Pin::new(&mut self.0)
            .poll_frame(cx)
            .map(|frame| frame.map(|result| result.map_err(CallerBodyError)))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// The caller's body as it will be sent.
#[derive(Debug)]
pub enum Payload {
    /// Streamed as it arrives; can be sent once.
    Streaming(CallerBody),
    /// Read whole; can be sent again.
    Whole(WholeBody),
}

impl Payload {
    /// The body to send; `bytes` of a whole one are shared, not copied.
    pub fn into_outbound(self) -> OutboundBody {
        match self {
            Payload::Streaming(body) => Either::Left(body),
            Payload::Whole(whole) => Either::Right(Full::new(whole.bytes)),
        }
    }
}

/// A body read whole, and its share of the [`BufferedBodies`] budget, given back when
/// this is dropped.
#[derive(Debug)]
pub struct WholeBody {
    pub bytes: Bytes,
    _held: Option<OwnedSemaphorePermit>,
}

impl WholeBody {
    pub fn empty() -> Self {
        Self {
            bytes: Bytes::new(),
            _held: None,
        }
    }
}

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum ReadBodyError {
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error(transparent)]
    Unreadable(CallerBodyError),
    #[error("the request body did not arrive within {0:?}")]
    Timeout(Duration),
}

/// The process-wide budget for caller bodies held in memory, and how long reading one may
/// take.
#[derive(Debug, Clone)]
pub struct BufferedBodies {
    permits: Arc<Semaphore>,
    total: u64,
    timeout: Duration,
}

impl BufferedBodies {
    /// Default budget: 32 bodies of SigV4's default limit at once.
    pub const DEFAULT_BYTES: u64 = 256 * 1024 * 1024;

    pub fn new(total_bytes: u64, timeout: Duration) -> Self {
        let total = total_bytes.min(Semaphore::MAX_PERMITS as u64);
        Self {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
            timeout,
        }
    }

    /// Reads `body` whole, if it is at most `limit` bytes: an announced length over the
    /// limit is refused before anything is read. Waits for its share of the budget (the
    /// announced length, or `limit` for a body of unknown length) within the deadline.
    pub async fn read(&self, body: CallerBody, limit: u64) -> Result<WholeBody, ReadBodyError> {
        if body.is_end_stream() {
            return Ok(WholeBody::empty());
        }
        let hint = body.size_hint();
        if hint.lower() > limit {
            return Err(ReadBodyError::TooLarge { limit });
        }
        let share = hint.upper().unwrap_or(limit).min(limit).min(self.total);
        let read = async {
            // u32 permits: the budget was capped to the semaphore's maximum, so is `share`.
            let held = Arc::clone(&self.permits)
                .acquire_many_owned(u32::try_from(share).unwrap_or(u32::MAX))
                .await
                .ok();
            let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
            match limited.collect().await {
                Ok(collected) => Ok(WholeBody {
                    bytes: collected.to_bytes(),
                    _held: held,
                }),
                Err(error) => Err(match error.downcast::<CallerBodyError>() {
                    Ok(unreadable) => ReadBodyError::Unreadable(*unreadable),
                    // Limited's only error of its own: the limit.
                    Err(_) => ReadBodyError::TooLarge { limit },
                }),
            }
        };
        tokio::time::timeout(self.timeout, read)
            .await
            .unwrap_or(Err(ReadBodyError::Timeout(self.timeout)))
    }
}
