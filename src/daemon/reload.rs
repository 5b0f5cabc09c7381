//! SIGHUP (or `systemctl reload`): the config file read again. An invalid
//! one is refused with its errors in the log and the running one stays;
//! `[daemon]` settings change only with a restart.

use std::sync::Arc;

use tracing::{error, info, warn};

use super::{Shared, lifecycle, lock, worker};
use crate::config::{self, CheckLevel};

/// SIGHUP: reads the config again; an invalid one is refused and the
/// running one stays.
pub(super) async fn reload(shared: &Arc<Shared>) {
    let path = shared.config_path.clone();
    info!(config = %path.display(), "SIGHUP: reloading the config");
    let loaded = tokio::task::spawn_blocking(move || config::load(&path, CheckLevel::Full)).await;
    let Some(mut new) = accepted(loaded) else {
        return;
    };
    let old = shared.config();
    if old.daemon != new.daemon {
        warn!(
            "the [daemon] settings (state_dir, log_dir, log_format, log_keep, grace, rescan, metrics) change only with a restart; the running ones stay"
        );
        new.daemon = old.daemon.clone();
    }
    if notify_outline(&old) != notify_outline(&new) {
        warn!("the [[notify]] destinations change only with a restart; the running ones stay");
    }
    let prepared =
        tokio::task::spawn_blocking(move || lifecycle::prepare_folders(&new).map(|()| new)).await;
    let Some(new) = accepted(prepared) else {
        return;
    };
    let names: Vec<String> = new
        .targets
        .iter()
        .map(|t| t.name.get_ref().clone())
        .collect();
    let sources: Vec<String> = new
        .sources
        .iter()
        .map(|s| s.name.get_ref().clone())
        .collect();
    shared.config.send_replace(Arc::new(new));
    shared.with_status(|status| {
        status.sources.retain(|name, _| sources.contains(name));
        for name in &sources {
            status.sources.entry(name.clone()).or_default();
        }
        status.targets.retain(|name, _| names.contains(name));
    });
    for name in names {
        let running = lock(&shared.wakers).contains_key(&name);
        if !running {
            worker::spawn_worker(shared, name);
        }
    }
    info!(config = %shared.config_path.display(), "config reloaded");
}

/// The new config out of a step of the reload, or the reason it is refused,
/// logged (the running config stays).
fn accepted<T, E: std::fmt::Display>(
    step: Result<Result<T, E>, tokio::task::JoinError>,
) -> Option<T> {
    match step {
        Ok(Ok(config)) => Some(config),
        Ok(Err(error)) => {
            error!("config reload refused, the running config stays: {error}");
            None
        }
        Err(error) => {
            error!(%error, "config reload failed, the running config stays");
            None
        }
    }
}

/// What a reload could change of the `[[notify]]` destinations, spans left
/// out (an edit elsewhere in the file moves them). Compared only, never
/// logged: a webhook's URL can hold its token.
fn notify_outline(config: &config::Config) -> Vec<String> {
    config
        .notify
        .iter()
        .map(|n| {
            let events: Vec<String> = n
                .events
                .get_ref()
                .iter()
                .map(|e| format!("{:?}", e.get_ref()))
                .collect();
            format!(
                "{:?} {:?} {events:?} {:?} {:?} {:?} {:?}",
                n.url.as_ref().map(|u| u.get_ref()),
                n.smtp.as_ref().map(|s| s.get_ref()),
                n.min_interval.get_ref(),
                n.down_after.get_ref(),
                n.to.as_ref().map(|to| to
                    .get_ref()
                    .iter()
                    .map(|t| t.get_ref().clone())
                    .collect::<Vec<_>>()),
                n.from.as_ref().map(|f| f.get_ref().clone()),
            )
        })
        .collect()
}
