//! The keys and the work behind the `crypto` capability: argon2id password hashing and JWT
//! signing, done natively.
//!
//! The signing key lives only here: from `[auth] signing_key` (best through the
//! `MICRO_API__AUTH__SIGNING_KEY` environment variable) or a key file; without either, a
//! random development key is created once under the data folder (0600). Plugins sign and
//! verify through the `crypto` import and never see it.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use super::AuthConfig;

/// OWASP's argon2id parameters: 19 MiB, 2 passes, 1 lane.
/// A pooled working memory grows to a stored hash's `m` up to this; a hash asking for more
/// (a malicious row) gets a one-off allocation, never a permanently larger pool.
const ARGON2_M_COST_KIB: u32 = 19 * 1024;
const ARGON2_T_COST: u32 = 2;
const ARGON2_P_COST: u32 = 1;

/// The most a stored hash may ask of one verification (issue 17): a row with
/// `m=4294967295` would allocate 4 TiB and abort the host, `t=4294967295` would spin a core
/// for ever. The caps admit the host's own parameters and the stronger published ones:
/// OWASP's alternatives (m=47104 t=1 ... m=7168 t=5) and RFC 9106's second recommendation
/// (m=64 MiB, t=3, p=4), whose work, memory times passes, is the largest accepted: ~5x the
/// host's own per login, and at most `2 x cores` verifications hold their memory at once.
const ARGON2_MAX_M_COST_KIB: u32 = 64 * 1024;
const ARGON2_MAX_T_COST: u32 = 10;
const ARGON2_MAX_P_COST: u32 = 8;
const ARGON2_MAX_WORK: u64 = 64 * 1024 * 3;

/// The only algorithm tokens are signed and accepted with (`none` and confusion refused).
const TOKEN_ALGORITHM: jsonwebtoken::Algorithm = jsonwebtoken::Algorithm::HS256;

/// The claim that says what a token was signed for; the host sets it, never the plugin.
const PURPOSE_CLAIM: &str = "purpose";

/// What a token was signed for (its `purpose` claim). The front door accepts only access
/// tokens, so a token a plugin signs for its own ends (a reset link, a webhook) never opens
/// an `auth = "required"` route (issue 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose<'a> {
    /// `"access"`: what the front door accepts as a bearer token.
    Access,
    /// `"plugin:<name>"`: a token the named plugin signed for its own use.
    Plugin(&'a str),
}

impl Purpose<'_> {
    fn claim(self) -> String {
        match self {
            Purpose::Access => "access".into(),
            Purpose::Plugin(name) => format!("plugin:{name}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("cannot read or create the signing key at {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the signing key must be at least 32 bytes")]
    WeakKey,
    #[error("malformed password hash")]
    MalformedHash,
    #[error("claims must be a JSON object")]
    BadClaims,
    #[error("invalid or expired token")]
    InvalidToken,
    #[error("crypto failed: {0}")]
    Internal(String),
}

pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    audience: String,
    /// Each argon2 run takes 19 MiB and a core for tens of milliseconds: bound how many run
    /// at once so a burst of logins queues instead of exhausting memory.
    hashing: Semaphore,
    /// The working memory of finished verifications, for the next ones (at most one per
    /// permit of `hashing`). A fresh 19 MiB per login costs its page faults or a memset
    /// (~10% of a login), and glibc's arenas keep the freed blocks anyway: hundreds of MiB
    /// of RSS after a burst of logins (issue 4).
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl Keys {
    pub fn from_config(auth: &AuthConfig) -> Result<Self, CryptoError> {
        let key = match &auth.signing_key {
            Some(key) => key.as_bytes().to_vec(),
            None => load_or_create_key(&auth.key_file)?,
        };
        if key.len() < 32 {
            return Err(CryptoError::WeakKey);
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            encoding: EncodingKey::from_secret(&key)
                .map_err(|e| CryptoError::Internal(e.to_string()))?,
            decoding: DecodingKey::from_secret(&key)
                .map_err(|e| CryptoError::Internal(e.to_string()))?,
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            hashing: Semaphore::new(cores * 2),
            memory: Arc::default(),
        })
    }

    fn argon2() -> Argon2<'static> {
        let params = Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None)
            .expect("valid argon2 parameters");
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// Runs an argon2 job on the blocking pool, never on a tokio worker.
    async fn blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CryptoError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| CryptoError::Internal(e.to_string()))?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| CryptoError::Internal(e.to_string()))
    }

    pub async fn hash_password(&self, password: String) -> Result<String, CryptoError> {
        self.blocking(move || {
            Self::argon2()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| CryptoError::Internal(e.to_string()))
        })
        .await?
    }

    /// Whether `password` matches the PHC string `hash`, with the parameters `hash` names.
    pub async fn verify_password(
        &self,
        password: String,
        hash: String,
    ) -> Result<bool, CryptoError> {
        let pool = self.memory.clone();
        self.blocking(move || {
            // Taken and given back under the permit: the pool never outgrows the permits.
            let mut memory = pool.lock().pop().unwrap_or_default();
            let verdict = verify_argon2(&password, &hash, &mut memory);
            pool.lock().push(memory);
            verdict
        })
        .await?
    }

    /// Signs `claims` for `ttl_seconds` and `purpose`; `iss`, `aud`, `iat`, `exp` and
    /// `purpose` are the host's (a plugin's own value for them is replaced).
    pub fn sign_token(
        &self,
        claims: &str,
        ttl_seconds: u32,
        purpose: Purpose<'_>,
    ) -> Result<String, CryptoError> {
        let Ok(Value::Object(mut claims)) = serde_json::from_str::<Value>(claims) else {
            return Err(CryptoError::BadClaims);
        };
        let now = jsonwebtoken::get_current_timestamp();
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("aud".into(), self.audience.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + u64::from(ttl_seconds)).into());
        claims.insert(PURPOSE_CLAIM.into(), purpose.claim().into());
        jsonwebtoken::encode(&Header::new(TOKEN_ALGORITHM), &claims, &self.encoding)
            .map_err(|e| CryptoError::Internal(e.to_string()))
    }

    /// The claims of a token this host signed, if signature, issuer, audience and expiry hold
    /// (all three claims required; `nbf`, when present, too) and it was signed for one of
    /// `accepted`. Only [`TOKEN_ALGORITHM`] is accepted: a header naming `none` or any other
    /// algorithm is refused, whatever its signature.
    pub fn verify_token(
        &self,
        token: &str,
        accepted: &[Purpose<'_>],
    ) -> Result<Map<String, Value>, CryptoError> {
        let mut validation = Validation::new(TOKEN_ALGORITHM);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &validation)
            .map_err(|_| CryptoError::InvalidToken)?
            .claims;
        let purpose = claims.get(PURPOSE_CLAIM).and_then(Value::as_str);
        if !accepted.iter().any(|p| purpose == Some(p.claim().as_str())) {
            return Err(CryptoError::InvalidToken);
        }
        Ok(claims)
    }
}

