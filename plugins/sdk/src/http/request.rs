//! [`Request`]: a whole HTTP request as the host hands it over, with accessors for what the
//! host adds to it (verified claims, route parameters, the client's address).

use std::io::Read as _;
use std::net::IpAddr;

use serde::de::DeserializeOwned;
use wasip2::http::types::{IncomingRequest, Method};

pub use crate::contracts::form::Form;
use crate::contracts::{form, headers};
use crate::error::HttpError;

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
        std::str::from_utf8(self.header_bytes(name)?).ok()
    }

    /// The first value of the header `name` (case-insensitive), as bytes.
    fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
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
        serde_json::from_str(self.header(headers::CLAIMS_HEADER)?).ok()
    }

    /// The route parameter `name`, percent-decoded: for `[[route]] path = "/hello/{name}"`
    /// and `GET /hello/Jos%C3%A9`, `param("name")` is `José`. `None` when the route has no
    /// such parameter. The host sets it from the path it matched and removes any copy a
    /// client sends, so it can be trusted (see [`contracts::headers`] for how it travels).
    ///
    /// A `{*rest}` parameter is the rest of the path (`a/b` for `/files/a/b` routed as
    /// `/files/{*rest}`); split [`param_raw`](Self::param_raw) into segments before
    /// decoding them, or an encoded `%2F` passes for a `/`.
    ///
    /// ```no_run
    /// # use micro_api_sdk::http::{HttpError, Request};
    /// # fn f(request: Request) -> Result<(), HttpError> {
    /// let name = request
    ///     .param("name")
    ///     .ok_or_else(|| HttpError::not_found("use /hello/{name}"))?;
    /// # Ok(()) }
    /// ```
    ///
    /// [`contracts::headers`]: crate::contracts::headers
    pub fn param(&self, name: &str) -> Option<String> {
        let raw = self.header_bytes(&headers::param_header(name))?;
        Some(headers::decode_param(raw))
    }

    /// The route parameter `name` as it is in the path, still percent-encoded; `None` when
    /// the route has no such parameter (or its raw value is not UTF-8).
    ///
    /// ```no_run
    /// # fn f(request: micro_api_sdk::http::Request) {
    /// // Routed as `/files/{*rest}`: each segment of the rest, decoded alone.
    /// let segments: Vec<String> = request
    ///     .param_raw("rest")
    ///     .unwrap_or_default()
    ///     .split('/')
    ///     .map(|s| micro_api_sdk::contracts::headers::decode_param(s.as_bytes()))
    ///     .collect();
    /// # }
    /// ```
    pub fn param_raw(&self, name: &str) -> Option<&str> {
        self.header(&headers::param_header(name))
    }

    /// The client's IP address: the TCP peer the host accepted the request from, set by
    /// the host (a client's own copy of the header is removed).
    ///
    /// ```no_run
    /// # fn f(request: micro_api_sdk::http::Request) {
    /// let from = request.client_addr().map(|ip| ip.to_string()).unwrap_or_default();
    /// # }
    /// ```
    pub fn client_addr(&self) -> Option<IpAddr> {
        self.header(headers::CLIENT_ADDR_HEADER)?.parse().ok()
    }

    /// The token of the request's `Authorization: Bearer <token>` header, read by the rule
    /// the host checks protected routes with ([`contracts::headers::bearer_token`]).
    /// `None` without one, with another scheme, or with two `Authorization` headers (the
    /// host refuses those too: which one is read must not be a guess).
    ///
    /// ```no_run
    /// # use micro_api_sdk::http::{HttpError, Request};
    /// # fn f(request: Request) -> Result<(), HttpError> {
    /// let token = request
    ///     .bearer_token()
    ///     .ok_or_else(|| HttpError::new(401, "unauthorized", "a token is required"))?;
    /// # Ok(()) }
    /// ```
    ///
    /// [`contracts::headers::bearer_token`]: crate::contracts::headers::bearer_token
    pub fn bearer_token(&self) -> Option<&str> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"));
        let (_, value) = values.next()?;
        if values.next().is_some() {
            return None;
        }
        headers::bearer_token(std::str::from_utf8(value).ok()?)
    }

    /// Whether the media type of the `content-type` header is `media_type`, parameters
    /// such as `; charset=utf-8` aside.
    ///
    /// ```no_run
    /// # fn f(request: micro_api_sdk::http::Request) {
    /// let json = request.has_content_type("application/json");
    /// # }
    /// ```
    pub fn has_content_type(&self, media_type: &str) -> bool {
        self.header("content-type")
            .is_some_and(|value| form::has_media_type(value, media_type))
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
        // The host's login limiter reads a login with the same two calls.
        if !self.header("content-type").is_some_and(form::is_form) {
            return Err(HttpError::unsupported_media_type(form::FORM_MEDIA_TYPE));
        }
        Ok(Form::parse(&self.body))
    }
}

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
        let refused = |field| HttpError::from(form.required(field).unwrap_err());
        assert_eq!(refused("e").status, 400);
        assert!(refused("missing").message.contains("`missing`"));
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
    fn reads_what_the_host_adds() {
        let mut r = request("", "");
        assert_eq!((r.param("name"), r.client_addr()), (None, None));
        r.headers.extend([
            (
                "x-micro-api-param-name".into(),
                b"Jos%C3%A9%20%2F+".to_vec(),
            ),
            ("x-micro-api-param-rest".into(), b"a%2Fb/c".to_vec()),
            ("x-micro-api-client-addr".into(), b"::1".to_vec()),
        ]);
        assert_eq!(r.param("name").as_deref(), Some("José /+"));
        assert_eq!(
            r.param("Name").as_deref(),
            Some("José /+"),
            "header names ignore case"
        );
        assert_eq!(r.param_raw("rest"), Some("a%2Fb/c"));
        assert_eq!(r.param("rest").as_deref(), Some("a/b/c"));
        assert_eq!(r.client_addr(), Some("::1".parse().unwrap()));
    }

    #[test]
    fn reads_one_bearer_token_only() {
        let mut r = request("", "");
        assert_eq!(r.bearer_token(), None);
        r.headers
            .push(("Authorization".into(), b"bearer  abc ".to_vec()));
        assert_eq!(r.bearer_token(), Some("abc"));
        r.headers
            .push(("authorization".into(), b"Bearer other".to_vec()));
        assert_eq!(r.bearer_token(), None, "two Authorization headers");
        r.headers.truncate(1);
        r.headers
            .push(("authorization".into(), b"Basic abc".to_vec()));
        assert_eq!(r.bearer_token(), None);
    }
}
