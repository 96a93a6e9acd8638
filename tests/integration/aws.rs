//! `aws_sigv4` end to end. The signatures are checked by real verifiers, not by the signer
//! itself: moto (S3 and STS, which recompute every signature and refuse a wrong one, and
//! hand out web-identity keys) and botocore (which recomputes a recorded request's
//! signature byte for byte). A scripted STS covers what moto cannot be made to do on
//! cue: slow answers, short-lived keys, refusals.

use crate::support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::binary::BinaryProxy;
use support::client::{self, get, send, Answer};
use support::moto::{botocore_authorization, Moto};
use support::upstream::{full, Recorded, Upstream};
use support::{eventually, within, InProcessProxy};

/// One moto for the whole file (it takes seconds to start); it exits when this process's
/// end of its stdin closes.
fn moto() -> Option<&'static Moto> {
    static MOTO: OnceLock<Option<Moto>> = OnceLock::new();
    MOTO.get_or_init(Moto::start).as_ref()
}

fn sigv4(id: &str, upstream: &str, service: &str, keys: &str) -> String {
    format!(
        "  {id}:\n    upstream: {upstream}\n    auth_type: aws_sigv4\n    aws_region: us-east-1\n    \
         aws_service: {service}\n{keys}"
    )
}

fn static_keys(key_id: &str, secret: &str) -> String {
    format!("    aws_access_key_id: {key_id}\n    aws_secret_access_key: {secret}\n")
}

async fn post(url: &str, body: &'static str) -> Answer {
    let request = Request::post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("request");
    send(&client::http1(), request).await
}

/// Sends `chunks` as a body of unknown length (chunked), as a streaming client would.
async fn send_chunked(method: Method, url: String, chunks: Vec<Bytes>) -> StatusCode {
    let client = Client::builder(TokioExecutor::new()).build_http::<Channel<Bytes, Infallible>>();
    let (mut upload, body) = Channel::<Bytes, Infallible>::new(1);
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(body)
        .expect("request");
    let response = tokio::spawn(async move { client.request(request).await });
    for chunk in chunks {
        // The proxy may answer (413) before taking it all.
        if upload.send_data(chunk).await.is_err() {
            break;
        }
    }
    drop(upload);
    within("the chunked request's response", response)
        .await
        .expect("task")
        .expect("response")
        .status()
}

const GET_CALLER_IDENTITY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

#[tokio::test]
async fn s3_objects_round_trip_and_moto_refuses_a_wrong_key() {
    let Some(moto) = moto() else {
        return;
    };
    let keys = static_keys(&moto.access_key_id, &moto.secret_access_key);
    let yaml = format!(
        "sources:\n{}{}{}",
        sigv4("s3", &moto.endpoint, "s3", &keys),
        sigv4(
            "s3-stream",
            &moto.endpoint,
            "s3",
            &format!("{keys}    aws_unsigned_payload: true\n")
        ),
        sigv4(
            "s3-wrong",
            &moto.endpoint,
            "s3",
            &static_keys(&moto.access_key_id, "not-the-secret-key")
        ),
    );
    let proxy = InProcessProxy::start(&yaml).await;
    let client = client::http1();
    let object = |source: &str, key: &str| proxy.url(&format!("/{source}/{}/{key}", moto.bucket));

    let put = Request::put(object("s3", "notes/hello%20world.txt"))
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(b"signed and hashed")))
        .expect("request");
    let answer = send(&client, put).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = get(&client, &object("s3", "notes/hello%20world.txt")).await;
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (StatusCode::OK, "signed and hashed")
    );

    // 3 MiB in chunks of unknown total length, sent as UNSIGNED-PAYLOAD without buffering.
    let chunks = vec![Bytes::from(vec![b'z'; 64 * 1024]); 48];
    let status = send_chunked(Method::PUT, object("s3-stream", "big.bin"), chunks).await;
    assert_eq!(status, 200);
    let answer = get(&client, &object("s3", "big.bin")).await;
    assert_eq!(
        (answer.status, answer.body.len()),
        (StatusCode::OK, 3 << 20)
    );

    // moto checks: the wrong secret key's signature is refused.
    let answer = get(&client, &object("s3-wrong", "notes/hello%20world.txt")).await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert!(
        answer.text().contains("SignatureDoesNotMatch"),
        "{}",
        answer.text()
    );
}