/// Reads the key file, or creates it with a random key. Creation is atomic: the key is
/// written to a private temporary file and hard-linked into place, which fails if another
/// process got there first, so two processes never end up with two keys.
fn load_or_create_key(path: &Path) -> Result<Vec<u8>, CryptoError> {
    let err = |source| CryptoError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    if let Ok(key) = std::fs::read(path) {
        return Ok(trim(key));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let key = hex::encode(rand::random::<[u8; 32]>());
    let tmp = crate::private_file::write_beside(path, key.as_bytes()).map_err(err)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "created a development signing key; set [auth] signing_key or key_file in production");
            Ok(key.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read(path).map(trim).map_err(err)
        }
        Err(e) => Err(err(e)),
    }
}

fn trim(mut key: Vec<u8>) -> Vec<u8> {
    while key.last().is_some_and(|b| b.is_ascii_whitespace()) {
        key.pop();
    }
    key
}

/// argon2's own verification with `memory` as its working memory. (The `argon2` crate
/// allocates a fresh, zeroed block for each run through `PasswordVerifier`; this is that
/// code with the allocation lifted out, because argon2 writes every block before it reads it.)
fn verify_argon2(password: &str, hash: &str, memory: &mut Vec<Block>) -> Result<bool, CryptoError> {
    fn malformed<E>(_: E) -> CryptoError {
        CryptoError::MalformedHash
    }
    let parsed = PasswordHash::new(hash).map_err(malformed)?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(CryptoError::MalformedHash);
    };
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(malformed)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(malformed)?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(malformed)?;
    if !affordable(&params) {
        // A failed check, as a wrong password: the plugin answers 401, the host keeps running.
        tracing::warn!(
            m_cost = params.m_cost(),
            t_cost = params.t_cost(),
            p_cost = params.p_cost(),
            "a stored password hash asks more than the argon2 caps: the check fails"
        );
        return Ok(false);
    }
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut computed = vec![0u8; expected.len()];
    let mut one_off = Vec::new();
    let memory = if blocks <= ARGON2_M_COST_KIB as usize {
        memory
    } else {
        &mut one_off
    };
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    argon2
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt.as_ref(),
            &mut computed,
            &mut memory[..blocks],
        )
        .map_err(malformed)?;
    // `Output`'s equality is constant-time.
    Ok(Output::new(&computed).is_ok_and(|computed| computed == *expected))
}

/// Whether verifying with `params` stays within the caps above.
fn affordable(params: &Params) -> bool {
    params.m_cost() <= ARGON2_MAX_M_COST_KIB
        && params.t_cost() <= ARGON2_MAX_T_COST
        && params.p_cost() <= ARGON2_MAX_P_COST
        && u64::from(params.m_cost()) * u64::from(params.t_cost()) <= ARGON2_MAX_WORK
}

#[cfg(test)]
mod tests {
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
}
