//! `rostersync run`: the daemon (DESIGN.md, steps 1, 7 and 8).
//!
//! Tasks, all under one [`CancellationToken`] and one [`TaskTracker`]:
//! - the **processor** watches the inboxes (`notify`, plus a periodic
//!   rescan), takes each complete file in order, and is the only task that
//!   commits plans (files, approvals, the daily date re-plan), one at a time;
//! - one **worker** per target drains that target's outbox, woken after
//!   each commit and on a timer for records parked after transient failures;
//!   a target that is down keeps its outbox and holds up no one else;
//! - the **reporter** updates each file's `.report.json` as targets take or
//!   park its records;
//! - the **control** socket answers `status`, `show`, `approve`, `retry`, `plan`;
//! - the main loop handles signals (SIGTERM/SIGINT stop, SIGHUP reloads the
//!   config), `status.json`, and systemd's notifications.

pub mod control;
pub mod lifecycle;
pub mod ops;
pub mod status;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use chrono::{NaiveDate, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::cli::exit;
use crate::config::{self, CheckLevel, Config, Ready, SourceConfig};

use crate::ingest::record::RecordKind;
use crate::plan::{Plan, PlanOptions, TargetInfo};
use crate::push::{self, Drained, PushError, PushStatus, PushTarget};
use crate::store::{RecordKey, Store, StoreError};
use crate::sync::{self, Accepted, Approval, SyncContext};
use crate::watch::{self, Candidate, Rule, Tracker, Watchers};

use lifecycle::RecordStatus;
use ops::{Answer, blocking};
use status::Status;

/// How often the day is checked for the date re-plan.
const DATE_CHECK: Duration = Duration::from_secs(60);
/// `status.json` is rewritten at most this often when something changed…
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// …and at least this often anyway.
const STATUS_AT_LEAST: Duration = Duration::from_secs(30);
/// Where the day of the last date re-plan is kept, in the state folder.
const DATES_FILE: &str = "dates.last";

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Folders(std::io::Error),
    #[error(
        "cannot open the state in {}: {source} (is another rostersync running? it holds the store while it runs)",
        path.display()
    )]
    Store { path: PathBuf, source: StoreError },
    #[error("cannot listen on the control socket {}: {source}", path.display())]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start: {0}")]
    Start(String),
}

/// What every task shares.
struct Shared {
    config_path: PathBuf,
    config: tokio::sync::watch::Sender<Arc<Config>>,
    store: Arc<Store>,
    status: Mutex<Status>,
    /// `status.json` is out of date.
    dirty: AtomicBool,
    /// The wake-up of each target's worker.
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    reports: mpsc::UnboundedSender<ReportEvent>,
    processor: mpsc::Sender<ProcessorRequest>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data whole: a panic elsewhere does not poison it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn utc_now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The local day. Test only: `ROSTERSYNC_TEST_TODAY=YYYY-MM-DD` stands in
/// for it, so that the daily date re-plan is tested without waiting for a
/// day (`tests/daemon_run.rs`). Never set in service.
pub(crate) fn today() -> NaiveDate {
    std::env::var("ROSTERSYNC_TEST_TODAY")
        .ok()
        .and_then(|day| NaiveDate::parse_from_str(&day, "%Y-%m-%d").ok())
        .unwrap_or_else(|| chrono::Local::now().date_naive())
}

impl Shared {
    fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    fn wake(&self, target: &str) {
        if let Some(wake) = lock(&self.wakers).get(target) {
            wake.notify_one();
        }
    }

    fn wake_all(&self) {
        for wake in lock(&self.wakers).values() {
            wake.notify_one();
        }
    }

    fn touch(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    fn with_status(&self, change: impl FnOnce(&mut Status)) {
        change(&mut lock(&self.status));
        self.touch();
    }
}

enum ReportEvent {
    /// A report with pending actions, just written.
    Open(PathBuf, Value),
    /// A target's worker finished a drain.
    Drained(String),
}

enum ProcessorRequest {
    Approve {
        file: PathBuf,
        reply: oneshot::Sender<Answer>,
    },
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config_path: &Path, config: Config) -> Result<(), DaemonError> {
    lifecycle::prepare_folders(&config).map_err(DaemonError::Folders)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| DaemonError::Start(format!("the async runtime: {error}")))?;
    let result = runtime.block_on(daemon(config_path.to_path_buf(), config));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn daemon(config_path: PathBuf, config: Config) -> Result<(), DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = |kind| {
        signal(kind).map_err(|error| DaemonError::Start(format!("signal handling: {error}")))
    };
    let mut sigterm = signals(SignalKind::terminate())?;
    let mut sigint = signals(SignalKind::interrupt())?;
    let mut sighup = signals(SignalKind::hangup())?;

    let db = config.daemon.state_dir.join("db");
    let store = tokio::task::spawn_blocking({
        let db = db.clone();
        move || Store::open(&db)
    })
    .await
    .map_err(|error| DaemonError::Start(error.to_string()))?
    .map_err(|source| DaemonError::Store {
        path: db.clone(),
        source,
    })?;
    if let Ok(Some(pending)) = store.pending_commit() {
        info!(source = %pending.source, file = %pending.file, "a commit was cut short by a crash: the file is planned again when it is taken");
    }
    let socket = control::socket_path(&config.daemon.state_dir);
    let listener = control::bind(&socket).map_err(|source| DaemonError::Socket {
        path: socket.clone(),
        source,
    })?;

