//! Cryptography with keys only the host holds, as a capability: argon2id password hashing
//! and HS256 tokens ([`Keys`]), granted by `crypto = true`. The front door verifies access
//! tokens with the same keys.

mod config;
mod host;
mod keys;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

pub use config::AuthConfig;
pub use keys::{CryptoError, Keys};

use crate::capability::{Capability, InitError, Invocation, PluginSpec, Shared, StateOf};

/// The capability: the keys `[auth]` names.
pub struct Crypto {
    keys: Arc<Keys>,
}

impl Crypto {
    /// The keys, for the front door's token check.
    pub fn keys(&self) -> Arc<Keys> {
        self.keys.clone()
    }
}

/// Whether one plugin may hash passwords and sign tokens.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CryptoGrant {
    crypto: bool,
}

/// Per-instance state of the `crypto` import.
pub struct CryptoState {
    keys: Option<Arc<Keys>>,
    plugin: Arc<str>,
}

impl Capability for Crypto {
    const NAME: &'static str = "crypto";
    const GRANT_KEYS: &'static [&'static str] = &["crypto"];
    type Config = AuthConfig;
    type Grant = CryptoGrant;
    type State = CryptoState;

    async fn init(config: &AuthConfig, _shared: &mut Shared<'_>) -> Result<Self, InitError> {
        let keys = Keys::from_config(config).map_err(|e| InitError::new("signing key", e))?;
        Ok(Self {
            keys: Arc::new(keys),
        })
    }

    fn link<T: StateOf<CryptoState>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        use crate::bindings::micro_api::host::crypto;
        crypto::add_to_linker::<T, HasSelf<CryptoState>>(linker, T::state)
    }

    fn configure(_: &AuthConfig, plugin: &PluginSpec<'_>) -> Result<CryptoGrant, Vec<String>> {
        let grant: CryptoGrant = plugin.grant(Self::GRANT_KEYS)?;
        let fix = "add `crypto = true` to grant password hashing and tokens";
        plugin.require("micro-api:host/crypto", grant.crypto, fix)?;
        Ok(grant)
    }

    fn prepare(&self, grant: &CryptoGrant, invocation: &Invocation<'_>) -> CryptoState {
        CryptoState {
            keys: grant.crypto.then(|| self.keys.clone()),
            plugin: invocation.plugin.clone(),
        }
    }
}
