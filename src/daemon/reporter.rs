//! The reporter: updates each file's `.report.json` as its targets take or
//! park its records, until every action is done or parked.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{error, warn};

use super::Shared;
use super::file_report::FileReport;
use super::lifecycle;
use crate::model::{PushStatus, RecordKey, RecordKind};
use crate::store::{Reader, Store, StoreError};

/// How often reports with pending actions are checked against the store,
/// besides the events that say a target drained.
const RECHECK_OPEN_REPORTS: Duration = Duration::from_secs(2);

/// What the reporter hears of.
pub(super) enum ReportEvent {
    /// A report with pending actions, just written.
    Open(PathBuf, Box<FileReport>),
    /// A target's worker finished a drain.
    Drained(String),
}

/// Keeps the reports whose records are not all taken yet, and updates them
/// after each drain. Reports left open by an earlier run are found on start
/// (and again when the task is restarted: the files say where they stand).
pub(super) async fn reporter(
    shared: Arc<Shared>,
    events: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<ReportEvent>>>,
) {
    let mut events = events.lock().await;
    let inboxes: Vec<PathBuf> = shared
        .config()
        .sources
        .iter()
        .map(|s| s.inbox.get_ref().clone())
        .collect();
    let mut open: Vec<(PathBuf, FileReport)> = tokio::task::spawn_blocking(move || {
        inboxes
            .iter()
            .flat_map(|inbox| lifecycle::open_reports(inbox))
            .filter_map(|path| {
                let bytes = std::fs::read(&path).ok()?;
                let report = serde_json::from_slice(&bytes).ok()?;
                Some((path, report))
            })
            .collect()
    })
    .await
    .unwrap_or_default();
    loop {
        // Events say when to look, but a report still open is also looked
        // at again every few seconds: the store says where each record
        // stands at any moment, so no race between events can leave a
        // report pending for good.
        let first = tokio::select! {
            event = events.recv() => match event {
                Some(event) => Some(event),
                None => break,
            },
            _ = tokio::time::sleep(RECHECK_OPEN_REPORTS), if !open.is_empty() => None,
            _ = shared.cancel.cancelled() => break,
        };
        let mut drained = BTreeSet::new();
        if first.is_none() {
            for (_, report) in &open {
                drained.extend(report.targets().cloned());
            }
        }
        let mut next = first;
        while let Some(event) = next {
            match event {
                ReportEvent::Open(path, report) => {
                    // Resolved at once too: its target may have drained
                    // already (a report found at restart, a quick push) and
                    // send no further event. The store says where each
                    // record stands at any moment.
                    drained.extend(report.targets().cloned());
                    open.push((path, *report));
                }
                ReportEvent::Drained(target) => {
                    drained.insert(target);
                }
            }
            next = events.try_recv().ok();
        }
        if drained.is_empty() || open.is_empty() {
            continue;
        }
        let store = Arc::clone(&shared.store);
        let taken = std::mem::take(&mut open);
        open = tokio::task::spawn_blocking(move || update_reports(&store, taken, &drained))
            .await
            .unwrap_or_default();
    }
}

fn update_reports(
    store: &Store,
    mut open: Vec<(PathBuf, FileReport)>,
    drained: &BTreeSet<String>,
) -> Vec<(PathBuf, FileReport)> {
    for (path, report) in &mut open {
        let mut changed = false;
        for target in drained {
            // One reader for the report: its records come mostly in key
            // order, so each group of the store is read once.
            let mut reader = store.reader();
            let lookup = |kind, key: &str| record_status(store, &mut reader, target, kind, key);
            match report.resolve(target, lookup) {
                Ok(c) => changed |= c,
                Err(error) => error!(report = %path.display(), %error, "cannot update the report"),
            }
        }
        if changed {
            let written = serde_json::to_vec_pretty(report)
                .map_err(std::io::Error::other)
                .and_then(|bytes| lifecycle::write_atomic(path, &bytes));
            if let Err(error) = written {
                warn!(report = %path.display(), %error, "cannot update the report");
            }
        }
    }
    open.retain(|(_, report)| !report.complete);
    open
}

fn record_status(
    store: &Store,
    reader: &mut Reader<'_>,
    target: &str,
    kind: RecordKind,
    key: &str,
) -> Result<Option<PushStatus>, StoreError> {
    let key = RecordKey {
        target: target.to_string(),
        kind,
        key: key.to_string(),
    };
    if let Some(parked) = store.parked_item(&key)? {
        return Ok(Some(PushStatus::Parked {
            reason: parked.reason,
        }));
    }
    Ok(
        match reader.stored(&key)?.and_then(|stored| stored.queued) {
            None => Some(PushStatus::Done),
            Some(_) => None,
        },
    )
}
