//! A fake OAuth2 token endpoint: counts its calls, records what each carried, and
//! misbehaves on command (fail, delay, short-lived tokens).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// What the endpoint does with the next requests.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// `None`: issue tokens. `Some((status, code))`: refuse with that OAuth error.
    pub fail: Option<(u16, &'static str)>,
    /// `expires_in` of issued tokens (a JSON value, so tests can send strings or omit it).
    pub expires_in: Option<serde_json::Value>,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            fail: None,
            expires_in: Some(serde_json::json!(3600)),
            delay: Duration::ZERO,
        }
    }
}

/// One token request as received.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub authorization: Option<String>,
    pub form: HashMap<String, String>,
    /// The form in order, repeated names included (`resource` may be).
    pub pairs: Vec<(String, String)>,
}

#[derive(Default)]
struct State {
    behaviour: Behaviour,
    requests: Vec<TokenRequest>,
}

pub struct TokenEndpoint {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl TokenEndpoint {
    /// Issues `tok-<n>` for client_credentials and `xchg-<subject>-<n>` for token
    /// exchange, n counting calls from 1.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind token endpoint");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(answer(request, &state).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/oauth/token", self.addr)
    }

    pub fn set(&self, behaviour: Behaviour) {
        self.state.lock().expect("state").behaviour = behaviour;
    }

    pub fn calls(&self) -> usize {
        self.state.lock().expect("state").requests.len()
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.lock().expect("state").requests.clone()
    }
}

async fn answer(request: Request<Incoming>, state: &Mutex<State>) -> Response<Full<Bytes>> {
    let authorization = request
        .headers()
        .get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = super::upstream::read_body(request).await;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let form: HashMap<String, String> = pairs.iter().cloned().collect();
    let (behaviour, n) = {
        let mut state = state.lock().expect("state");
        state.requests.push(TokenRequest {
            authorization,
            form: form.clone(),
            pairs,
        });
        (state.behaviour.clone(), state.requests.len())
    };
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    let (status, json) = match behaviour.fail {
        Some((status, code)) => (
            status,
            serde_json::json!({ "error": code, "error_description": "told to fail" }),
        ),
        None => {
            let token = match form.get("subject_token") {
                Some(subject) => format!("xchg-{subject}-{n}"),
                None => format!("tok-{n}"),
            };
            let mut json = serde_json::json!({ "access_token": token, "token_type": "Bearer" });
            if let Some(expires_in) = behaviour.expires_in {
                json["expires_in"] = expires_in;
            }
            (200, json)
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(json.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).expect("status");
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    response
}
