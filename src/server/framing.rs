//! Request-smuggling guard: follows HTTP/1 message framing on the inbound byte stream and
//! flags a request head that carries both `Content-Length` and `Transfer-Encoding`.
//!
//! hyper resolves that conflict the way RFC 9112 §6.3 allows an intermediary to (drop
//! `Content-Length`, decode chunked, close afterwards) and leaves no trace of it in the
//! request it hands over. credproxy rejects such requests instead, so it reads the same
//! bytes hyper reads: request heads, then each body by its framing, to find the next
//! head. The handler checks the connection's flag before anything else and answers 400;
//! hyper closes the connection after that response. An h2c connection (its preface) is
//! not followed: HTTP/2 has no such ambiguity. A connection concern: the proxy only sees
//! the flag.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Longest request head followed; hyper rejects longer ones itself.
const MAX_HEAD: usize = 64 * 1024;

/// Where the byte stream is in the current message.
#[derive(Debug)]
enum State {
    /// Reading a request head (bytes so far).
    Head(Vec<u8>),
    /// Skipping a body of known length.
    Body(u64),
    Chunked(Chunk),
    /// Not following any more (h2c, or a head hyper will refuse anyway).
    Off,
}

#[derive(Debug)]
enum Chunk {
    /// The hex size (so far).
    Size(u64),
    /// Extensions after the size, up to LF.
    Extension(u64),
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer fields after the last chunk; `true` when the current line is empty.
    Trailers(bool),
}

/// Follows framing and raises the flag on a conflicting head.
#[derive(Debug)]
pub struct Framing {
    state: State,
    conflict: Arc<AtomicBool>,
}

impl Framing {
    pub fn new(conflict: Arc<AtomicBool>) -> Self {
        Self {
            state: State::Head(Vec::new()),
            conflict,
        }
    }

    /// Feeds bytes as they are read from the client.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            bytes = match &mut self.state {
                State::Off => return,
                State::Head(head) => {
                    let start = head.len().saturating_sub(3);
                    let take = bytes.len().min(MAX_HEAD + 1 - head.len());
                    head.extend_from_slice(&bytes[..take]);
                    match find(&head[start..], b"\r\n\r\n") {
                        Some(at) => {
                            let end = start + at + 4;
                            let used = take - (head.len() - end);
                            let head = std::mem::take(head);
                            self.state = self.after_head(&head[..end]);
                            &bytes[used..]
                        }
                        None if head.len() > MAX_HEAD => {
                            self.state = State::Off;
                            return;
                        }
                        None => &bytes[take..],
                    }
                }
                State::Body(remaining) => {
                    let n = (*remaining).min(bytes.len() as u64) as usize;
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = State::Head(Vec::new());
                    }
                    &bytes[n..]
                }
                State::Chunked(chunk) => {
                    let (used, done) = chunk.feed(bytes);
                    if done {
                        self.state = State::Head(Vec::new());
                    }
                    &bytes[used..]
                }
            };
        }
    }

    /// Decides how the body after `head` is framed. A head with both `Content-Length` and
    /// `Transfer-Encoding` is a conflict whatever their values (`chunked` with a length of
    /// `abc`, `-1` or `5, 5` included): hyper would frame it one way, an upstream perhaps
    /// another.
    fn after_head(&self, head: &[u8]) -> State {
        if head.starts_with(b"PRI * HTTP/2.0") {
            return State::Off;
        }
        let mut content_length: Option<Option<u64>> = None;
        let mut chunked = None;
        for line in head.split(|&b| b == b'\n').skip(1) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = (trim(&line[..colon]), trim(&line[colon + 1..]));
            if name.eq_ignore_ascii_case(b"content-length") {
                let parsed = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
                // A second, different length is hyper's to refuse.
                content_length = Some(match content_length {
                    Some(seen) if seen != parsed => None,
                    _ => parsed,
                });
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                let last = value
                    .rsplit(|&b| b == b',')
                    .next()
                    .map(trim)
                    .unwrap_or_default();
                chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            }
        }
        match (chunked, content_length) {
            (Some(_), Some(_)) => {
                self.conflict.store(true, Ordering::Release);
                State::Off
            }
            (Some(true), None) => State::Chunked(Chunk::Size(0)),
            // Not followed any further: hyper refuses these heads itself.
            (Some(false), None) | (None, Some(None)) => State::Off,
            (None, Some(Some(0))) | (None, None) => State::Head(Vec::new()),
            (None, Some(Some(length))) => State::Body(length),
        }
    }
}

