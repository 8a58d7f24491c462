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

use std::io::{Read as _, Write as _};

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

pub use crate::error::HttpError;
use crate::log;

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

/// A whole HTTP request.
#[derive(Clone, Debug)]
pub struct Request {
    method: String,
    path_with_query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Request {
    /// Reads `incoming` with its whole body; a body over `max_body` bytes is 413.
    pub fn from_incoming(incoming: IncomingRequest, max_body: usize) -> Result<Self, HttpError> {
        let method = match incoming.method() {
            Method::Get => "GET".to_owned(),
            Method::Head => "HEAD".to_owned(),
            Method::Post => "POST".to_owned(),
            Method::Put => "PUT".to_owned(),
            Method::Delete => "DELETE".to_owned(),
            Method::Connect => "CONNECT".to_owned(),
            Method::Options => "OPTIONS".to_owned(),
            Method::Trace => "TRACE".to_owned(),
            Method::Patch => "PATCH".to_owned(),
            Method::Other(other) => other,
        };
        let path_with_query = incoming.path_with_query().unwrap_or_else(|| "/".to_owned());
        let headers = incoming.headers().entries();
        let body = read_body(incoming, max_body)?;
        Ok(Self {
            method,
            path_with_query,
            headers,
            body,
        })
    }

    /// The method, upper case: `GET`, `POST`...
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Fails with 405 unless the method is `allowed`.
    pub fn require_method(&self, allowed: &str) -> Result<(), HttpError> {
        if self.method == allowed {
            Ok(())
        } else {
            Err(HttpError::method_not_allowed(allowed))
        }
    }

    /// The path with its query, as received: `/a/b?x=1`.
    pub fn path_with_query(&self) -> &str {
        &self.path_with_query
    }

    /// The path without its query: `/a/b`.
    pub fn path(&self) -> &str {
        self.path_with_query
            .split_once('?')
            .map_or(&self.path_with_query, |(path, _)| path)
    }

    /// The query string without its `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.path_with_query.split_once('?').map(|(_, query)| query)
    }

    /// Every header, in order; names are case-insensitive.
    pub fn headers(&self) -> &[(String, Vec<u8>)] {
        &self.headers
    }

    /// The first value of the header `name` (case-insensitive), if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// The verified claims of the caller's access token, on a route with
    /// `auth = "required"`: the host checked the token (signature, expiry, issuer, audience)
    /// before this plugin ran. `None` on an open route, or when they are not a `T`. The
    /// host removes any copy of the header a client sends, so it can be trusted.
    ///
    /// ```no_run
    /// # fn f(request: micro_api_sdk::http::Request) {
    /// #[derive(serde::Deserialize)]
    /// struct Claims { name: String }
    /// let who: Option<String> = request.claims::<Claims>().map(|c| c.name);
    /// # }
    /// ```
    pub fn claims<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_str(self.header(CLAIMS_HEADER)?).ok()
    }

    /// Whether the media type of the `content-type` header is `media_type`, parameters
    /// such as `; charset=utf-8` aside.
    pub fn has_content_type(&self, media_type: &str) -> bool {
        self.header("content-type").is_some_and(|value| {
            let essence = value.split_once(';').map_or(value, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case(media_type)
        })
    }

    /// The whole body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The whole body, taken out of the request (no copy).
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as an `application/x-www-form-urlencoded` form; another content type is 415.
    ///
    /// ```no_run
    /// # use micro_api_sdk::http::{HttpError, Request};
    /// # fn f(request: Request) -> Result<(), HttpError> {
    /// let form = request.form()?;
    /// let name = form.required("userName")?; // missing or empty: 400 naming the field
    /// # Ok(()) }
    /// ```
    pub fn form(&self) -> Result<Form, HttpError> {
        const FORM: &str = "application/x-www-form-urlencoded";
        if !self.has_content_type(FORM) {
            return Err(HttpError::unsupported_media_type(FORM));
        }
        Ok(Form::parse(&self.body))
    }
}

/// The request header in which the host hands a protected route's plugin the verified
/// claims of the caller's token, as JSON (see [`Request::claims`]).
pub const CLAIMS_HEADER: &str = "x-micro-api-claims";

/// Reads the whole body of `incoming`, failing with 413 past `max_body` bytes.
fn read_body(incoming: IncomingRequest, max_body: usize) -> Result<Vec<u8>, HttpError> {
    let unreadable = |what: &str| {
        HttpError::bad_request("cannot read the request body").with_cause(what.to_owned())
    };
    let body = incoming
        .consume()
        .map_err(|()| unreadable("body already consumed"))?;
    let stream = body
        .stream()
        .map_err(|()| unreadable("body stream already taken"))?;
    let mut bytes = Vec::new();
    // One byte more than the limit tells a body of exactly `max_body` bytes from a larger one.
    let mut limited = stream.take(max_body as u64 + 1);
    limited
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(&e.to_string()))?;
    if bytes.len() > max_body {
        return Err(HttpError::payload_too_large(max_body));
    }
    // The stream is a child of the body: it must be dropped before the body is finished.
    drop(limited);
    drop(wasip2::http::types::IncomingBody::finish(body));
    Ok(bytes)
}

/// The fields of an `application/x-www-form-urlencoded` body, in order.
#[derive(Clone, Debug, Default)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// Parses a urlencoded body (`a=1&b=x+y`); invalid UTF-8 is replaced, never an error.
    pub fn parse(body: &[u8]) -> Self {
        Self(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of the field `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value of the field `name`; missing or empty is 400 naming the field.
    pub fn required(&self, name: &str) -> Result<&str, HttpError> {
        self.get(name)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| HttpError::bad_request(format!("the field `{name}` is required")))
    }
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

    fn request(content_type: &str, body: &str) -> Request {
        Request {
            method: "POST".into(),
            path_with_query: "/user/login?x=1".into(),
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    #[test]
    fn reads_the_claims_the_host_hands_over() {
        #[derive(serde::Deserialize)]
        struct Claims {
            name: String,
        }
        let mut r = request("", "");
        assert!(r.claims::<Claims>().is_none());
        r.headers.push((
            "X-Micro-Api-Claims".into(),
            br#"{"sub":"1","name":"Jos\u00e9"}"#.to_vec(),
        ));
        assert_eq!(r.claims::<Claims>().unwrap().name, "José");
    }

    #[test]
    fn splits_path_and_query() {
        let r = request("", "");
        assert_eq!((r.path(), r.query()), ("/user/login", Some("x=1")));
    }

    #[test]
    fn reads_forms() {
        let form = request(
            "application/x-www-form-urlencoded; charset=utf-8",
            "userName=micro&pwd=a+b%21&e=",
        )
        .form()
        .unwrap();
        assert_eq!(form.required("userName").unwrap(), "micro");
        assert_eq!(form.required("pwd").unwrap(), "a b!");
        assert_eq!(form.required("e").unwrap_err().status, 400);
        assert!(
            form.required("missing")
                .unwrap_err()
                .message
                .contains("`missing`")
        );
    }

    #[test]
    fn rejects_other_content_types() {
        assert_eq!(
            request("application/json", "{}").form().unwrap_err().status,
            415
        );
        assert_eq!(
            request("application/x-www-form-urlencodedx", "")
                .form()
                .unwrap_err()
                .status,
            415
        );
    }

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
