//! The file processor: watches the inboxes (`notify`, plus a periodic
//! rescan), takes each complete file in order, and is the only task that
//! commits plans (files, approvals, the daily date re-plan, the seeds of
//! targets new to a source, `forget-target`), one at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::ignored::Ignored;
use super::ops::Answer;
use super::reading::{self, Contents};
use super::state_health::Failed;
use super::{Shared, approve, dates, filing, landed, seed, today, utc_now};
use crate::config::{Config, Ready, SourceConfig};
use crate::escape;
use crate::ingest;
use crate::ingest::record::RecordKind;
use crate::sync::{self, Accepted, Approval, SyncContext};
use crate::watch::{self, Candidate, Rule, Tracker, Unfit, Watchers};

/// How often the day is checked for the date re-plan.
const DATE_CHECK: Duration = Duration::from_secs(60);

/// What the processor woke up for.
enum Woke {
    Stop,
    Config,
    Request(ProcessorRequest),
    /// Inbox events.
    Events,
    /// A deadline or the periodic rescan: look at the inboxes again.
    Look,
    Dates,
}

/// Work that other tasks hand to the processor, so that it stays the only
/// one that commits.
pub(super) enum ProcessorRequest {
    Approve {
        file: PathBuf,
        force_older: bool,
        reply: oneshot::Sender<Answer>,
    },
    /// `forget-target NAME`: the processor commits seeds, which name targets.
    ForgetTarget {
        target: String,
        reply: oneshot::Sender<Answer>,
    },
}

