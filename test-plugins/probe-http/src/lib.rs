//! A test-only HTTP handler for the host's integration tests: a greeting, rpc from an
//! HTTP plugin (also inside spans of its own), a trap, a spin, echoes of the request, and
//! a counter in a global (`/probe/counter`: 1 on a fresh instance, growing on a reused one),
//! output written in pieces (`/probe/print`) and a response header as large as asked.

#[path = "../../misbehave.rs"]
mod misbehave;

use micro_api_sdk::http::{Handler, HttpError, Request, Response};
use micro_api_sdk::{rpc, trace};

/// What a reused instance keeps between requests: its globals.
static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

struct ProbeHttp;

impl Handler for ProbeHttp {
    fn handle(request: Request) -> Result<Response, HttpError> {
        // Owned, so that the echo arm can take the body out of the request.
        let path = request.path().to_owned();
        match (request.method(), path.as_str()) {
            ("GET", "/probe/hello") => Ok(Response::text(200, "hello from probe-http")),
            ("GET", "/probe/counter") => {
                let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                Ok(Response::text(200, count.to_string()))
            }
            ("POST", path) if path.starts_with(CALL) => call(&path[CALL.len()..], request.body()),
            ("POST", path) if path.starts_with(TRACED_CALL) => {
                // The call inside two nested spans of the plugin's own.
                let outer = trace::enter_span("outer");
                let inner = trace::enter_span("inner");
                trace::set_attribute(inner, "probe.step", "call");
                let answer = call(&path[TRACED_CALL.len()..], request.body());
                trace::exit_span(outer);
                answer
            }
            ("GET", "/probe/print") => Ok(print_in_pieces()),
            // A response header of as many bytes as the body says.
            ("POST", "/probe/big-header") => {
                let bytes: usize = String::from_utf8_lossy(request.body()).parse().unwrap_or(0);
                Ok(Response::text(200, "big").with_header("x-big", "a".repeat(bytes)))
            }
            ("GET", "/probe/trap") => panic!("probe-http panicked on purpose"),
            ("GET", "/probe/spin") => misbehave::spin(),
            ("GET", "/probe/echo-headers") => Ok(Response::json(200, &headers(&request))),
            ("POST", "/probe/fetch") => fetch(request.body()),
            ("POST", "/probe/echo") => {
                let content_type = request
                    .header("content-type")
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                Ok(Response::bytes(200, &content_type, request.into_body()))
            }
            _ => Err(HttpError::not_found("no such route")),
        }
    }
}

micro_api_sdk::export_http!(ProbeHttp);

const CALL: &str = "/probe/call/";
const TRACED_CALL: &str = "/probe/traced-call/";

/// `{service}/{method}` with the body as payload: the callee's JSON, or its error as the
/// SDK maps it (503 `circuit_open`...).
fn call(target: &str, payload: &[u8]) -> Result<Response, HttpError> {
    let Some((service, method)) = target.split_once('/') else {
        return Err(HttpError::not_found("use /probe/call/{service}/{method}"));
    };
    let answer = rpc::call(service, method, payload)?;
    Ok(Response::bytes(200, "application/json", answer))
}

/// Writes `start a print 1234`, an empty line and a last line without its newline, each
/// piece through a fresh stdout handle, as interpreters' runtimes do.
fn print_in_pieces() -> Response {
    for piece in [
        "start a print ",
        "1",
        "2",
        "3",
        "4\n",
        "\n",
        "no newline at the end",
    ] {
        let stdout = wasip2::cli::stdout::get_stdout();
        let _ = stdout.blocking_write_and_flush(piece.as_bytes());
    }
    Response::text(200, "printed")
}

/// The request headers as a JSON object; repeated headers are joined with `, `.
fn headers(request: &Request) -> serde_json::Map<String, serde_json::Value> {
    let mut joined = serde_json::Map::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value);
        match joined.get_mut(name) {
            Some(serde_json::Value::String(previous)) => *previous = format!("{previous}, {value}"),
            _ => {
                joined.insert(name.clone(), value.into());
            }
        }
    }
    joined
}

/// Fetches the URL in the body: 200 `{status, body}` with the upstream's answer, or 502
/// with the `wasi:http` error code, so tests can tell a denial from a dead upstream.
fn fetch(url: &[u8]) -> Result<Response, HttpError> {
    let url = String::from_utf8_lossy(url);
    match micro_api_sdk::http::fetch("GET", &url, &[]) {
        Ok(answer) => Ok(Response::json(
            200,
            &serde_json::json!({
                "status": answer.status,
                "body": String::from_utf8_lossy(&answer.body),
            }),
        )),
        Err(code) => Err(HttpError::new(502, "upstream", format!("{code:?}"))),
    }
}
