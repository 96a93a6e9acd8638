//! HTTP/1 or h2c: told apart by the first bytes a client sends, the way hyper-util's auto
//! builder does, but under the connection's deadline (the auto builder reads them with no
//! timer at all, so a silent socket held its slot forever).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt as _, ReadBuf};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    H2,
}

/// Reads until the bytes tell the protocol: the first byte that differs from the h2
/// preface means HTTP/1, the whole preface means h2. `None` when the client closed first.
/// The bytes read are handed back in the [`Rewind`], for the protocol's parser.
pub async fn detect<S: AsyncRead + Unpin>(
    mut stream: S,
) -> io::Result<Option<(Protocol, Rewind<S>)>> {
    let mut prefix = [0u8; H2_PREFACE.len()];
    let mut filled = 0;
    let protocol = loop {
        let n = stream.read(&mut prefix[filled..]).await?;
        if n == 0 {
            return Ok(None);
        }
        let end = filled + n;
        if prefix[filled..end] != H2_PREFACE[filled..end] {
            filled = end;
            break Protocol::Http1;
        }
        filled = end;
        if filled == H2_PREFACE.len() {
            break Protocol::H2;
        }
    };
    Ok(Some((
        protocol,
        Rewind {
            prefix,
            start: 0,
            end: filled,
            inner: stream,
        },
    )))
}

/// A stream whose first bytes were already read: they are read again first.
#[derive(Debug)]
pub struct Rewind<S> {
    prefix: [u8; H2_PREFACE.len()],
    start: usize,
    end: usize,
    inner: S,
}

impl<S> Rewind<S> {
    /// A stream with nothing to replay.
    pub fn plain(inner: S) -> Self {
        Self {
            prefix: [0; H2_PREFACE.len()],
            start: 0,
            end: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.start < self.end {
            let n = (self.end - self.start).min(buf.remaining());
            let (start, end) = (self.start, self.start + n);
            buf.put_slice(&self.prefix[start..end]);
            self.start = end;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

write_through!(Rewind);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    async fn detected(chunks: &[&[u8]]) -> Option<(Protocol, Vec<u8>)> {
        let (mut client, server) = tokio::io::duplex(1024);
        for chunk in chunks {
            client.write_all(chunk).await.expect("write");
        }
        drop(client);
        let (protocol, mut rewound) = detect(server).await.expect("io")?;
        let mut all = Vec::new();
        rewound.read_to_end(&mut all).await.expect("read");
        Some((protocol, all))
    }

    #[tokio::test]
    async fn tells_http1_from_h2_and_replays_what_it_read() {
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(
            detected(&[get]).await,
            Some((Protocol::Http1, get.to_vec()))
        );
        let mut h2 = H2_PREFACE.to_vec();
        h2.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
        assert_eq!(detected(&[&h2]).await, Some((Protocol::H2, h2.clone())));
        // A method that starts like the preface, and a preface in pieces.
        assert_eq!(
            detected(&[b"PR", b"OPFIND / HTTP/1.1\r\n\r\n"])
                .await
                .map(|d| d.0),
            Some(Protocol::Http1)
        );
        assert_eq!(
            detected(&[&h2[..3], &h2[3..10], &h2[10..]])
                .await
                .map(|d| d.0),
            Some(Protocol::H2)
        );
        assert_eq!(detected(&[]).await, None);
        assert_eq!(detected(&[b"PRI * HT"]).await, None);
    }
}
