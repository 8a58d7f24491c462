//! The WIT glue of `wasi:config/store`: grant first, then the plugin's values.

use super::WasiConfigState;
use super::bindings::wasi::config::store::{Error, Host};

impl WasiConfigState {
    fn granted(&self) -> Result<(), Error> {
        if self.grant.enabled {
            return Ok(());
        }
        Err(Error::Upstream(format!(
            "{} is not granted wasi:config; add `wasi_config = true` to [plugin.{}]",
            self.plugin, self.plugin
        )))
    }
}

impl Host for &mut WasiConfigState {
    #[tracing::instrument(name = "wasi_config.get", skip_all, fields(otel.kind = "internal", config.key = %key))]
    async fn get(&mut self, key: String) -> Result<Option<String>, Error> {
        self.granted()?;
        Ok(self.grant.values.get(&key).map(str::to_string))
    }

    #[tracing::instrument(name = "wasi_config.get_all", skip_all, fields(otel.kind = "internal"))]
    async fn get_all(&mut self) -> Result<Vec<(String, String)>, Error> {
        self.granted()?;
        let values = &self.grant.values;
        let plain = values.config.iter().map(|(k, v)| (k.clone(), v.clone()));
        let secrets = values
            .secrets
            .iter()
            .filter(|_| self.grant.secrets_in_get_all)
            .map(|(k, v)| (k.clone(), v.expose().to_string()));
        Ok(plain.chain(secrets).collect())
    }
}
