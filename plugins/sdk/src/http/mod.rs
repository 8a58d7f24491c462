//! HTTP plugins: a whole request in, a whole response out, on top of `wasi:http`.
//!
//! Implement [`Handler`] and export it with [`export_http!`](crate::export_http):
//!
//! ```no_run
//! use micro_api_sdk::http::{Handler, HttpError, Request, Response};
//!
//! struct Hello;
//!
//! impl Handler for Hello {
//!     fn handle(req: Request) -> Result<Response, HttpError> {
//!         match (req.method(), req.path()) {
//!             ("GET", "/hello") => Ok(Response::text(200, "hello")),
//!             _ => Err(HttpError::not_found("no such route")),
//!         }
//!     }
//! }
//!
//! micro_api_sdk::export_http!(Hello);
//! ```

mod request;

use std::io::{Read as _, Write as _};

use serde::Serialize;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

pub use crate::error::HttpError;
use crate::log;
pub use request::{Form, Request};

/// An HTTP handler, exported with [`export_http!`](crate::export_http).
pub trait Handler {
    /// The largest request body accepted; a larger one is answered 413.
    const MAX_BODY: usize = 1024 * 1024;

    /// Answers one request. An error is sent as its JSON body (see [`HttpError`]).
    fn handle(request: Request) -> Result<Response, HttpError>;
}

/// Exports a type implementing [`http::Handler`](Handler) as this component's
/// `wasi:http/incoming-handler`.
#[macro_export]
macro_rules! export_http {
    ($ty:ident) => {
        impl $crate::wasip2::exports::http::incoming_handler::Guest for $ty {
            fn handle(
                request: $crate::wasip2::http::types::IncomingRequest,
                response_out: $crate::wasip2::http::types::ResponseOutparam,
            ) {
                $crate::http::serve::<$ty>(request, response_out)
            }
        }

        $crate::wasip2::http::proxy::export!($ty);
    };
}

/// Reads `incoming`, runs `H` and sends its answer: what [`export_http!`](crate::export_http)
/// does for each request.
pub fn serve<H: Handler>(incoming: IncomingRequest, out: ResponseOutparam) {
    let response = Request::from_incoming(incoming, H::MAX_BODY)
        .and_then(H::handle)
        .unwrap_or_else(|error| {
            if let Some(cause) = &error.cause {
                let level = if error.status >= 500 {
                    log::Level::Error
                } else {
                    log::Level::Warn
                };
                log::log(
                    level,
                    &format!("{} {}", error.status, error.code),
                    &[("cause".into(), cause.clone())],
                );
            }
            Response::from(error)
        });
    response.send(out);
}

/// A whole HTTP response.
#[derive(Clone, Debug)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The headers, in order; `content-length` is added when sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `body` of type `content_type`.
    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("content-type".to_owned(), content_type.as_bytes().to_vec())],
            body,
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::bytes(
            status,
            "text/plain; charset=utf-8",
            body.into().into_bytes(),
        )
    }

    /// An `application/json` response of `value`.
    ///
    /// ```no_run
    /// # use micro_api_sdk::http::Response;
    /// let response = Response::json(200, &serde_json::json!({"message": "hello"}));
    /// ```
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::bytes(status, "application/json", body),
            // Only maps with non-string keys fail to encode: a bug of the plugin.
            Err(e) => HttpError::internal(format!("cannot encode the response: {e}")).into(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends this response, body included, through `out`.
    pub fn send(mut self, out: ResponseOutparam) {
        self.headers.push((
            "content-length".to_owned(),
            self.body.len().to_string().into_bytes(),
        ));
        let response = match Fields::from_list(&self.headers) {
            Ok(headers) => OutgoingResponse::new(headers),
            Err(e) => {
                let message = format!("invalid response header: {e:?}");
                log::log(log::Level::Error, &message, &[]);
                return ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some(message))));
            }
        };
        if response.set_status_code(self.status).is_err() {
            let message = format!("invalid response status {}", self.status);
            log::log(log::Level::Error, &message, &[]);
            return ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some(message))));
        }
        let body = response
            .body()
            .expect("the body of a new response is available");
        ResponseOutparam::set(out, Ok(response));
        // Past this point the status is sent: a failed write means the client went away,
        // and there is no one left to tell.
        let Ok(mut stream) = body.write() else { return };
        if stream.write_all(&self.body).is_err() || stream.blocking_flush().is_err() {
            return;
        }
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

impl From<HttpError> for Response {
    fn from(error: HttpError) -> Self {
        let mut response = Self::json(error.status, &error.body());
        response.headers.extend(
            error
                .headers
                .into_iter()
                .map(|(name, value)| (name, value.into_bytes())),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_errors() {
        let response = Response::from(HttpError::method_not_allowed("POST"));
        assert_eq!(response.status, 405);
        assert!(
            response
                .headers
                .contains(&("allow".into(), b"POST".to_vec()))
        );
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed");
    }
}

/// An answer from [`fetch`].
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The answer's HTTP status.
    pub status: u16,
    /// The answer's whole body.
    pub body: Vec<u8>,
}

/// Sends an outbound request through `wasi:http/outgoing-handler`. The host allows only
/// the destinations `[plugin.<name>] http` grants; anything else fails with
/// `ErrorCode::HttpRequestDenied`.
///
/// ```no_run
/// # fn f() -> Result<(), micro_api_sdk::wasip2::http::types::ErrorCode> {
/// let answer = micro_api_sdk::http::fetch("GET", "http://127.0.0.1:9000/ping", &[])?;
/// assert_eq!(answer.status, 200);
/// # Ok(()) }
/// ```
pub fn fetch(method: &str, url: &str, body: &[u8]) -> Result<Fetched, ErrorCode> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{OutgoingRequest, Scheme};

    let invalid = || ErrorCode::HttpRequestUriInvalid;
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_owned()),
    };
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return Err(invalid()),
    };
    request.set_method(&method).map_err(|()| invalid())?;
    request.set_scheme(Some(&scheme)).map_err(|()| invalid())?;
    request
        .set_authority(Some(authority))
        .map_err(|()| invalid())?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| invalid())?;
    let outgoing = request.body().map_err(|()| invalid())?;
    {
        let mut stream = outgoing.write().map_err(|()| invalid())?;
        stream
            .write_all(body)
            .map_err(|_| ErrorCode::HttpRequestBodySize(None))?;
    }
    let pending = outgoing_handler::handle(request, None)?;
    OutgoingBody::finish(outgoing, None)?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or(ErrorCode::HttpResponseIncomplete)?
        .map_err(|()| ErrorCode::HttpResponseIncomplete)??;
    let status = response.status();
    let incoming = response
        .consume()
        .map_err(|()| ErrorCode::HttpResponseIncomplete)?;
    let mut bytes = Vec::new();
    {
        let mut stream = incoming
            .stream()
            .map_err(|()| ErrorCode::HttpResponseIncomplete)?;
        stream
            .read_to_end(&mut bytes)
            .map_err(|_| ErrorCode::HttpResponseIncomplete)?;
    }
    Ok(Fetched {
        status,
        body: bytes,
    })
}