#[tokio::test]
async fn sts_knows_who_signed_static_keys_and_web_identity_keys() {
    let Some(moto) = moto() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ3b3JrbG9hZCJ9.c2ln\n",
    )
    .expect("token");
    let role = format!(
        "    aws_role_arn: {}\n    aws_web_identity_token: {{ file: {} }}\n    aws_sts_endpoint: {}\n",
        moto.role_arn,
        token.display(),
        moto.endpoint
    );
    let yaml = format!(
        "sources:\n{}{}",
        sigv4(
            "sts",
            &moto.endpoint,
            "sts",
            &static_keys(&moto.access_key_id, &moto.secret_access_key)
        ),
        sigv4("agent", &moto.endpoint, "sts", &role),
    );
    let proxy = InProcessProxy::start(&yaml).await;

    let answer = post(&proxy.url("/sts/"), GET_CALLER_IDENTITY).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(
        answer
            .text()
            .contains("<Arn>arn:aws:iam::123456789012:user/credproxy-test</Arn>"),
        "{}",
        answer.text()
    );
    for _ in 0..3 {
        let answer = post(&proxy.url("/agent/"), GET_CALLER_IDENTITY).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert!(
            answer.text().contains(
                "<Arn>arn:aws:sts::123456789012:assumed-role/credproxy-role/credproxy-agent</Arn>"
            ),
            "{}",
            answer.text()
        );
    }
    let snapshot = proxy.store.load();
    let cache = snapshot
        .source("agent")
        .and_then(|source| source.credentials.cache())
        .expect("the agent source caches its keys");
    let stats = cache.stats();
    assert_eq!(
        (
            stats.requests_ok.load(Ordering::Relaxed),
            stats.cache_hits.load(Ordering::Relaxed)
        ),
        (1, 2),
        "one AssumeRoleWithWebIdentity for three requests"
    );
}

/// The request as botocore should see it: what the upstream received, keys included.
fn as_sent(
    recorded: &Recorded,
    keys: (&str, &str, Option<&str>),
    service: &str,
) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = recorded
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                String::from_utf8_lossy(value.as_bytes())
                    .into_owned()
                    .into(),
            )
        })
        .collect();
    let host = recorded.header("host").expect("host");
    serde_json::json!({
        "method": recorded.method.as_str(),
        "url": format!("http://{host}{}", recorded.target),
        "headers": headers,
        "body": base64::engine::general_purpose::STANDARD.encode(&recorded.body),
        "access_key_id": keys.0,
        "secret_access_key": keys.1,
        "session_token": keys.2,
        "region": "us-east-1",
        "service": service,
    })
}

