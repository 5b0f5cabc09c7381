//! One target's worker: drains its outbox whenever woken (after each
//! commit, `retry`, a reload) and, every `retry.max_interval`, tries again
//! the records parked after transient failures. A target that is down keeps
//! its outbox and holds up no one else.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::reporter::ReportEvent;
use super::state_health::Failed;
use super::supervise::{self, Ended};
use super::{Shared, lock, utc_now};
use crate::connectors::{ConnectorError, SettingsError};
use crate::push::{self, DrainControl, Drained, PushError, PushTarget};
use crate::secret::GivenAtStart;
use crate::{store, sync};

/// What brings a target whose connector cannot be built: a reload for the
/// config, a restart for what systemd hands over at start.
fn how_to_fix(error: &ConnectorError) -> &'static str {
    let given_at_start = match error {
        ConnectorError::Settings {
            error: SettingsError::Secret(secret),
            ..
        } => secret.given_at_start(),
        ConnectorError::Settings { .. } => None,
    };
    match given_at_start {
        Some(GivenAtStart::Credential) => {
            "the service is restarted with its credential: systemd reads LoadCredential= only when the service starts, so a reload cannot bring it (add it with `systemctl edit rostersync`, then `systemctl restart rostersync`)"
        }
        Some(GivenAtStart::Environment) => {
            "the service is restarted with its variable: the service's environment (Environment=, EnvironmentFile=) is set only when it starts, so a reload cannot bring it (`systemctl restart rostersync`)"
        }
        None => "its config is fixed (then `systemctl reload rostersync`, or SIGHUP)",
    }
}

/// Starts a target's worker, supervised: one that panics is started again
/// with the same wake-up, so commits keep reaching it.
pub(super) fn spawn_worker(shared: &Arc<Shared>, name: String) {
    let wake = Arc::new(Notify::new());
    lock(&shared.wakers).insert(name.clone(), Arc::clone(&wake));
    let task = format!("worker {name}");
    let for_task = Arc::clone(shared);
    supervise::spawn(&shared.tasks, shared.cancel.clone(), task, move || {
        worker(Arc::clone(&for_task), name.clone(), Arc::clone(&wake))
    });
}

/// One target's worker: drains its outbox whenever woken, until stopped or
/// its target leaves the config.
async fn worker(shared: Arc<Shared>, name: String, wake: Arc<Notify>) -> Ended {
    let mut ended = Ended::Returned;
    let mut config_rx = shared.config.subscribe();
    'config: loop {
        let config = config_rx.borrow_and_update().clone();
        let Some(target) = config.targets.iter().find(|t| t.name.get_ref() == &name) else {
            info!(target = %name, "target removed from the config: its worker stops");
            lock(&shared.halted).remove(&name);
            ended = Ended::OnPurpose;
            break;
        };
        let retry = target.retry.clone();
        let pusher = match PushTarget::from_config(target) {
            Ok(pusher) => pusher,
            Err(error) => {
                error!(target = %name, %error, "cannot push to this target until {}", how_to_fix(&error));
                shared.with_status(|s| {
                    s.targets.entry(name.clone()).or_default().last_error = Some(error.to_string())
                });
                tokio::select! {
                    _ = shared.cancel.cancelled() => break,
                    changed = config_rx.changed() => {
                        if changed.is_err() { break }
                        continue 'config;
                    }
                }
            }
        };
        // Records parked after transient failures are tried again this often.
        let every = retry.max_interval.0.max(Duration::from_secs(1));
        let mut next_unpark = Instant::now() + every;
        // Stopped with records waiting (credentials refused): tried again
        // as often as parked transient failures are.
        let mut on_hold = false;
        loop {
            // Nothing is pushed while the state directory fails: what the
            // store holds in memory may be ahead of its disk.
            if shared.state.is_failing() {
                tokio::select! {
                    _ = shared.cancel.cancelled() => break 'config,
                    () = shared.state.recovered() => {}
                }
            }
            let mut stopped = None;
            let (drained, reloaded) =
                match drain_with_grace(&shared, &name, &pusher, &mut config_rx).await {
                    None => break 'config,
                    Some(ended) => ended,
                };
            match drained {
                Ok(drained) => {
                    note_drained(&shared, &name, &drained);
                    on_hold = drained.on_hold;
                    stopped = drained.stopped;
                }
                Err(PushError::Store(error)) if error.is_io() => {
                    shared.state_failed(Failed::Store, &error.to_string());
                }
                Err(error) => {
                    error!(target = %name, %error, "pushing to this target failed; tried again when woken");
                    shared.with_status(|s| {
                        s.targets.entry(name.clone()).or_default().last_error =
                            Some(error.to_string())
                    });
                }
            }
            // A drain longer than the interval leaves the next turn behind it.
            next_unpark = next_unpark.max(Instant::now() + every / 2);
            let _ = shared.reports.send(ReportEvent::Drained {
                target: name.clone(),
                stopped,
            });
            shared.touch();
            if shared.cancel.is_cancelled() {
                break 'config;
            }
            if reloaded {
                // The next attempt uses the new config, now.
                info!(target = %name, "config reloaded: trying this target again with it");
                continue 'config;
            }
            loop {
                tokio::select! {
                    _ = shared.cancel.cancelled() => break 'config,
                    _ = wake.notified() => break,
                    changed = config_rx.changed() => {
                        if changed.is_err() { break 'config }
                        continue 'config;
                    }
                    _ = tokio::time::sleep_until(next_unpark) => {
                        next_unpark = Instant::now() + every;
                        if on_hold {
                            info!(target = %name, "trying again the target that stopped with its records waiting");
                            break;
                        }
                        let target = name.clone();
                        // Parked a whole interval ago at least (`at` is in
                        // whole seconds: one more, so never sooner).
                        let parked_by = sync::unix_now() - every.as_secs() as i64 - 1;
                        match store::blocking(&shared.store, move |s| s.unpark_transient(&target, parked_by)).await {
                            Ok(0) => {}
                            Ok(count) => {
                                info!(target = %name, records = count, "trying again the records parked after transient failures");
                                break;
                            }
                            Err(error) => error!(target = %name, %error, "cannot release parked records"),
                        }
                    }
                }
            }
        }
    }
    // A worker that ended for any other reason is started again with the
    // same wake-up (or the daemon is stopping): its waker stays.
    if ended == Ended::OnPurpose {
        let mut wakers = lock(&shared.wakers);
        if wakers.get(&name).is_some_and(|w| Arc::ptr_eq(w, &wake)) {
            wakers.remove(&name);
        }
    }
    ended
}

