//! The WIT glue of the `crypto` import: grant first, then the keys.

use super::{CryptoError, CryptoState, Keys, Purpose};
use crate::bindings::micro_api::host::crypto::Host;
use crate::bindings::{AppError, Error};
use crate::capability::forbidden;

impl CryptoState {
    /// The keys, when the grant holds `use_` (as `crypto = [...]` spells it).
    fn keys_for(&self, granted: bool, use_: &str) -> Result<&Keys, Error> {
        if granted {
            return Ok(&self.keys);
        }
        let fix = format!("add \"{use_}\" to `crypto` in [plugin.{}]", self.plugin);
        Err(forbidden(&self.plugin, &format!("crypto {use_}"), &fix))
    }

    fn passwords(&self) -> Result<&Keys, Error> {
        self.keys_for(self.grant.passwords, "passwords")
    }

    /// What this plugin signs: access tokens when granted, else tokens of its own.
    fn signing(&self) -> Result<(&Keys, Purpose<'_>), Error> {
        if self.grant.access_tokens {
            return Ok((&self.keys, Purpose::Access));
        }
        let keys = self.keys_for(self.grant.tokens, "tokens")?;
        Ok((keys, Purpose::Plugin(&self.plugin)))
    }

    /// What this plugin may verify: access tokens with either token grant, and its own.
    fn verifying(&self) -> Result<(&Keys, Vec<Purpose<'_>>), Error> {
        let granted = self.grant.tokens || self.grant.access_tokens;
        let keys = self.keys_for(granted, "tokens")?;
        let mut accepted = vec![Purpose::Access];
        if self.grant.tokens {
            accepted.push(Purpose::Plugin(&self.plugin));
        }
        Ok((keys, accepted))
    }
}

impl From<CryptoError> for Error {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::InvalidToken => Error::App(AppError {
                code: "unauthorized".into(),
                message: e.to_string(),
            }),
            CryptoError::MalformedHash | CryptoError::BadClaims => Error::Invalid(e.to_string()),
            other => Error::Unavailable(other.to_string()),
        }
    }
}

impl Host for &mut CryptoState {
    #[tracing::instrument(name = "crypto.hash_password", skip_all, fields(otel.kind = "internal"))]
    async fn hash_password(&mut self, password: String) -> Result<String, Error> {
        Ok(self.passwords()?.hash_password(password).await?)
    }

    #[tracing::instrument(name = "crypto.verify_password", skip_all, fields(otel.kind = "internal"))]
    async fn verify_password(&mut self, password: String, hash: String) -> Result<bool, Error> {
        Ok(self.passwords()?.verify_password(password, hash).await?)
    }

    #[tracing::instrument(name = "crypto.sign_token", skip_all, fields(otel.kind = "internal"))]
    async fn sign_token(&mut self, claims: String, ttl_seconds: u32) -> Result<String, Error> {
        let (keys, purpose) = self.signing()?;
        Ok(keys.sign_token(&claims, ttl_seconds, purpose)?)
    }

    #[tracing::instrument(name = "crypto.verify_token", skip_all, fields(otel.kind = "internal"))]
    async fn verify_token(&mut self, token: String) -> Result<String, Error> {
        let (keys, accepted) = self.verifying()?;
        let claims = keys.verify_token(&token, &accepted)?;
        Ok(serde_json::Value::Object(claims).to_string())
    }
}