#[tokio::test]
async fn botocore_recomputes_the_signature_of_recorded_requests() {
    if moto().is_none() {
        return;
    }
    let upstream = Upstream::recording().await;
    let (key_id, secret, session) = (
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "FQoGZXIvYXdzEXAMPLE//session+token=",
    );
    let keys = format!(
        "{}    aws_session_token: \"{session}\"\n",
        static_keys(key_id, secret)
    );
    let yaml = format!(
        "sources:\n{}{}",
        sigv4(
            "api",
            &format!("{}/prod", upstream.url()),
            "execute-api",
            &keys
        ),
        sigv4("bucket", &upstream.url(), "s3", &keys),
    );
    let proxy = InProcessProxy::start(&yaml).await;
    let client = client::http1();
    let request = Request::post(proxy.url("/api/v1/items%20x?b=2&a=1&empty=&sp=a%20b"))
        .header("content-type", "application/json")
        .header("x-custom", "  two   spaces  ")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=CALLER/x, Signature=caller",
        )
        .header("x-amz-date", "19990101T000000Z")
        .header("x-amz-security-token", "caller-token")
        .header("x-amz-content-sha256", "caller-hash")
        .header("x-amz-target", "Service.Operation")
        .body(Full::new(Bytes::from_static(br#"{"name":"widget","n":1}"#)))
        .expect("request");
    assert_eq!(send(&client, request).await.status, 200);
    let answer = get(
        &client,
        &proxy.url("/bucket/my-bucket/a%20b/c~d.txt?list-type=2&prefix=x%2Fy"),
    )
    .await;
    assert_eq!(answer.status, 200);

    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    for (recorded, service) in requests.iter().zip(["execute-api", "s3"]) {
        let authorization = recorded.header("authorization").expect("signed");
        assert!(
            authorization.starts_with(&format!("AWS4-HMAC-SHA256 Credential={key_id}/")),
            "{authorization}"
        );
        assert_ne!(
            recorded.header("x-amz-date").as_deref(),
            Some("19990101T000000Z")
        );
        assert_eq!(
            recorded.header("x-amz-security-token").as_deref(),
            Some(session)
        );
        let recomputed =
            botocore_authorization(&as_sent(recorded, (key_id, secret, Some(session)), service))
                .unwrap_or_else(|why| panic!("botocore refused {service}: {why}"));
        assert_eq!(recomputed, authorization, "{service}: {recorded:#?}");
    }
    // Headers the service reads, the caller's own included, are signed; signing ones are ours.
    let api = &requests[0];
    let signed = api.header("authorization").expect("signed");
    assert!(
        signed.contains("SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token;x-amz-target;x-custom"),
        "{signed}"
    );
    assert_eq!(api.target, "/prod/v1/items%20x?b=2&a=1&empty=&sp=a%20b");
}

/// A scripted STS: answers AssumeRoleWithWebIdentity with keys `ASIAFAKE<n>` that live
/// `lifetime` seconds, after `delay`; records the web identity token of each call.
struct ScriptedSts {
    upstream: Upstream,
    tokens: Arc<Mutex<Vec<String>>>,
    lifetime: Arc<AtomicU64>,
}

impl ScriptedSts {
    async fn start(delay: Duration, refuse: bool) -> Self {
        let tokens = Arc::new(Mutex::new(Vec::new()));
        let lifetime = Arc::new(AtomicU64::new(3600));
        let (seen, life) = (Arc::clone(&tokens), Arc::clone(&lifetime));
        let upstream = Upstream::with_handler(move |request: Request<hyper::body::Incoming>| {
            let (seen, life) = (Arc::clone(&seen), Arc::clone(&life));
            async move {
                let body = support::upstream::read_body(request).await;
                let form: std::collections::HashMap<String, String> =
                    form_urlencoded::parse(&body).into_owned().collect();
                let n = {
                    let mut seen = seen.lock().expect("tokens");
                    seen.push(form.get("WebIdentityToken").cloned().unwrap_or_default());
                    seen.len()
                };
                tokio::time::sleep(delay).await;
                if refuse {
                    let mut response = Response::new(full(
                        "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>\
                         <Message>The token eyJ.secret.x is expired</Message></Error></ErrorResponse>",
                    ));
                    *response.status_mut() = StatusCode::BAD_REQUEST;
                    return response;
                }
                let expiration = humantime::format_rfc3339_millis(
                    SystemTime::now() + Duration::from_secs(life.load(Ordering::SeqCst)),
                );
                Response::new(full(format!(
                    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>\
                     <AccessKeyId>ASIAFAKE{n}</AccessKeyId><SecretAccessKey>sts-secret-{n}</SecretAccessKey>\
                     <SessionToken>sts-session-{n}</SessionToken><Expiration>{expiration}</Expiration>\
                     </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
                )))
            }
        })
        .await;
        Self {
            upstream,
            tokens,
            lifetime,
        }
    }

    fn calls(&self) -> usize {
        self.tokens.lock().expect("tokens").len()
    }

    fn role(&self, token_file: &std::path::Path) -> String {
        format!(
            "    aws_role_arn: arn:aws:iam::123456789012:role/agents\n    aws_web_identity_token: {{ file: {} }}\n    \
             aws_sts_endpoint: {}\n",
            token_file.display(),
            self.upstream.url()
        )
    }
}

/// The key id a recorded request was signed with.
fn signed_by(recorded: &Recorded) -> String {
    let authorization = recorded.header("authorization").expect("signed");
    authorization
        .split("Credential=")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("credential")
        .to_owned()
}

#[tokio::test]
async fn sts_keys_are_fetched_once_for_concurrent_requests_and_refreshed_with_a_rotated_token() {
    let sts = ScriptedSts::start(Duration::from_millis(300), false).await;
    let upstream = Upstream::recording().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "projected-token-1\n").expect("token");
    let yaml = format!(
        "sources:\n{}",
        sigv4("agent", &upstream.url(), "bedrock", &sts.role(&token))
    );
    let proxy = InProcessProxy::start(&yaml).await;
    let client = client::http1();

    // Keys that live 6 s: refreshed from 4.5 s on, never used after 5.4 s.
    sts.lifetime.store(6, Ordering::SeqCst);
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let (client, url) = (client.clone(), proxy.url("/agent/model/invoke"));
            tokio::spawn(async move { get(&client, &url).await.status })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.expect("task"), 200);
    }
    let obtained = tokio::time::Instant::now();
    assert_eq!(sts.calls(), 1, "single flight");
    assert!(upstream
        .requests()
        .iter()
        .all(|r| signed_by(r) == "ASIAFAKE1"));

    // The kubelet rotates the projected token; the next STS call must carry the new one.
    std::fs::write(&token, "projected-token-2\n").expect("rotate");
    // Waiting for the clock is the point here: refresh-ahead is about time passing.
    tokio::time::sleep_until(obtained + Duration::from_millis(4800)).await;
    assert_eq!(
        get(&client, &proxy.url("/agent/model/invoke")).await.status,
        200
    );
    eventually("the background refresh", || async { sts.calls() == 2 }).await;
    let last = upstream.requests().pop().expect("request");
    assert_eq!(
        signed_by(&last),
        "ASIAFAKE1",
        "served the current keys while refreshing"
    );
    eventually("the new keys", || async {
        get(&client, &proxy.url("/agent/model/invoke")).await;
        signed_by(&upstream.requests().pop().expect("request")) == "ASIAFAKE2"
    })
    .await;
    assert_eq!(
        *sts.tokens.lock().expect("tokens"),
        ["projected-token-1", "projected-token-2"]
    );
}

