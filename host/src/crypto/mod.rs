//! Cryptography with keys only the host holds, as a capability: argon2id password hashing
//! and HS256 tokens ([`Keys`]), granted by use: `crypto = ["passwords"]` (hash and verify
//! passwords), `"tokens"` (sign and verify tokens for the plugin's own ends, and verify
//! access tokens), `"access-tokens"` (sign the access tokens the front door accepts); `true`
//! grants all three. The front door verifies access tokens with the same keys.

mod config;
mod host;
mod keys;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

pub use config::AuthConfig;
pub use keys::{CryptoError, Keys, Purpose};

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

/// What one plugin may do with the host's keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CryptoGrant {
    passwords: bool,
    tokens: bool,
    access_tokens: bool,
}

/// One use of the keys, as `crypto = [...]` names it.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Use {
    Passwords,
    Tokens,
    AccessTokens,
}

/// `crypto` as written: `true` / `false`, or the uses.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Uses {
    All(bool),
    Some(Vec<Use>),
}

#[derive(Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Written {
    crypto: Option<Uses>,
}

impl CryptoGrant {
    fn any(self) -> bool {
        self.passwords || self.tokens || self.access_tokens
    }
}

/// As the admin API shows it: `{"crypto": ["passwords", ...]}`, the config's spelling.
impl serde::Serialize for CryptoGrant {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let uses = [
            (self.passwords, "passwords"),
            (self.tokens, "tokens"),
            (self.access_tokens, "access-tokens"),
        ];
        let named: Vec<&str> = uses.iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect();
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("crypto", &named)?;
        map.end()
    }
}

/// Per-instance state of the `crypto` import.
pub struct CryptoState {
    keys: Arc<Keys>,
    grant: CryptoGrant,
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
        let Written { crypto } = plugin.grant(Self::GRANT_KEYS)?;
        let mut grant = CryptoGrant::default();
        match crypto {
            None | Some(Uses::All(false)) => {}
            Some(Uses::All(true)) => {
                grant = CryptoGrant {
                    passwords: true,
                    tokens: true,
                    access_tokens: true,
                }
            }
            Some(Uses::Some(uses)) => {
                for use_ in uses {
                    match use_ {
                        Use::Passwords => grant.passwords = true,
                        Use::Tokens => grant.tokens = true,
                        Use::AccessTokens => grant.access_tokens = true,
                    }
                }
            }
        }
        let fix = "add `crypto = [\"passwords\"]`, `[\"tokens\"]` or `[\"access-tokens\"]` \
                   for what it does with the host's keys";
        plugin.require("micro-api:host/crypto", grant.any(), fix)?;
        Ok(grant)
    }

    fn prepare(&self, grant: &CryptoGrant, invocation: &Invocation<'_>) -> CryptoState {
        CryptoState {
            keys: self.keys.clone(),
            grant: *grant,
            plugin: invocation.plugin.clone(),
        }
    }
}
