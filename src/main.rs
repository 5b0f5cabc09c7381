#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)]

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use rostersync::cli::{Cli, Command, exit};
use rostersync::config::{self, CheckLevel, ConfigError, LogFormat};
use rostersync::connectors::AnyConnector;
use rostersync::connectors::http::shown_url;
use rostersync::daemon::{self, control, control::Request, ops};
use rostersync::ingest::{self, SourceSpec};
use rostersync::journal;
use rostersync::report;
use rostersync::store::Store;
use rostersync::sync::{SyncContext, SyncOutcome, sync_file};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};

/// sled allocates and frees a little for every read and write; jemalloc does
/// that with about a third less CPU than glibc's allocator across threads
/// (BENCHMARKS.md, the push benchmark).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // Before any thread: whatever the umask, the state is owner-only.
    rostersync::file_modes::restrict();
    let cli = Cli::parse();
    let code = match execute(&cli) {
        Ok(code) => code,
        Err(error) => {
            // A config problem is a usage problem (exit 2), anything else a failure.
            let usage = error.is::<Usage>() || error.is::<ConfigError>();
            let code = if usage { exit::USAGE } else { exit::FAILURE };
            let error: &(dyn std::error::Error + 'static) = error.as_ref();
            let text = format!("rostersync: {}\n", rostersync::error_text::chain(error));
            eprint!(
                "{}",
                journal::lines(&text, journal::ERR, journal::stderr_is_journal())
            );
            code
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// A command asked for something that does not exist (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

/// The stderr log: coloured on a terminal only; when stderr is systemd's
/// journal, each line starts with its level's priority (`<3>` an error...),
/// without a timestamp (the journal stamps each line).
fn stderr_layer<S>() -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    let layer = tracing_subscriber::fmt::layer();
    if journal::stderr_is_journal() {
        return layer
            .with_ansi(false)
            .without_time()
            .with_writer(journal::JournalStderr)
            .boxed();
    }
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    layer.with_ansi(colour).with_writer(std::io::stderr).boxed()
}

/// Logs go to stderr ([`stderr_layer`]); the daemon's also to daily files
/// in `log_dir` (text or JSON, `log_keep` kept). The guard flushes the
/// files when dropped.
fn init_logging(files: Option<&config::DaemonConfig>) -> Option<WorkerGuard> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROSTERSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // sled logs (through the `log` bridge) from destructors that run while a
    // thread exits, after the log's thread-local buffers are gone: one such
    // debug line aborts the process. Its debug and trace lines are internal
    // noise anyway: kept out unless ROSTERSYNC_LOG names sled.
    let names_sled = std::env::var("ROSTERSYNC_LOG").is_ok_and(|v| v.contains("sled"));
    let filter = match "sled=warn".parse() {
        Ok(directive) if !names_sled => filter.add_directive(directive),
        _ => filter,
    };
    let stderr = stderr_layer();
    let appender = files.map(|daemon| {
        std::fs::create_dir_all(&daemon.log_dir)
            .map_err(|error| error.to_string())
            .and_then(|()| {
                RollingFileAppender::builder()
                    .rotation(Rotation::DAILY)
                    .filename_prefix("rostersync")
                    .filename_suffix("log")
                    .max_log_files(daemon.log_keep.max(1) as usize)
                    .build(&daemon.log_dir)
                    .map_err(|error| error.to_string())
            })
            .map(|appender| (appender, daemon.log_format))
            .map_err(|error| (daemon.log_dir.clone(), error))
    });
    match appender {
        Some(Ok((appender, format))) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let file = match format {
                LogFormat::Text => tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(writer)
                    .boxed(),
                LogFormat::Json => tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(writer)
                    .boxed(),
            };
            tracing_subscriber::registry()
                .with(filter)
                .with(stderr)
                .with(file)
                .init();
            Some(guard)
        }
        Some(Err((dir, error))) => {
            tracing_subscriber::registry()
                .with(filter)
                .with(stderr)
                .init();
            tracing::warn!(log_dir = %dir.display(), %error, "cannot write log files; logging to stderr only");
            None
        }
        None => {
            tracing_subscriber::registry()
                .with(filter)
                .with(stderr)
                .init();
            None
        }
    }
}

