//! A component that reads its config the standard way, `wasi:config/store`, as components
//! written for wasmtime or wasmCloud do: `GET /config/<key>` answers the value (404 when
//! unset), `GET /config` every pair as `key=value` lines, and a store error is a 500 with
//! its message.

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wit_bindgen::generate!({
    world: "wasi:config/imports",
    path: "../../wit",
    generate_all,
});

use wasi::config::store;

struct ConfigReader;

impl wasip2::exports::http::incoming_handler::Guest for ConfigReader {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (status, body) = match path.strip_prefix("/config") {
            Some("") => match store::get_all() {
                Ok(pairs) => {
                    let mut lines: Vec<String> =
                        pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    lines.sort();
                    (200, lines.join("\n"))
                }
                Err(e) => (500, format!("{e:?}")),
            },
            Some(key) => match store::get(key.trim_start_matches('/')) {
                Ok(Some(value)) => (200, value),
                Ok(None) => (404, "unset".to_string()),
                Err(e) => (500, format!("{e:?}")),
            },
            None => (404, "no such route".to_string()),
        };
        answer(response_out, status, body.as_bytes());
    }
}

fn answer(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_owned(), b"text/plain".to_vec())])
        .expect("valid headers");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("a valid status");
    let outgoing = response.body().expect("the body of a new response");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("the stream of a new body");
    for chunk in body.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .expect("write the body");
    }
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish the body");
}

wasip2::http::proxy::export!(ConfigReader);
