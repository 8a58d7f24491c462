//! The keys' tests: hashing and its caps, tokens and their purposes, forged tokens, the
//! key file.

use super::*;

fn crypto(dir: &Path) -> Keys {
    Keys::from_config(&AuthConfig {
        key_file: dir.join("signing.key"),
        ..AuthConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn hash_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let c = crypto(dir.path());
    let hash = c.hash_password("123".into()).await.unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(c.verify_password("123".into(), hash.clone()).await.unwrap());
    assert!(!c.verify_password("124".into(), hash).await.unwrap());
    assert!(c.verify_password("1".into(), "nope".into()).await.is_err());
}

#[tokio::test]
async fn verifies_hashes_of_other_parameters_in_reused_memory() {
    let dir = tempfile::tempdir().unwrap();
    let c = crypto(dir.path());
    // As an older row might hold: made by the argon2 crate itself, other parameters.
    let argon2i = Argon2::new(
        Algorithm::Argon2i,
        Version::V0x13,
        Params::new(64, 1, 1, None).unwrap(),
    );
    let other = argon2i.hash_password(b"secret").unwrap().to_string();
    let seed = c.hash_password("123".into()).await.unwrap();
    // Later runs get the pooled memory of earlier ones, dirty.
    for _ in 0..3 {
        assert!(
            c.verify_password("secret".into(), other.clone())
                .await
                .unwrap()
        );
        assert!(
            !c.verify_password("secreT".into(), other.clone())
                .await
                .unwrap()
        );
        assert!(c.verify_password("123".into(), seed.clone()).await.unwrap());
    }
    let no_salt = "$argon2id$v=19$m=64,t=1,p=1";
    assert!(matches!(
        c.verify_password("x".into(), no_salt.into()).await,
        Err(CryptoError::MalformedHash)
    ));
}

#[test]
fn argon2_caps_admit_published_parameters_and_refuse_more() {
    let params = |m, t, p| Params::new(m, t, p, None).unwrap();
    // The host's own, OWASP's alternatives, RFC 9106's second recommendation.
    for (m, t, p) in [
        (19456, 2, 1),
        (47104, 1, 1),
        (12288, 3, 1),
        (9216, 4, 1),
        (7168, 5, 1),
        (65536, 3, 4),
        (64, 10, 8),
    ] {
        assert!(affordable(&params(m, t, p)), "m={m} t={t} p={p}");
    }
    for (m, t, p) in [
        (u32::MAX, 2, 1),
        (65537, 1, 1),
        (19456, u32::MAX, 1),
        (64, 11, 1),
        (65536, 4, 1),
        (1024, 2, 16),
    ] {
        assert!(!affordable(&params(m, t, p)), "m={m} t={t} p={p}");
    }
}

#[tokio::test]
async fn a_hash_asking_too_much_is_a_failed_check() {
    let dir = tempfile::tempdir().unwrap();
    let c = crypto(dir.path());
    let seed = c.hash_password("123".into()).await.unwrap();
    for (from, to) in [("m=19456", "m=4294967295"), ("t=2", "t=4294967295")] {
        let huge = seed.replacen(from, to, 1);
        assert!(!c.verify_password("123".into(), huge).await.unwrap());
    }
}

#[test]
fn tokens_round_trip_and_are_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let c = crypto(dir.path());
    let access = [Purpose::Access];
    let token = c
        .sign_token(r#"{"sub":"10001","exp":1}"#, 60, Purpose::Access)
        .unwrap();
    let claims = c.verify_token(&token, &access).unwrap();
    assert_eq!(claims["sub"], "10001");
    assert!(claims["exp"].as_u64().unwrap() > 1, "the host sets exp");
    let expired = c.sign_token(r#"{"sub":"1"}"#, 0, Purpose::Access).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(c.verify_token(&expired, &access).is_err());
    // The same key file gives the same key; another key refuses the token.
    assert!(crypto(dir.path()).verify_token(&token, &access).is_ok());
    let other = tempfile::tempdir().unwrap();
    assert!(crypto(other.path()).verify_token(&token, &access).is_err());
}

/// A token is good only for what it was signed for, whatever purpose its plugin wrote.
#[test]
fn tokens_are_accepted_only_for_their_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let c = crypto(dir.path());
    let claims = r#"{"sub":"1","purpose":"access"}"#;
    let own = c.sign_token(claims, 60, Purpose::Plugin("audit")).unwrap();
    assert!(c.verify_token(&own, &[Purpose::Access]).is_err());
    assert!(c.verify_token(&own, &[Purpose::Plugin("other")]).is_err());
    let verified = c.verify_token(&own, &[Purpose::Plugin("audit")]).unwrap();
    assert_eq!(
        verified["purpose"], "plugin:audit",
        "the host's purpose wins"
    );
    let access = c.sign_token(claims, 60, Purpose::Access).unwrap();
    let either = [Purpose::Access, Purpose::Plugin("audit")];
    assert!(c.verify_token(&access, &either).is_ok());
    assert!(
        c.verify_token(&access, &[Purpose::Plugin("audit")])
            .is_err()
    );
}

/// Tokens crafted by hand: everything but an HS256 signature by our key over our
/// issuer, audience and a future expiry is refused.
#[test]
fn forged_and_confused_tokens_are_refused() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use jsonwebtoken::{Algorithm, crypto::sign};
    use serde_json::json;

    let key = "k".repeat(32);
    let c = Keys::from_config(&AuthConfig {
        signing_key: Some(key.clone()),
        ..AuthConfig::default()
    })
    .unwrap();
    let ours = EncodingKey::from_secret(key.as_bytes()).unwrap();
    let now = jsonwebtoken::get_current_timestamp();
    let good = json!({ "sub": "1", "iss": "micro-api", "aud": "micro-api", "iat": now, "exp": now + 600, "purpose": "access" });
    // A token with any header and claims, signed by `algorithm` with our key (the
    // signature of the HMAC family for the RSA and EC names: algorithm confusion).
    let forge = |header: &Value, claims: &Value, algorithm: Option<Algorithm>| {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature =
            algorithm.map_or(String::new(), |a| sign(input.as_bytes(), &ours, a).unwrap());
        format!("{input}.{signature}")
    };
    let hs256 = json!({ "alg": "HS256", "typ": "JWT" });

    let valid = forge(&hs256, &good, Some(Algorithm::HS256));
    assert!(
        c.verify_token(&valid, &[Purpose::Access]).is_ok(),
        "the control token is accepted"
    );

    let mut refused = Vec::new();
    // alg none, in every spelling, unsigned or carrying a valid signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({ "alg": alg, "typ": "JWT" });
        refused.push((format!("alg {alg}"), forge(&header, &good, None)));
        refused.push((
            format!("alg {alg}, signed"),
            forge(&header, &good, Some(Algorithm::HS256)),
        ));
    }
    refused.push((
        "valid token, signature removed".into(),
        valid.rsplit_once('.').unwrap().0.to_string() + ".",
    ));
    // Algorithm confusion: another HMAC, or an asymmetric name with an HMAC signature.
    for (alg, by) in [
        ("HS384", Algorithm::HS384),
        ("HS512", Algorithm::HS512),
        ("RS256", Algorithm::HS256),
        ("ES256", Algorithm::HS256),
        ("PS256", Algorithm::HS256),
        ("EdDSA", Algorithm::HS256),
    ] {
        refused.push((
            format!("alg {alg}"),
            forge(&json!({ "alg": alg }), &good, Some(by)),
        ));
    }
    // Claims: wrong issuer or audience, missing ones, expired, not yet valid.
    let with = |key: &str, value: Value| {
        let mut claims = good.clone();
        claims[key] = value;
        forge(&hs256, &claims, Some(Algorithm::HS256))
    };
    let without = |key: &str| {
        let mut claims = good.clone();
        claims.as_object_mut().unwrap().remove(key);
        forge(&hs256, &claims, Some(Algorithm::HS256))
    };
    refused.push(("wrong issuer".into(), with("iss", json!("someone-else"))));
    refused.push(("wrong audience".into(), with("aud", json!("someone-else"))));
    refused.push(("expired".into(), with("exp", json!(now - 1))));
    refused.push(("not yet valid".into(), with("nbf", json!(now + 600))));
    refused.push(("exp as text".into(), with("exp", json!("never"))));
    refused.push(("no purpose".into(), without("purpose")));
    refused.push(("another purpose".into(), with("purpose", json!("plugin:x"))));
    for claim in ["exp", "iss", "aud"] {
        refused.push((format!("no {claim}"), without(claim)));
    }
    // Tampered claims under the original signature, and another key.
    let (head, rest) = valid.split_once('.').unwrap();
    let signature = rest.rsplit_once('.').unwrap().1;
    let mut admin = good.clone();
    admin["sub"] = json!("0");
    refused.push((
        "tampered".into(),
        format!("{head}.{}.{signature}", B64.encode(admin.to_string())),
    ));
    let other = EncodingKey::from_secret(&[b'x'; 32]).unwrap();
    refused.push((
        "another key".into(),
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &good, &other).unwrap(),
    ));
    // Shapes that are no token at all.
    for junk in [
        "",
        ".",
        "..",
        "a.b.c",
        "a.b",
        "a.b.c.d",
        &format!("{valid}.x"),
    ] {
        refused.push((format!("junk {junk:?}"), junk.to_string()));
    }

    for (what, token) in refused {
        assert!(
            c.verify_token(&token, &[Purpose::Access]).is_err(),
            "{what} was accepted: {token}"
        );
    }
}

#[test]
fn racing_processes_create_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/signing.key");
    let keys: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| s.spawn(|| load_or_create_key(&path).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        keys.iter().all(|k| k == &keys[0]),
        "every racer reads the same key"
    );
    assert_eq!(std::fs::read(&path).unwrap(), keys[0]);
    let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file is left behind");
}

#[test]
fn dev_key_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    crypto(dir.path());
    let mode = std::fs::metadata(dir.path().join("signing.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
