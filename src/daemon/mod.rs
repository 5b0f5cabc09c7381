//! `rostersync run`: the daemon. This file starts it, holds what its tasks
//! share, and stops it; each task has a file of its own:
//! - [`intake`]: the **processor** watches the inboxes, takes each complete
//!   file in order, and is the only task that commits plans (files,
//!   [`approve`]als, the daily [`dates`] re-plan), one at a time; [`filing`]
//!   moves a file where it belongs with its side files; [`landed`] finds a
//!   committed file left in the inbox by its bytes; [`ignored`] names the
//!   inbox entries that are not taken;
//! - [`worker`]: one per target drains that target's outbox;
//! - [`reporter`]: updates each file's `.report.json` as targets take or
//!   park its records;
//! - [`server`]: the control socket ([`control`]) answers `status`, `show`,
//!   `approve`, `retry`, `plan`, `forget-target`;
//! - [`seed`]: targets new to a source get its snapshot (on start and after
//!   each reload, in the processor); targets gone from the config keep
//!   their state until `forget-target`;
//! - the metrics server ([`crate::metrics::server`], `[daemon] metrics`)
//!   and one task per `[[notify]]` destination ([`crate::notify`]);
//! - the main loop here: stop and reload signals, `status.json`
//!   ([`status_file`]), systemd's notifications and watchdog.
//!
//! Every task runs under one [`CancellationToken`] and one [`TaskTracker`],
//! [`supervise`]d: one that ends unexpectedly is logged and started again.

mod approve;
pub mod control;
mod dates;
pub mod file_report;
mod filing;
mod held_files;
mod ignored;
mod intake;
mod landed;
pub mod lifecycle;
pub mod ops;
pub mod push_now;
mod reading;
mod reload;
mod reporter;
mod seed;
mod server;
mod state_health;
pub mod status;
mod status_file;
mod supervise;
mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use futures_util::{Stream, StreamExt};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::store::{Store, StoreError};

pub use approve::approve_direct;
pub use dates::dates_due;
use intake::ProcessorRequest;
use reporter::ReportEvent;
use status::Status;
use supervise::Heartbeat;

/// `status.json` is rewritten at most this often when something changed…
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// …and at least this often anyway.
const STATUS_AT_LEAST: Duration = Duration::from_secs(30);

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
    /// The processor's sign of life, which feeds systemd's watchdog.
    heartbeat: Heartbeat,
    /// Whether the state directory takes writes.
    state: state_health::StateHealth,
    /// Set when the daemon stops to reopen its store ([`Stopped::ToReopenTheStore`]).
    restart: AtomicBool,
    /// The inboxes are watched (`/readyz`).
    watching: AtomicBool,
    /// Targets whose last drain stopped, and why (`/readyz`).
    halted: Mutex<std::collections::BTreeMap<String, String>>,
    /// `[[notify]]`: what an operator must act on.
    notifier: crate::notify::Notifier,
    /// The day the last daily summary went (or the daemon started).
    daily_sent: Mutex<NaiveDate>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data whole: a panic elsewhere does not poison it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn utc_now() -> String {
    rfc3339(Utc::now())
}

/// A time as `status.json` and the reports give it: UTC, to the second.
fn rfc3339(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The local day, for the daemon and `rostersync sync`. Test only:
/// `ROSTERSYNC_TEST_TODAY=YYYY-MM-DD` stands in for it, so that the daily
/// re-plan and `delete_after` are tested without waiting for days
/// (`tests/daemon_run.rs`, `tests/delete_after.rs`). Never set in service.
pub fn today() -> NaiveDate {
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

    /// `/readyz`: watching the inboxes, the state directory taking
    /// writes (the store open), and no target stopped.
    fn readiness(&self) -> Result<(), String> {
        if self.cancel.is_cancelled() {
            return Err("stopping".into());
        }
        if !self.watching.load(Ordering::SeqCst) {
            return Err("not watching the inboxes yet".into());
        }
        if self.state.is_failing() {
            return Err("the state directory cannot be written (see `rostersync status`)".into());
        }
        let halted = lock(&self.halted);
        match halted.iter().next() {
            Some((target, reason)) => Err(format!("target {target} stopped: {reason}")),
            None => Ok(()),
        }
    }
}

/// Why the daemon stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM or SIGINT (or the test's stop).
    OnRequest,
    /// The state store failed and its disk takes writes again: the store is
    /// reopened by starting afresh ([`restart`]), the probe's backoff kept.
    ToReopenTheStore { probe_after: Duration },
}

/// Replaces this process with a fresh start of the same program and
/// arguments (same pid, so systemd keeps following it); returns only if
/// that fails.
pub fn restart(probe_after: Duration) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_else(|| "rostersync".into());
    // /proc/self/exe: the running binary, even if a package upgrade replaced its file.
    std::process::Command::new("/proc/self/exe")
        .arg0(program)
        .args(args)
        .env(
            state_health::PROBE_AFTER_VARIABLE,
            probe_after.as_secs().to_string(),
        )
        .exec()
}

