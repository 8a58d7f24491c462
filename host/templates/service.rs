//! A service plugin for micro-api, scaffolded by `micro-api new --kind service`.
//!
//! Other plugins call it by name through `rpc` (granted with `rpc = ["<name>"]` in their
//! own `[plugin.<caller>]` section), one method at a time, JSON in and out. The host hands
//! it only what its `[plugin.<name>]` section grants: here the config value `greeting`.
//!
//! A caller written with the SDK: `micro_api_sdk::rpc::call_json("<name>", "Greet",
//! &json!({"name": "world"}))` answers `{"message": "Hello, world!"}`.

use micro_api_sdk::{Error, config, error, service};
use serde::{Deserialize, Serialize};

struct Plugin;

impl service::Guest for Plugin {
    fn handle(method: String, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
        match method.as_str() {
            // `service::json` decodes the payload (bad JSON is `invalid`), runs the method
            // and encodes its answer.
            "Greet" => service::json(&payload, greet),
            other => Err(service::unknown_method(other)),
        }
    }
}

micro_api_sdk::export_service!(Plugin);

#[derive(Deserialize)]
struct GreetRequest {
    name: String,
}

#[derive(Serialize)]
struct Greeting {
    message: String,
}

fn greet(request: GreetRequest) -> Result<Greeting, Error> {
    if request.name.is_empty() {
        // An application error reaches the caller as it is, and never trips its breaker.
        return Err(error::app("bad_request", "`name` is empty"));
    }
    let greeting = config::get("greeting")?.unwrap_or_else(|| "Hello".to_owned());
    Ok(Greeting {
        message: format!("{greeting}, {}!", request.name),
    })
}