    let (reports, reports_rx) = mpsc::unbounded_channel();
    let (processor, processor_rx) = mpsc::channel(16);
    let mut initial = Status {
        pid: std::process::id(),
        started_at: utc_now(),
        updated_at: utc_now(),
        running: true,
        day: today().to_string(),
        ..Status::default()
    };
    initial.sources = config
        .sources
        .iter()
        .map(|s| (s.name.get_ref().clone(), Default::default()))
        .collect();
    let targets: Vec<String> = config
        .targets
        .iter()
        .map(|t| t.name.get_ref().clone())
        .collect();
    let (sources_count, targets_count) = (config.sources.len(), config.targets.len());
    let shared = Arc::new(Shared {
        config_path,
        config: tokio::sync::watch::Sender::new(Arc::new(config)),
        store: Arc::new(store),
        status: Mutex::new(initial),
        dirty: AtomicBool::new(true),
        wakers: Mutex::new(HashMap::new()),
        reports,
        processor,
        cancel: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });

    shared
        .tasks
        .spawn(reporter(Arc::clone(&shared), reports_rx));
    for name in targets {
        spawn_worker(&shared, name);
    }
    shared
        .tasks
        .spawn(control_server(Arc::clone(&shared), listener));
    let (ready, watching) = oneshot::channel();
    shared
        .tasks
        .spawn(processor_task(Arc::clone(&shared), processor_rx, ready));
    let _ = watching.await;
    info!(
        sources = sources_count,
        targets = targets_count,
        pid = std::process::id(),
        "watching the inboxes"
    );
    notify_systemd(&[sd_notify::NotifyState::Ready]);

    let watchdog = sd_notify::watchdog_enabled().map(|every| every / 2);
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut status_tick = tokio::time::interval(STATUS_EVERY);
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut written = Instant::now();
    loop {
        tokio::select! {
            _ = sigterm.recv() => {
                info!("SIGTERM: stopping");
                break;
            }
            _ = sigint.recv() => {
                info!("SIGINT: stopping");
                break;
            }
            _ = sighup.recv() => reload(&shared).await,
            _ = watchdog_tick.tick(), if watchdog.is_some() => {
                notify_systemd(&[sd_notify::NotifyState::Watchdog]);
            }
            _ = status_tick.tick() => {
                if shared.dirty.swap(false, Ordering::Relaxed) || written.elapsed() >= STATUS_AT_LEAST {
                    write_status(&shared, true).await;
                    written = Instant::now();
                }
            }
        }
    }

    // Stop taking files; in-flight requests get `grace` to finish.
    notify_systemd(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping"),
    ]);
    shared.cancel.cancel();
    shared.tasks.close();
    let grace = shared.config().daemon.grace.0;
    if tokio::time::timeout(grace + Duration::from_secs(2), shared.tasks.wait())
        .await
        .is_err()
    {
        warn!(
            "some work did not stop in time; the store is flushed and the rest is resumed on the next start"
        );
    }
    if let Err(error) = blocking(&shared.store, |store| store.flush()).await {
        error!(%error, "cannot flush the state store");
    }
    write_status(&shared, false).await;
    let _ = std::fs::remove_file(&socket);
    info!("stopped");
    Ok(())
}

fn notify_systemd(states: &[sd_notify::NotifyState]) {
    // Outside systemd there is no socket: nothing to tell.
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(error) = sd_notify::notify(states)
    {
        warn!(%error, "cannot notify systemd");
    }
}

/// SIGHUP: reads the config again; an invalid one is refused and the
/// running one stays.
async fn reload(shared: &Arc<Shared>) {
    let path = shared.config_path.clone();
    info!(config = %path.display(), "SIGHUP: reloading the config");
    let loaded = tokio::task::spawn_blocking(move || config::load(&path, CheckLevel::Full)).await;
    let mut new = match loaded {
        Ok(Ok(config)) => config,
        Ok(Err(error)) => {
            error!("config reload refused, the running config stays: {error}");
            return;
        }
        Err(error) => {
            error!(%error, "config reload failed, the running config stays");
            return;
        }
    };
    let old = shared.config();
    if old.daemon != new.daemon {
        warn!(
            "the [daemon] settings (state_dir, log_dir, log_format, log_keep, grace, rescan) change only with a restart; the running ones stay"
        );
        new.daemon = old.daemon.clone();
    }
    let prepared =
        tokio::task::spawn_blocking(move || lifecycle::prepare_folders(&new).map(|()| new)).await;
    let new = match prepared {
        Ok(Ok(new)) => new,
        Ok(Err(error)) => {
            error!("config reload refused, the running config stays: {error}");
            return;
        }
        Err(error) => {
            error!(%error, "config reload failed, the running config stays");
            return;
        }
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
            spawn_worker(shared, name);
        }
    }
    info!(config = %shared.config_path.display(), "config reloaded");
}