/// Watches the inboxes and takes each complete file, one at a time; also
/// runs approvals and the daily date re-plan, so that it is the only task
/// that commits.
///
/// It beats the heartbeat that feeds systemd's watchdog at every turn of its
/// loop and while it works on a file: if it dies or stops turning, the
/// watchdog is no longer fed and systemd restarts the daemon.
pub(super) async fn processor(
    shared: Arc<Shared>,
    requests: Arc<tokio::sync::Mutex<mpsc::Receiver<ProcessorRequest>>>,
    ready: Arc<Notify>,
) {
    let mut requests = requests.lock().await;
    let wake = Arc::new(Notify::new());
    let mut config_rx = shared.config.subscribe();
    let mut config = config_rx.borrow_and_update().clone();
    let mut watchers = start_watchers(&config, &wake);
    ready.notify_one();
    // Before any file: a target new to a source gets its snapshot first.
    shared
        .heartbeat
        .while_busy(seed::seed_sources(&shared, &config))
        .await;
    let mut tracker = Tracker::default();
    let mut ignored = Ignored::default();
    // Files that could not be processed, until they change.
    let mut failed: HashMap<PathBuf, (u64, SystemTime)> = HashMap::new();
    // `[daemon]` settings change only with a restart: this one stays.
    let mut rescan = tokio::time::interval(config.daemon.rescan.get_ref().0);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut date_tick = tokio::time::interval(DATE_CHECK);
    date_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        shared.heartbeat.beat();
        if shared.cancel.is_cancelled() {
            break;
        }
        let (candidates, unfit) = scan_inboxes(&config, &failed).await;
        for (index, entries) in unfit {
            if let Some(source) = config.sources.get(index) {
                ignored.report(&shared, source.name.get_ref(), entries);
            }
        }
        let observed = tracker.observe(candidates, std::time::Instant::now());
        log_changed(&config, &observed.changed);
        let mut took = false;
        for candidate in observed.ready {
            // Files wait in their inbox while the state directory fails.
            if shared.cancel.is_cancelled() || shared.state.is_failing() {
                break;
            }
            let Some(source) = config.sources.get(candidate.source) else {
                continue;
            };
            let taken_at = std::time::Instant::now();
            let taken = shared
                .heartbeat
                .while_busy(take(&shared, &config, source, &candidate.path))
                .await;
            if let Err(error) = taken {
                // The error names the file: escaped like the name itself.
                let reason = escape::text(&error.to_string()).into_owned();
                if let Some(in_store) = error.state_disk_failure() {
                    // Not the file's fault: taken again once the disk recovers.
                    let failed = if in_store {
                        Failed::Store
                    } else {
                        Failed::Files
                    };
                    shared.state_failed(failed, &reason);
                    shared.with_status(|s| {
                        let entry = s.sources.entry(source.name.get_ref().clone()).or_default();
                        entry.last_file = Some(escape::file_name(&candidate.path));
                        entry.outcome = Some("waiting".into());
                        entry.at = Some(utc_now());
                        entry.error = Some(format!(
                            "{reason}; it stays in the inbox until the state directory takes writes"
                        ));
                        entry.moved_to = None;
                    });
                    tracker.forget(&candidate.path);
                    took = true;
                    break;
                }
                // A commit whose file did not move was logged as such already.
                if !matches!(error, filing::FilingError::Unmoved { .. }) {
                    error!(source = %source.name.get_ref(), file = %escape::path(&candidate.path), error = %reason, "cannot process the file; it stays in the inbox and is tried again when it changes");
                }
                failed.insert(candidate.path.clone(), (candidate.size, candidate.modified));
                filing::record_file(source.name.get_ref(), "failed", taken_at);
                shared.with_status(|s| {
                    let entry = s.sources.entry(source.name.get_ref().clone()).or_default();
                    entry.last_file = Some(escape::file_name(&candidate.path));
                    entry.outcome = Some("failed".into());
                    entry.at = Some(utc_now());
                    entry.error = Some(reason);
                    entry.reason = None;
                    entry.moved_to = None;
                });
            }
            tracker.forget(&candidate.path);
            took = true;
        }
        if took {
            stall_for_tests(&shared).await;
            continue; // more may have arrived meanwhile
        }
        let deadline = observed.next.map(Instant::from_std);
        let failing = shared.state.is_failing();
        // Waiting beats too (every second), without scanning more often
        // than the events, the next deadline or `[daemon] rescan` ask.
        let woke = shared
            .heartbeat
            .while_busy(async {
                tokio::select! {
                    biased;
                    _ = shared.cancel.cancelled() => Woke::Stop,
                    changed = config_rx.changed() => match changed {
                        Ok(()) => Woke::Config,
                        Err(_) => Woke::Stop,
                    },
                    Some(request) = requests.recv() => Woke::Request(request),
                    _ = wake.notified() => Woke::Events,
                    _ = sleep_until(deadline) => Woke::Look,
                    _ = rescan.tick() => Woke::Look,
                    () = shared.state.recovered(), if failing => Woke::Look,
                    _ = date_tick.tick() => Woke::Dates,
                }
            })
            .await;
        match woke {
            Woke::Stop => break,
            Woke::Config => {
                config = config_rx.borrow_and_update().clone();
                watchers = start_watchers(&config, &wake);
                tracker = Tracker::default();
                failed.clear();
                ignored.retain(
                    &config
                        .sources
                        .iter()
                        .map(|s| s.name.get_ref().clone())
                        .collect(),
                );
                shared
                    .heartbeat
                    .while_busy(seed::seed_sources(&shared, &config))
                    .await;
            }
            Woke::Request(ProcessorRequest::Approve {
                file,
                force_older,
                reply,
            }) => {
                let answer = shared
                    .heartbeat
                    .while_busy(approve::approve(&shared, &config, &file, force_older))
                    .await;
                let _ = reply.send(answer);
            }
            Woke::Request(ProcessorRequest::ForgetTarget { target, reply }) => {
                let answer = shared
                    .heartbeat
                    .while_busy(seed::forget_target(&shared, &config, target))
                    .await;
                let _ = reply.send(answer);
            }
            Woke::Events => {
                // A burst of events (a file written in pieces): one scan for all.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Woke::Look => {}
            // The re-plan commits: not while the state directory fails.
            Woke::Dates if shared.state.is_failing() => {}
            Woke::Dates => {
                shared
                    .heartbeat
                    .while_busy(dates::replan(&shared, &config))
                    .await
            }
        }
    }
    drop(watchers);
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn start_watchers(config: &Config, wake: &Arc<Notify>) -> Option<Watchers> {
    let inboxes: Vec<(PathBuf, bool, Duration)> = config
        .sources
        .iter()
        .map(|s| {
            (
                s.inbox.get_ref().clone(),
                s.poll,
                watch::poll_interval(s.settle.0),
            )
        })
        .collect();
    match Watchers::start(&inboxes, Arc::clone(wake)) {
        Ok(watchers) => Some(watchers),
        Err(error) => {
            let every = config.daemon.rescan.get_ref().0;
            warn!(%error, "cannot watch the inboxes for events; they are scanned every {every:?} (daemon.rescan) instead");
            None
        }
    }
}

/// What the inboxes hold: the files that may be taken, and per source (by
/// index, for each inbox that could be read) the entries that will not be.
type Scanned = (Vec<Candidate>, Vec<(usize, Vec<(PathBuf, Unfit)>)>);

async fn scan_inboxes(config: &Config, failed: &HashMap<PathBuf, (u64, SystemTime)>) -> Scanned {
    let sources: Vec<(usize, RecordKind, PathBuf, Ready, Duration)> = config
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| (i, s.kind, s.inbox.get_ref().clone(), s.ready, s.settle.0))
        .collect();
    let failed = failed.clone();
    tokio::task::spawn_blocking(move || {
        let mut candidates = Vec::new();
        let mut unfit = Vec::new();
        for (index, kind, inbox, ready, settle) in sources {
            let scan = match watch::scan(&inbox) {
                Ok(scan) => scan,
                Err(error) => {
                    warn!(inbox = %escape::path(&inbox), %error, "cannot read the inbox");
                    continue;
                }
            };
            unfit.push((index, scan.unfit));
            for (path, size, modified) in scan.found {
                if failed.get(&path) == Some(&(size, modified)) {
                    continue;
                }
                let (rule, marker) = match ready {
                    Ready::Stable => (Rule::Settle(settle), false),
                    Ready::Marker => (Rule::Marker, watch::has_marker(&path)),
                };
                candidates.push(Candidate {
                    source: index,
                    kind,
                    path,
                    size,
                    modified,
                    rule,
                    marker,
                });
            }
        }
        (candidates, unfit)
    })
    .await
    .unwrap_or_default()
}

