//! An HTTP plugin for micro-api, scaffolded by `micro-api new --kind http`.
//!
//! The host sends it the requests of its `[[route]]` and hands it only what its
//! `[plugin.<name>]` section grants: here the config value `greeting`. Every request runs
//! in a fresh instance, so nothing is kept between requests.
//!
//! `micro-api build` deploys it; then `curl http://127.0.0.1:8080/<name>/world` answers
//! `{"message":"Hello, world!"}`.

use micro_api_sdk::config;
use micro_api_sdk::http::{Handler, HttpError, Request, Response};
use serde::Serialize;

struct Plugin;

impl Handler for Plugin {
    fn handle(request: Request) -> Result<Response, HttpError> {
        // The route may allow other methods too: say which one this code serves (405).
        request.require_method("GET")?;
        // Routed as `/<name>/{who}`: the host hands over the segment it matched, and
        // `param` percent-decodes it (`/<name>/Jos%C3%A9` greets José).
        let who = request
            .param("who")
            .ok_or_else(|| HttpError::bad_request("say who to greet: /<name>/{who}"))?;
        // A key missing from `[plugin.<name>.config]` is `None`; a host failure is an
        // error, which `?` turns into its HTTP answer (see `micro_api_sdk::error`).
        let greeting = config::get("greeting")?.unwrap_or_else(|| "Hello".to_owned());
        Ok(Response::json(
            200,
            &Greeting {
                message: format!("{greeting}, {who}!"),
            },
        ))
    }
}

/// The answer, as JSON.
#[derive(Serialize)]
struct Greeting {
    message: String,
}

micro_api_sdk::export_http!(Plugin);
