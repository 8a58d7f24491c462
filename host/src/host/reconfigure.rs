//! Applying a config change while the host runs, from the top: read every layer again,
//! keep the running value of what only a restart applies, check every loaded plugin
//! against the new grants, then hand each part its new settings. An invalid change is
//! refused whole: the running config stays, and the reason is logged and shown under
//! `GET /admin/config`.

use async_trait::async_trait;

use super::Host;
use crate::config::layers::Layered;
use crate::config::watch::Changes;

impl Host {
    /// Reads every layer again and applies the result, or refuses it with the reason.
    pub async fn reconfigure(&self, cause: &str) {
        // Plugin reloads read the config too: one at a time.
        let _one_at_a_time = self.lifecycle.hold().await;
        let store = self.live.store.lock().clone();
        let outcome = match self.live.source.load(&store) {
            Ok(layered) => self.apply(layered),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(true) => tracing::info!(%cause, "config change applied"),
            Ok(false) => self.live.set_error(None),
            Err(reason) => {
                tracing::error!(%cause, %reason, "config change refused: the running config stays");
                self.live.set_error(Some(reason));
            }
        }
    }

    /// Puts `layered` in force; `Ok(false)` when nothing changed.
    fn apply(&self, layered: Layered) -> Result<bool, String> {
        let (config, pending_restart) = self.live.keep_restart_only(layered.config);
        let running = self.live.current();
        let json = |c: &crate::config::Config| serde_json::to_value(c).unwrap_or_default();
        let unchanged = json(&config) == json(&running)
            && config.plugin == running.plugin
            && pending_restart == self.live.status().pending_restart;
        if unchanged {
            return Ok(false);
        }
        let settings = config.plugin_settings();
        let configured = self.lifecycle.revalidate(&settings).map_err(|problems| {
            format!(
                "the change would refuse loaded plugins:\n  - {}",
                problems.join("\n  - ")
            )
        })?;
        if !pending_restart.is_empty() {
            tracing::warn!(keys = ?pending_restart, "config changed in sections that only a restart applies");
        }
        self.breakers.apply(&config.breaker);
        self.gateway.set_routes(&config.route);
        self.live.store(config, layered.origins, pending_restart);
        self.lifecycle.apply(settings, configured);
        Ok(true)
    }
}

#[async_trait]
impl Changes for Host {
    async fn changed(&self, cause: &'static str) {
        self.reconfigure(cause).await;
    }
}
