#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)]

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use rostersync::cli::{Cli, Command, exit};
use rostersync::config::{self, CheckLevel, ConfigError};
use rostersync::connectors::Connector;
use rostersync::ingest::{self, Ingested, SourceSpec, Verdict};
use rostersync::plan::{FileInfo, PlanOptions, SourceInfo, TargetInfo, plan_file};
use rostersync::store::Store;
use rostersync::sync::{SyncContext, SyncOutcome, sync_file};
use rostersync::{report, run};
use sha2::{Digest, Sha256};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let code = match execute(&cli) {
        Ok(code) => code,
        Err(error) => {
            // A config problem is a usage problem (exit 2), anything else a failure.
            let usage = error.is::<Usage>()
                || matches!(
                    error.downcast_ref::<ConfigError>(),
                    Some(ConfigError::Invalid { .. })
                );
            let code = if usage { exit::USAGE } else { exit::FAILURE };
            eprintln!("rostersync: {error:#}");
            code
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// A command asked for something that does not exist (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROSTERSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn execute(cli: &Cli) -> anyhow::Result<i32> {
    let config_path = config::locate(cli.config.as_deref());
    match &cli.command {
        Command::Check { online } => check(&config_path, *online),
        Command::Validate { file, source } => validate(&config_path, file, source.as_deref()),
        Command::Plan { file, source, json } => plan(&config_path, file, source.as_deref(), *json),
        Command::Sync { file, source, json } => sync(&config_path, file, source.as_deref(), *json),
        Command::Run => {
            let config = config::load(&config_path, CheckLevel::Full)?;
            run::run(&config)?;
            Ok(exit::OK)
        }
    }
}

fn check(path: &Path, online: bool) -> anyhow::Result<i32> {
    match config::load(path, CheckLevel::Full) {
        Ok(config) if online => check_online(&config),
        Ok(_) => {
            println!("ok");
            Ok(exit::OK)
        }
        Err(error @ ConfigError::Invalid { .. }) => {
            println!("{error}");
            Ok(exit::USAGE)
        }
        Err(error) => Err(error.into()),
    }
}

/// `check --online`: each target reached with its credentials, one line each.
fn check_online(config: &config::Config) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut failed = 0;
    for target in &config.targets {
        let name = target.name.get_ref();
        let verdict = match Connector::from_config(target) {
            Ok(connector) => runtime.block_on(connector.check()),
            Err(error) => Err(error.to_string()),
        };
        match verdict {
            Ok(()) => println!("target {name} ({}): ok", target.kind),
            Err(reason) => {
                failed += 1;
                println!("target {name} ({}): {reason}", target.kind);
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
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let spec = match source {
        Some(name) => {
            let config = config::load(config_path, CheckLevel::SourcesOnly)?;
            let source = config.source(name).ok_or_else(|| {
                Usage(format!(
                    "no source named {name:?} in {}",
                    config_path.display()
                ))
            })?;
            source.spec().map_err(anyhow::Error::msg)?
        }
        None => SourceSpec::wbt(ingest::guess_kind(&bytes)),
    };
    let outcome = ingest::ingest(&bytes, &spec);
    let shown = file.display().to_string();
    for problem in &outcome.problems {
        println!("{}", problem.located(&shown));
    }
    if outcome.problems_not_listed > 0 {
        println!(
            "{shown}: … and {} more problems",
            outcome.problems_not_listed
        );
    }
    println!("{}", summary(&shown, &outcome, &spec));
    Ok(if outcome.accepted() {
        exit::OK
    } else {
        exit::FAILURE
    })
}

fn plan(config_path: &Path, file: &Path, source: Option<&str>, json: bool) -> anyhow::Result<i32> {
    let config = config::load(config_path, CheckLevel::SourcesOnly)?;
    let source = resolve_source(&config, config_path, file, source)?;
    let spec = source.spec().map_err(anyhow::Error::msg)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let outcome = ingest::ingest(&bytes, &spec);
    let shown = file.display().to_string();
    if !outcome.accepted() {
        for problem in &outcome.problems {
            println!("{}", problem.located(&shown));
        }
        println!("{}", summary(&shown, &outcome, &spec));
        return Ok(exit::FAILURE);
    }
    let mut targets = Vec::new();
    for name in source.targets.get_ref() {
        let target = config
            .targets
            .iter()
            .find(|t| t.name.get_ref() == name.get_ref())
            .ok_or_else(|| {
                Usage(format!(
                    "source {} names target {}, which is not defined",
                    source.name.get_ref(),
                    name.get_ref()
                ))
            })?;
        targets.push(TargetInfo::from_config(target));
    }
    let store = open_store_read(&config.daemon.state_dir)?;
    let options = PlanOptions {
        today: chrono::Local::now().date_naive(),
        now: chrono::Utc::now().timestamp(),
        detail_limit: if json {
            usize::MAX
        } else {
            report::SHOWN_PER_ACTION
        },
    };
    let file_info = FileInfo {
        name: file
            .file_name()
            .map_or_else(|| shown.clone(), |n| n.to_string_lossy().into_owned()),
        sha256: Sha256::digest(&bytes).into(),
        rows: outcome.rows as u64,
    };
    let planned = plan_file(
        &store,
        &SourceInfo::from_config(source),
        &targets,
        &outcome.records,
        &file_info,
        &config.safety,
        options,
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&planned.plan)?);
    } else {
        print!("{}", report::plan_table(&planned.plan));
    }
    Ok(if planned.held() { exit::HELD } else { exit::OK })
}

fn sync(config_path: &Path, file: &Path, source: Option<&str>, json: bool) -> anyhow::Result<i32> {
    let config = config::load(config_path, CheckLevel::Full)?;
    let source = resolve_source(&config, config_path, file, source)?;
    std::fs::create_dir_all(&config.daemon.state_dir)
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
        today: chrono::Local::now().date_naive(),
        now: rostersync::sync::unix_now,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(sync_file(&context, source, file))?;
    let shown = file.display().to_string();
    Ok(match outcome {
        SyncOutcome::Refused(ingested) => {
            for problem in &ingested.problems {
                println!("{}", problem.located(&shown));
            }
            let spec = source.spec().map_err(anyhow::Error::msg)?;
            println!("{}", summary(&shown, &ingested, &spec));
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
    })
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

/// `--source NAME`, else the source whose inbox holds the file, else the only source.
fn resolve_source<'c>(
    config: &'c config::Config,
    config_path: &Path,
    file: &Path,
    name: Option<&str>,
) -> anyhow::Result<&'c config::SourceConfig> {
    if let Some(name) = name {
        return config.source(name).ok_or_else(|| {
            Usage(format!(
                "no source named {name:?} in {}",
                config_path.display()
            ))
            .into()
        });
    }
    let folder = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .ok();
    let by_inbox = config
        .sources
        .iter()
        .find(|s| folder.is_some() && s.inbox.get_ref().canonicalize().ok() == folder);
    match (by_inbox, config.sources.as_slice()) {
        (Some(source), _) => Ok(source),
        (None, [only]) => Ok(only),
        _ => Err(Usage(format!(
            "{} is not in a source's inbox: say which source it belongs to with --source",
            file.display()
        ))
        .into()),
    }
}

fn summary(file: &str, outcome: &Ingested, spec: &SourceSpec) -> String {
    let warnings = outcome.problems.iter().filter(|p| !p.is_error()).count();
    match &outcome.verdict {
        Verdict::Accepted if outcome.invalid_rows > 0 => format!(
            "{file}: accepted: {} of {} {} rows go on, {} invalid (max_invalid_rows = {}), {warnings} warning(s)",
            outcome.records.len(),
            outcome.rows,
            spec.kind,
            outcome.invalid_rows,
            spec.max_invalid_rows
        ),
        Verdict::Accepted => format!(
            "{file}: valid: {} {} rows, {warnings} warning(s)",
            outcome.rows, spec.kind
        ),
        Verdict::Refused { reason } => format!("{file}: refused: {reason}"),
    }
}
