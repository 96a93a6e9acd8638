//! The admin listener: liveness and readiness.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::proxy::error::problem_response;
use crate::server::Handler;
use crate::store::Store;

/// Serves `/healthz` (the process answers) and `/readyz` (a config is loaded; the admin
/// listener starts only after the proxy listener is bound).
#[derive(Debug)]
pub struct Admin {
    store: Arc<Store>,
}

impl Admin {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    fn respond(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        match request.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" => {
                let generation = self.store.load().meta.generation;
                if generation > 0 {
                    text(StatusCode::OK, "ready\n")
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "no config loaded\n")
                }
            }
            _ => problem_response(
                StatusCode::NOT_FOUND,
                "not_found",
                "No such admin endpoint.",
            ),
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

impl Handler for Admin {
    type Body = Full<Bytes>;

    fn handle(
        &self,
        request: Request<Incoming>,
        _local_addr: SocketAddr,
    ) -> impl Future<Output = Response<Self::Body>> + Send {
        std::future::ready(self.respond(&request))
    }
}
