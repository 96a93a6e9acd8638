//! Clients for the tests: HTTP/1.1, h2c, and raw bytes for what real clients never send.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn http1() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// HTTP/2 with prior knowledge, over plain TCP.
pub fn h2c() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// A response with its whole body.
#[derive(Debug)]
pub struct Answer {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts a problem+json error with `status` and `code`.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        assert_eq!(self.headers["content-type"], "application/problem+json");
        let json = self.json();
        assert_eq!(json["code"], code, "{json}");
        assert_eq!(json["status"], status, "{json}");
    }
}

pub async fn send(client: &TestClient, request: Request<Full<Bytes>>) -> Answer {
    let response: Response<_> = super::within("the proxy's response", client.request(request))
        .await
        .expect("request through the proxy");
    let (parts, body) = response.into_parts();
    let body = super::within("the response body", body.collect())
        .await
        .expect("response body")
        .to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(client: &TestClient, url: &str) -> Answer {
    send(
        client,
        Request::get(url).body(Full::default()).expect("request"),
    )
    .await
}

/// An empty-bodied `method` request to `url` over HTTP/1, as the caller with `token`
/// (`Proxy-Authorization: Bearer`), or as no caller.
pub async fn as_caller(method: http::Method, url: &str, token: Option<&str>) -> Answer {
    let mut builder = Request::builder().method(method).uri(url);
    if let Some(token) = token {
        builder = builder.header("proxy-authorization", format!("Bearer {token}"));
    }
    send(&http1(), builder.body(Full::default()).expect("request")).await
}

/// Writes `raw` on a fresh connection and reads one response (until the server closes the
/// connection, or a head and its `Content-Length` body have arrived); returns the status
/// code and the text received.
pub async fn raw(addr: std::net::SocketAddr, raw: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(raw.as_bytes()).await.expect("write");
    let text = read_response(&mut stream).await;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

/// Reads one response head and its `Content-Length` body (or everything until the server
/// closes the connection) from a kept-alive connection.
pub async fn read_response(stream: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = super::within("a response", stream.read(&mut buf))
            .await
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end].lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            });
            if length.is_some_and(|length| data.len() >= head_end + 4 + length) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&data).into_owned()
}