/// A debug line for each file seen for the first time or seen changed:
/// what it waits for before it is taken.
fn log_changed(config: &Config, changed: &[Candidate]) {
    for candidate in changed {
        let Some(source) = config.sources.get(candidate.source) else {
            continue;
        };
        let source = source.name.get_ref().as_str();
        let file = escape::path(&candidate.path);
        let size = candidate.size;
        match candidate.rule {
            Rule::Settle(settle) => debug!(
                %source, %file, size, settle = ?settle,
                "file seen: settling (taken once its size and mtime stay unchanged for settle)"
            ),
            Rule::Marker if candidate.marker => {
                debug!(%source, %file, size, "file seen, its marker beside it")
            }
            Rule::Marker => {
                debug!(%source, %file, size, "file seen: waiting for its marker (NAME.done or NAME.ok)")
            }
        }
    }
}

/// Test only: with `ROSTERSYNC_TEST_STALL_PROCESSOR=1` the processor stops
/// turning (without beating) once it has taken a file, until the daemon
/// stops: the hang that systemd's watchdog must catch
/// (`tests/daemon_watchdog.rs`). Never set in service.
async fn stall_for_tests(shared: &Shared) {
    if std::env::var_os("ROSTERSYNC_TEST_STALL_PROCESSOR").is_some_and(|v| v == "1") {
        error!("ROSTERSYNC_TEST_STALL_PROCESSOR=1: the file processor stalls (a watchdog test)");
        shared.cancel.cancelled().await;
    }
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

pub(super) fn context<'a>(
    shared: &Shared,
    config: &'a Config,
    file_name: Option<String>,
) -> SyncContext<'a> {
    SyncContext {
        config,
        store: Arc::clone(&shared.store),
        today: today(),
        now: sync::unix_now,
        file_name,
    }
}

/// Reads a drop (see [`reading`]) off the executor.
async fn read(source: &SourceConfig, path: &Path) -> Result<Contents, sync::SyncError> {
    let (file, limit) = (path.to_path_buf(), source.max_file_size);
    tokio::task::spawn_blocking(move || reading::read_drop(&file, limit))
        .await
        .map_err(|error| sync::SyncError::Join(error.to_string()))?
        .map_err(|error| sync::SyncError::Read {
            file: path.display().to_string(),
            error,
        })
}

/// One complete file: accept it, then file it away.
async fn take(
    shared: &Arc<Shared>,
    config: &Config,
    source: &SourceConfig,
    path: &Path,
) -> Result<(), filing::FilingError> {
    let started = std::time::Instant::now();
    let name = file_name(path);
    debug!(source = %source.name.get_ref(), file = %escape::path(path), "file ready: taking it");
    let bytes = match read(source, path).await? {
        Contents::Bytes(bytes) => bytes,
        // Refused on its size alone, before a byte of it is read.
        Contents::TooBig(reason) => {
            let refused = Accepted::Refused(ingest::refused(reason));
            return filing::settle_file(shared, source, path, &name, refused, false, started)
                .await
                .map(|_| ());
        }
    };
    let accepted = sync::accept_checked(
        &context(shared, config, None),
        source,
        path,
        bytes,
        Approval::None,
        Some(filing::note_before_commit(config)),
        Some(landed::already_committed(shared, config, source, path)),
    )
    .await?;
    let mut resumed = false;
    let accepted = match accepted {
        Accepted::Committed(plan) => {
            filing::exit_after_commit_for_tests();
            filing::remove_after_commit_for_tests(path);
            Accepted::Committed(plan)
        }
        // Its bytes were committed already: perhaps because it is that very
        // file, left in the inbox (the daemon stopped before its archive, or
        // it could not be moved), to be filed away now with that commit's plan.
        Accepted::Duplicate | Accepted::AlreadyCommitted { .. } => {
            let sha256 = match &accepted {
                Accepted::AlreadyCommitted { sha256 } => Some(*sha256),
                _ => None, // the source's last accepted file's
            };
            match filing::landed_commit(shared, config, source, &name, sha256).await {
                Some(plan) => {
                    resumed = true;
                    Accepted::Committed(plan)
                }
                None => accepted,
            }
        }
        other => other,
    };
    filing::settle_file(shared, source, path, &name, accepted, resumed, started)
        .await
        .map(|_| ())
}