/// Runs the daemon until SIGTERM or SIGINT; SIGHUP reloads the config.
pub fn run(config_path: &Path, config: Config) -> Result<Stopped, DaemonError> {
    for warning in &config.warnings {
        warn!("{}", crate::config::render_warning(config_path, warning));
    }
    lifecycle::prepare_folders(&config).map_err(DaemonError::Folders)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| DaemonError::Start(format!("the async runtime: {error}")))?;
    let result = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let signals = |kind| {
            signal(kind).map_err(|error| DaemonError::Start(format!("signal handling: {error}")))
        };
        let mut sigterm = signals(SignalKind::terminate())?;
        let mut sigint = signals(SignalKind::interrupt())?;
        let sighup = signals(SignalKind::hangup())?;
        let stop = async move {
            tokio::select! {
                _ = sigterm.recv() => info!("SIGTERM: stopping"),
                _ = sigint.recv() => info!("SIGINT: stopping"),
            }
        };
        let reloads = futures_util::stream::unfold(sighup, |mut sighup| async move {
            sighup.recv().await.map(|()| ((), sighup))
        });
        serve(config_path.to_path_buf(), config, stop, reloads).await
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The daemon on the current runtime, until `stop` completes; each item of
/// `reloads` reads the config file again. The folders must exist
/// ([`lifecycle::prepare_folders`]). Tests drive it in-process this way.
pub async fn serve(
    config_path: PathBuf,
    config: Config,
    stop: impl Future<Output = ()>,
    reloads: impl Stream<Item = ()>,
) -> Result<Stopped, DaemonError> {
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
        info!(source = %pending.source, file = %crate::escape::text(&pending.file), "a commit was cut short by a crash: the file is planned again when it is taken");
    }
    let metrics =
        match config.daemon.metrics_address() {
            Some(address) => Some(crate::metrics::server::bind(address).await.map_err(
                |error| {
                    DaemonError::Start(format!("cannot serve the metrics on {address}: {error}"))
                },
            )?),
            None => None,
        };
    let socket = control::socket_path(&config.daemon.state_dir);
    let listener = control::bind(&socket).map_err(|source| DaemonError::Socket {
        path: socket.clone(),
        source,
    })?;

    let (cancel, tasks) = (CancellationToken::new(), TaskTracker::new());
    let notifier = crate::notify::Notifier::start(&config.notify, &tasks, &cancel)
        .map_err(|error| DaemonError::Start(format!("notifications: {error}")))?;
    let (reports, reports_rx) = mpsc::unbounded_channel();
    let (processor, processor_rx) = mpsc::channel(16);
    let (sources_count, targets_count) = (config.sources.len(), config.targets.len());
    let targets: Vec<String> = config
        .targets
        .iter()
        .map(|t| t.name.get_ref().clone())
        .collect();
    let shared = Arc::new(Shared {
        config_path,
        status: Mutex::new(Status::starting(
            &config,
            status_file::read(&config.daemon.log_dir).as_ref(),
            std::process::id(),
            utc_now(),
            today(),
        )),
        config: tokio::sync::watch::Sender::new(Arc::new(config)),
        store: Arc::new(store),
        dirty: AtomicBool::new(true),
        wakers: Mutex::new(HashMap::new()),
        reports,
        processor,
        heartbeat: Heartbeat::new(),
        state: state_health::StateHealth::new(),
        restart: AtomicBool::new(false),
        watching: AtomicBool::new(false),
        halted: Mutex::default(),
        notifier,
        daily_sent: Mutex::new(today()),
        cancel,
        tasks,
    });

    seed_metrics(&lock(&shared.status));
    let reports_rx = Arc::new(tokio::sync::Mutex::new(reports_rx));
    supervised(&shared, "reporter", move |shared| {
        reporter::reporter(shared, Arc::clone(&reports_rx))
    });
    seed::warn_unconfigured(&shared).await;
    for name in targets {
        worker::spawn_worker(&shared, name);
    }
    let listener = Arc::new(listener);
    supervised(&shared, "state probe", state_health::probe_task);
    supervised(&shared, "control server", move |shared| {
        server::control_server(shared, Arc::clone(&listener))
    });
    let watching = Arc::new(Notify::new());
    let processor_rx = Arc::new(tokio::sync::Mutex::new(processor_rx));
    let ready = Arc::clone(&watching);
    supervised(&shared, "file processor", move |shared| {
        intake::processor(shared, Arc::clone(&processor_rx), Arc::clone(&ready))
    });
    if let Some(listener) = metrics {
        serve_metrics(&shared, listener);
    }
    watching.notified().await;
    shared.watching.store(true, Ordering::SeqCst);
    info!(
        sources = sources_count,
        targets = targets_count,
        pid = std::process::id(),
        "watching the inboxes"
    );
    notify_systemd(&[sd_notify::NotifyState::Ready]);

    main_loop(&shared, stop, reloads).await;

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
    if shared.restart.load(Ordering::SeqCst) {
        info!(
            "the store is not flushed (its disk failed): what it did not write is done again after the restart"
        );
    } else if let Err(error) = crate::store::blocking(&shared.store, |store| store.flush()).await {
        error!(%error, "cannot flush the state store");
    }
    status_file::write(&shared, false).await;
    let _ = std::fs::remove_file(&socket);
    if shared.restart.load(Ordering::SeqCst) {
        info!("stopped, to start again with the store reopened");
        return Ok(Stopped::ToReopenTheStore {
            probe_after: shared.state.probe_after(),
        });
    }
    info!("stopped");
    Ok(Stopped::OnRequest)
}

