//! Where a taken file goes once accepted: its side files, the move to
//! `archive/`, `rejected/` or `held/`, its one `file processed` log line, the
//! status, and its open report handed to the reporter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use tracing::{debug, error, info, warn};

use super::file_report::{Archived, FileReport};
use super::reporter::ReportEvent;
use super::{Shared, lifecycle, today, utc_now};
use crate::config::{Config, SourceConfig};
use crate::escape;
use crate::plan::Plan;
use crate::sync::{self, Accepted};

/// Why a file could not be taken or filed away; it stays in the inbox and
/// is tried again when it changes.
#[derive(Debug, thiserror::Error)]
pub enum FilingError {
    #[error(transparent)]
    Source(#[from] crate::config::SpecError),
    #[error(transparent)]
    Sync(#[from] sync::SyncError),
    #[error("cannot move {} to {folder}/: {error}{}", path.display(), crate::sandbox::hint(error))]
    Move {
        path: PathBuf,
        folder: &'static str,
        error: std::io::Error,
    },
    /// The commit stands: reported (when the report could be written) and
    /// pushed; only the file could not be moved.
    #[error(
        "committed and pushing, but cannot move {} to archive/: {error}{}; it stays in the inbox and is not committed again",
        path.display(),
        crate::sandbox::hint(error)
    )]
    Unmoved {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("internal error: {0}")]
    Task(String),
}

impl FilingError {
    /// See [`sync::SyncError::state_disk_failure`].
    pub fn state_disk_failure(&self) -> Option<bool> {
        match self {
            FilingError::Sync(error) => error.state_disk_failure(),
            _ => None,
        }
    }
}

/// Writes the plan down before its commit (see [`lifecycle::COMMITS`]).
pub(super) fn note_before_commit(config: &Config) -> sync::BeforeCommit {
    let state_dir = config.daemon.state_dir.clone();
    Box::new(move |plan, sha256| lifecycle::write_commit_note(&state_dir, plan, sha256))
}

// Where a committed file left in the inbox is found again.
pub(super) use super::landed::landed_commit;

/// Test only: with `ROSTERSYNC_TEST_EXIT_AFTER_COMMIT=1` the daemon exits
/// (code 86) right after a file's commit, before the file is archived: the
/// crash window `tests/daemon_recovery.rs` reproduces. Never set in service.
pub(super) fn exit_after_commit_for_tests() {
    if std::env::var_os("ROSTERSYNC_TEST_EXIT_AFTER_COMMIT").is_some_and(|v| v == "1") {
        error!(
            "ROSTERSYNC_TEST_EXIT_AFTER_COMMIT=1: exiting right after the commit, before the archive (a crash-recovery test)"
        );
        std::process::exit(86);
    }
}

/// Test only: with `ROSTERSYNC_TEST_EXIT_AFTER_ARCHIVE=1` the daemon exits
/// (code 87) right after a committed file is moved to `archive/`, before the
/// commit note is removed: the crash window `tests/daemon_recovery.rs`
/// reproduces. Never set in service.
fn exit_after_archive_for_tests() {
    if std::env::var_os("ROSTERSYNC_TEST_EXIT_AFTER_ARCHIVE").is_some_and(|v| v == "1") {
        error!(
            "ROSTERSYNC_TEST_EXIT_AFTER_ARCHIVE=1: exiting right after the archive, before the commit note is removed (a crash-recovery test)"
        );
        std::process::exit(87);
    }
}

/// Test only: with `ROSTERSYNC_TEST_REMOVE_AFTER_COMMIT=1` the file is
/// deleted right after its commit, before it is archived: HR removing a
/// file the daemon has read (`tests/daemon_intake.rs`). Never set in service.
pub(super) fn remove_after_commit_for_tests(path: &Path) {
    if std::env::var_os("ROSTERSYNC_TEST_REMOVE_AFTER_COMMIT").is_some_and(|v| v == "1") {
        let _ = std::fs::remove_file(path);
    }
}

