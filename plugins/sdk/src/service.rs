//! The service side: decode a method's JSON payload, run it, encode its answer.
//!
//! ```ignore
//! use micro_api_sdk::{service, Error};
//!
//! impl service::Guest for Greeter {
//!     fn handle(method: String, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
//!         match method.as_str() {
//!             "Greet" => service::json(&payload, greet),
//!             other => Err(service::unknown_method(other)),
//!         }
//!     }
//! }
//!
//! fn greet(req: GreetRequest) -> Result<Greeting, Error> { ... }
//! ```

pub use crate::__service::exports::micro_api::host::handler::Guest;

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{self, Error};

/// Decodes `payload` as `Req`, runs `method` and encodes its answer: the usual body of
/// one arm of [`Guest::handle`]. A payload that is not a valid `Req` is `invalid`.
///
/// ```ignore
/// "Greet" => service::json(&payload, |req: GreetRequest| Ok(format!("Hello, {}!", req.name))),
/// ```
pub fn json<Req, Resp>(
    payload: &[u8],
    method: impl FnOnce(Req) -> Result<Resp, Error>,
) -> Result<Vec<u8>, Error>
where
    Req: DeserializeOwned,
    Resp: Serialize,
{
    encode(&method(decode(payload)?)?)
}

/// Decodes a JSON payload; bad JSON is `invalid`.
///
/// ```ignore
/// let request: GreetRequest = service::decode(&payload)?;
/// ```
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(payload).map_err(|e| error::invalid(format!("bad payload: {e}")))
}

/// Encodes an answer as JSON.
///
/// ```ignore
/// return service::encode(&serde_json::json!({"message": "hello"}));
/// ```
pub fn encode<T: Serialize + ?Sized>(answer: &T) -> Result<Vec<u8>, Error> {
    // Only maps with non-string keys fail to encode: a bug of the service.
    serde_json::to_vec(answer)
        .map_err(|e| error::unavailable(format!("cannot encode the answer: {e}")))
}

/// The error for a method this service does not have.
///
/// ```ignore
/// other => Err(service::unknown_method(other)),
/// ```
pub fn unknown_method(method: &str) -> Error {
    error::invalid(format!("unknown method `{method}`"))
}
