//! Fuzz target: the login form parser, against the host's own reading of the same body
//! (the login limiter counts failures against the name the plugin checks).

use micro_api::front::login_limit::{LoginLimitConfig, LoginLimiter};
use micro_api_sdk::http::Form;
use proptest::prelude::*;

use crate::{fuzz, glued};

const FORM_PIECES: &[&str] = &[
    "userName",
    "pwd",
    "=",
    "&",
    "&&",
    "==",
    "+",
    "%",
    "%2",
    "%20",
    "%26",
    "%3D",
    "%ff",
    "%FE",
    "%00",
    "%C3%A9",
    "micro",
    "123",
    ";",
    "userName=",
    "&userName=",
    "\u{e9}",
    "\u{1f600}",
];

#[test]
fn form_parser() {
    let limiter = LoginLimiter::new(&LoginLimitConfig::default()).unwrap();
    let form_type = Some(&b"application/x-www-form-urlencoded"[..]);
    fuzz("form parser", 4_000, glued(FORM_PIECES, 24), |body| {
        let form = Form::parse(&body);
        // The host counts failed logins against the same name the plugin checks.
        let plugin = form
            .get("userName")
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        // ... or refuses the request before the plugin runs, for a name it will not count.
        match limiter.user_name(form_type, &body) {
            Ok(host) => prop_assert_eq!(host, plugin),
            Err(refused) => {
                let name = plugin.unwrap_or_default();
                let unfit = name.chars().count() > 20 || name.trim() != name;
                prop_assert!(unfit, "{name:?} refused: {refused}");
            }
        }
        Ok(())
    });
    let pairs = proptest::collection::vec(("\\PC{0,12}", "\\PC{0,12}"), 0..8);
    fuzz("form round trip", 2_000, pairs, |pairs| {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        prop_assert_eq!(Form::parse(body.as_bytes()).0, pairs);
        Ok(())
    });
}
