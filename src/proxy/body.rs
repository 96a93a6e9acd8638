//! Request bodies that may have to be sent twice.
//!
//! A request whose OAuth2 token came from the cache may meet an upstream 401 (the token
//! was revoked early) and is then retried once with a new token. Only a body read whole
//! before the first attempt can be replayed: none at all, or one whose announced length
//! is at most [`REPLAY_LIMIT`]. Anything else streams and is never retried.

use bytes::Bytes;
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};

use super::error::ProxyError;
use crate::transport::CallerBody;

/// Largest body held in memory for a possible retry.
pub const REPLAY_LIMIT: u64 = 64 * 1024;

pub enum BodyForRetry {
    /// Read whole; can be sent again.
    Replayable(Bytes),
    /// Streamed as it arrives; sent once.
    Streaming(CallerBody),
}

/// Reads `body` whole if it is known to be empty or at most [`REPLAY_LIMIT`] bytes.
pub async fn read_if_small(body: CallerBody) -> Result<BodyForRetry, ProxyError> {
    if body.is_end_stream() {
        return Ok(BodyForRetry::Replayable(Bytes::new()));
    }
    match body.size_hint().upper() {
        Some(len) if len <= REPLAY_LIMIT => {
            let collected = Limited::new(body, REPLAY_LIMIT as usize)
                .collect()
                .await
                .map_err(ProxyError::RequestBody)?;
            Ok(BodyForRetry::Replayable(collected.to_bytes()))
        }
        _ => Ok(BodyForRetry::Streaming(body)),
    }
}