/// Where a file went.
pub(super) struct Disposed {
    pub(super) outcome: &'static str,
    pub(super) moved_to: PathBuf,
}

/// Files a processed file away, logs its one summary line, updates the
/// status, and hands a committed plan's report to the reporter and its
/// targets' workers.
pub(super) async fn settle_file(
    shared: &Arc<Shared>,
    source: &SourceConfig,
    path: &Path,
    name: &str,
    accepted: Accepted,
    resumed: bool,
    started: std::time::Instant,
) -> Result<Disposed, FilingError> {
    let notes = match &accepted {
        Accepted::Committed(plan) => own_notes(shared, source, plan).await?,
        _ => None,
    };
    let actions = notes.as_ref().map(|notes| notes.actions.clone());
    let filed = place(source, path, name, &accepted, resumed, actions).await?;
    if matches!(accepted, Accepted::Committed(_)) {
        exit_after_archive_for_tests();
    }
    // A commit is reported and pushed whatever became of its file.
    let reported = filed.unmoved.as_ref().is_none_or(|u| u.reported);
    if let Some(notes) = notes
        && reported
    {
        forget_notes(source, notes).await?;
    }
    let source_name = source.name.get_ref().clone();
    let millis = started.elapsed().as_millis() as u64;
    let shown = shown_name(path, name);
    let moved = escape::path(&filed.disposed.moved_to);
    log_processed(&source_name, &shown, &moved, &accepted, resumed, millis);
    if let Some((report_path, report)) = filed.open_report {
        let _ = shared
            .reports
            .send(ReportEvent::Open(report_path, Box::new(report)));
    }
    if let Accepted::Committed(_) = &accepted {
        for target in source.targets.get_ref() {
            shared.wake(target.get_ref());
        }
    }
    if let Some(unmoved) = filed.unmoved {
        let error = unmoved.error;
        if error.kind() != std::io::ErrorKind::NotFound {
            error!(source = %source_name, file = %shown, %error, reported = unmoved.reported,
                "the file is committed and its changes are being pushed, but it cannot be moved to archive/: it stays in the inbox and is not committed again{}",
                crate::sandbox::hint(&error));
            return Err(FilingError::Unmoved {
                path: path.to_path_buf(),
                error,
            });
        }
        warn!(source = %source_name, file = %shown, report = %moved,
            "the file was removed from the inbox before it could be archived: its commit stands, its report is in archive/ and its changes are being pushed");
    }
    record_file(&source_name, filed.disposed.outcome, started);
    notify_file(shared, &source_name, &shown, &accepted);
    let day = today().to_string();
    shared.with_status(|status| {
        status.count_file(&day);
        let entry = status.sources.entry(source_name).or_default();
        entry.last_file = Some(shown);
        entry.outcome = Some(filed.disposed.outcome.to_string());
        entry.moved_to = Some(moved);
        entry.at = Some(utc_now());
        entry.error = None;
        entry.reason = refusal(&accepted);
    });
    Ok(filed.disposed)
}

/// A file filed away, in the metrics: its outcome, how long it took and,
/// accepted, when its source last gave a good file.
pub(super) fn record_file(source: &str, outcome: &str, started: std::time::Instant) {
    let metrics = crate::metrics::get();
    metrics.file_processed(source, outcome, started.elapsed().as_secs_f64());
    if matches!(outcome, "archived" | "duplicate") {
        metrics.source_succeeded(source, crate::sync::unix_now() as f64);
    }
}

/// A held or refused file, to `[[notify]]`: where its problems are, not
/// what they say (a message may quote a value of the file).
fn notify_file(shared: &Shared, source: &str, shown: &str, accepted: &Accepted) {
    use crate::notify::Event;
    let reason = refusal(accepted).unwrap_or_default();
    let event = match accepted {
        Accepted::Held(_) => Event::held(utc_now(), source, shown, &reason),
        Accepted::Refused(ingested) => {
            let places: Vec<(u64, u64)> = ingested
                .problems
                .iter()
                .filter(|p| p.is_error())
                .take(20)
                .map(|p| (p.line, p.column))
                .collect();
            Event::rejected(utc_now(), source, shown, &reason, &places)
        }
        _ => return,
    };
    shared.notifier.send(event);
}

