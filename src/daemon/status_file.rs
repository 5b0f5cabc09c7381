//! `status.json` in the log folder and systemd's `STATUS=` line, from the
//! shared [`Status`] and the outbox and parked counts of the store.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use tracing::warn;

use super::status;
use super::{Shared, held_files, lifecycle, lock, notify_systemd, today, utc_now};
use crate::ingest::record::RecordKind;
use crate::store::{self, StoreError};

/// How many records of a target are parked as ambiguous, and the first
/// of them with their candidates.
fn ambiguous(
    store: &store::Store,
    target: &str,
) -> Result<(u64, Vec<status::AmbiguousRecord>), StoreError> {
    let mut count = 0u64;
    let mut listed = Vec::new();
    for kind in [RecordKind::Orgs, RecordKind::Users] {
        for item in store.ambiguous(target, kind) {
            let (key, candidates) = item?;
            count += 1;
            if listed.len() < status::AMBIGUOUS_LISTED {
                listed.push(status::AmbiguousRecord {
                    kind,
                    key,
                    candidates,
                });
            }
        }
    }
    Ok((count, listed))
}

/// The most of a `status.json` read back (it lists at most
/// [`status::AMBIGUOUS_LISTED`] records per target).
const READ_LIMIT: u64 = 8 * 1024 * 1024;

/// What the daemon before this one left in `status.json`, if it reads: a
/// missing or unreadable one is a first start (logged when it is not missing).
pub(super) fn read(log_dir: &Path) -> Option<status::Status> {
    let path = log_dir.join(status::FILE_NAME);
    let mut bytes = Vec::new();
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            warn!(%error, "cannot read the last status.json: status starts from nothing");
            return None;
        }
    };
    if let Err(error) = file.take(READ_LIMIT).read_to_end(&mut bytes) {
        warn!(%error, "cannot read the last status.json: status starts from nothing");
        return None;
    }
    match serde_json::from_slice(&bytes) {
        Ok(previous) => Some(previous),
        Err(error) => {
            warn!(%error, "the last status.json does not read: status starts from nothing");
            None
        }
    }
}

/// The day is over: its summary to `[[notify]]` (once a day, whoever
/// noticed the new day first).
fn daily(shared: &Shared, status: &status::Status) {
    {
        let mut sent = lock(&shared.daily_sent);
        if *sent == today() {
            return;
        }
        *sent = today();
    }
    if shared.notifier.wants(crate::notify::EventKind::Daily) {
        let (counts, lines) = status::daily_summary(status);
        shared
            .notifier
            .send(crate::notify::Event::daily(utc_now(), counts, &lines));
    }
}

/// Writes `status.json` (atomically) and tells systemd the one-line status.
pub(super) async fn write(shared: &Arc<Shared>, running: bool) {
    let config = shared.config();
    let held_folders: Vec<(String, std::path::PathBuf)> = config
        .sources
        .iter()
        .map(|s| {
            (
                s.name.get_ref().clone(),
                s.inbox.get_ref().join(lifecycle::HELD),
            )
        })
        .collect();
    let held = tokio::task::spawn_blocking(move || {
        held_folders
            .into_iter()
            .map(|(name, folder)| (name, held_files::list(&folder)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let names: Vec<String> = config
        .targets
        .iter()
        .map(|t| t.name.get_ref().clone())
        .collect();
    let counts = store::blocking(&shared.store, move |store| {
        names
            .into_iter()
            .map(|name| {
                let outbox = store.outbox_len(&name) as u64;
                let mut parked = 0u64;
                for kind in [RecordKind::Orgs, RecordKind::Users] {
                    for item in store.parked(&name, kind) {
                        item?;
                        parked += 1;
                    }
                }
                let ambiguous = ambiguous(store, &name)?;
                Ok((name, outbox, parked, ambiguous))
            })
            .collect::<Result<Vec<_>, StoreError>>()
    })
    .await;
    let snapshot = {
        let mut status = lock(&shared.status);
        match counts {
            Ok(counts) => {
                for (name, outbox, parked, (ambiguous, listed)) in counts {
                    let gauges = crate::metrics::TargetGauges {
                        outbox,
                        parked,
                        ambiguous,
                    };
                    crate::metrics::get().target_gauges(&name, gauges);
                    let target = status.targets.entry(name).or_default();
                    target.outbox = outbox;
                    target.parked = parked;
                    target.ambiguous = ambiguous;
                    target.ambiguous_records = listed;
                }
            }
            Err(error) => warn!(%error, "cannot count the outboxes for status.json"),
        }
        for (name, files) in held {
            crate::metrics::get().held_files(&name, files.len() as u64);
            status.sources.entry(name).or_default().held = files;
        }
        let day = today().to_string();
        if status.day != day {
            daily(shared, &status);
            status.day = day;
            status.files_today = 0;
        }
        status.updated_at = utc_now();
        status.running = running;
        status.clone()
    };
    notify_systemd(&[sd_notify::NotifyState::Status(&status::status_line(
        &snapshot,
    ))]);
    let path = config.daemon.log_dir.join(status::FILE_NAME);
    let written = tokio::task::spawn_blocking(move || {
        let mut bytes = serde_json::to_vec_pretty(&snapshot).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        lifecycle::write_atomic(&path, &bytes, crate::file_modes::Access::Private)
    })
    .await;
    if let Ok(Err(error)) = written {
        warn!(%error, "cannot write status.json");
    }
}
