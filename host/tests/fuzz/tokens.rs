//! Fuzz target: access tokens: forged and tampered ones are refused, signed claims come
//! back as they were.

use micro_api::crypto::{AuthConfig, Keys, Purpose};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::fuzz;

fn crypto() -> Keys {
    Keys::from_config(&AuthConfig {
        signing_key: Some("fuzz-signing-key-0123456789abcdef".into()),
        ..AuthConfig::default()
    })
    .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn token_parser() {
    let c = crypto();
    let token = c
        .sign_token(r#"{"sub":"1","name":"micro"}"#, 600, Purpose::Access)
        .unwrap();
    // Arbitrary text, and tokens built of plausible parts: never accepted.
    let header = prop_oneof![
        proptest::sample::select(
            &[
                "none", "HS256", "HS384", "HS512", "RS256", "ES256", "EdDSA", ""
            ][..]
        )
        .prop_map(|alg| format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)),
        "\\PC{0,40}",
    ];
    let part = prop_oneof![
        "[A-Za-z0-9_-]{0,60}",
        "\\PC{0,40}".prop_map(|s| b64(s.as_bytes())),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| b64(&b)),
    ];
    let forged =
        (header, "\\PC{0,80}", part.clone(), 0..5usize).prop_map(|(h, claims, sig, dots)| {
            let mut token = format!("{}.{}.{sig}", b64(h.as_bytes()), b64(claims.as_bytes()));
            token.push_str(&".".repeat(dots));
            token
        });
    fuzz(
        "token parser",
        4_000,
        prop_oneof!["\\PC{0,200}", forged],
        |token| {
            prop_assert!(
                c.verify_token(&token, &[Purpose::Access]).is_err(),
                "accepted {token}"
            );
            Ok(())
        },
    );
    // A signed token changed in any one character is refused.
    let positions = (0..token.len(), proptest::char::range('-', 'z'));
    fuzz("token tampering", 4_000, positions, |(at, with)| {
        let mut tampered = token.clone().into_bytes();
        if tampered[at] == with as u8 || !with.is_ascii() {
            return Ok(());
        }
        tampered[at] = with as u8;
        let tampered = String::from_utf8(tampered).unwrap();
        prop_assert!(
            c.verify_token(&tampered, &[Purpose::Access]).is_err(),
            "accepted {tampered}"
        );
        Ok(())
    });
    // Whatever claims are signed come back as they were, the host's own aside.
    // Registered claims the host validates (`nbf`) or sets are left out: text there is refused.
    let claims =
        proptest::collection::btree_map("[a-z]{1,6}", "\\PC{0,10}", 0..6).prop_map(|mut claims| {
            claims.remove("nbf");
            claims
        });
    fuzz("token round trip", 1_000, claims, |claims| {
        let signed = c
            .sign_token(
                &serde_json::to_string(&claims).unwrap(),
                60,
                Purpose::Access,
            )
            .unwrap();
        let verified = c
            .verify_token(&signed, &[Purpose::Access])
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (key, value) in &claims {
            if !["iss", "aud", "iat", "exp", "purpose"].contains(&key.as_str()) {
                prop_assert_eq!(&verified[key], value);
            }
        }
        Ok(())
    });
}