#[tokio::test]
async fn an_sts_refusal_is_a_502_naming_status_and_code_and_nothing_else() {
    let sts = ScriptedSts::start(Duration::ZERO, true).await;
    let upstream = Upstream::recording().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJ.secret.x").expect("token");
    let yaml = format!(
        "sources:\n{}",
        sigv4("agent", &upstream.url(), "bedrock", &sts.role(&token))
    );
    let proxy = InProcessProxy::start(&yaml).await;
    let answer = get(&client::http1(), &proxy.url("/agent/x")).await;
    answer.assert_problem(502, "token_endpoint_error");
    assert_eq!(
        answer.json()["detail"],
        "The token endpoint answered HTTP 400 (InvalidIdentityToken)."
    );
    assert!(!answer.text().contains("eyJ"), "{}", answer.text());
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn a_body_over_the_signing_limit_gets_413_before_anything_is_sent() {
    let upstream = Upstream::recording().await;
    let keys = format!(
        "{}    aws_max_signed_body: 1024\n",
        static_keys("AKIAIOSFODNN7EXAMPLE", "secret-key")
    );
    let proxy = InProcessProxy::start(&format!(
        "sources:\n{}",
        sigv4("api", &upstream.url(), "execute-api", &keys)
    ))
    .await;
    let client = client::http1();
    let with_length = |n: usize| {
        Request::post(proxy.url("/api/upload"))
            .body(Full::new(Bytes::from(vec![b'a'; n])))
            .expect("request")
    };
    send(&client, with_length(1025))
        .await
        .assert_problem(413, "body_too_large");
    // Of unknown length: read up to the limit, then refused.
    let chunks = vec![Bytes::from(vec![b'b'; 512]); 4];
    let status = send_chunked(Method::POST, proxy.url("/api/upload"), chunks).await;
    assert_eq!(status, 413);
    assert!(
        upstream.requests().is_empty(),
        "nothing reached the upstream"
    );

    assert_eq!(send(&client, with_length(1024)).await.status, 200);
    let recorded = upstream.single();
    assert_eq!(recorded.body.len(), 1024);
    let hash = recorded
        .header("x-amz-content-sha256")
        .expect("payload hash");
    assert_eq!(hash, hex_sha256(&recorded.body));
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_and_responses_never_show_keys_tokens_or_signing_secrets() {
    let sts = ScriptedSts::start(Duration::ZERO, false).await;
    // An upstream that echoes every request header back, as a hostile or careless one might.
    let upstream = Upstream::with_handler(|request: Request<hyper::body::Incoming>| async move {
        let mut response = Response::new(full("echo"));
        for (name, value) in request.headers() {
            let echoed =
                http::HeaderName::from_bytes(format!("x-echo-{name}").as_bytes()).expect("name");
            response.headers_mut().append(echoed, value.clone());
        }
        response
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "web-identity-token-value").expect("token");
    let keys = format!(
        "{}    aws_session_token: static-session-token-value\n",
        static_keys("AKIAIOSFODNN7EXAMPLE", "static-secret-key-value")
    );
    let config = dir.path().join("sources.yaml");
    std::fs::write(
        &config,
        format!(
            "sources:\n{}{}",
            sigv4("static", &upstream.url(), "execute-api", &keys),
            sigv4("role", &upstream.url(), "execute-api", &sts.role(&token)),
        ),
    )
    .expect("config");
    let proxy = tokio::task::block_in_place(|| BinaryProxy::start(&config, "trace", &[]));
    let client = client::http1();
    let mut answers = String::new();
    for path in ["/static/a", "/role/b", "/role/c"] {
        let request = Request::post(proxy.url(path))
            .body(Full::new(Bytes::from_static(b"payload")))
            .expect("request");
        let answer = send(&client, request).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        answers.push_str(&format!("{:?}{}", answer.headers, answer.text()));
    }
    let output = tokio::task::block_in_place(|| {
        proxy.output_when("three access log lines", |out| {
            out.matches("credproxy::access").count() >= 3
        })
    });
    for secret in [
        "static-secret-key-value",
        "static-session-token-value",
        "web-identity-token-value",
        "sts-secret-1",
        "sts-session-1",
    ] {
        assert!(
            !output.contains(secret),
            "{secret} is in the log:\n{output}"
        );
        assert!(
            !answers.contains(secret),
            "{secret} came back in a response: {answers}"
        );
    }
    // Not vacuous: the secrets did go out, the signer logged at trace level, and the echo
    // of the signature (no secret) came back.
    assert!(upstream
        .requests()
        .iter()
        .any(|r| r.header("x-amz-security-token").as_deref() == Some("sts-session-1")));
    assert!(output.contains("aws_sigv4::http_request"), "{output}");
    assert!(answers.contains("x-echo-authorization"), "{answers}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_given_up_on_and_reaches_no_upstream() {
    let upstream = Upstream::recording().await;
    let keys = static_keys("AKIAIOSFODNN7EXAMPLE", "secret-key");
    let options = support::Options {
        client: credproxy::proxy::ClientSettings {
            response_timeout: Duration::from_millis(300),
            ..Default::default()
        },
        ..Default::default()
    };
    let proxy = InProcessProxy::start_with(
        &format!(
            "sources:\n{}",
            sigv4("api", &upstream.url(), "execute-api", &keys)
        ),
        options,
    )
    .await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Channel<Bytes, Infallible>>();
    let (mut upload, body) = Channel::<Bytes, Infallible>::new(1);
    let request = Request::post(proxy.url("/api/upload"))
        .body(body)
        .expect("request");
    let response = tokio::spawn(async move { client.request(request).await });
    upload
        .send_data(Bytes::from_static(b"the start, and then nothing"))
        .await
        .expect("first chunk");
    // The sender stays open and silent: the proxy's deadline, not the client, ends this.
    let response = within("the proxy giving up", response)
        .await
        .expect("task")
        .expect("response");
    assert_eq!(response.status(), 400);
    drop(upload);
    assert!(upstream.requests().is_empty());
}
