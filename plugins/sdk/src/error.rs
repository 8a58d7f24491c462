//! Errors: the WIT [`Error`], its constructors, and how an HTTP front answers it.
//!
//! Every client-facing error body has the same shape:
//!
//! ```json
//! {"error": {"code": "not_found", "message": "user not found"}}
//! ```
//!
//! [`HttpError::from`] maps an [`Error`] coming back from an rpc or a host call:
//!
//! | [`Error`]              | status | code           | notes                         |
//! |------------------------|--------|----------------|-------------------------------|
//! | `timeout`              | 504    | `timeout`      |                               |
//! | `circuit-open`         | 503    | `circuit_open` | `Retry-After: 5`              |
//! | `rejected`             | 503    | `rejected`     | `Retry-After: 1`              |
//! | `unavailable`          | 503    | `unavailable`  |                               |
//! | `forbidden`, `invalid` | 500    | `internal`     | a bug on our side             |
//! | `app(code, message)`   | from `code` (see [`app_status`]) | `code` | `message` as is |
//!
//! Only `app` messages are written by a callee for clients; the text of any other error
//! stays internal: clients get a generic message and the text is logged instead.

pub use crate::host::types::{AppError, Error};

use crate::contracts::form::MissingField;

/// An application error: the callee understood the request and refused it. It reaches
/// the caller unchanged and never trips a breaker.
///
/// ```no_run
/// # use micro_api_sdk::{Error, error};
/// fn find(name: &str) -> Result<u64, Error> {
///     Err(error::app("not_found", format!("no user {name}")))
/// }
/// ```
pub fn app(code: impl Into<String>, message: impl Into<String>) -> Error {
    Error::App(AppError {
        code: code.into(),
        message: message.into(),
    })
}

/// The request itself is malformed (bad JSON, unknown method, bad parameter).
pub fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}

/// The service cannot serve the request (a dependency failed, a bad answer).
pub fn unavailable(message: impl Into<String>) -> Error {
    Error::Unavailable(message.into())
}

/// The caller is not allowed to do this.
pub fn forbidden(message: impl Into<String>) -> Error {
    Error::Forbidden(message.into())
}

/// The HTTP status of an application error `code`.
pub fn app_status(code: &str) -> u16 {
    match code {
        "bad_request" => 400,
        "unauthorized" => 401,
        "not_found" => 404,
        // A host's login limiter refusing a password check another node asked for.
        "too_many_requests" => 429,
        _ => 500,
    }
}

/// An error as an HTTP front answers it: a status, the JSON body
/// `{"error": {"code", "message"}}` and any extra headers.
#[derive(Clone, Debug)]
pub struct HttpError {
    /// The HTTP status.
    pub status: u16,
    /// The stable, machine-readable code of the body (`not_found`).
    pub code: String,
    /// Safe to show to clients.
    pub message: String,
    /// Extra response headers (`retry-after`, `allow`...).
    pub headers: Vec<(String, String)>,
    /// What really happened, for the logs only: never sent to the client.
    pub cause: Option<String>,
}

impl HttpError {
    /// An error answered with `status` and the body `{"error": {"code", "message"}}`.
    ///
    /// ```
    /// # use micro_api_sdk::http::HttpError;
    /// let e = HttpError::new(409, "conflict", "the name is taken");
    /// assert_eq!(e.body()["error"]["code"], "conflict");
    /// ```
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            headers: Vec::new(),
            cause: None,
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    /// 405 `method_not_allowed`, with the `Allow` header listing the accepted methods.
    pub fn method_not_allowed(allow: &str) -> Self {
        Self::new(
            405,
            "method_not_allowed",
            format!("method not allowed, use {allow}"),
        )
        .with_header("allow", allow)
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// 415 `unsupported_media_type`.
    pub fn unsupported_media_type(expected: &str) -> Self {
        Self::new(
            415,
            "unsupported_media_type",
            format!("the content type must be {expected}"),
        )
    }

    /// 500 `internal`: `cause` is logged, the client only reads a generic message.
    pub fn internal(cause: impl Into<String>) -> Self {
        Self::new(500, "internal", "internal error").with_cause(cause)
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Records the internal cause, logged but never sent.
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// The JSON body: `{"error": {"code": ..., "message": ...}}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl From<Error> for HttpError {
    fn from(error: Error) -> Self {
        let cause = error.to_string();
        let mapped = match error {
            Error::App(AppError { code, message }) => {
                return Self::new(app_status(&code), code, message);
            }
            Error::Timeout => Self::new(504, "timeout", "the request timed out"),
            Error::CircuitOpen => Self::new(
                503,
                "circuit_open",
                "the service is unavailable, retry later",
            )
            .with_header("retry-after", "5"),
            Error::Rejected => Self::new(503, "rejected", "the service is overloaded, retry later")
                .with_header("retry-after", "1"),
            Error::Unavailable(_) => Self::new(503, "unavailable", "the service is unavailable"),
            Error::Forbidden(_) | Error::Invalid(_) => Self::new(500, "internal", "internal error"),
        };
        mapped.with_cause(cause)
    }
}

/// A missing or empty form field is 400 `bad_request` naming the field, so
/// `form.required("userName")?` answers it.
///
/// ```
/// use micro_api_sdk::{contracts::form::Form, http::HttpError};
///
/// let missing = Form::parse(b"pwd=1").required("userName").unwrap_err();
/// let answer = HttpError::from(missing);
/// assert_eq!((answer.status, answer.message.as_str()), (400, "the field `userName` is required"));
/// ```
impl From<MissingField> for HttpError {
    fn from(missing: MissingField) -> Self {
        Self::bad_request(missing.to_string())
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)?;
        match &self.cause {
            Some(cause) => write!(f, " ({cause})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for HttpError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(error: Error) -> (u16, String, Vec<(String, String)>) {
        let e = HttpError::from(error);
        (e.status, e.code, e.headers)
    }

    #[test]
    fn maps_errors_to_http() {
        let retry = |s: &str| vec![("retry-after".to_owned(), s.to_owned())];
        assert_eq!(mapped(Error::Timeout), (504, "timeout".into(), vec![]));
        assert_eq!(
            mapped(Error::CircuitOpen),
            (503, "circuit_open".into(), retry("5"))
        );
        assert_eq!(
            mapped(Error::Rejected),
            (503, "rejected".into(), retry("1"))
        );
        assert_eq!(
            mapped(unavailable("x")),
            (503, "unavailable".into(), vec![])
        );
        assert_eq!(mapped(app("bad_request", "m")).0, 400);
        assert_eq!(mapped(app("unauthorized", "m")).0, 401);
        assert_eq!(mapped(app("not_found", "m")).0, 404);
        assert_eq!(mapped(app("too_many_requests", "m")).0, 429);
        assert_eq!(mapped(app("nope", "m")), (500, "nope".into(), vec![]));
    }

    #[test]
    fn internal_errors_do_not_leak() {
        for error in [forbidden("secret db"), invalid("secret sql")] {
            let e = HttpError::from(error);
            assert_eq!((e.status, e.code.as_str()), (500, "internal"));
            assert!(!e.body().to_string().contains("secret"));
            assert!(e.cause.unwrap().contains("secret"));
        }
    }

    #[test]
    fn app_message_is_kept() {
        let body = HttpError::from(app("unauthorized", "wrong password")).body();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "unauthorized", "message": "wrong password"}})
        );
    }
}
