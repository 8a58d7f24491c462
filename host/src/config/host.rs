//! The `config` import: a plugin reads only the values `[plugin.<name>.config]` gives it.

use std::collections::BTreeMap;

use crate::bindings::Error;
use crate::bindings::micro_api::host::config::Host;
use crate::plugins::Plugin;

pub struct ConfigState {
    plugin: String,
    values: BTreeMap<String, String>,
}

impl ConfigState {
    pub fn prepare(plugin: &Plugin) -> Self {
        Self {
            plugin: plugin.name.clone(),
            values: plugin.grants.config.clone(),
        }
    }
}

impl Host for &mut ConfigState {
    #[tracing::instrument(name = "config.get", skip_all, fields(otel.kind = "internal", config.key = %key))]
    async fn get(&mut self, key: String) -> Result<Option<String>, Error> {
        match self.values.get(&key) {
            Some(value) => Ok(Some(value.clone())),
            None => Err(Error::Forbidden(format!(
                "config key {key:?} is not granted to {}; set it under [plugin.{}.config]",
                self.plugin, self.plugin
            ))),
        }
    }
}
