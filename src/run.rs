//! `rostersync run`, as far as this release goes: prepare the folders, then
//! watch every inbox and check each finished file, logging its verdict.
//! Planning and pushing to targets come with the sync engine; until then no
//! file is moved and nothing is sent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::config::{Config, Ready, SourceConfig};
use crate::ingest::{self, Verdict};
use crate::watch;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot create folder {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("source {name}: {message}")]
    Source { name: String, message: String },
}

/// How often inboxes are looked at.
const SCAN_INTERVAL: Duration = Duration::from_secs(1);

pub fn run(config: &Config) -> Result<(), RunError> {
    prepare_folders(config)?;
    let specs = config
        .sources
        .iter()
        .map(|source| {
            source.spec().map_err(|message| RunError::Source {
                name: source.name.get_ref().clone(),
                message,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    info!(
        sources = config.sources.len(),
        "watching inboxes; this release checks files and logs their verdict, it does not push yet"
    );
    let mut checked: HashMap<PathBuf, (u64, SystemTime)> = HashMap::new();
    loop {
        for (source, spec) in config.sources.iter().zip(&specs) {
            for file in ready_files(source) {
                let Ok(metadata) = std::fs::metadata(&file) else {
                    continue;
                };
                let stamp = (
                    metadata.len(),
                    metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                );
                if checked.get(&file) == Some(&stamp) {
                    continue;
                }
                checked.insert(file.clone(), stamp);
                check_file(source, spec, &file);
            }
        }
        std::thread::sleep(SCAN_INTERVAL);
    }
}

fn prepare_folders(config: &Config) -> Result<(), RunError> {
    let mut folders = vec![
        config.daemon.state_dir.clone(),
        config.daemon.log_dir.clone(),
    ];
    for source in &config.sources {
        let inbox = source.inbox.get_ref();
        folders.extend(watch::SUBFOLDERS.iter().map(|sub| inbox.join(sub)));
    }
    for path in folders {
        std::fs::create_dir_all(&path).map_err(|source| RunError::CreateDir { path, source })?;
    }
    Ok(())
}

/// Complete candidate files of an inbox, oldest first.
fn ready_files(source: &SourceConfig) -> Vec<PathBuf> {
    let inbox = source.inbox.get_ref();
    let entries = match std::fs::read_dir(inbox) {
        Ok(entries) => entries,
        Err(error) => {
            warn!(source = %source.name.get_ref(), inbox = %inbox.display(), %error, "cannot read inbox");
            return Vec::new();
        }
    };
    let now = SystemTime::now();
    let mut files: Vec<(SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter(|entry| entry.file_name().to_str().is_some_and(watch::is_candidate))
        .filter_map(|entry| {
            let modified = entry.metadata().ok()?.modified().ok()?;
            let path = entry.path();
            let ready = match source.ready {
                Ready::Stable => watch::settled(modified, now, source.settle.0),
                Ready::Marker => watch::has_marker(&path),
            };
            ready.then_some((modified, path))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, path)| path).collect()
}

fn check_file(source: &SourceConfig, spec: &ingest::SourceSpec, file: &Path) {
    let name = source.name.get_ref();
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(error) => {
            warn!(source = %name, file = %file.display(), %error, "cannot read file");
            return;
        }
    };
    let outcome = ingest::ingest(&bytes, spec);
    let shown = file.display().to_string();
    for problem in &outcome.problems {
        warn!(source = %name, "{}", problem.located(&shown));
    }
    match &outcome.verdict {
        Verdict::Accepted => info!(
            source = %name,
            file = %shown,
            rows = outcome.rows,
            valid = outcome.records.len(),
            invalid = outcome.invalid_rows,
            "file is valid"
        ),
        Verdict::Refused { reason } => {
            warn!(source = %name, file = %shown, %reason, "file refused")
        }
    }
}
