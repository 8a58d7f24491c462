//! Example: the HTTP plugin the SDK's README builds step by step. `GET /hello/{name}`
//! greets `name` with the greeting its config grants, and says who that is when the `user`
//! service knows the name:
//!
//! ```text
//! GET /hello/micro        -> 200 {"message":"Howdy, micro!","user":{"id":10001,"name":"micro"}}
//! GET /hello/nobody       -> 200 {"message":"Howdy, nobody!","user":null}
//! GET /hello/Jos%C3%A9    -> 200 {"message":"Howdy, José!","user":null}
//! ```
//!
//! Its config (as `host/tests/examples.rs` loads it):
//!
//! ```toml
//! [[route]]
//! path = "/hello/{name}"
//! methods = ["GET"]
//! plugin = "example-hello"
//!
//! [plugin.example-hello]
//! rpc = ["user"]
//! config = { greeting = "Howdy" }
//! ```

use micro_api_sdk::http::{Handler, HttpError, Request, Response};
use micro_api_sdk::services::Call as _;
use micro_api_sdk::services::user::{GetUserByName, User};
use micro_api_sdk::{Error, config};
use serde::Serialize;

struct Hello;

impl Handler for Hello {
    fn handle(request: Request) -> Result<Response, HttpError> {
        request.require_method("GET")?;
        // The host matched `/hello/{name}` and hands over the segment, percent-decoded here.
        let name = request
            .param("name")
            .ok_or_else(|| HttpError::not_found("use /hello/{name}"))?;
        let greeting = config::get("greeting")?.unwrap_or_else(|| "Hello".to_owned());
        // The user service refuses an unknown name with `app(not_found)`: not a failure here.
        // Anything else (timeout, open breaker) becomes its HTTP answer through `?`.
        let user = match (GetUserByName { name: name.clone() }).call() {
            Ok(user) => Some(user),
            Err(Error::App(refusal)) if refusal.code == "not_found" => None,
            Err(other) => return Err(other.into()),
        };
        Ok(Response::json(
            200,
            &Greeting {
                message: format!("{greeting}, {name}!"),
                user,
            },
        ))
    }
}

#[derive(Serialize)]
struct Greeting {
    message: String,
    user: Option<User>,
}

micro_api_sdk::export_http!(Hello);
