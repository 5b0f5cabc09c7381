//! The reporter: updates each file's `.report.json` as its targets take or
//! park its records, until every action is done or parked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::file_modes::{Access, create_file};
use tokio::sync::mpsc;
use tracing::{error, warn};

use super::Shared;
use super::file_report::FileReport;
use super::lifecycle;
use crate::model::{ActionStatus, PushStatus, RecordKey, RecordKind};
use crate::plan_output::ActionLine;
use crate::store::Store;

/// How often reports with pending actions are checked against the store,
/// besides the events that say a target drained.
const RECHECK_OPEN_REPORTS: Duration = Duration::from_secs(2);
/// Complete reports with parked actions kept to update when a retry gets
/// those through (after each drain only), the newest first.
const KEEP_PARKED_REPORTS: usize = 32;

/// What the reporter hears of.
pub(super) enum ReportEvent {
    /// A report with pending actions, just written.
    Open(PathBuf, Box<FileReport>),
    /// A target's worker finished a drain; why pushing to it stopped, if it did.
    Drained {
        target: String,
        stopped: Option<String>,
    },
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
    // The last word of each target's worker on whether it stopped.
    let mut stops: BTreeMap<String, Option<String>> = BTreeMap::new();
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
            for (_, report) in open.iter().filter(|(_, r)| !r.complete) {
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
                ReportEvent::Drained { target, stopped } => {
                    drained.insert(target.clone());
                    stops.insert(target, stopped);
                }
            }
            next = events.try_recv().ok();
        }
        if drained.is_empty() || open.is_empty() {
            continue;
        }
        let store = Arc::clone(&shared.store);
        let taken = std::mem::take(&mut open);
        let known = stops.clone();
        open = tokio::task::spawn_blocking(move || update_reports(&store, taken, &drained, &known))
            .await
            .unwrap_or_default();
    }
}

fn update_reports(
    store: &Store,
    mut open: Vec<(PathBuf, FileReport)>,
    drained: &BTreeSet<String>,
    stops: &BTreeMap<String, Option<String>>,
) -> Vec<(PathBuf, FileReport)> {
    for (path, report) in &mut open {
        let mut changed = false;
        // A target that stopped with its records waiting says so once, in
        // the report, rather than through a parked record per person.
        for (target, stopped) in stops {
            if let Some(plan) = report.plan.targets.get_mut(target)
                && plan.stopped != *stopped
            {
                plan.stopped = stopped.clone();
                changed = true;
            }
        }
        for target in drained {
            // One reader for the report: its records come mostly in key
            // order, so each group of the store is read once.
            let mut reader = store.reader();
            let lookup = |kind, key: &str| reader.push_status(&record_key(target, kind, key));
            match report.resolve(target, lookup) {
                Ok(c) => changed |= c,
                Err(error) => {
                    error!(report = %crate::escape::path(path), %error, "cannot update the report")
                }
            }
        }
        if let Some(name) = report.actions_file.clone() {
            let file = path.with_file_name(&name);
            match resolve_actions_file(store, &file, report, drained) {
                Ok(c) => changed |= c,
                Err(error) => {
                    error!(actions = %crate::escape::path(&file), %error, "cannot update the actions file")
                }
            }
        }
        if changed {
            let written = serde_json::to_vec_pretty(report)
                .map_err(std::io::Error::other)
                .and_then(|bytes| lifecycle::write_atomic(path, &bytes, Access::Shared));
            if let Err(error) = written {
                warn!(report = %crate::escape::path(path), %error, "cannot update the report");
            }
        }
    }
    // Kept: reports still pending, and the newest that have parked records.
    let mut kept_parked = 0;
    for index in (0..open.len()).rev() {
        let report = &open[index].1;
        let keep = !report.complete
            || (report.has_parked() && {
                kept_parked += 1;
                kept_parked <= KEEP_PARKED_REPORTS
            });
        if !keep {
            open.remove(index);
        }
    }
    open
}

/// Sets where each pending action of `drained` targets stands in a report's
/// `.actions.jsonl` (rewritten line by line, never held whole), adds the
/// parked ones the report does not list to it (a report lists every parked
/// record), and keeps the report incomplete while a line is pending.
fn resolve_actions_file(
    store: &Store,
    file: &Path,
    report: &mut FileReport,
    drained: &BTreeSet<String>,
) -> std::io::Result<bool> {
    use std::io::{BufRead, Write};
    // Hidden, as the temporary files of atomic writes are.
    let partial = file.with_file_name(format!(
        ".{}.part",
        file.file_name().unwrap_or_default().to_string_lossy()
    ));
    let input = std::io::BufReader::new(std::fs::File::open(file)?);
    let mut output = std::io::BufWriter::new(create_file(&partial, Access::Shared)?);
    let mut reader = store.reader();
    let (mut changed, mut pending) = (false, 0u64);
    let mut parked: std::collections::BTreeMap<String, u64> = Default::default();
    for line in input.lines() {
        let line = line?;
        let Ok(mut entry) = serde_json::from_str::<ActionLine>(&line) else {
            output.write_all(line.as_bytes())?; // kept as it was
            output.write_all(b"\n")?;
            continue;
        };
        let action = &mut entry.action;
        let open = matches!(action.status, None | Some(ActionStatus::Pending));
        if action.status == Some(ActionStatus::Parked) && drained.contains(&entry.target) {
            let status = reader
                .push_status(&record_key(&entry.target, action.kind, &action.ext_id))
                .map_err(std::io::Error::other)?;
            if status == Some(PushStatus::Done) {
                // A retry (or a later file) got it through.
                action.settle(status);
                action.reason = None;
                action.candidates = Vec::new();
                changed = true;
            }
        } else if open && drained.contains(&entry.target) {
            let status = reader
                .push_status(&record_key(&entry.target, action.kind, &action.ext_id))
                .map_err(std::io::Error::other)?;
            let parked = matches!(status, Some(PushStatus::Parked { .. }));
            if !action.settle(status) {
                action.status = Some(ActionStatus::Pending);
            }
            // A report lists every parked record.
            if parked
                && let Some(target) = report.plan.targets.get_mut(&entry.target)
                && !target
                    .actions
                    .iter()
                    .any(|listed| listed.ext_id == action.ext_id && listed.kind == action.kind)
            {
                target.actions.push(action.clone());
            }
            changed = true;
        }
        match action.status {
            None | Some(ActionStatus::Pending) => pending += 1,
            Some(ActionStatus::Parked) => *parked.entry(entry.target.clone()).or_default() += 1,
            Some(ActionStatus::Done) => {}
        }
        serde_json::to_writer(&mut output, &entry)?;
        output.write_all(b"\n")?;
    }
    output
        .into_inner()
        .map_err(|error| error.into_error())?
        .sync_all()?;
    if changed {
        std::fs::rename(&partial, file)?;
    } else {
        let _ = std::fs::remove_file(&partial);
    }
    // The file has every action: its figures are the report's.
    let before = (
        report.complete,
        report
            .plan
            .targets
            .values()
            .map(|t| t.parked)
            .collect::<Vec<_>>(),
    );
    for (name, target) in &mut report.plan.targets {
        target.parked = parked.get(name).copied().unwrap_or(0);
    }
    report.complete = pending == 0 && report.all_taken();
    let after = (
        report.complete,
        report
            .plan
            .targets
            .values()
            .map(|t| t.parked)
            .collect::<Vec<_>>(),
    );
    Ok(changed || before != after)
}

fn record_key(target: &str, kind: RecordKind, key: &str) -> RecordKey {
    RecordKey {
        target: target.to_string(),
        kind,
        key: key.to_string(),
    }
}