impl Chunk {
    /// Consumes bytes of a chunked body; returns how many and whether the body ended.
    fn feed(&mut self, bytes: &[u8]) -> (usize, bool) {
        let mut used = 0;
        while used < bytes.len() {
            let byte = bytes[used];
            match self {
                Chunk::Size(size) => match (byte as char).to_digit(16) {
                    Some(digit) => *size = size.saturating_mul(16).saturating_add(u64::from(digit)),
                    None if byte == b'\n' => *self = Self::after_size(*size),
                    None => *self = Chunk::Extension(*size),
                },
                Chunk::Extension(size) => {
                    if byte == b'\n' {
                        *self = Self::after_size(*size);
                    }
                }
                Chunk::Data(remaining) => {
                    let n = (*remaining).min((bytes.len() - used) as u64);
                    *remaining -= n;
                    used += n as usize;
                    if *remaining == 0 {
                        *self = Chunk::DataEnd;
                    }
                    continue;
                }
                Chunk::DataEnd => {
                    if byte == b'\n' {
                        *self = Chunk::Size(0);
                    }
                }
                Chunk::Trailers(line_empty) => {
                    if byte == b'\n' {
                        if *line_empty {
                            return (used + 1, true);
                        }
                        *line_empty = true;
                    } else if byte != b'\r' {
                        *line_empty = false;
                    }
                }
            }
            used += 1;
        }
        (used, false)
    }

    fn after_size(size: u64) -> Self {
        if size == 0 {
            Chunk::Trailers(true)
        } else {
            Chunk::Data(size)
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// A client connection whose inbound bytes pass through [`Framing`].
pub struct Guarded<T> {
    inner: T,
    framing: Framing,
}

impl<T> Guarded<T> {
    /// Wraps `inner`; the returned flag is raised on a conflicting request head.
    pub fn new(inner: T) -> (Self, Arc<AtomicBool>) {
        let conflict = Arc::new(AtomicBool::new(false));
        let framing = Framing::new(Arc::clone(&conflict));
        (Self { inner, framing }, conflict)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.framing.feed(&buf.filled()[before..]);
        }
        result
    }
}

write_through!(Guarded);

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` in pieces of `step` bytes; returns (conflict flagged, following).
    fn run(stream: &str, step: usize) -> (bool, bool) {
        let flag = Arc::new(AtomicBool::new(false));
        let mut framing = Framing::new(Arc::clone(&flag));
        for piece in stream.as_bytes().chunks(step) {
            framing.feed(piece);
        }
        (
            flag.load(Ordering::Acquire),
            !matches!(framing.state, State::Off),
        )
    }

    const GET: &str = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    const POST_CL: &str =
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello\r\n\r\nx:";
    const POST_CHUNKED: &str =
        "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhe\r\n\r\r\n0\r\nX-Trailer: a\r\n\r\n";
    const SMUGGLE_CL_TE: &str =
        "POST /a HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    const SMUGGLE_TE_CL: &str =
        "POST /a HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 4\r\n\r\n";

    #[test]
    fn both_headers_conflict_whatever_their_values() {
        for length in ["abc", "-1", "5, 5", "", "99999999999999999999999"] {
            for head in [
                format!("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: {length}\r\n\r\n"),
                format!("POST /a HTTP/1.1\r\nContent-Length: {length}\r\nTransfer-Encoding: chunked\r\n\r\n"),
                format!("POST /a HTTP/1.1\r\nContent-Length : {length}\r\nTransfer-Encoding: identity\r\n\r\n"),
            ] {
                assert!(run(&head, 3).0, "{head:?}");
            }
        }
    }

    #[test]
    fn a_conflict_is_flagged_in_any_request_of_a_connection() {
        for step in [1, 3, 7, 1000] {
            assert!(run(SMUGGLE_CL_TE, step).0, "step {step}");
            assert!(run(SMUGGLE_TE_CL, step).0);
            // After keep-alive requests whose bodies hold header-like bytes.
            let stream = [GET, POST_CL, POST_CHUNKED, GET, SMUGGLE_CL_TE].concat();
            assert!(run(&stream, step).0, "step {step}");
        }
    }

    #[test]
    fn bodies_are_not_mistaken_for_heads() {
        // A body that looks like a conflicting head, framed by Content-Length or chunked.
        let fake = "Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n";
        let by_length = format!(
            "POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n{fake}{GET}",
            fake.len()
        );
        let by_chunks = format!(
            "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{fake}\r\n0\r\n\r\n{GET}",
            fake.len()
        );
        for step in [1, 5, 1000] {
            assert_eq!(run(&by_length, step), (false, true), "step {step}");
            assert_eq!(run(&by_chunks, step), (false, true), "step {step}");
            assert_eq!(
                run(&[GET, POST_CL, POST_CHUNKED, GET].concat(), step),
                (false, true)
            );
        }
    }

    #[test]
    fn h2c_is_not_followed() {
        let preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        assert_eq!(
            run(
                &format!("{preface}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
                4
            ),
            (false, false)
        );
    }
}