// ---------------------------------------------------------------- status

async fn write_status(shared: &Arc<Shared>, running: bool) {
    let config = shared.config();
    let names: Vec<String> = config
        .targets
        .iter()
        .map(|t| t.name.get_ref().clone())
        .collect();
    let counts = blocking(&shared.store, move |store| {
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
                Ok((name, outbox, parked))
            })
            .collect::<Result<Vec<_>, StoreError>>()
    })
    .await;
    let snapshot = {
        let mut status = lock(&shared.status);
        match counts {
            Ok(counts) => {
                for (name, outbox, parked) in counts {
                    let target = status.targets.entry(name).or_default();
                    target.outbox = outbox;
                    target.parked = parked;
                }
            }
            Err(error) => warn!(%error, "cannot count the outboxes for status.json"),
        }
        let day = today().to_string();
        if status.day != day {
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
        lifecycle::write_atomic(&path, &bytes)
    })
    .await;
    if let Ok(Err(error)) = written {
        warn!(%error, "cannot write status.json");
    }
}

// ---------------------------------------------------------------- workers

fn spawn_worker(shared: &Arc<Shared>, name: String) {
    let wake = Arc::new(Notify::new());
    lock(&shared.wakers).insert(name.clone(), Arc::clone(&wake));
    shared.tasks.spawn(worker(Arc::clone(shared), name, wake));
}

