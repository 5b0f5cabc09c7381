//! The state directory's health. A write there that fails for the disk's
//! sake (full, read-only, an IO error) is not the file's fault: the daemon
//! stops taking files and pushing, says why in the log, `status` and
//! systemd's STATUS line, and keeps answering signals and the control
//! socket. A probe (a small file written, synced and removed), tried with
//! backoff, tells when the disk takes writes again.
//!
//! sled keeps an IO error for good (every later write of that store fails)
//! and what it holds in memory may then be ahead of the disk; so once the
//! store itself failed, recovery is a restart: the daemon re-executes
//! itself and opens the store as after a crash (the file it was taking is
//! still in its inbox and is taken again). A failure outside the store
//! (the plan note of `commits/`) clears without a restart.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{error, info};

use super::status::StateFailure;
use super::{Shared, lock, utc_now};

/// The first probe comes this long after the failure…
const FIRST_PROBE: Duration = Duration::from_secs(1);
/// …then twice as long each time, up to this.
const PROBE_AT_MOST: Duration = Duration::from_secs(60);
/// What the probe writes in each folder: a write this size must fit for the
/// daemon to go on.
const PROBE_BYTES: usize = 1 << 20;
/// Set on the restart that reopens the store: the backoff it had reached,
/// in seconds, so that a disk still too full to commit is not probed every
/// second by a daemon restarting again and again.
pub const PROBE_AFTER_VARIABLE: &str = "ROSTERSYNC_STATE_PROBE_AFTER";
/// A failure this soon after such a restart goes on with its backoff.
const BACKOFF_KEPT_FOR: Duration = Duration::from_secs(600);

/// Where the failure was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// The sled store: recovering means reopening it (a restart).
    Store,
    /// Another file of the state directory.
    Files,
}

/// Shared by the tasks: whether the state directory is failing.
pub(super) struct StateHealth {
    failed: std::sync::Mutex<Option<Failed>>,
    started: std::time::Instant,
    /// The backoff reached by the last probe (for the restart).
    delay: std::sync::Mutex<Duration>,
    /// The probe's wake-up (a new failure).
    failing: Notify,
    /// Everyone waiting for the state directory to take writes again.
    recovered: Notify,
}

impl StateHealth {
    pub fn new() -> StateHealth {
        StateHealth {
            failed: Default::default(),
            started: std::time::Instant::now(),
            delay: std::sync::Mutex::new(FIRST_PROBE),
            failing: Notify::new(),
            recovered: Notify::new(),
        }
    }

    /// The backoff the probe had reached, to hand to the restart.
    pub fn probe_after(&self) -> Duration {
        *lock(&self.delay)
    }

    /// The first probe's delay: [`FIRST_PROBE`], or more soon after a
    /// restart for the store.
    fn first_delay(&self) -> Duration {
        let inherited = std::env::var(PROBE_AFTER_VARIABLE)
            .ok()
            .and_then(|secs| secs.parse::<u64>().ok())
            .map(Duration::from_secs);
        match inherited {
            Some(delay) if self.started.elapsed() < BACKOFF_KEPT_FOR => {
                (delay * 2).clamp(FIRST_PROBE, PROBE_AT_MOST)
            }
            _ => FIRST_PROBE,
        }
    }

    pub fn is_failing(&self) -> bool {
        lock(&self.failed).is_some()
    }

    /// Waits until the state directory takes writes again (at once if it does).
    pub async fn recovered(&self) {
        loop {
            let notified = self.recovered.notified();
            if !self.is_failing() {
                return;
            }
            notified.await;
        }
    }
}

impl Shared {
    /// Notes an IO failure of the state directory. The first one is logged
    /// and starts the probe; later ones while it fails add nothing (a
    /// store failure makes the whole failure a store one).
    pub(super) fn state_failed(&self, failed: Failed, error: &str) {
        let first = {
            let mut current = lock(&self.state.failed);
            let first = current.is_none();
            if first || failed == Failed::Store {
                *current = Some(failed);
            }
            first
        };
        if first {
            error!(
                %error,
                "the state directory cannot be written: files wait in their inbox and pushes pause until it can; it is checked again with backoff"
            );
            self.with_status(|s| {
                s.state_error = Some(StateFailure {
                    since: utc_now(),
                    error: error.to_string(),
                    store: failed == Failed::Store,
                    probes: 0,
                    next_probe: None,
                })
            });
            self.state.failing.notify_one();
        } else if failed == Failed::Store {
            self.with_status(|s| {
                if let Some(state) = &mut s.state_error {
                    state.store = true;
                }
            });
        }
    }
}

/// The probe task: after each failure, probes the state directory with
/// backoff until it takes writes; then either clears the failure or, if the
/// store failed, asks for a restart and stops the daemon.
pub(super) async fn probe_task(shared: Arc<Shared>) {
    loop {
        let failing = shared.state.failing.notified();
        if !shared.state.is_failing() {
            tokio::select! {
                _ = shared.cancel.cancelled() => return,
                () = failing => continue,
            }
        }
        let mut delay = shared.state.first_delay();
        loop {
            *lock(&shared.state.delay) = delay;
            let next = chrono::Utc::now()
                + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(60));
            shared.with_status(|s| {
                if let Some(state) = &mut s.state_error {
                    state.next_probe =
                        Some(next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                }
            });
            tokio::select! {
                _ = shared.cancel.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            let dir = shared.config().daemon.state_dir.clone();
            let probed = tokio::task::spawn_blocking(move || probe_state_dir(&dir))
                .await
                .map_err(std::io::Error::other)
                .and_then(|result| result);
            shared.with_status(|s| {
                if let Some(state) = &mut s.state_error {
                    state.probes += 1;
                }
            });
            match probed {
                Ok(()) => break,
                Err(error) => {
                    info!(%error, next_in = ?(delay * 2).min(PROBE_AT_MOST), "the state directory still cannot be written");
                    delay = (delay * 2).min(PROBE_AT_MOST);
                }
            }
        }
        let failed = lock(&shared.state.failed).take();
        if failed == Some(Failed::Store) {
            info!("the state directory takes writes again: restarting to reopen the store");
            shared
                .restart
                .store(true, std::sync::atomic::Ordering::SeqCst);
            shared.cancel.cancel();
            return;
        }
        info!("the state directory takes writes again: taking files and pushing again");
        shared.with_status(|s| s.state_error = None);
        shared.state.recovered.notify_waiters();
    }
}

/// Probes each folder of the state directory the daemon writes (the store
/// and the plan notes may be on file systems of their own).
fn probe_state_dir(state_dir: &Path) -> std::io::Result<()> {
    probe(state_dir)?;
    for folder in [
        state_dir.join("db"),
        state_dir.join(super::lifecycle::COMMITS),
    ] {
        if folder.is_dir() {
            probe(&folder)?;
        }
    }
    Ok(())
}

/// Writes, syncs and removes a file of [`PROBE_BYTES`] in `dir`.
fn probe(dir: &Path) -> std::io::Result<()> {
    let path: PathBuf = dir.join(format!(".probe.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&vec![0u8; PROBE_BYTES])?;
        file.sync_all()
    })();
    let removed = std::fs::remove_file(&path);
    written?;
    match removed {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        probe(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_probe_fails_where_nothing_can_be_written() {
        let dir = tempfile::tempdir().unwrap();
        assert!(probe(&dir.path().join("missing")).is_err());
    }
}