/// Why a file was refused or held, as `status` and the log give it: the
/// verdict (its quoted values escaped by ingest) or the safety rule.
fn refusal(accepted: &Accepted) -> Option<String> {
    match accepted {
        Accepted::Refused(ingested) => match &ingested.verdict {
            crate::ingest::Verdict::Refused { reason } => Some(reason.clone()),
            crate::ingest::Verdict::Accepted => None,
        },
        Accepted::Held(plan) => plan.held.as_ref().map(ToString::to_string),
        _ => None,
    }
}

/// A file's name as people see it: escaped, and with the bytes of a name
/// that is not UTF-8 (which the store and reports keep replaced) in hex.
fn shown_name(path: &Path, name: &str) -> String {
    match path.file_name() {
        Some(own) if own.to_str().is_none() => escape::os(own),
        _ => escape::text(name).into_owned(),
    }
}

/// The one `file processed` line of a file.
fn log_processed(
    source_name: &str,
    shown: &str,
    moved: &str,
    accepted: &Accepted,
    resumed: bool,
    millis: u64,
) {
    match accepted {
        Accepted::Refused(ingested) => warn!(
            source = %source_name, file = %shown, outcome = "rejected", rows = ingested.rows,
            problems = ingested.problems.len(),
            reason = %refusal(accepted).unwrap_or_default(), moved_to = %moved, ms = millis,
            "file processed: refused, nothing changed (every problem is in the .errors.txt beside it)"
        ),
        Accepted::Duplicate => info!(
            source = %source_name, file = %shown, outcome = "duplicate", moved_to = %moved, ms = millis,
            "file processed: the same bytes as the last accepted file, nothing to push"
        ),
        Accepted::AlreadyCommitted { .. } => info!(
            source = %source_name, file = %shown, outcome = "duplicate", moved_to = %moved, ms = millis,
            "file processed: the same bytes as a file committed before, not committed again"
        ),
        Accepted::Held(plan) => warn!(
            source = %source_name, file = %shown, outcome = "held", rows = plan.rows,
            rule = %plan.held.iter().chain(&plan.held_also).map(ToString::to_string).collect::<Vec<_>>().join("; "),
            moved_to = %moved, ms = millis,
            "file processed: held by a safety rule; see the .plan.txt beside it, release it with `rostersync approve`"
        ),
        Accepted::Committed(plan) => {
            let message = if resumed {
                "file processed: committed before a restart, archived now; pushing what is left to the targets"
            } else {
                "file processed: committed, pushing to the targets"
            };
            info!(
                source = %source_name, file = %shown, outcome = "archived", rows = plan.rows,
                targets = %crate::report::counts_per_target(plan),
                moved_to = %moved, ms = millis,
                "{message}"
            );
        }
    }
}

/// What was written down before a commit, for its filing: its actions
/// (beside its report once filed) and the plan itself (no longer needed
/// once it is).
struct Notes {
    state_dir: PathBuf,
    source: String,
    actions: PathBuf,
}

/// The notes of a commit about to be filed, if they are its own: they are
/// the source's last commit's, and an older commit filed late (its file
/// could not be moved) leaves them to theirs.
async fn own_notes(
    shared: &Arc<Shared>,
    source: &SourceConfig,
    plan: &Plan,
) -> Result<Option<Notes>, FilingError> {
    let state_dir = shared.config().daemon.state_dir.clone();
    let source = source.name.get_ref().clone();
    let plan = serde_json::to_value(plan).ok();
    tokio::task::spawn_blocking(move || {
        let note = lifecycle::read_commit_note(&state_dir, &source);
        if note.is_some_and(|note| serde_json::to_value(&note.plan).ok() != plan) {
            return None;
        }
        let actions = crate::sync::actions_note_path(&state_dir, &source);
        Some(Notes {
            state_dir,
            source,
            actions,
        })
    })
    .await
    .map_err(|error| FilingError::Task(error.to_string()))
}

