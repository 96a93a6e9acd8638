//! An OTLP/HTTP trace collector: decodes every export with opentelemetry-proto's generated
//! protobuf types (what a real collector parses) and keeps the spans.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

use super::upstream::{full, read_body, Upstream};

pub struct Collector {
    server: Upstream,
    exports: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

impl Collector {
    pub async fn start() -> Self {
        let exports = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&exports);
        let server =
            Upstream::with_handler(move |request: http::Request<hyper::body::Incoming>| {
                let kept = Arc::clone(&kept);
                async move {
                    let path_ok = request.uri().path() == "/v1/traces";
                    let protobuf = request
                        .headers()
                        .get("content-type")
                        .is_some_and(|v| v == "application/x-protobuf");
                    let body = read_body(request).await;
                    let decoded = ExportTraceServiceRequest::decode(body);
                    let mut response = http::Response::new(full(
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    ));
                    match decoded {
                        Ok(export) if path_ok && protobuf => {
                            kept.lock().expect("exports").push(export)
                        }
                        _ => *response.status_mut() = http::StatusCode::BAD_REQUEST,
                    }
                    response
                }
            })
            .await;
        Self { server, exports }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn exports(&self) -> Vec<ExportTraceServiceRequest> {
        self.exports.lock().expect("exports").clone()
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.exports()
            .into_iter()
            .flat_map(|e| e.resource_spans)
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }
}

/// A string, integer or boolean attribute's value as text.
pub fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    Some(match value.value.as_ref()? {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        other => format!("{other:?}"),
    })
}
