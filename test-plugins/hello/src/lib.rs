//! The benchmarks' `hello` handler: answers every request with 200 `hello`.
//!
//! Written against the standard `wasi:http` bindings alone (as the `wasip2` crate's
//! `http-proxy` example is), never the micro-api SDK: the same file is served by micro-api,
//! by `wasmtime serve`, and mirrored natively in `bench/`, so the three measure the same
//! work. It also proves that a component written for plain WASI runs on micro-api unchanged.

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The body of every answer (the native baseline sends the same bytes).
const BODY: &[u8] = b"hello";

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[
            ("content-type".to_owned(), b"text/plain".to_vec()),
            (
                "content-length".to_owned(),
                BODY.len().to_string().into_bytes(),
            ),
        ])
        .expect("valid headers");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body of a new response");
        ResponseOutparam::set(response_out, Ok(response));
        let stream = body.write().expect("the stream of a new body");
        // 5 bytes fit in any stream's first write: no need to wait for capacity.
        stream
            .blocking_write_and_flush(BODY)
            .expect("write the body");
        drop(stream);
        OutgoingBody::finish(body, None).expect("finish the body");
    }
}

wasip2::http::proxy::export!(Hello);
