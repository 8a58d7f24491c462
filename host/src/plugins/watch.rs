//! Reloading the plugins folder whenever it changes (`notify`, debounced) or SIGHUP
//! arrives, until the host stops.

use std::sync::Arc;
use std::time::Duration;

use super::Lifecycle;

/// Reloads whenever the plugins folder changes or SIGHUP arrives, until the host stops.
pub fn watch(lifecycle: Arc<Lifecycle>) -> anyhow::Result<()> {
    use notify::Watcher;
    let (changed, mut changes) = tokio::sync::mpsc::channel::<()>(1);
    let on_change = changed.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // A full channel already means "reload soon".
            let _ = on_change.try_send(());
        }
    })?;
    let settings = lifecycle.settings();
    if settings.plugins.watch {
        watcher.watch(&settings.plugins.dir, notify::RecursiveMode::NonRecursive)?;
    }
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while let Some(()) = hangup.recv().await {
            tracing::info!("SIGHUP: reloading plugins");
            let _ = changed.try_send(());
        }
    });
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        let debounce = Duration::from_millis(settings.plugins.settle_ms.max(20));
        while changes.recv().await.is_some() {
            // Let a burst of events (a copy, an editor's save) end before looking.
            tokio::time::sleep(debounce).await;
            while changes.try_recv().is_ok() {}
            loop {
                match lifecycle.reload().await {
                    Ok(report) if !report.pending.is_empty() => {
                        tokio::time::sleep(debounce * 2).await;
                    }
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the plugins folder");
                        break;
                    }
                }
            }
        }
    });
    Ok(())
}
