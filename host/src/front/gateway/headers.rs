//! The headers the host sets on the request it hands a plugin, which the plugin can trust
//! because every client-sent copy is removed first: the client's address and the route's
//! parameters (names and scheme in `micro_api_contracts::headers`). The verified claims of
//! a protected route are `front::auth`'s.

use http::{HeaderMap, HeaderName, HeaderValue, Request};
use micro_api_contracts::headers as contracts;

pub use micro_api_contracts::headers::CLIENT_ADDR_HEADER;

use crate::front::ClientAddr;
use crate::front::router::Params;

/// Replaces any client-supplied [`CLIENT_ADDR_HEADER`] with the peer's address, so a plugin
/// can trust it (for an audit trail, say).
pub(super) fn with_client_addr<B>(mut request: Request<B>) -> Request<B> {
    let peer = request.extensions().get::<ClientAddr>().map(|c| c.0.ip());
    let headers = request.headers_mut();
    headers.remove(CLIENT_ADDR_HEADER);
    if let Some(value) = peer.and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok()) {
        headers.insert(CLIENT_ADDR_HEADER, value);
    }
    request
}

/// Replaces every client-sent route-parameter header with what the route matched.
pub(super) fn set_route_params(
    headers: &mut HeaderMap,
    params: &Params<'_>,
) -> Result<(), http::Error> {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| contracts::is_param_header(name.as_str()))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    for (name, value) in &params.0 {
        let name = HeaderName::try_from(contracts::param_header(name))?;
        headers.append(name, HeaderValue::from_str(value)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_params_replace_every_forged_copy() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-micro-api-param-name", "forged"),
            ("X-Micro-Api-Param-Name", "forged again"),
            ("x-micro-api-param-other", "forged"),
            ("accept", "*/*"),
        ] {
            headers.append(
                HeaderName::try_from(name).unwrap(),
                HeaderValue::from_static(value),
            );
        }
        let params = Params(vec![("Name", "Jos%C3%A9".into())]);
        set_route_params(&mut headers, &params).unwrap();
        let values = |name| headers.get_all(name).iter().collect::<Vec<_>>();
        assert_eq!(values("x-micro-api-param-name"), ["Jos%C3%A9"]);
        assert!(values("x-micro-api-param-other").is_empty());
        assert_eq!(values("accept"), ["*/*"]);
        // A route without parameters still drops the forged ones.
        set_route_params(&mut headers, &Params::default()).unwrap();
        assert_eq!(headers.len(), 1);
        assert!(set_route_params(&mut headers, &Params(vec![("a", "\x7f".into())])).is_err());
    }
}
