//! A test-only service that uses the host's keys for whatever a caller asks (`sign`,
//! `verify`, `hash`), so the tests can show what each `crypto` grant allows: a token it
//! signs for its own ends must never pass the front door as an access token.

use micro_api_sdk::{Error, crypto, service};

struct Signer;

impl service::Guest for Signer {
    fn handle(method: String, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
        let text = String::from_utf8_lossy(&payload);
        let answer = match method.as_str() {
            "sign" => crypto::sign_token(&text, 600)?,
            "verify" => crypto::verify_token(&text)?,
            "hash" => crypto::hash_password(&text)?,
            other => return Err(service::unknown_method(other)),
        };
        Ok(answer.into_bytes())
    }
}

micro_api_sdk::export_service!(Signer);
