//! Fuzz target: rpc errors across the WIT boundary and into a plugin's answer, and rpc
//! payloads decoded by a service.

use proptest::prelude::*;

use crate::{fuzz, glued};

#[test]
fn rpc_errors_and_payloads() {
    use micro_api::bindings::{AppError, Error};
    use micro_api_sdk::http::HttpError;
    use micro_api_sdk::services::user::{CheckPassword, GetUserByName};

    let error = prop_oneof![
        Just(Error::Timeout),
        Just(Error::CircuitOpen),
        Just(Error::Rejected),
        "\\PC{0,20}".prop_map(Error::Unavailable),
        "\\PC{0,20}".prop_map(Error::Forbidden),
        "\\PC{0,20}".prop_map(Error::Invalid),
        ("\\PC{0,12}", "\\PC{0,20}")
            .prop_map(|(code, message)| Error::App(AppError { code, message })),
    ];
    fuzz("rpc errors", 4_000, error, |error| {
        // Across the wire between nodes and back is lossless.
        let wire = serde_json::to_vec(&error).unwrap();
        prop_assert_eq!(
            serde_json::from_slice::<Error>(&wire).unwrap(),
            error.clone()
        );
        // What a plugin answers its client: the callee's own refusal as written, any other
        // error without its internal text.
        let sdk = match error.clone() {
            Error::App(AppError { code, message }) => micro_api_sdk::error::app(code, message),
            Error::Timeout => micro_api_sdk::Error::Timeout,
            Error::CircuitOpen => micro_api_sdk::Error::CircuitOpen,
            Error::Rejected => micro_api_sdk::Error::Rejected,
            Error::Unavailable(m) => micro_api_sdk::error::unavailable(m),
            Error::Forbidden(m) => micro_api_sdk::error::forbidden(m),
            Error::Invalid(m) => micro_api_sdk::error::invalid(m),
        };
        let answer = micro_api_sdk::http::Response::from(HttpError::from(sdk));
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        match &error {
            Error::App(AppError { message: m, .. }) => prop_assert_eq!(message, m.as_str()),
            Error::Unavailable(m) | Error::Forbidden(m) | Error::Invalid(m) if m.len() > 3 => {
                prop_assert!(!message.contains(m.as_str()), "{message} leaks {m}")
            }
            _ => {}
        }
        Ok(())
    });
    let payload = glued(
        &[
            "{",
            "}",
            "\"name\"",
            "\"pwd\"",
            ":",
            ",",
            "\"micro\"",
            "null",
            "1e999",
            "[",
            "]",
            "\\u0000",
            "\"",
        ],
        16,
    );
    fuzz("rpc payloads", 4_000, payload, |payload| {
        // A service decodes any payload to its request or to `invalid`, never panics.
        let decoded = micro_api_sdk::service::json(&payload, |r: GetUserByName| Ok(r.name));
        if let Err(e) = decoded {
            prop_assert!(matches!(e, micro_api_sdk::Error::Invalid(_)), "{e:?}");
        }
        let _ = micro_api_sdk::service::decode::<CheckPassword>(&payload);
        Ok(())
    });
}
