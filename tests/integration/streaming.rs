//! Bodies stream through the proxy in both directions: each chunk reaches the other side
//! before the next one is sent, so nothing is buffered whole.

use crate::support;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::channel::Channel;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::upstream::{channel_body, full, Upstream};
use support::{within, InProcessProxy};
use tokio::sync::mpsc;

fn source(upstream: &Upstream) -> String {
    format!(
        "sources:\n  s:\n    upstream: {}\n    auth_type: bearer\n    bearer_token: stream-token\n",
        upstream.url()
    )
}

#[tokio::test]
async fn server_sent_events_arrive_event_by_event() {
    // The test hands the upstream its body sender; the upstream answers with that body.
    let (senders_tx, mut senders) = mpsc::unbounded_channel();
    let upstream = Upstream::with_handler(move |_| {
        let (tx, body) = channel_body(1);
        senders_tx.send(tx).expect("test alive");
        async move {
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(body)
                .expect("response")
        }
    })
    .await;
    let proxy = InProcessProxy::start(&source(&upstream)).await;
    for client in [support::client::http1(), support::client::h2c()] {
        let response = within(
            "SSE response head",
            client.get(proxy.url("/s/events").parse().expect("uri")),
        )
        .await
        .expect("response");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut body = response.into_body();
        let mut events = within("the upstream's body sender", senders.recv())
            .await
            .expect("sender");
        for n in 0..3 {
            let event = format!("id: {n}\ndata: event {n}\n\n");
            events
                .send_data(Bytes::from(event.clone()))
                .await
                .expect("send event");
            // The event is read before the next one exists: no buffering on the way.
            let frame = within("one event", body.frame())
                .await
                .expect("a frame")
                .expect("no error");
            assert_eq!(frame.into_data().expect("data"), event.as_bytes());
        }
        drop(events);
        let rest = within("end of stream", body.collect())
            .await
            .expect("clean end")
            .to_bytes();
        assert!(
            rest.is_empty(),
            "unexpected data after the last event: {rest:?}"
        );
    }
}

#[tokio::test]
async fn request_bodies_stream_to_the_upstream_chunk_by_chunk() {
    let (chunks_tx, mut chunks) = mpsc::unbounded_channel::<Bytes>();
    let upstream = Upstream::with_handler(move |request| {
        let chunks_tx = chunks_tx.clone();
        async move {
            let mut body = request.into_body();
            let mut total = 0;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    total += data.len();
                    let _ = chunks_tx.send(data);
                }
            }
            Response::new(full(total.to_string()))
        }
    })
    .await;
    let proxy = InProcessProxy::start(&source(&upstream)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Channel<Bytes, Infallible>>();
    let (mut upload, body) = Channel::<Bytes, Infallible>::new(1);
    let request = Request::post(proxy.url("/s/upload"))
        .body(body)
        .expect("request");
    let response = tokio::spawn(client.request(request));

    let mut sent = 0;
    for n in 0..4u8 {
        let chunk = Bytes::from(vec![n; 16 * 1024]);
        sent += chunk.len();
        within("the proxy to take a chunk", upload.send_data(chunk))
            .await
            .expect("send chunk");
        // Arrives upstream before the next chunk is sent (hyper may split it, never join).
        let mut got = 0;
        while got < 16 * 1024 {
            let part = within("the chunk upstream", chunks.recv())
                .await
                .expect("chunk");
            assert!(part.iter().all(|&b| b == n));
            got += part.len();
        }
    }
    drop(upload);
    let response = within("the upload's response", response)
        .await
        .expect("task")
        .expect("response");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(body, sent.to_string());
    let seen = upstream.single();
    assert_eq!(
        seen.header("authorization").as_deref(),
        Some("Bearer stream-token")
    );
}

#[tokio::test]
async fn large_bodies_pass_intact_both_ways() {
    const SIZE: usize = 64 * 1024 * 1024;
    const CHUNK: usize = 256 * 1024;
    fn pattern(offset: usize, len: usize) -> Bytes {
        (offset..offset + len)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into()
    }
    let upstream = Upstream::with_handler(|request| async move {
        if request.uri().path() == "/download" {
            let (mut tx, body) = channel_body(2);
            tokio::spawn(async move {
                for offset in (0..SIZE).step_by(CHUNK) {
                    if tx.send_data(pattern(offset, CHUNK)).await.is_err() {
                        return;
                    }
                }
            });
            return Response::new(body);
        }
        let mut body = request.into_body();
        let (mut offset, mut intact) = (0, true);
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                intact &= data == pattern(offset, data.len());
                offset += data.len();
            }
        }
        Response::new(full(format!("{offset} {intact}")))
    })
    .await;
    let proxy = InProcessProxy::start(&source(&upstream)).await;

    let client = Client::builder(TokioExecutor::new()).build_http::<Channel<Bytes, Infallible>>();
    let (mut upload, body) = Channel::<Bytes, Infallible>::new(2);
    let request = Request::post(proxy.url("/s/upload"))
        .body(body)
        .expect("request");
    let response = tokio::spawn(client.request(request));
    for offset in (0..SIZE).step_by(CHUNK) {
        within("upload progress", upload.send_data(pattern(offset, CHUNK)))
            .await
            .expect("send");
    }
    drop(upload);
    let response = within("upload response", response)
        .await
        .expect("task")
        .expect("response");
    let text = within("upload result", response.into_body().collect())
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(text, format!("{SIZE} true"));

    let (_, empty) = Channel::<Bytes, Infallible>::new(1);
    let request = Request::get(proxy.url("/s/download"))
        .body(empty)
        .expect("request");
    let response = within("download head", client.request(request))
        .await
        .expect("response");
    let mut body = response.into_body();
    let (mut offset, mut intact) = (0, true);
    while let Some(frame) = within("download progress", body.frame()).await {
        if let Ok(data) = frame.expect("frame").into_data() {
            intact &= data == pattern(offset, data.len());
            offset += data.len();
        }
    }
    assert_eq!((offset, intact), (SIZE, true));
}