/// Drains a target; when the daemon stops meanwhile, the drain gets
/// `[daemon] grace` to finish, then is cut (what it sent unacknowledged is sent
/// again on the next start: connectors make a replay harmless). A reload
/// cuts the drain's wait before a retry; then `true` comes with the result.
async fn drain_with_grace(
    shared: &Arc<Shared>,
    name: &str,
    pusher: &PushTarget,
    config_rx: &mut tokio::sync::watch::Receiver<Arc<crate::config::Config>>,
) -> Option<(Result<Drained, PushError>, bool)> {
    let interrupt = CancellationToken::new();
    let for_status = Arc::clone(shared);
    let target = name.to_string();
    let control = DrainControl::new(interrupt.clone(), move |why| {
        for_status.with_status(|s| {
            s.targets.entry(target.clone()).or_default().last_error = Some(why.to_string())
        });
    });
    let drain = push::drain(&shared.store, pusher, sync::unix_now, &control);
    tokio::pin!(drain);
    let mut reloaded = false;
    loop {
        tokio::select! {
            result = &mut drain => return Some((result, reloaded)),
            _ = shared.cancel.cancelled() => {
                let grace = shared.config().daemon.grace.0;
                return match tokio::time::timeout(grace, &mut drain).await {
                    Ok(result) => Some((result, reloaded)),
                    Err(_) => {
                        warn!(target = %name, "requests still in flight were cut after the grace period; they are sent again on the next start");
                        None
                    }
                };
            }
            changed = config_rx.changed(), if !reloaded => {
                // Requests in flight finish; the wait before a retry is cut.
                reloaded = true;
                if changed.is_ok() {
                    interrupt.cancel();
                }
            }
        }
    }
}

fn note_drained(shared: &Shared, name: &str, drained: &Drained) {
    let (done, parked) = (drained.done, drained.parked);
    if done > 0 || parked > 0 {
        info!(target = %name, done, parked, "pushed");
    }
    notify_parked(shared, name, drained);
    let parked = drained.last_parked.clone();
    {
        let mut halted = lock(&shared.halted);
        match &drained.stopped {
            Some(reason) => halted.insert(name.to_string(), reason.clone()),
            None => halted.remove(name),
        };
    }
    shared.with_status(|status| {
        let target = status.targets.entry(name.to_string()).or_default();
        if done > 0 {
            target.last_push_at = Some(utc_now());
        }
        if let Some(reason) = &drained.stopped {
            target.last_error = Some(format!("stopped: {reason}"));
        } else if let Some(reason) = parked {
            target.last_error = Some(reason);
        } else if done > 0 {
            target.last_error = None;
        }
    });
}

/// Records parked in a drain, to `[[notify]]`: by kind and key, with the
/// logins an ambiguous one could be; the reasons stay in `status` and `show`.
fn notify_parked(shared: &Shared, name: &str, drained: &Drained) {
    use crate::notify::{Event, Item};
    let at = utc_now;
    let (mut parked, mut ambiguous) = (Vec::new(), Vec::new());
    for record in &drained.parked_records {
        if record.candidate_logins.is_empty() {
            parked.push(Item::record(record.kind, &record.key));
        } else {
            let logins = record.candidate_logins.clone();
            ambiguous.push(Item::ambiguous(record.kind, &record.key, logins));
        }
    }
    let others = drained.parked - drained.ambiguous;
    if others > 0 {
        shared
            .notifier
            .send(Event::parked(at(), name, others, parked));
    }
    if drained.ambiguous > 0 {
        let count = drained.ambiguous;
        shared
            .notifier
            .send(Event::ambiguous(at(), name, count, ambiguous));
    }
}
