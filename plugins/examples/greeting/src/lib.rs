//! Example: a service that calls another and falls back when it cannot. `Greet {name}`
//! welcomes a known user back by asking the `user` service; when that service cannot answer
//! (no endpoint, a timeout, its breaker open or full), it still greets, marked `degraded`,
//! instead of failing its own caller: the seed's hystrix fallback, written in the plugin.
//!
//! ```text
//! Greet {"name":"micro"}  -> {"message":"Welcome back, micro!","user_id":10001,"degraded":false}
//! Greet {"name":"nobody"} -> {"message":"Hello, nobody!","user_id":null,"degraded":false}
//! (user service down)     -> {"message":"Hello, micro!","user_id":null,"degraded":true}
//! ```
//!
//! Its grant: `[plugin.example-greeting] rpc = ["user"]`; a caller needs
//! `rpc = ["example-greeting"]`.

use micro_api_sdk::services::Call as _;
use micro_api_sdk::services::user::GetUserByName;
use micro_api_sdk::{Error, log, service};
use serde::{Deserialize, Serialize};

struct Greeting;

impl service::Guest for Greeting {
    fn handle(method: String, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
        match method.as_str() {
            "Greet" => service::json(&payload, greet),
            other => Err(service::unknown_method(other)),
        }
    }
}

micro_api_sdk::export_service!(Greeting);

#[derive(Deserialize)]
struct GreetRequest {
    name: String,
}

#[derive(Serialize)]
struct Greeted {
    message: String,
    user_id: Option<u64>,
    /// True when the user service could not be asked and this is the fallback answer.
    degraded: bool,
}

fn greet(request: GreetRequest) -> Result<Greeted, Error> {
    let name = request.name;
    let stranger = |degraded| Greeted {
        message: format!("Hello, {name}!"),
        user_id: None,
        degraded,
    };
    match (GetUserByName { name: name.clone() }).call() {
        Ok(user) => Ok(Greeted {
            message: format!("Welcome back, {}!", user.name),
            user_id: Some(user.id),
            degraded: false,
        }),
        // The user service answered: it does not know the name.
        Err(Error::App(_)) => Ok(stranger(false)),
        // The user service could not answer: fall back rather than fail the caller.
        Err(
            e @ (Error::Timeout | Error::CircuitOpen | Error::Rejected | Error::Unavailable(_)),
        ) => {
            log::warn_with(
                "user service unavailable, greeting without it",
                &[("error", &e)],
            );
            Ok(stranger(true))
        }
        // `forbidden` or `invalid`: a bug of this plugin or its config, not an outage.
        Err(e) => Err(e),
    }
}
