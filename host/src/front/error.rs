//! The one error shape of the gateway: `{"error": {"code": "...", "message": "..."}}` with
//! the status that goes with the code, never an internal detail.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

pub fn full(bytes: impl Into<Bytes>) -> HyperOutgoingBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub fn error(status: StatusCode, code: &str, message: &str) -> Response<HyperOutgoingBody> {
    json(
        status,
        &serde_json::json!({ "error": { "code": code, "message": message } }),
    )
}

pub fn not_found() -> Response<HyperOutgoingBody> {
    error(StatusCode::NOT_FOUND, "not_found", "no route for this path")
}

/// 503 with `Retry-After: 1`: the host is out of room for the request now, not broken.
pub fn unavailable(code: &str, message: &str) -> Response<HyperOutgoingBody> {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, code, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
