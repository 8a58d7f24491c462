//! The WIT glue of the `config` import.

use super::ConfigState;
use crate::bindings::Error;
use crate::bindings::micro_api::host::config::Host;

impl Host for &mut ConfigState {
    #[tracing::instrument(name = "config.get", skip_all, fields(otel.kind = "internal", config.key = %key))]
    async fn get(&mut self, key: String) -> Result<Option<String>, Error> {
        match self.values.get(&key) {
            Some(value) => Ok(Some(value.to_string())),
            None => Err(Error::Forbidden(format!(
                "config key {key:?} is not granted to {}; set it under [plugin.{}.config]",
                self.plugin, self.plugin
            ))),
        }
    }
}
