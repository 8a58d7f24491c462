//! A test-only HTTP handler that returns without setting its response and without
//! trapping, so the tests can check the host says so (a log line, a counter) instead of
//! failing the request in silence.

use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct NoAnswer;

impl wasip2::exports::http::incoming_handler::Guest for NoAnswer {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        drop(response_out);
    }
}

wasip2::http::proxy::export!(NoAnswer);
