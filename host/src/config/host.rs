//! The `config` import: a plugin reads only the values `[plugin.<name>.config]` and
//! `[plugin.<name>.secrets]` give it, as the config in force when its invocation started
//! (a change applied while the host runs is seen by the next request).

use crate::app::App;
use crate::bindings::Error;
use crate::bindings::micro_api::host::config::Host;
use crate::config::PluginConfig;
use crate::plugins::Plugin;

pub struct ConfigState {
    plugin: String,
    granted: PluginConfig,
}

impl ConfigState {
    pub fn prepare(app: &App, plugin: &Plugin) -> Self {
        Self {
            plugin: plugin.name.clone(),
            granted: app.current_config().plugin_config(&plugin.name),
        }
    }
}

impl Host for &mut ConfigState {
    #[tracing::instrument(name = "config.get", skip_all, fields(otel.kind = "internal", config.key = %key))]
    async fn get(&mut self, key: String) -> Result<Option<String>, Error> {
        let value = self.granted.config.get(&key).cloned().or_else(|| {
            self.granted
                .secrets
                .get(&key)
                .map(|secret| secret.expose().to_string())
        });
        match value {
            Some(value) => Ok(Some(value)),
            None => Err(Error::Forbidden(format!(
                "config key {key:?} is not granted to {}; set it under [plugin.{}.config]",
                self.plugin, self.plugin
            ))),
        }
    }
}
