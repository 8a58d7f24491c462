//! A WASI 0.3 HTTP component that misbehaves on request, for the tests of reused and
//! concurrent instances (`host/tests/wasi_p3.rs`). By path:
//! - `/p3/hello`: `Hello, WASI!`;
//! - `/p3/sleep?ms=N`: awaits N ms (wasi:clocks 0.3), then `slept`: requests that overlap
//!   on one instance;
//! - `/p3/counter`: a global counter, incremented per request (what reuse shares);
//! - `/p3/claims`: the `x-micro-api-claims` header the host set for this request;
//! - `/p3/trap`: panics; `/p3/loop`: spins forever; `/p3/alloc`: grows memory until it fails.

use std::sync::atomic::{AtomicU64, Ordering};

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_bindgen, wit_future, wit_stream};

wasip3::http::service::export!(Probe);

static COUNTER: AtomicU64 = AtomicU64::new(0);

struct Probe;

impl wasip3::exports::http::handler::Guest for Probe {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let target = request.get_path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let body = match path {
            "/p3/hello" => "Hello, WASI!".to_string(),
            "/p3/sleep" => {
                let ms: u64 = query
                    .strip_prefix("ms=")
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(100);
                wasip3::clocks::monotonic_clock::wait_for(ms * 1_000_000).await;
                "slept".to_string()
            }
            "/p3/counter" => (COUNTER.fetch_add(1, Ordering::Relaxed) + 1).to_string(),
            "/p3/claims" => {
                let claims = request.get_headers().get("x-micro-api-claims");
                claims
                    .first()
                    .map(|value| String::from_utf8_lossy(value).into_owned())
                    .unwrap_or_default()
            }
            "/p3/trap" => panic!("probe-p3 panicked on purpose"),
            "/p3/loop" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "/p3/alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            _ => return Ok(text_response(404, "not found")),
        };
        Ok(text_response(200, &body))
    }
}

/// A response with `body`, written by a task of its own as the example does.
fn text_response(status: u16, body: &str) -> Response {
    let (mut body_tx, body_rx) = wit_stream::new();
    let (body_result_tx, body_result_rx) = wit_future::new(|| Ok(None));
    let (response, _future_result) = Response::new(Fields::new(), Some(body_rx), body_result_rx);
    drop(body_result_tx);
    response
        .set_status_code(status)
        .expect("a valid status code");
    let bytes = body.as_bytes().to_vec();
    wit_bindgen::spawn(async move {
        let remaining = body_tx.write_all(bytes).await;
        assert!(remaining.is_empty());
    });
    response
}
