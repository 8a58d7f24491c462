//! An echo that streams: it sets its response (200, chunked) before reading a byte, then
//! writes each piece of the request body back as it arrives, as wasmtime's
//! `p2_api_proxy_streaming` test program does. The streaming-body tests use it to see the
//! first bytes come back before the client has sent the rest. Standard `wasi:http` bindings
//! only, so it is the kind of component a user brings.

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::StreamError;

/// `blocking-write-and-flush` takes at most this much per call (the WASI contract).
const MAX_WRITE: usize = 4096;

struct StreamEcho;

impl wasip2::exports::http::incoming_handler::Guest for StreamEcho {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[(
            "content-type".to_owned(),
            b"application/octet-stream".to_vec(),
        )])
        .expect("valid headers");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body of a new response");
        ResponseOutparam::set(response_out, Ok(response));
        let incoming = request.consume().expect("the request's body");
        let input = incoming.stream().expect("the request body's stream");
        let output = body.write().expect("the stream of a new body");
        loop {
            match input.blocking_read(64 * 1024) {
                Ok(bytes) => {
                    for piece in bytes.chunks(MAX_WRITE) {
                        if output.blocking_write_and_flush(piece).is_err() {
                            return; // the client went away
                        }
                    }
                }
                Err(StreamError::Closed) => break,
                // The host refused the body (too large, too slow): the answer is cut, not
                // finished, so the client cannot take it for a whole echo.
                Err(StreamError::LastOperationFailed(_)) => return,
            }
        }
        drop(output);
        drop(input);
        OutgoingBody::finish(body, None).expect("finish the body");
    }
}

wasip2::http::proxy::export!(StreamEcho);