/// A committed file is filed, its report beside it with its actions: what
/// was written down before the commit goes.
async fn forget_notes(source: &SourceConfig, notes: Notes) -> Result<(), FilingError> {
    let removed = tokio::task::spawn_blocking(move || match std::fs::remove_file(&notes.actions) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => lifecycle::remove_commit_note(&notes.state_dir, &notes.source),
    })
    .await
    .map_err(|error| FilingError::Task(error.to_string()))?;
    if let Err(error) = removed {
        warn!(source = %source.name.get_ref(), %error, "cannot remove the plan written down before the commit; the file is archived all the same");
    }
    Ok(())
}

pub(super) struct Filed {
    pub(super) disposed: Disposed,
    /// A report with records still pending.
    open_report: Option<(PathBuf, FileReport)>,
    /// A committed file that could not be moved: why.
    unmoved: Option<Unmoved>,
}

struct Unmoved {
    error: std::io::Error,
    /// Its report was written in `archive/` all the same.
    reported: bool,
}

/// Moves a file to `archive/`, `rejected/` or `held/` with its side files.
/// A plan's actions keep the statuses they have (`approve` without a daemon
/// pushes before filing); the others are `pending`. A committed file
/// deleted meanwhile is filed all the same: its report, without it.
pub(super) async fn file_away(
    source: &SourceConfig,
    path: &Path,
    name: &str,
    accepted: &Accepted,
    resumed: bool,
) -> Result<Filed, FilingError> {
    let mut filed = place(source, path, name, accepted, resumed, None).await?;
    match filed.unmoved.take() {
        Some(unmoved) if unmoved.error.kind() != std::io::ErrorKind::NotFound => {
            Err(FilingError::Unmoved {
                path: path.to_path_buf(),
                error: unmoved.error,
            })
        }
        _ => Ok(filed),
    }
}

