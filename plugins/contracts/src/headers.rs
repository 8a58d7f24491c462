//! The request headers the host sets for a plugin, and the rule both read a bearer token by.
//!
//! Every header named here is the host's alone: it removes any copy a client sent from
//! every request before a plugin sees it, so a plugin that finds one can trust it.
//!
//! Route parameters: when the host matches `[[route]] path = "/hello/{name}"` against
//! `/hello/Jos%C3%A9`, the plugin gets `x-micro-api-param-name: Jos%C3%A9` (see
//! [`param_header`]). The value is the segment exactly as it is in the path, still
//! percent-encoded, so no decoding choice is made for the plugin; [`decode_param`] (what
//! the SDK's `Request::param` uses) decodes it. A `{*rest}` parameter holds the rest of the
//! path after the segments before it, without its leading `/` (`""` when there is none):
//! decoded whole, an encoded `%2F` and a real `/` look alike, so a plugin that splits the
//! rest into segments splits the raw value first.

/// The header holding the verified claims of a protected route's caller (`[[route]] auth
/// = "required"`), as JSON in ASCII (any other character `\u`-escaped).
///
/// ```
/// assert_eq!(micro_api_contracts::headers::CLAIMS_HEADER, "x-micro-api-claims");
/// ```
pub const CLAIMS_HEADER: &str = "x-micro-api-claims";

/// The header holding the client's IP address (the TCP peer the host accepted), as
/// `std::net::IpAddr` prints it: `127.0.0.1`, `::1`.
///
/// ```
/// let ip: std::net::IpAddr = "::1".parse().unwrap();
/// assert_eq!(ip.to_string(), "::1"); // what the host writes in this header
/// # assert_eq!(micro_api_contracts::headers::CLIENT_ADDR_HEADER, "x-micro-api-client-addr");
/// ```
pub const CLIENT_ADDR_HEADER: &str = "x-micro-api-client-addr";

/// What the header of every route parameter starts with (see [`param_header`]).
///
/// ```
/// use micro_api_contracts::headers::{PARAM_HEADER_PREFIX, param_header};
/// assert!(param_header("name").starts_with(PARAM_HEADER_PREFIX));
/// ```
pub const PARAM_HEADER_PREFIX: &str = "x-micro-api-param-";

/// Whether `name` can name a route parameter: ASCII letters, digits, `_` and `-`, so that
/// its header is a valid header name. Header names ignore case: `{Id}` and `{id}` are
/// one header.
///
/// ```
/// use micro_api_contracts::headers::is_param_name;
/// assert!(is_param_name("user_id") && is_param_name("rest"));
/// assert!(!is_param_name("") && !is_param_name("a b") && !is_param_name("é"));
/// ```
pub fn is_param_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The header that hands a plugin the route parameter `name` (lower case, as header names
/// are sent).
///
/// ```
/// use micro_api_contracts::headers::param_header;
/// assert_eq!(param_header("userId"), "x-micro-api-param-userid");
/// ```
pub fn param_header(name: &str) -> String {
    format!("{PARAM_HEADER_PREFIX}{}", name.to_ascii_lowercase())
}

/// Whether the header `name` is a route parameter's (any case): the host removes every
/// such header a client sent.
///
/// ```
/// use micro_api_contracts::headers::is_param_header;
/// assert!(is_param_header("X-Micro-Api-Param-Name"));
/// assert!(!is_param_header("x-micro-api-claims"));
/// ```
pub fn is_param_header(name: &str) -> bool {
    name.get(..PARAM_HEADER_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(PARAM_HEADER_PREFIX))
}

/// A route parameter's raw value, percent-decoded. `+` stays `+` (it is a space only in
/// forms); bytes that are not UTF-8 once decoded become U+FFFD, as in [`Form::parse`].
///
/// [`Form::parse`]: crate::form::Form::parse
///
/// ```
/// use micro_api_contracts::headers::decode_param;
/// assert_eq!(decode_param(b"Jos%C3%A9+x%2Fy"), "José+x/y");
/// assert_eq!(decode_param(b"%ff"), "\u{fffd}");
/// ```
pub fn decode_param(raw: &[u8]) -> String {
    String::from_utf8_lossy(&percent_encoding::percent_decode(raw).collect::<Vec<u8>>())
        .into_owned()
}

/// The token of an `Authorization` header value `Bearer <token>`: the value trimmed, the
/// scheme case-insensitive, one space after it (more are trimmed from the token), the token
/// non-empty. The host also refuses a request with two `Authorization` headers before it
/// reads either.
///
/// ```
/// use micro_api_contracts::headers::bearer_token;
/// assert_eq!(bearer_token(" bearer  abc "), Some("abc"));
/// assert_eq!(bearer_token("Basic abc"), None);
/// ```
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_strictly() {
        for (value, token) in [
            ("Bearer abc", Some("abc")),
            ("bearer  abc ", Some("abc")),
            ("  BEARER abc.def.ghi", Some("abc.def.ghi")),
            ("Bearer a b", Some("a b")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
            ("Bearer    ", None),
            ("Bearer\tabc", None),
            ("abc", None),
            ("", None),
        ] {
            assert_eq!(bearer_token(value), token, "{value:?}");
        }
    }

    #[test]
    fn params_travel_raw_and_decode_once() {
        assert_eq!(decode_param(b"micro"), "micro");
        assert_eq!(decode_param(b"a%20b"), "a b");
        assert_eq!(decode_param(b"%2525"), "%25", "decoded once, not twice");
        assert_eq!(decode_param(b"%zz%"), "%zz%", "a bad escape stays as it is");
        assert_eq!(decode_param("é".as_bytes()), "é");
        assert!(is_param_header(&param_header("Name")));
        assert!(!is_param_header("x-micro-api-para"));
        assert!(!is_param_header("x-micro-api-paramé"));
    }
}
