#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)]

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use rostersync::cli::{Cli, Command, exit};
use rostersync::config::{self, CheckLevel, ConfigError};
use rostersync::ingest::{self, Ingested, SourceSpec, Verdict};
use rostersync::run;

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
        Command::Check => check(&config_path),
        Command::Validate { file, source } => validate(&config_path, file, source.as_deref()),
        Command::Run => {
            let config = config::load(&config_path, CheckLevel::Full)?;
            run::run(&config)?;
            Ok(exit::OK)
        }
    }
}

fn check(path: &Path) -> anyhow::Result<i32> {
    match config::load(path, CheckLevel::Full) {
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
