//! `micro-api config get|set|unset|list`: the etcd layer of the config, edited from the
//! command line. A value is checked with every other layer before it is written, so a
//! `set` never leaves an invalid config in etcd; secrets are never printed.

use std::collections::BTreeMap;

use anyhow::Context;
use clap::Subcommand;
use micro_api::config::etcd::Store;
use micro_api::config::layers::is_secret_key;
use micro_api::config::live::Source;
use micro_api::settings::REDACTED;

#[derive(Subcommand)]
pub enum Action {
    /// Every key of the etcd layer with its value (secrets as <secret>).
    List,
    /// One key's value in the etcd layer (`section/key`, e.g. `breaker/default/timeout_ms`).
    Get { key: String },
    /// Sets a key, once the whole config with it is valid; hosts apply it at once.
    Set { key: String, value: String },
    /// Removes a key: the layers below decide its value again.
    Unset { key: String },
}

pub async fn run(source: Source, action: Action) -> anyhow::Result<()> {
    let base = source.load(&BTreeMap::new())?;
    let mut store = Store::connect(&base.config.config_store)
        .await
        .context("cannot reach the config store")?;
    let (mut values, _) = store.read().await?;
    let shown = |key: &str, value: &str| {
        if is_secret_key(key) {
            REDACTED.to_string()
        } else {
            value.to_string()
        }
    };
    match action {
        Action::List => {
            for (key, value) in &values {
                println!("{key} = {}", shown(key, value));
            }
        }
        Action::Get { key } => match values.get(&key) {
            Some(value) => println!("{}", shown(&key, value)),
            None => anyhow::bail!("{key} is not set in the config store"),
        },
        Action::Set { key, value } => {
            values.insert(key.clone(), value.clone());
            source
                .load(&values)
                .with_context(|| format!("refused: {key} would make the config invalid"))?;
            store.put(&key, &value).await?;
            println!("{key} set");
        }
        Action::Unset { key } => {
            values.remove(&key);
            source.load(&values).with_context(|| {
                format!("refused: removing {key} would make the config invalid")
            })?;
            if !store.delete(&key).await? {
                anyhow::bail!("{key} is not set in the config store");
            }
            println!("{key} removed");
        }
    }
    Ok(())
}
