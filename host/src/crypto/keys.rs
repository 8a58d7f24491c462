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
mod tests;
