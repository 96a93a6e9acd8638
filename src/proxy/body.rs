//! Request bodies that may have to be sent twice.
//!
//! A request whose token came from the cache may meet an upstream 401 (the token was
//! revoked early) and is then retried once with a new token. Only a body read whole
//! before the first attempt can be replayed: none at all, or one whose announced length
//! is at most [`REPLAY_LIMIT`]. Anything else streams and is never retried.

use http_body::Body as _;

use super::error::ProxyError;
use crate::transport::{BufferedBodies, Payload};

/// Largest body held in memory for a possible retry.
pub const REPLAY_LIMIT: u64 = 64 * 1024;

/// `payload`, read whole if it is known to be empty or at most [`REPLAY_LIMIT`] bytes.
pub async fn replayable(payload: Payload, bodies: &BufferedBodies) -> Result<Payload, ProxyError> {
    let body = match payload {
        Payload::Streaming(body) => body,
        whole @ Payload::Whole(_) => return Ok(whole),
    };
    let small = body.is_end_stream() || body.size_hint().upper().is_some_and(|n| n <= REPLAY_LIMIT);
    if !small {
        return Ok(Payload::Streaming(body));
    }
    // Unreadable, longer than announced or stalled: the caller's fault each time.
    let whole = bodies
        .read(body, REPLAY_LIMIT)
        .await
        .map_err(|error| ProxyError::RequestBody(Box::new(error)))?;
    Ok(Payload::Whole(whole))
}