/// One target's worker: drains its outbox whenever woken, until stopped.
async fn worker(shared: Arc<Shared>, name: String, wake: Arc<Notify>) {
    let mut config_rx = shared.config.subscribe();
    'config: loop {
        let config = config_rx.borrow_and_update().clone();
        let Some(target) = config.targets.iter().find(|t| t.name.get_ref() == &name) else {
            info!(target = %name, "target removed from the config: its worker stops");
            break;
        };
        let retry = target.retry.clone();
        let pusher = match PushTarget::from_config(target) {
            Ok(pusher) => pusher,
            Err(error) => {
                error!(target = %name, %error, "cannot push to this target until its config is fixed (then send SIGHUP)");
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
        loop {
            match drain_with_grace(&shared, &name, &pusher).await {
                None => break 'config,
                Some(Ok(drained)) => note_drained(&shared, &name, &drained),
                Some(Err(error)) => {
                    error!(target = %name, %error, "pushing to this target failed; tried again when woken");
                    shared.with_status(|s| {
                        s.targets.entry(name.clone()).or_default().last_error =
                            Some(error.to_string())
                    });
                }
            }
            let _ = shared.reports.send(ReportEvent::Drained(name.clone()));
            shared.touch();
            if shared.cancel.is_cancelled() {
                break 'config;
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
                        let target = name.clone();
                        match blocking(&shared.store, move |s| s.unpark_transient(&target)).await {
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
    let mut wakers = lock(&shared.wakers);
    if wakers.get(&name).is_some_and(|w| Arc::ptr_eq(w, &wake)) {
        wakers.remove(&name);
    }
}

/// Drains a target; when the daemon stops meanwhile, the drain gets
/// `[daemon] grace` to finish, then is cut (what it sent unacknowledged is sent
/// again on the next start: connectors make a replay harmless).
async fn drain_with_grace(
    shared: &Shared,
    name: &str,
    pusher: &PushTarget,
) -> Option<Result<Drained, PushError>> {
    let drain = push::drain(&shared.store, pusher, sync::unix_now);
    tokio::pin!(drain);
    tokio::select! {
        result = &mut drain => Some(result),
        _ = shared.cancel.cancelled() => {
            let grace = shared.config().daemon.grace.0;
            match tokio::time::timeout(grace, &mut drain).await {
                Ok(result) => Some(result),
                Err(_) => {
                    warn!(target = %name, "requests still in flight were cut after the grace period; they are sent again on the next start");
                    None
                }
            }
        }
    }
}

fn note_drained(shared: &Shared, name: &str, drained: &Drained) {
    let done = drained
        .results
        .iter()
        .filter(|r| r.status == PushStatus::Done)
        .count();
    let parked = drained.results.iter().rev().find_map(|r| match &r.status {
        PushStatus::Parked { reason } => Some(format!("{} {}: {reason}", r.key.kind, r.key.key)),
        PushStatus::Done => None,
    });
    if done > 0 || parked.is_some() {
        info!(target = %name, done, parked = drained.results.len() - done, "pushed");
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

// ---------------------------------------------------------------- reports

/// Keeps the reports whose records are not all taken yet, and updates them
/// after each drain. Reports left open by an earlier run are found on start.
/// How often reports with pending actions are checked against the store,
/// besides the events that say a target drained.
const RECHECK_OPEN_REPORTS: Duration = Duration::from_secs(2);

async fn reporter(shared: Arc<Shared>, mut events: mpsc::UnboundedReceiver<ReportEvent>) {
    let inboxes: Vec<PathBuf> = shared
        .config()
        .sources
        .iter()
        .map(|s| s.inbox.get_ref().clone())
        .collect();
    let mut open: Vec<(PathBuf, Value)> = tokio::task::spawn_blocking(move || {
        inboxes
            .iter()
            .flat_map(|inbox| lifecycle::open_reports(inbox))
            .filter_map(|path| {
                let bytes = std::fs::read(&path).ok()?;
                let value = serde_json::from_slice(&bytes).ok()?;
                Some((path, value))
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
                if let Some(targets) = report.get("targets").and_then(Value::as_object) {
                    drained.extend(targets.keys().cloned());
                }
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
                    if let Some(targets) = report.get("targets").and_then(Value::as_object) {
                        drained.extend(targets.keys().cloned());
                    }
                    open.push((path, report));
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
    mut open: Vec<(PathBuf, Value)>,
    drained: &BTreeSet<String>,
) -> Vec<(PathBuf, Value)> {
    for (path, report) in &mut open {
        let mut changed = false;
        for target in drained {
            match lifecycle::resolve(report, target, |kind, key| {
                record_status(store, target, kind, key)
            }) {
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
    open.retain(|(_, report)| !lifecycle::is_complete(report));
    open
}

fn record_status(
    store: &Store,
    target: &str,
    kind: &str,
    key: &str,
) -> Result<RecordStatus, StoreError> {
    let kind = match kind {
        "users" => RecordKind::Users,
        "orgs" => RecordKind::Orgs,
        _ => return Ok(RecordStatus::Done),
    };
    let key = RecordKey {
        target: target.to_string(),
        kind,
        key: key.to_string(),
    };
    if let Some(parked) = store.parked_item(&key)? {
        return Ok(RecordStatus::Parked(parked.reason));
    }
    Ok(match store.outbox_item(&key)? {
        None => RecordStatus::Done,
        Some(_) => RecordStatus::Pending,
    })
}

// ---------------------------------------------------------------- processor

/// Watches the inboxes and takes each complete file, one at a time; also
/// runs approvals and the daily date re-plan, so that it is the only task
/// that commits.
async fn processor_task(
    shared: Arc<Shared>,
    mut requests: mpsc::Receiver<ProcessorRequest>,
    ready: oneshot::Sender<()>,
) {
    let wake = Arc::new(Notify::new());
    let mut config_rx = shared.config.subscribe();
    let mut config = config_rx.borrow_and_update().clone();
    let mut watchers = start_watchers(&config, &wake);
    let _ = ready.send(());
    let mut tracker = Tracker::default();
    // Files that could not be processed, until they change.
    let mut failed: HashMap<PathBuf, (u64, SystemTime)> = HashMap::new();
    // `[daemon]` settings change only with a restart: this one stays.
    let mut rescan = tokio::time::interval(config.daemon.rescan.get_ref().0);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut date_tick = tokio::time::interval(DATE_CHECK);
    date_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        if shared.cancel.is_cancelled() {
            break;
        }
        let candidates = scan_inboxes(&config, &failed).await;
        let observed = tracker.observe(candidates, std::time::Instant::now());
        let mut took = false;
        for candidate in observed.ready {
            if shared.cancel.is_cancelled() {
                break;
            }
            let Some(source) = config.sources.get(candidate.source) else {
                continue;
            };
            if let Err(error) = take(&shared, &config, source, &candidate.path).await {
                error!(source = %source.name.get_ref(), file = %candidate.path.display(), %error, "cannot process the file; it stays in the inbox and is tried again when it changes");
                failed.insert(candidate.path.clone(), (candidate.size, candidate.modified));
                shared.with_status(|s| {
                    let entry = s.sources.entry(source.name.get_ref().clone()).or_default();
                    entry.last_file = Some(file_name(&candidate.path));
                    entry.outcome = Some("failed".into());
                    entry.at = Some(utc_now());
                    entry.error = Some(error.clone());
                    entry.moved_to = None;
                });
            }
            tracker.forget(&candidate.path);
            took = true;
        }
        if took {
            continue; // more may have arrived meanwhile
        }
        let deadline = observed.next.map(Instant::from_std);
        tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => break,
            changed = config_rx.changed() => {
                if changed.is_err() { break }
                config = config_rx.borrow_and_update().clone();
                watchers = start_watchers(&config, &wake);
                tracker = Tracker::default();
                failed.clear();
            }
            Some(request) = requests.recv() => match request {
                ProcessorRequest::Approve { file, reply } => {
                    let answer = approve(&shared, &config, &file).await;
                    let _ = reply.send(answer);
                }
            },
            _ = wake.notified() => {
                // A burst of events (a file written in pieces): one scan for all.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ = sleep_until(deadline) => {}
            _ = rescan.tick() => {}
            _ = date_tick.tick() => replan_dates(&shared, &config).await,
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

async fn scan_inboxes(
    config: &Config,
    failed: &HashMap<PathBuf, (u64, SystemTime)>,
) -> Vec<Candidate> {
    let sources: Vec<(usize, RecordKind, PathBuf, Ready, Duration)> = config
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| (i, s.kind, s.inbox.get_ref().clone(), s.ready, s.settle.0))
        .collect();
    let failed = failed.clone();
    tokio::task::spawn_blocking(move || {
        let mut candidates = Vec::new();
        for (index, kind, inbox, ready, settle) in sources {
            let found = match watch::scan(&inbox) {
                Ok(found) => found,
                Err(error) => {
                    warn!(inbox = %inbox.display(), %error, "cannot read the inbox");
                    continue;
                }
            };
            for (path, size, modified) in found {
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
        candidates
    })
    .await
    .unwrap_or_default()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn context<'a>(shared: &Shared, config: &'a Config, file_name: Option<String>) -> SyncContext<'a> {
    SyncContext {
        config,
        store: Arc::clone(&shared.store),
        today: today(),
        now: sync::unix_now,
        file_name,
    }
}

/// One complete file: accept it, then file it away.
async fn take(
    shared: &Arc<Shared>,
    config: &Config,
    source: &SourceConfig,
    path: &Path,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    let name = file_name(path);
    let accepted = sync::accept_with(
        &context(shared, config, None),
        source,
        path,
        Approval::None,
        Some(note_before_commit(config)),
    )
    .await
    .map_err(|error| error.to_string())?;
    let mut resumed = false;
    let accepted = match accepted {
        Accepted::Committed(plan) => {
            exit_after_commit_for_tests();
            Accepted::Committed(plan)
        }
        // Its bytes are those of the source's last accepted file: perhaps
        // because it is that very file, committed before a restart.
        Accepted::Duplicate => match landed_commit(shared, config, source, &name, None).await {
            Some(plan) => {
                resumed = true;
                Accepted::Committed(plan)
            }
            None => Accepted::Duplicate,
        },
        other => other,
    };
    settle_file(shared, source, path, &name, accepted, resumed, started)
        .await
        .map(|_| ())
}

/// Writes the plan down before its commit (see [`lifecycle::COMMITS`]).
fn note_before_commit(config: &Config) -> sync::BeforeCommit {
    let state_dir = config.daemon.state_dir.clone();
    Box::new(move |plan, sha256| lifecycle::write_commit_note(&state_dir, plan, sha256))
}

/// The plan of `name` if the source's last commit was of this file (of
/// these bytes: `sha256`, or already known to be the last accepted file's
/// when `None`) and the file was not archived since (the daemon stopped
/// between the commit and the archive).
async fn landed_commit(
    shared: &Arc<Shared>,
    config: &Config,
    source: &SourceConfig,
    name: &str,
    sha256: Option<[u8; 32]>,
) -> Option<Plan> {
    let source_name = source.name.get_ref().clone();
    let state = {
        let source_name = source_name.clone();
        blocking(&shared.store, move |store| store.source_state(&source_name))
            .await
            .ok()??
    };
    if sha256.is_some_and(|sha| sha != state.last_sha256) {
        return None;
    }
    let inbox = source.inbox.get_ref().clone();
    let state_dir = config.daemon.state_dir.clone();
    let name = name.to_string();
    let plan = tokio::task::spawn_blocking(move || {
        let archived = lifecycle::archived_since(&inbox, &name, state.at);
        let note = lifecycle::read_commit_note(&state_dir, &source_name);
        lifecycle::landed_commit(&source_name, &state, &name, archived, note)
    })
    .await
    .ok()??;
    info!(source = %source.name.get_ref(), file = %plan.file, actions = plan.targets.values().map(|t| t.actions.len()).sum::<usize>(),
        "this file's plan was committed before a restart, the file not archived: archived now with that plan as its report");
    Some(plan)
}

/// Test only: with `ROSTERSYNC_TEST_EXIT_AFTER_COMMIT=1` the daemon exits
/// (code 86) right after a file's commit, before the file is archived: the
/// crash window `tests/daemon_recovery.rs` reproduces. Never set in service.
fn exit_after_commit_for_tests() {
    if std::env::var_os("ROSTERSYNC_TEST_EXIT_AFTER_COMMIT").is_some_and(|v| v == "1") {
        error!(
            "ROSTERSYNC_TEST_EXIT_AFTER_COMMIT=1: exiting right after the commit, before the archive (a crash-recovery test)"
        );
        std::process::exit(86);
    }
}

/// Where a file went.
struct Disposed {
    outcome: &'static str,
    moved_to: PathBuf,
}

/// Files a processed file away, logs its one summary line, updates the
/// status, and hands a committed plan's report to the reporter and its
/// targets' workers.
async fn settle_file(
    shared: &Arc<Shared>,
    source: &SourceConfig,
    path: &Path,
    name: &str,
    accepted: Accepted,
    resumed: bool,
    started: std::time::Instant,
) -> Result<Disposed, String> {
    let filed = file_away(source, path, name, &accepted, resumed).await?;
    if let Accepted::Committed(_) = &accepted {
        let state_dir = shared.config().daemon.state_dir.clone();
        let source_name = source.name.get_ref().clone();
        let removed = tokio::task::spawn_blocking(move || {
            lifecycle::remove_commit_note(&state_dir, &source_name)
        })
        .await;
        if let Ok(Err(error)) = removed {
            warn!(source = %source.name.get_ref(), %error, "cannot remove the plan written down before the commit; the file is archived all the same");
        }
    }
    let source_name = source.name.get_ref().clone();
    let millis = started.elapsed().as_millis() as u64;
    let moved = filed.disposed.moved_to.display().to_string();
    match &accepted {
        Accepted::Refused(ingested) => warn!(
            source = %source_name, file = %name, outcome = "rejected", rows = ingested.rows,
            problems = ingested.problems.len(), moved_to = %moved, ms = millis,
            "file processed: refused, nothing changed (every problem is in the .errors.txt beside it)"
        ),
        Accepted::Duplicate => info!(
            source = %source_name, file = %name, outcome = "duplicate", moved_to = %moved, ms = millis,
            "file processed: the same bytes as the last accepted file, nothing to push"
        ),
        Accepted::Held(plan) => warn!(
            source = %source_name, file = %name, outcome = "held", rows = plan.rows,
            rule = %plan.held.as_ref().map(ToString::to_string).unwrap_or_default(),
            moved_to = %moved, ms = millis,
            "file processed: held by a safety rule; see the .plan.txt beside it, release it with `rostersync approve`"
        ),
        Accepted::Committed(plan) => {
            let count = |f: fn(&crate::plan::TargetPlan) -> u64| -> u64 {
                plan.targets.values().map(f).sum()
            };
            let message = if resumed {
                "file processed: committed before a restart, archived now; pushing what is left to the targets"
            } else {
                "file processed: committed, pushing to the targets"
            };
            info!(
                source = %source_name, file = %name, outcome = "archived", rows = plan.rows,
                create = count(|t| t.create), update = count(|t| t.update),
                block = count(|t| t.block), unblock = count(|t| t.unblock),
                moved_to = %moved, ms = millis,
                "{message}"
            );
        }
    }
    if let Some((report_path, report)) = filed.open_report {
        let _ = shared.reports.send(ReportEvent::Open(report_path, report));
    }
    if let Accepted::Committed(_) = &accepted {
        for target in source.targets.get_ref() {
            shared.wake(target.get_ref());
        }
    }
    let day = today().to_string();
    shared.with_status(|status| {
        status.count_file(&day);
        let entry = status.sources.entry(source_name).or_default();
        entry.last_file = Some(name.to_string());
        entry.outcome = Some(filed.disposed.outcome.to_string());
        entry.moved_to = Some(moved);
        entry.at = Some(utc_now());
        entry.error = None;
    });
    Ok(filed.disposed)
}

struct Filed {
    disposed: Disposed,
    /// A report with records still pending.
    open_report: Option<(PathBuf, Value)>,
}

/// Moves a file to `archive/`, `rejected/` or `held/` with its side files.
/// A plan's actions keep the statuses they have (`approve` without a daemon
/// pushes before filing); the others are `pending`.
async fn file_away(
    source: &SourceConfig,
    path: &Path,
    name: &str,
    accepted: &Accepted,
    resumed: bool,
) -> Result<Filed, String> {
    let at = Utc::now();
    let inbox = source.inbox.get_ref().clone();
    let (outcome, folder, sides, report): (&'static str, &str, Vec<(&str, Vec<u8>)>, _) =
        match accepted {
            Accepted::Refused(ingested) => {
                let spec = source.spec()?;
                let text = lifecycle::errors_text(name, ingested, &spec);
                (
                    "rejected",
                    lifecycle::REJECTED,
                    vec![(lifecycle::ERRORS_SUFFIX, text.into_bytes())],
                    None,
                )
            }
            Accepted::Duplicate => {
                let plan = Plan {
                    source: source.name.get_ref().clone(),
                    file: name.to_string(),
                    rows: 0,
                    held: None,
                    targets: BTreeMap::new(),
                };
                let report = lifecycle::report_value(&plan, lifecycle::Archived::Duplicate, at);
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
                    lifecycle::Archived::CommittedBeforeRestart
                } else {
                    lifecycle::Archived::Committed
                };
                let report = lifecycle::report_value(plan, how, at);
                let bytes = pretty(&report);
                (
                    "archived",
                    lifecycle::ARCHIVE,
                    vec![(lifecycle::REPORT_SUFFIX, bytes)],
                    (!lifecycle::is_complete(&report)).then_some(report),
                )
            }
        };
    let file = path.to_path_buf();
    let name = name.to_string();
    let moved_to = tokio::task::spawn_blocking(move || {
        let sides: Vec<(&str, &[u8])> = sides.iter().map(|(s, b)| (*s, b.as_slice())).collect();
        lifecycle::file_away(&file, &inbox, folder, &name, at, &sides)
    })
    .await
    .map_err(|error| format!("internal error: {error}"))?
    .map_err(|error| format!("cannot move {} to {folder}/: {error}", path.display()))?;
    let open_report = report.map(|r| (lifecycle::beside(&moved_to, lifecycle::REPORT_SUFFIX), r));
    Ok(Filed {
        disposed: Disposed { outcome, moved_to },
        open_report,
    })
}

/// Pretty JSON with a final newline.
fn pretty<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// `rostersync approve HELD_FILE`, in the daemon: plans the held file again;
/// applied if it blocks no more than the held plan did, else held again
/// with the new figures.
async fn approve(shared: &Arc<Shared>, config: &Config, file: &Path) -> Answer {
    let started = std::time::Instant::now();
    let held = match ops::held_file(config, file) {
        Ok(held) => held,
        Err(message) => return Answer::new(exit::USAGE, format!("{message}\n")),
    };
    // Approved before a restart that came between its commit and its archive?
    let sha256 = match tokio::fs::read(&held.path).await {
        Ok(bytes) => <[u8; 32]>::from(Sha256::digest(&bytes)),
        Err(error) => {
            return Answer::new(
                exit::FAILURE,
                format!("cannot read {}: {error}\n", held.path.display()),
            );
        }
    };
    let landed = landed_commit(shared, config, held.source, &held.name, Some(sha256)).await;
    let resumed = landed.is_some();
    let accepted = match landed {
        Some(plan) => Accepted::Committed(plan),
        None => {
            let context = context(shared, config, Some(held.name.clone()));
            let approval = Approval::UpTo {
                blocks: held.blocks,
            };
            let before = Some(note_before_commit(config));
            match sync::accept_with(&context, held.source, &held.path, approval, before).await {
                Ok(accepted) => accepted,
                Err(error) => return Answer::new(exit::FAILURE, format!("{error}\n")),
            }
        }
    };
    if let Accepted::Held(plan) = &accepted {
        return still_held(&held, plan).await;
    }
    let disposed = settle_file(
        shared,
        held.source,
        &held.path,
        &held.name,
        accepted,
        resumed,
        started,
    )
    .await;
    remove_plan_files(&held.path).await;
    match disposed {
        Ok(disposed) if disposed.outcome == "archived" => Answer::new(
            exit::OK,
            format!(
                "{}: approved and committed; the targets are being told (see {})\n",
                held.name,
                lifecycle::beside(&disposed.moved_to, lifecycle::REPORT_SUFFIX).display()
            ),
        ),
        Ok(disposed) => Answer::new(
            exit::FAILURE,
            format!(
                "{}: {} → {}\n",
                held.name,
                disposed.outcome,
                disposed.moved_to.display()
            ),
        ),
        Err(message) => Answer::new(exit::FAILURE, format!("{message}\n")),
    }
}

async fn remove_plan_files(held: &Path) {
    let held = held.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || {
        for suffix in [lifecycle::PLAN_TEXT_SUFFIX, lifecycle::PLAN_JSON_SUFFIX] {
            let _ = std::fs::remove_file(lifecycle::beside(&held, suffix));
        }
    })
    .await;
}

/// The new plan blocks more than the approved one: it stays held, with the
/// new figures beside it.
async fn still_held(held: &ops::HeldFile<'_>, plan: &Plan) -> Answer {
    let text = crate::report::plan_table(plan);
    let json = pretty(plan);
    let path = held.path.clone();
    let written = tokio::task::spawn_blocking(move || {
        lifecycle::write_atomic(
            &lifecycle::beside(&path, lifecycle::PLAN_TEXT_SUFFIX),
            text.as_bytes(),
        )?;
        lifecycle::write_atomic(
            &lifecycle::beside(&path, lifecycle::PLAN_JSON_SUFFIX),
            &json,
        )
    })
    .await;
    if let Ok(Err(error)) = written {
        warn!(file = %held.path.display(), %error, "cannot write the new plan beside the held file");
    }
    Answer::new(
        exit::HELD,
        format!(
            "{}: still held: the plan now blocks {} records, more than the {} approved; the new plan is beside it\n{}",
            held.name,
            sync::total_blocks(plan),
            held.blocks,
            crate::report::plan_table(plan)
        ),
    )
}

/// `rostersync approve` when no daemon runs: the same, then the push, as
/// `rostersync sync` does.
pub fn approve_direct(config: &Config, file: &Path) -> Result<Answer, String> {
    let held = ops::held_file(config, file)?;
    let db = config.daemon.state_dir.join("db");
    let store = Store::open(&db)
        .map_err(|error| format!("cannot open the state in {}: {error}", db.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    runtime.block_on(async {
        let context = SyncContext {
            config,
            store: Arc::new(store),
            today: today(),
            now: sync::unix_now,
            file_name: Some(held.name.clone()),
        };
        let connectors = sync::source_targets(config, held.source)
            .into_iter()
            .map(PushTarget::from_config)
            .collect::<Result<Vec<_>, crate::connectors::ConnectorError>>()
            .map_err(|error| error.to_string())?;
        let accepted = sync::accept(
            &context,
            held.source,
            &held.path,
            Approval::UpTo {
                blocks: held.blocks,
            },
        )
        .await
        .map_err(|error| error.to_string())?;
        let accepted = match accepted {
            Accepted::Held(plan) => return Ok(still_held(&held, &plan).await),
            Accepted::Committed(mut plan) => {
                sync::push_all(&context, connectors, &mut plan)
                    .await
                    .map_err(|error| error.to_string())?;
                Accepted::Committed(plan)
            }
            other => other,
        };
        let filed = file_away(held.source, &held.path, &held.name, &accepted, false).await?;
        remove_plan_files(&held.path).await;
        let mut output = format!(
            "{}: approved → {}\n",
            held.name,
            filed.disposed.moved_to.display()
        );
        let code = match &accepted {
            Accepted::Committed(plan) => {
                output.push_str(&crate::report::plan_table(plan));
                let parked: u64 = plan.targets.values().map(|t| t.parked).sum();
                if parked > 0 { exit::FAILURE } else { exit::OK }
            }
            _ => exit::FAILURE,
        };
        Ok(Answer::new(code, output))
    })
}

// ---------------------------------------------------------------- dates

/// The day from which records' dates must be looked at again, if a re-plan
/// is due: the last re-plan was before today.
pub fn dates_due(last: Option<NaiveDate>, today: NaiveDate) -> Option<NaiveDate> {
    last.filter(|&last| last < today)
}

/// Once a day: records whose activation or expiration date took effect
/// since the last re-plan get their new desired state and actions.
async fn replan_dates(shared: &Arc<Shared>, config: &Config) {
    let today = today();
    let path = config.daemon.state_dir.join(DATES_FILE);
    let read = path.clone();
    let last = tokio::task::spawn_blocking(move || {
        std::fs::read_to_string(read)
            .ok()
            .and_then(|text| NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok())
    })
    .await
    .unwrap_or(None);
    if last.is_some_and(|last| last >= today) {
        return;
    }
    if let Some(since) = dates_due(last, today) {
        let targets: Vec<TargetInfo> = config.targets.iter().map(TargetInfo::from_config).collect();
        let create_disabled: HashMap<String, bool> = config
            .sources
            .iter()
            .map(|s| (s.name.get_ref().clone(), s.create_disabled))
            .collect();
        let options = PlanOptions {
            today,
            now: sync::unix_now(),
            detail_limit: 0,
        };
        let replanned = blocking(&shared.store, move |store| {
            let (actions, commit) = crate::plan::plan_dates(
                store,
                &targets,
                |source| create_disabled.get(source).copied().unwrap_or(false),
                since,
                options,
            )?;
            store.commit(&commit)?;
            Ok(actions.len())
        })
        .await;
        match replanned {
            Ok(actions) => {
                info!(%since, %today, actions, "dates re-planned: records whose activation or expiration date took effect");
                if actions > 0 {
                    shared.wake_all();
                }
            }
            Err(error) => {
                error!(%error, "the daily date re-plan failed; tried again later");
                return;
            }
        }
    }
    let shown = path.display().to_string();
    let written = tokio::task::spawn_blocking(move || {
        lifecycle::write_atomic(&path, format!("{today}\n").as_bytes())
    })
    .await;
    if let Ok(Err(error)) = written {
        warn!(file = %shown, %error, "cannot record the day of the date re-plan");
    }
}

// ---------------------------------------------------------------- control

async fn control_server(shared: Arc<Shared>, listener: tokio::net::UnixListener) {
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handler = Arc::clone(&shared);
                    shared.tasks.spawn(control::serve_connection(stream, move |request| {
                        answer(handler, request)
                    }));
                }
                Err(error) => {
                    warn!(%error, "control socket: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn answer(shared: Arc<Shared>, request: control::Request) -> Answer {
    use control::Request;
    let config = shared.config();
    let failed = |message: String| Answer::new(exit::FAILURE, format!("{message}\n"));
    match request {
        Request::Status { json } => {
            write_status(&shared, true).await;
            let status = lock(&shared.status).clone();
            if json {
                Answer::new(exit::OK, String::from_utf8_lossy(&pretty(&status)))
            } else {
                Answer::new(exit::OK, status::render(&status))
            }
        }
        Request::Show { id } => {
            let config = Arc::clone(&config);
            blocking(&shared.store, move |store| ops::show(&config, store, &id))
                .await
                .unwrap_or_else(failed)
        }
        Request::Retry { target } => {
            let for_store = Arc::clone(&config);
            let wanted = target.clone();
            let answer = blocking(&shared.store, move |store| {
                ops::retry(&for_store, store, wanted.as_deref())
            })
            .await
            .unwrap_or_else(failed);
            match target {
                Some(target) => shared.wake(&target),
                None => shared.wake_all(),
            }
            shared.touch();
            answer
        }
        Request::Plan { file, source, json } => {
            let store = Arc::clone(&shared.store);
            tokio::task::spawn_blocking(move || {
                ops::plan(&config, &store, &file, source.as_deref(), json)
            })
            .await
            .map_err(|error| error.to_string())
            .and_then(|answer| answer)
            .unwrap_or_else(|message| Answer::new(exit::USAGE, format!("{message}\n")))
        }
        Request::Approve { file } => {
            let (reply, answer) = oneshot::channel();
            if shared
                .processor
                .send(ProcessorRequest::Approve { file, reply })
                .await
                .is_err()
            {
                return failed("the daemon is stopping".into());
            }
            answer
                .await
                .unwrap_or_else(|_| failed("the daemon is stopping".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_re_planned_once_a_day() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert_eq!(
            dates_due(None, day(21)),
            None,
            "first start: nothing to catch up"
        );
        assert_eq!(dates_due(Some(day(21)), day(21)), None);
        assert_eq!(dates_due(Some(day(18)), day(21)), Some(day(18)));
    }
}