fn execute(cli: &Cli) -> anyhow::Result<i32> {
    let config_path = config::locate(cli.config.as_deref());
    if let Command::Run = &cli.command {
        let config = match config::load(&config_path, CheckLevel::Full) {
            Ok(config) => config,
            Err(error) => {
                init_logging(None);
                return Err(error.into());
            }
        };
        let guard = init_logging(Some(&config.daemon));
        if let daemon::Stopped::ToReopenTheStore { probe_after } =
            daemon::run(&config_path, config)?
        {
            // The log file's writer flushes when dropped: before the exec.
            drop(guard);
            let error = daemon::restart(probe_after);
            return Err(anyhow::anyhow!(
                "cannot start again to reopen the store: {error}"
            ));
        }
        return Ok(exit::OK);
    }
    init_logging(None);
    // A person watching a command on a terminal sees long work as a bar.
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        rostersync::progress::show_bars();
    }
    match &cli.command {
        Command::Check { online, notify } => check(&config_path, *online, *notify),
        Command::Validate { file, source } => validate(&config_path, file, source.as_deref()),
        Command::Plan {
            file,
            source,
            json,
            person,
        } => {
            let asked = ops::PlanAsk {
                source: source.as_deref(),
                json: *json,
                person: person.as_deref(),
            };
            plan(&config_path, file, asked)
        }
        Command::Sync { file, source, json } => sync(&config_path, file, source.as_deref(), *json),
        Command::Status { json } => status(&config_path, *json),
        Command::Show { external_id } => show(&config_path, external_id),
        Command::Approve {
            held_file,
            force_older,
        } => approve(&config_path, held_file, *force_older),
        Command::Retry { target } => retry(&config_path, target.as_deref()),
        Command::Push {
            external_id,
            target,
        } => push(&config_path, external_id, target.as_deref()),
        Command::ForgetTarget { name } => forget_target(&config_path, name),
        Command::Run => Ok(exit::OK),
    }
}

/// Asks the running daemon, if one listens on the state folder's socket.
fn ask_daemon(config: &config::Config, request: &Request) -> anyhow::Result<Option<i32>> {
    let socket = control::socket_path(&config.daemon.state_dir);
    match control::ask(&socket, request, &mut std::io::stdout().lock())? {
        Some(answer) => {
            print!("{}", answer.output);
            Ok(Some(answer.code))
        }
        None => Ok(None),
    }
}

fn print_answer(answer: ops::Answer) -> i32 {
    print!("{}", answer.output);
    answer.code
}

fn status(config_path: &Path, json: bool) -> anyhow::Result<i32> {
    let config = config::load(config_path, CheckLevel::SourcesOnly)?;
    if let Some(code) = ask_daemon(&config, &Request::Status { json })? {
        return Ok(code);
    }
    let path = config.daemon.log_dir.join(daemon::status::FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            println!(
                "no daemon runs, and none has written {} yet",
                path.display()
            );
            return Ok(exit::FAILURE);
        }
        Err(error) => return Err(anyhow::anyhow!("cannot read {}: {error}", path.display())),
    };
    let mut status: daemon::status::Status =
        serde_json::from_str(&text).with_context(|| format!("{} is unreadable", path.display()))?;
    // It says `running` if the daemon was killed: no one answers on the socket.
    status.running = false;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", daemon::status::render(&status));
    }
    Ok(exit::OK)
}

fn show(config_path: &Path, id: &str) -> anyhow::Result<i32> {
    let config = config::load(config_path, CheckLevel::SourcesOnly)?;
    if let Some(code) = ask_daemon(&config, &Request::Show { id: id.into() })? {
        return Ok(code);
    }
    let store = open_store_read(&config.daemon.state_dir)?;
    Ok(print_answer(ops::show(&config, &store, id)?))
}

fn retry(config_path: &Path, target: Option<&str>) -> anyhow::Result<i32> {
    let config = config::load(config_path, CheckLevel::SourcesOnly)?;
    let request = Request::Retry {
        target: target.map(str::to_string),
    };
    if let Some(code) = ask_daemon(&config, &request)? {
        return Ok(code);
    }
    let store = open_store_write(&config.daemon.state_dir)?;
    let code = print_answer(ops::retry(&config, &store, target)?);
    if code == exit::OK {
        println!("(no daemon runs: they are pushed when it starts)");
    }
    Ok(code)
}