/// What goes where for a file: outcome, folder, side files (suffix and
/// bytes) and, for a committed plan, its report.
type Placement = (
    &'static str,
    &'static str,
    Vec<(&'static str, Vec<u8>)>,
    Option<FileReport>,
);

/// Writes a file's side files and moves it. A committed file that cannot
/// move is no error: its commit stands, and [`Filed::unmoved`] says why.
/// Any other file that cannot move stays as it was, side files removed.
/// `actions`: the commit's written-down actions, put beside its report and
/// named in it before the file moves, so that a crash once it has moved
/// finds the report whole.
async fn place(
    source: &SourceConfig,
    path: &Path,
    name: &str,
    accepted: &Accepted,
    resumed: bool,
    actions: Option<PathBuf>,
) -> Result<Filed, FilingError> {
    let at = Utc::now();
    let inbox = source.inbox.get_ref().clone();
    let committed = matches!(accepted, Accepted::Committed(_));
    let (outcome, folder, mut sides, mut report) = placement(source, name, accepted, resumed, at)?;
    let file = path.to_path_buf();
    let name = name.to_string();
    let (report, placed) = tokio::task::spawn_blocking(move || {
        let destination = match lifecycle::destination(&inbox, folder, &name, at) {
            Ok(destination) => destination,
            Err(error) => return (report, Err((None, error))),
        };
        if let (Some(note), Some(open)) = (&actions, &mut report) {
            open.actions_file = beside_report(note, &destination);
            for (suffix, bytes) in &mut sides {
                if *suffix == lifecycle::REPORT_SUFFIX {
                    *bytes = pretty(open);
                }
            }
        }
        let refs: Vec<(&str, &[u8])> = sides.iter().map(|(s, b)| (*s, b.as_slice())).collect();
        if let Err(error) = lifecycle::write_sides(&destination, &refs) {
            return (report, Err((None, error)));
        }
        let placed = match lifecycle::move_into(&file, &destination) {
            Ok(()) => Ok(destination),
            Err(error) if committed => Err((Some(destination), error)),
            Err(error) => {
                let suffixes: Vec<&str> = sides.iter().map(|(s, _)| *s).collect();
                lifecycle::remove_sides(&destination, &suffixes);
                Err((None, error))
            }
        };
        (report, placed)
    })
    .await
    .map_err(|error| FilingError::Task(error.to_string()))?;
    let (moved_to, unmoved) = match placed {
        Ok(moved_to) => (moved_to, None),
        Err((written, error)) if committed => {
            let reported = written.is_some();
            let unmoved = Unmoved { error, reported };
            (written.unwrap_or_else(|| path.to_path_buf()), Some(unmoved))
        }
        Err((_, error)) => {
            return Err(FilingError::Move {
                path: path.to_path_buf(),
                folder,
                error,
            });
        }
    };
    if unmoved.is_none() {
        debug!(
            source = %source.name.get_ref(), file = %escape::path(path),
            moved_to = %escape::path(&moved_to), "file moved to {folder}/"
        );
    }
    let reported = unmoved.as_ref().is_none_or(|u| u.reported);
    let open_report = report
        .filter(|_| reported)
        .map(|r| (lifecycle::beside(&moved_to, lifecycle::REPORT_SUFFIX), r));
    Ok(Filed {
        disposed: Disposed { outcome, moved_to },
        open_report,
        unmoved,
    })
}

/// Where a file goes and the side files it gets there.
fn placement(
    source: &SourceConfig,
    name: &str,
    accepted: &Accepted,
    resumed: bool,
    at: chrono::DateTime<Utc>,
) -> Result<Placement, FilingError> {
    Ok(match accepted {
        Accepted::Refused(ingested) => {
            let spec = source.spec()?;
            let text = lifecycle::errors_text(&escape::text(name), ingested, &spec);
            (
                "rejected",
                lifecycle::REJECTED,
                vec![(lifecycle::ERRORS_SUFFIX, text.into_bytes())],
                None,
            )
        }
        // Committed before: nothing is done again.
        Accepted::Duplicate | Accepted::AlreadyCommitted { .. } => {
            let plan = Plan {
                source: source.name.get_ref().clone(),
                file: name.to_string(),
                rows: 0,
                held: None,
                problems: Vec::new(),
                held_also: Vec::new(),
                targets: BTreeMap::new(),
            };
            let report = FileReport::new(&plan, Archived::Duplicate, at);
            (
                "duplicate",
                lifecycle::ARCHIVE,
                vec![(lifecycle::REPORT_SUFFIX, pretty(&report))],
                None,
            )
        }
        Accepted::Held(plan) => (
            "held",
            lifecycle::HELD,
            vec![
                (
                    lifecycle::PLAN_TEXT_SUFFIX,
                    crate::report::plan_table(plan).into_bytes(),
                ),
                (lifecycle::PLAN_JSON_SUFFIX, pretty(plan)),
            ],
            None,
        ),
        Accepted::Committed(plan) => {
            let how = if resumed {
                Archived::CommittedBeforeRestart
            } else {
                Archived::Committed
            };
            let report = FileReport::new(plan, how, at);
            let bytes = pretty(&report);
            (
                "archived",
                lifecycle::ARCHIVE,
                vec![(lifecycle::REPORT_SUFFIX, bytes)],
                (!report.complete).then_some(report),
            )
        }
    })
}

/// Puts a commit's written-down actions beside its report; their name
/// there. A failure is logged: the report's counts and first actions stand
/// without them.
fn beside_report(note: &Path, destination: &Path) -> Option<String> {
    match lifecycle::link_actions_note(note, destination) {
        Ok(name) => name,
        Err(error) => {
            warn!(file = %escape::path(destination), %error, "cannot put every action beside the report; the report lists the first ones");
            None
        }
    }
}

/// Pretty JSON with a final newline.
pub(super) fn pretty<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