/// The last successes the previous daemon left in `status.json`, so that
/// an alert on their age keeps its footing across a restart.
fn seed_metrics(status: &Status) {
    let unix = |at: &Option<String>| {
        at.as_deref()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .map(|at| at.timestamp() as f64)
    };
    let metrics = crate::metrics::get();
    for (name, source) in &status.sources {
        let accepted = matches!(source.outcome.as_deref(), Some("archived" | "duplicate"));
        if let (true, Some(at)) = (accepted, unix(&source.at)) {
            metrics.source_succeeded(name, at);
        }
    }
    for (name, target) in &status.targets {
        if let Some(at) = unix(&target.last_push_at) {
            metrics.target_succeeded(name, at);
        }
    }
}

/// The metrics server, until the daemon stops; one that fails is logged
/// and leaves the daemon running without it.
fn serve_metrics(shared: &Arc<Shared>, listener: tokio::net::TcpListener) {
    info!(address = %crate::metrics::server::shown(&listener), "serving the metrics on /metrics, /healthz and /readyz");
    let for_readiness = Arc::downgrade(shared);
    let ready: crate::metrics::server::Readiness =
        Arc::new(move || match for_readiness.upgrade() {
            Some(shared) => shared.readiness(),
            None => Err("stopping".into()),
        });
    let stop = shared.cancel.clone();
    shared.tasks.spawn(async move {
        if let Err(error) = crate::metrics::server::serve(listener, ready, stop).await {
            error!(%error, "the metrics server stopped; the daemon goes on without it");
        }
    });
}

/// Starts a supervised task that needs only the shared state.
fn supervised<F, Fut>(shared: &Arc<Shared>, name: &str, make: F)
where
    F: Fn(Arc<Shared>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let for_task = Arc::clone(shared);
    supervise::spawn(
        &shared.tasks,
        shared.cancel.clone(),
        name.to_string(),
        move || make(Arc::clone(&for_task)),
    );
}

/// Until `stop`: reloads, `status.json`, and systemd's watchdog, fed only
/// while the file processor's heartbeat is recent.
async fn main_loop(
    shared: &Arc<Shared>,
    stop: impl Future<Output = ()>,
    reloads: impl Stream<Item = ()>,
) {
    tokio::pin!(stop);
    // Fused: a stream that ended is not polled again (an ended `unfold` panics).
    let reloads = reloads.fuse();
    tokio::pin!(reloads);
    let watchdog = sd_notify::watchdog_enabled().map(|every| every / 2);
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut status_tick = tokio::time::interval(STATUS_EVERY);
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut written = Instant::now();
    let mut starved = false;
    loop {
        tokio::select! {
            () = &mut stop => break,
            // The state probe stops the daemon to reopen the store.
            _ = shared.cancel.cancelled() => break,
            Some(()) = reloads.next() => reload::reload(shared).await,
            _ = watchdog_tick.tick(), if watchdog.is_some() => {
                // systemd's period (twice our tick), and no less than a few
                // of the processor's beats.
                let silent_at = (watchdog.unwrap_or_default() * 2).max(supervise::STALLED_AFTER);
                if shared.heartbeat.age() < silent_at {
                    notify_systemd(&[sd_notify::NotifyState::Watchdog]);
                    starved = false;
                } else if !starved {
                    error!(silent = ?shared.heartbeat.age(), "the file processor has not turned for too long: systemd's watchdog is no longer fed and will restart the daemon");
                    starved = true;
                }
            }
            _ = status_tick.tick() => {
                if shared.dirty.swap(false, Ordering::Relaxed) || written.elapsed() >= STATUS_AT_LEAST {
                    status_file::write(shared, true).await;
                    written = Instant::now();
                }
            }
        }
    }
}

pub(super) fn notify_systemd(states: &[sd_notify::NotifyState]) {
    // Outside systemd there is no socket: nothing to tell.
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(error) = sd_notify::notify(states)
    {
        warn!(%error, "cannot notify systemd");
    }
}
