//! The WIT glue of the `crypto` import: grant first, then the keys.

use std::sync::Arc;

use super::{CryptoError, CryptoState, Keys};
use crate::bindings::micro_api::host::crypto::Host;
use crate::bindings::{AppError, Error};
use crate::capability::forbidden;

impl CryptoState {
    fn crypto(&self) -> Result<Arc<Keys>, Error> {
        self.keys.clone().ok_or_else(|| {
            let fix = format!("add `crypto = true` to [plugin.{}]", self.plugin);
            forbidden(&self.plugin, "crypto", &fix)
        })
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
        Ok(self.crypto()?.hash_password(password).await?)
    }

    #[tracing::instrument(name = "crypto.verify_password", skip_all, fields(otel.kind = "internal"))]
    async fn verify_password(&mut self, password: String, hash: String) -> Result<bool, Error> {
        Ok(self.crypto()?.verify_password(password, hash).await?)
    }

    #[tracing::instrument(name = "crypto.sign_token", skip_all, fields(otel.kind = "internal"))]
    async fn sign_token(&mut self, claims: String, ttl_seconds: u32) -> Result<String, Error> {
        Ok(self.crypto()?.sign_token(&claims, ttl_seconds)?)
    }

    #[tracing::instrument(name = "crypto.verify_token", skip_all, fields(otel.kind = "internal"))]
    async fn verify_token(&mut self, token: String) -> Result<String, Error> {
        let claims = self.crypto()?.verify_token(&token)?;
        Ok(serde_json::Value::Object(claims).to_string())
    }
}
