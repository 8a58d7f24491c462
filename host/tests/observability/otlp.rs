//! A small OTLP/HTTP receiver decoding the protobuf the host exports, what the tests read
//! of the spans it received, and the traced requests that make them.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

use crate::common::{HostBuilder, TestHost, client};

/// One span as the receiver decoded it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) name: String,
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    pub(crate) parent_id: String,
    pub(crate) attributes: BTreeMap<String, String>,
    /// `service.instance.id` of the node that sent it.
    pub(crate) node: String,
}

impl Received {
    pub(crate) fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

/// An OTLP/HTTP (protobuf) endpoint on a free loopback port, keeping what it receives.
pub(crate) struct Receiver {
    endpoint: String,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let sink = sink.clone();
                        async move {
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let export = ExportTraceServiceRequest::decode(body).unwrap();
                            let mut sink = sink.lock().unwrap();
                            for resource in export.resource_spans {
                                let node = resource
                                    .resource
                                    .map(|r| attributes(&r.attributes))
                                    .and_then(|a| a.get("service.instance.id").cloned())
                                    .unwrap_or_default();
                                for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                                    sink.push(Received {
                                        name: span.name,
                                        trace_id: hex::encode(span.trace_id),
                                        span_id: hex::encode(span.span_id),
                                        parent_id: hex::encode(span.parent_span_id),
                                        attributes: attributes(&span.attributes),
                                        node: node.clone(),
                                    });
                                }
                            }
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        Self { endpoint, spans }
    }

    /// Waits (up to 15 s) until the spans received satisfy `done`, and returns them.
    pub(crate) async fn wait_for(&self, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let spans = self.spans.lock().unwrap().clone();
            if done(&spans) {
                return spans;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "spans never complete; received: {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `[telemetry]` exporting here, plus `more` keys; the batch processor sends every
    /// 100 ms.
    pub(crate) fn host(&self, builder: HostBuilder, ratio: f64, more: &str) -> HostBuilder {
        builder
            .config(&format!(
                "[telemetry]\notlp_endpoint = {:?}\nsampling_ratio = {ratio}\n{more}\n",
                self.endpoint
            ))
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
    }
}

/// A `traceparent` of a new trace: (header, trace id, parent span id).
pub(crate) fn new_traceparent() -> (String, String, String) {
    let trace_id = format!("{:032x}", rand::random::<u128>() | 1);
    let parent_id = format!("{:016x}", rand::random::<u64>() | 1);
    (format!("00-{trace_id}-{parent_id}-01"), trace_id, parent_id)
}

pub(crate) async fn login_traced(
    host: &TestHost,
    body: &str,
    traceparent: &str,
) -> (u16, serde_json::Value) {
    let response = client()
        .post(host.url("/user/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("traceparent", traceparent)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// The one span whose parent is `parent` and that matches `what`.
pub(crate) fn child<'a>(
    spans: &'a [Received],
    parent: &Received,
    what: &str,
    matches: impl Fn(&Received) -> bool,
) -> &'a Received {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.parent_id == parent.span_id && matches(s))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {what} under {} expected; spans: {spans:#?}",
        parent.name
    );
    found[0]
}

pub(crate) fn has_span(spans: &[Received], name: &str) -> bool {
    spans.iter().any(|s| s.name == name)
}

/// The span of the login request, at the front door.
pub(crate) fn is_login(span: &Received) -> bool {
    span.attr("http.route") == "/user/login"
}
