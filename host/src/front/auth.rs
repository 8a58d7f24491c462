//! Protected routes (`[[route]] auth = "required"`): the host checks the bearer token before
//! the plugin runs, so no plugin can forget to, and hands the plugin the verified claims.
//!
//! The claims travel in the request header [`CLAIMS_HEADER`] as JSON (ASCII only, so it is
//! a valid header value whatever the claims hold). Any copy a client sent is removed from
//! every request, protected or not, so a plugin that finds the header can trust it.

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::error;
use crate::crypto::{Keys, Purpose};

/// The request header holding the verified claims of a protected route's caller (the SDK's
/// `Request::claims` reads it).
pub use micro_api_contracts::headers::CLAIMS_HEADER;

/// Why a protected route refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unauthorized {
    #[error("no bearer token")]
    Missing,
    #[error("invalid or expired token")]
    Invalid,
}

impl Unauthorized {
    /// 401 `unauthorized` with the challenge RFC 6750 asks for.
    pub fn response(self) -> Response<HyperOutgoingBody> {
        let mut response = error::error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid access token is required",
        );
        let challenge = match self {
            Unauthorized::Missing => "Bearer",
            Unauthorized::Invalid => "Bearer error=\"invalid_token\"",
        };
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        response
    }
}

/// The token of the request's one `Authorization: Bearer <token>` header, read by the rule
/// the SDK reads it by ([`micro_api_contracts::headers::bearer_token`]). Two
/// `Authorization` headers are refused: which one a plugin reads must never differ from
/// the one the host checked.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, Unauthorized> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(Unauthorized::Missing)?;
    if values.next().is_some() {
        return Err(Unauthorized::Invalid);
    }
    let value = value.to_str().map_err(|_| Unauthorized::Invalid)?;
    micro_api_contracts::headers::bearer_token(value).ok_or(Unauthorized::Invalid)
}

/// Removes every client-supplied copy of [`CLAIMS_HEADER`], then, when `required`, checks
/// the bearer token (signature, algorithm, issuer, audience, expiry) and sets the header
/// to its claims.
pub fn authorize(
    headers: &mut HeaderMap,
    crypto: &Keys,
    required: bool,
) -> Result<(), Unauthorized> {
    headers.remove(CLAIMS_HEADER);
    if !required {
        return Ok(());
    }
    let claims = crypto
        .verify_token(bearer_token(headers)?, &[Purpose::Access])
        .map_err(|_| Unauthorized::Invalid)?;
    headers.insert(CLAIMS_HEADER, claims_header(&claims)?);
    Ok(())
}

/// The claims as compact JSON, every non-ASCII character (and DEL) escaped as `\uXXXX`,
/// which is still the same JSON and always a valid header value.
fn claims_header(claims: &Map<String, Value>) -> Result<HeaderValue, Unauthorized> {
    let json = Value::Object(claims.clone()).to_string();
    let mut ascii = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() && c != '\x7f' {
            ascii.push(c);
        } else {
            // Outside the ASCII range JSON text only holds such characters inside strings,
            // where an escape means the same character.
            for unit in c.encode_utf16(&mut [0; 2]) {
                ascii.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    HeaderValue::from_str(&ascii).map_err(|_| Unauthorized::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::AuthConfig;

    fn crypto() -> Keys {
        Keys::from_config(&AuthConfig {
            signing_key: Some("k".repeat(32)),
            ..AuthConfig::default()
        })
        .unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn bearer_tokens_are_read_strictly() {
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer abc")])),
            Ok("abc")
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "bearer  abc ")])),
            Ok("abc")
        );
        assert_eq!(bearer_token(&headers(&[])), Err(Unauthorized::Missing));
        for bad in ["Basic abc", "Bearer", "Bearer ", "abc"] {
            assert_eq!(
                bearer_token(&headers(&[("authorization", bad)])),
                Err(Unauthorized::Invalid),
                "{bad}"
            );
        }
        let two = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert_eq!(bearer_token(&two), Err(Unauthorized::Invalid));
    }

    #[test]
    fn claims_are_handed_over_and_never_forged() {
        let c = crypto();
        let token = c
            .sign_token(
                r#"{"sub":"1","name":"Jos\u00e9 \ud83d\ude00","x":"\u007f"}"#,
                60,
                Purpose::Access,
            )
            .unwrap();
        let forged = (CLAIMS_HEADER, r#"{"sub":"admin"}"#);

        // An open route: the forged header is removed, nothing is added.
        let mut open = headers(&[forged]);
        authorize(&mut open, &c, false).unwrap();
        assert!(open.get(CLAIMS_HEADER).is_none());

        // A protected route: the verified claims replace the forged ones.
        let bearer = format!("Bearer {token}");
        let mut protected = headers(&[forged, forged, ("authorization", &bearer)]);
        authorize(&mut protected, &c, true).unwrap();
        let values: Vec<_> = protected.get_all(CLAIMS_HEADER).iter().collect();
        assert_eq!(values.len(), 1);
        let text = values[0].to_str().expect("ASCII");
        let claims: Value = serde_json::from_str(text).unwrap();
        assert_eq!(claims["sub"], "1");
        assert_eq!(claims["name"], "José 😀");
        assert_eq!(claims["x"], "\u{7f}");
        assert_eq!(claims["iss"], "micro-api");

        // A protected route without a token keeps no claims either.
        let mut missing = headers(&[forged]);
        assert_eq!(
            authorize(&mut missing, &c, true),
            Err(Unauthorized::Missing)
        );
        assert!(missing.get(CLAIMS_HEADER).is_none());
        let mut bad = headers(&[forged, ("authorization", "Bearer x.y.z")]);
        assert_eq!(authorize(&mut bad, &c, true), Err(Unauthorized::Invalid));
    }

    #[test]
    fn refusals_carry_the_challenge() {
        let r = Unauthorized::Missing.response();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let r = Unauthorized::Invalid.response();
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
    }
}
