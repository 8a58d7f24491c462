//! The service side: decode a method's JSON payload, run it, encode its answer.
//!
//! ```no_run
//! use micro_api_sdk::{service, Error};
//!
//! struct Greeter;
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
//! #[derive(serde::Deserialize)]
//! struct GreetRequest { name: String }
//!
//! fn greet(request: GreetRequest) -> Result<String, Error> {
//!     Ok(format!("Hello, {}!", request.name))
//! }
//!
//! micro_api_sdk::export_service!(Greeter);
//! ```

pub use crate::__service::exports::micro_api::host::handler::Guest;

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{self, Error};

/// Decodes `payload` as `Req`, runs `method` and encodes its answer: the usual body of
/// one arm of [`Guest::handle`]. A payload that is not a valid `Req` is `invalid`.
///
/// ```
/// # use micro_api_sdk::service;
/// #[derive(serde::Deserialize)]
/// struct GreetRequest { name: String }
///
/// let answer = service::json(br#"{"name":"micro"}"#, |req: GreetRequest| {
///     Ok(format!("Hello, {}!", req.name))
/// });
/// assert_eq!(answer.unwrap(), br#""Hello, micro!""#);
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
/// ```
/// # use micro_api_sdk::{Error, service};
/// #[derive(serde::Deserialize)]
/// struct GreetRequest { name: String }
///
/// let request: GreetRequest = service::decode(br#"{"name":"micro"}"#).unwrap();
/// assert_eq!(request.name, "micro");
/// assert!(matches!(service::decode::<GreetRequest>(b"{}"), Err(Error::Invalid(_))));
/// ```
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(payload).map_err(|e| error::invalid(format!("bad payload: {e}")))
}

/// Encodes an answer as JSON.
///
/// ```
/// # use micro_api_sdk::service;
/// let payload = service::encode(&serde_json::json!({"message": "hello"})).unwrap();
/// assert_eq!(payload, br#"{"message":"hello"}"#);
/// ```
pub fn encode<T: Serialize + ?Sized>(answer: &T) -> Result<Vec<u8>, Error> {
    // Only maps with non-string keys fail to encode: a bug of the service.
    serde_json::to_vec(answer)
        .map_err(|e| error::unavailable(format!("cannot encode the answer: {e}")))
}

/// The error for a method this service does not have.
///
/// ```
/// # use micro_api_sdk::{Error, service};
/// assert!(matches!(service::unknown_method("Nope"), Error::Invalid(m) if m.contains("Nope")));
/// ```
pub fn unknown_method(method: &str) -> Error {
    error::invalid(format!("unknown method `{method}`"))
}