/// `push EXT_ID`: through the daemon (its outbox, its secrets), else on the
/// store directly, as `sync` pushes.
fn push(config_path: &Path, id: &str, target: Option<&str>) -> anyhow::Result<i32> {
    // The daemon holds the secrets: this shell needs none to ask it.
    let config = config::load(config_path, CheckLevel::SourcesOnly)?;
    let request = Request::Push {
        id: id.to_string(),
        target: target.map(str::to_string),
    };
    if let Some(code) = ask_daemon(&config, &request)? {
        return Ok(code);
    }
    let store = std::sync::Arc::new(open_store_write(&config.daemon.state_dir)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let answer = runtime.block_on(daemon::push_now::push_person(&config, &store, id, target));
    Ok(print_answer(answer))
}

/// `forget-target NAME`: through the daemon (which checks its running
/// config), else on the store directly; no store yet holds nothing.
fn forget_target(config_path: &Path, name: &str) -> anyhow::Result<i32> {
    let config = config::load(config_path, CheckLevel::SourcesOnly)?;
    let request = Request::ForgetTarget {
        target: name.to_string(),
    };
    if let Some(code) = ask_daemon(&config, &request)? {
        return Ok(code);
    }
    let store = open_store_read(&config.daemon.state_dir)?;
    Ok(print_answer(ops::forget_target(&config, &store, name)?))
}

/// `approve`: through the daemon, which holds the targets' secrets; else on
/// the store directly, pushing too when this shell has the secrets.
fn approve(config_path: &Path, file: &Path, force_older: bool) -> anyhow::Result<i32> {
    let config = config::load(config_path, CheckLevel::SourcesOnly)?;
    let absolute = file
        .canonicalize()
        .with_context(|| format!("cannot find {}", file.display()))?;
    let request = Request::Approve {
        file: absolute,
        force_older,
    };
    if let Some(code) = ask_daemon(&config, &request)? {
        return Ok(code);
    }
    Ok(print_answer(daemon::approve_direct(
        &config,
        file,
        force_older,
    )?))
}

fn open_store_write(state_dir: &Path) -> anyhow::Result<Store> {
    let db = state_dir.join("db");
    Store::open(&db).with_context(|| {
        format!(
            "cannot open the state in {} (is the daemon running? it holds the store while it runs)",
            db.display()
        )
    })
}

fn check(path: &Path, online: bool, notify: bool) -> anyhow::Result<i32> {
    match config::load(path, CheckLevel::Full) {
        Ok(config) => {
            // Under systemd (`ExecReload=`) a warning is the journal's too.
            let journal = journal::is_journal(std::io::stdout());
            for warning in &config.warnings {
                let line = format!("{}\n", config::render_warning(path, warning));
                print!("{}", journal::lines(&line, journal::WARNING, journal));
            }
            if online {
                return check_online(&config, notify);
            }
            println!("ok");
            Ok(exit::OK)
        }
        Err(error @ ConfigError::Invalid { .. }) => {
            // `ExecReload=` runs this: under systemd its problems are errors.
            let journal = journal::is_journal(std::io::stdout());
            print!(
                "{}",
                journal::lines(&format!("{error}\n"), journal::ERR, journal)
            );
            Ok(exit::USAGE)
        }
        Err(error) => Err(error.into()),
    }
}

/// `check --online`: each target reached with its credentials, one line
/// each; with `--notify`, a test message to each `[[notify]]` too.
fn check_online(config: &config::Config, notify: bool) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut failed = 0;
    for target in &config.targets {
        let name = target.name.get_ref();
        let verdict = match AnyConnector::from_config(target) {
            Ok(connector) => runtime
                .block_on(connector.check())
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match verdict {
            Ok(()) => println!("target {name} ({}): ok", target.kind),
            Err(reason) => {
                failed += 1;
                let at = target
                    .url
                    .as_ref()
                    .map(|url| format!(" at {}", shown_url(url.get_ref())))
                    .unwrap_or_default();
                println!("target {name} ({}){at}: {reason}", target.kind);
            }
        }
    }
    if notify {
        for (shown, sent) in runtime.block_on(rostersync::notify::send_test(&config.notify)) {
            match sent {
                Ok(()) => println!("notify {shown}: test message sent"),
                Err(reason) => {
                    failed += 1;
                    println!("notify {shown}: {reason}");
                }
            }
        }
    }
    if failed == 0 {
        println!("ok");
        Ok(exit::OK)
    } else {
        Ok(exit::FAILURE)
    }
}

fn validate(config_path: &Path, file: &Path, source: Option<&str>) -> anyhow::Result<i32> {
    let cannot_read = || format!("cannot read {}", file.display());
    let config;
    let source = match source {
        Some(name) => {
            config = config::load(config_path, CheckLevel::SourcesOnly)?;
            Some(config.source(name).ok_or_else(|| {
                Usage(format!(
                    "no source named {name:?} in {}",
                    config_path.display()
                ))
            })?)
        }
        None => None,
    };
    // Refused on its size alone, as the daemon does, before it is read.
    let limit = source.map_or(config::DEFAULT_MAX_FILE_SIZE, |s| s.max_file_size);
    let size = std::fs::metadata(file).with_context(cannot_read)?.len();
    let (outcome, spec) = match config::size::too_big(size, limit) {
        Some(reason) => {
            let spec = match source {
                Some(source) => source.spec()?,
                None => SourceSpec::wbt(ingest::record::RecordKind::Users),
            };
            (ingest::refused(reason), spec)
        }
        None => {
            let bytes = std::fs::read(file).with_context(cannot_read)?;
            let spec = match source {
                Some(source) => source.spec()?,
                None => SourceSpec::wbt(ingest::guess_kind(&bytes)),
            };
            (ingest::ingest(&bytes, &spec), spec)
        }
    };
    let shown = rostersync::escape::path(file);
    for problem in &outcome.problems {
        println!("{}", problem.located(&shown));
    }
    if outcome.problems_not_listed > 0 {
        println!(
            "{shown}: … and {} more problems",
            outcome.problems_not_listed
        );
    }
    println!("{}", report::verdict_line(&shown, &outcome, &spec));
    Ok(if outcome.accepted() {
        exit::OK
    } else {
        exit::FAILURE
    })
}

fn plan(config_path: &Path, file: &Path, asked: ops::PlanAsk<'_>) -> anyhow::Result<i32> {
    let config = config::load(config_path, CheckLevel::SourcesOnly)?;
    let source = asked.source;
    if let Ok(absolute) = file.canonicalize() {
        let request = Request::Plan {
            file: absolute,
            source: source.map(str::to_string),
            json: asked.json,
            person: asked.person.map(str::to_string),
        };
        if let Some(code) = ask_daemon(&config, &request)? {
            return Ok(code);
        }
    }
    // Usage problems (no such source, a target that is not defined) are exit 2.
    ops::resolve_source(&config, file, source).map_err(|error| Usage(error.to_string()))?;
    let store = open_store_read(&config.daemon.state_dir)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    Ok(ops::plan(&config, &store, file, asked, &mut out)?)
}

fn sync(config_path: &Path, file: &Path, source: Option<&str>, json: bool) -> anyhow::Result<i32> {
    let config = config::load(config_path, CheckLevel::Full)?;
    let source =
        ops::resolve_source(&config, file, source).map_err(|error| Usage(error.to_string()))?;
    rostersync::file_modes::private_dir(&config.daemon.state_dir)
        .with_context(|| format!("cannot create {}", config.daemon.state_dir.display()))?;
    let db = config.daemon.state_dir.join("db");
    let store = Store::open(&db).with_context(|| {
        format!(
            "cannot open the state in {} (is the daemon running? it holds the store while it runs)",
            db.display()
        )
    })?;
    let context = SyncContext {
        config: &config,
        store: std::sync::Arc::new(store),
        today: rostersync::daemon::today(),
        now: rostersync::sync::unix_now,
        file_name: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let seeded = runtime.block_on(rostersync::sync::seed_and_push(&context, source))?;
    let outcome = runtime.block_on(sync_file(&context, source, file))?;
    let shown = rostersync::escape::path(file);
    Ok(seeded_code(&seeded).max(match outcome {
        SyncOutcome::Refused(ingested) => {
            for problem in &ingested.problems {
                println!("{}", problem.located(&shown));
            }
            let spec = source.spec()?;
            println!("{}", report::verdict_line(&shown, &ingested, &spec));
            exit::FAILURE
        }
        SyncOutcome::Duplicate => {
            println!(
                "{shown}: the same bytes as the last accepted file of source {}: nothing to do",
                source.name.get_ref()
            );
            exit::OK
        }
        SyncOutcome::Held(plan) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{}", report::plan_table(&plan));
            }
            exit::HELD
        }
        SyncOutcome::Done(plan) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{}", report::plan_table(&plan));
            }
            let parked: u64 = plan.targets.values().map(|t| t.parked).sum();
            let stopped = plan.targets.values().any(|t| t.stopped.is_some());
            if parked > 0 || stopped {
                exit::FAILURE
            } else {
                exit::OK
            }
        }
    }))
}

/// `sync`'s exit code for the records seeded before its file: 1 when some
/// were parked or a target stopped.
fn seeded_code(seeded: &std::collections::BTreeMap<String, rostersync::sync::SeedPushed>) -> i32 {
    if seeded.values().any(|pushed| pushed.failed()) {
        exit::FAILURE
    } else {
        exit::OK
    }
}

/// The store as it is, for reading; an empty one in memory if there is none
/// yet, so that a dry run creates nothing.
fn open_store_read(state_dir: &Path) -> anyhow::Result<Store> {
    let path = state_dir.join("db");
    if !path.exists() {
        return Ok(Store::temporary()?);
    }
    Store::open(&path).with_context(|| {
        format!(
            "cannot open the state in {} (is the daemon running? it holds the store while it runs)",
            path.display()
        )
    })
}
