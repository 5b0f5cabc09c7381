//! What `show`, `retry`, `plan` and `approve` do with the store. The daemon
//! runs them for the control socket; without a daemon the commands run
//! them on the store directly. Each returns the exit code and the text to print.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cli::exit;
use crate::config::{Config, SourceConfig};
use crate::ingest::{self, record::RecordKind};
use crate::plan::{FileInfo, PlanOptions, SourceInfo, TargetInfo, plan_file};
use crate::report;
use crate::store::{RecordKey, Store, StoreError};

use super::lifecycle;

/// What a command prints and its exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub code: i32,
    pub output: String,
}

impl Answer {
    pub fn new(code: i32, output: impl Into<String>) -> Answer {
        Answer {
            code,
            output: output.into(),
        }
    }
}

/// Why `plan`, `approve` or finding a file's source failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("no source named {0:?} in the config")]
    NoSuchSource(String),
    #[error("{} is not in a source's inbox: say which source it belongs to with --source", crate::escape::path(.0))]
    NotInAnInbox(PathBuf),
    #[error("{} is not in the held/ folder of a source's inbox", crate::escape::path(.0))]
    NotHeld(PathBuf),
    #[error("source {source_name} names target {target}, which is not defined")]
    UndefinedTarget { source_name: String, target: String },
    #[error("cannot read {}: {error}", crate::escape::path(path))]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot find {}: {error}", crate::escape::path(path))]
    NotFound {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Source(#[from] crate::config::SpecError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plan(#[from] crate::plan_output::OutputError),
    #[error("cannot write the plan: {0}")]
    Output(std::io::Error),
}

fn when(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| unix.to_string())
}

/// `rostersync show EXTERNAL_ID`: per target, what it acknowledged for that
/// record and when, what is still to push, and why a record is parked.
pub fn show(config: &Config, store: &Store, id: &str) -> Result<Answer, StoreError> {
    let mut out = String::new();
    let mut found = false;
    for target in &config.targets {
        for kind in [RecordKind::Users, RecordKind::Orgs] {
            let key = RecordKey {
                target: target.name.get_ref().clone(),
                kind,
                key: id.to_string(),
            };
            let Some(entry) = store.entry(&key)? else {
                continue;
            };
            found = true;
            let _ = writeln!(out, "{} {kind} {id} (source {}):", key.target, entry.source);
            let desired = if entry.desired.active {
                "active"
            } else {
                "blocked"
            };
            let _ = writeln!(out, "  desired: {desired}");
            match &entry.acked {
                Some(acked) => {
                    let deleted = !acked.active && store.is_deleted(&key)?;
                    let state = match (acked.active, deleted) {
                        (true, _) => "active",
                        (false, true) => "deleted",
                        (false, false) => "blocked",
                    };
                    let _ = write!(out, "  acknowledged: {state} at {}", when(acked.at));
                    if let Some(id) = &acked.target_id {
                        let _ = write!(out, ", target id {id}");
                    }
                    if acked.hash != entry.desired.hash {
                        let _ = write!(out, " (fields differ from the desired ones)");
                    }
                    out.push('\n');
                    if let Some(days) = target
                        .delete_after_days()
                        .filter(|_| kind == RecordKind::Users)
                        && !acked.active
                        && !deleted
                    {
                        let due = crate::diff::delete_due_on(acked, days);
                        let _ = writeln!(
                            out,
                            "  deleted from: {} (delete_after, unless it comes back before)",
                            due.map_or_else(|| "unknown".to_string(), |day| day.to_string())
                        );
                    }
                    for (field, value) in store
                        .acked_fields(
                            &key,
                            &crate::plan::TargetInfo::from_config(target).projector,
                        )?
                        .unwrap_or_default()
                    {
                        let _ = writeln!(out, "    {field} = {value:?}");
                    }
                }
                None => {
                    let _ = writeln!(out, "  acknowledged: nothing yet");
                }
            }
            if let Some(item) = store.outbox_item(&key)? {
                let _ = writeln!(
                    out,
                    "  to push: {} (queued {})",
                    item.action,
                    when(item.queued_at)
                );
            }
            if let Some(parked) = store.parked_item(&key)? {
                let _ = writeln!(out, "  parked at {}: {}", when(parked.at), parked.reason);
                show_candidates(&store.candidates(&key)?, &mut out);
            }
        }
    }
    found |= show_unconfigured(config, store, id, &mut out)?;
    if !found {
        return Ok(Answer::new(
            exit::FAILURE,
            format!("no target knows a record {id:?}\n"),
        ));
    }
    Ok(Answer::new(exit::OK, out))
}

/// The accounts an ambiguous record could be, one a line.
fn show_candidates(candidates: &[crate::model::Candidate], out: &mut String) {
    if candidates.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "  accounts at the target that could be this record's (none taken):"
    );
    for candidate in candidates {
        let _ = writeln!(
            out,
            "    {}: login {:?}, found by {}",
            candidate.id,
            candidate.login,
            candidate.matched_by.join(" and ")
        );
    }
}

/// `rostersync retry [--target NAME]`: releases parked records for another try.
pub fn retry(config: &Config, store: &Store, target: Option<&str>) -> Result<Answer, StoreError> {
    if let Some(name) = target
        && !config.targets.iter().any(|t| t.name.get_ref() == name)
    {
        return Ok(Answer::new(
            exit::USAGE,
            format!("no target named {name:?} in the config\n"),
        ));
    }
    let mut out = String::new();
    for t in &config.targets {
        let name = t.name.get_ref();
        if target.is_some_and(|wanted| wanted != name) {
            continue;
        }
        let released = store.unpark_all(name)?;
        let _ = writeln!(out, "{name}: {released} parked record(s) released");
    }
    store.flush()?;
    Ok(Answer::new(exit::OK, out))
}

/// `--source NAME`, else the source whose inbox holds the file (or whose
/// `held/` does), else the only source.
pub fn resolve_source<'c>(
    config: &'c Config,
    file: &Path,
    name: Option<&str>,
) -> Result<&'c SourceConfig, OpsError> {
    if let Some(name) = name {
        return config
            .source(name)
            .ok_or_else(|| OpsError::NoSuchSource(name.to_string()));
    }
    let folder = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .ok();
    let by_inbox = config.sources.iter().find(|s| {
        let inbox = s.inbox.get_ref();
        folder.is_some()
            && (inbox.canonicalize().ok() == folder
                || inbox.join(lifecycle::HELD).canonicalize().ok() == folder)
    });
    match (by_inbox, config.sources.as_slice()) {
        (Some(source), _) => Ok(source),
        (None, [only]) => Ok(only),
        _ => Err(OpsError::NotInAnInbox(file.to_path_buf())),
    }
}

/// `rostersync plan FILE`: the dry run, as a table or JSON, written to
/// `out` (JSON one action at a time); returns the exit code.
/// What `plan` was asked for, beside the file.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanAsk<'a> {
    pub source: Option<&'a str>,
    pub json: bool,
    /// `--person EXT_ID`: that record's actions only.
    pub person: Option<&'a str>,
}

pub fn plan(
    config: &Config,
    store: &Store,
    file: &Path,
    asked: PlanAsk<'_>,
    out: &mut dyn std::io::Write,
) -> Result<i32, OpsError> {
    let PlanAsk {
        source,
        json,
        person,
    } = asked;
    let source = resolve_source(config, file, source)?;
    let spec = source.spec()?;
    let read_error = |error| OpsError::Read {
        path: file.to_path_buf(),
        error,
    };
    // Refused on its size alone, as the daemon does, before it is read.
    let size = std::fs::metadata(file).map_err(read_error)?.len();
    let (outcome, bytes) = match crate::config::size::too_big(size, source.max_file_size) {
        Some(reason) => (ingest::refused(reason), Vec::new()),
        None => {
            let bytes = std::fs::read(file).map_err(read_error)?;
            (ingest::ingest(&bytes, &spec), bytes)
        }
    };
    let shown = crate::escape::path(file);
    if !outcome.accepted() {
        let mut text = String::new();
        for problem in &outcome.problems {
            let _ = writeln!(text, "{}", problem.located(&shown));
        }
        let _ = writeln!(text, "{}", report::verdict_line(&shown, &outcome, &spec));
        out.write_all(text.as_bytes()).map_err(OpsError::Output)?;
        out.flush().map_err(OpsError::Output)?;
        return Ok(exit::FAILURE);
    }
    let mut targets = Vec::new();
    for name in source.targets.get_ref() {
        let target = config
            .targets
            .iter()
            .find(|t| t.name.get_ref() == name.get_ref())
            .ok_or_else(|| OpsError::UndefinedTarget {
                source_name: source.name.get_ref().clone(),
                target: name.get_ref().clone(),
            })?;
        targets.push(TargetInfo::from_config(target));
    }
    let options = PlanOptions {
        today: super::today(),
        now: chrono::Utc::now().timestamp(),
        // JSON: every action, written one at a time below.
        detail_limit: report::SHOWN_PER_ACTION,
    };
    let file_info = FileInfo {
        name: file
            .file_name()
            .map_or_else(|| shown.clone(), |n| n.to_string_lossy().into_owned()),
        sha256: Sha256::digest(&bytes).into(),
        rows: outcome.rows as u64,
    };
    let mut planned = plan_file(
        store,
        &SourceInfo::from_config(source),
        &targets,
        &outcome.records,
        &file_info,
        &config.safety,
        options,
    )?;
    planned.plan.problems = crate::sync::problems_let_through(&outcome);
    if let Some(person) = person {
        let mut actions = Vec::with_capacity(targets.len());
        // In the plan's order (by name), as the whole table has it.
        for name in planned.plan.targets.keys() {
            if let Some(target) = targets.iter().find(|t| &t.name == name) {
                let of_person = planned.actions_of(store, &outcome.records, target, person)?;
                actions.push((name.clone(), of_person));
            }
        }
        let written = if json {
            let shown = PersonPlan {
                source: &planned.plan.source,
                file: &planned.plan.file,
                rows: planned.plan.rows,
                held: &planned.plan.held,
                held_also: &planned.plan.held_also,
                person,
                targets: actions.into_iter().collect(),
            };
            serde_json::to_writer_pretty(&mut *out, &shown)
                .map_err(std::io::Error::other)
                .and_then(|()| out.write_all(b"\n"))
        } else {
            out.write_all(report::person_table(&planned.plan, person, &actions).as_bytes())
        };
        written
            .and_then(|()| out.flush())
            .map_err(OpsError::Output)?;
    } else if json {
        crate::plan_output::write_json(&planned, store, &outcome.records, &targets, out)?;
    } else {
        out.write_all(report::plan_table(&planned.plan).as_bytes())
            .and_then(|()| out.flush())
            .map_err(OpsError::Output)?;
    }
    Ok(if planned.held() { exit::HELD } else { exit::OK })
}

/// `plan --person --json`: the file's verdict and that record's actions per target.
#[derive(Serialize)]
struct PersonPlan<'p> {
    source: &'p str,
    file: &'p str,
    rows: u64,
    held: &'p Option<crate::safety::Held>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    held_also: &'p Vec<crate::safety::Held>,
    person: &'p str,
    targets: std::collections::BTreeMap<String, Vec<crate::plan::PlannedAction>>,
}

/// A held file to approve: its source, and the blocks its held plan showed.
pub struct HeldFile<'c> {
    pub path: PathBuf,
    pub source: &'c SourceConfig,
    /// The name it arrived with.
    pub name: String,
    pub blocks: u64,
}

/// Finds the source of a file in a `held/` folder and what its plan blocked.
pub fn held_file<'c>(config: &'c Config, file: &Path) -> Result<HeldFile<'c>, OpsError> {
    let path = file.canonicalize().map_err(|error| OpsError::NotFound {
        path: file.to_path_buf(),
        error,
    })?;
    let folder = path.parent().map(Path::to_path_buf);
    let source = config
        .sources
        .iter()
        .find(|s| s.inbox.get_ref().join(lifecycle::HELD).canonicalize().ok() == folder)
        .ok_or_else(|| OpsError::NotHeld(file.to_path_buf()))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let plan = std::fs::read(lifecycle::beside(&path, lifecycle::PLAN_JSON_SUFFIX))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<crate::plan::Plan>(&bytes).ok());
    let blocks = plan
        .as_ref()
        .map_or(0, |plan| plan.targets.values().map(|t| t.block).sum());
    // The plan has the name the file arrived with, even one too long to keep
    // whole in `held/`.
    let name = plan
        .map(|plan| plan.file)
        .filter(|name| lifecycle::kept_name(name) == lifecycle::original_name(&file_name))
        .unwrap_or_else(|| lifecycle::original_name(&file_name).to_string());
    Ok(HeldFile {
        name,
        path,
        source,
        blocks,
    })
}

/// `show` for the targets the store holds that the config no longer has
/// (kept until `forget-target`): what each holds of the record, without
/// its fields (how the target sees a record left with its config).
fn show_unconfigured(
    config: &Config,
    store: &Store,
    id: &str,
    out: &mut String,
) -> Result<bool, StoreError> {
    let mut found = false;
    for name in store.targets_held()? {
        if config.targets.iter().any(|t| t.name.get_ref() == &name) {
            continue;
        }
        for kind in [RecordKind::Users, RecordKind::Orgs] {
            let key = RecordKey {
                target: name.clone(),
                kind,
                key: id.to_string(),
            };
            let Some(entry) = store.entry(&key)? else {
                continue;
            };
            found = true;
            let _ = writeln!(
                out,
                "{name} {kind} {id} (source {}; target no longer in the config, kept until `rostersync forget-target {name}`):",
                entry.source
            );
            let active = |active: bool| if active { "active" } else { "blocked" };
            let _ = writeln!(out, "  desired: {}", active(entry.desired.active));
            match &entry.acked {
                Some(acked) => {
                    let _ = writeln!(
                        out,
                        "  acknowledged: {} at {}",
                        active(acked.active),
                        when(acked.at)
                    );
                }
                None => {
                    let _ = writeln!(out, "  acknowledged: nothing yet");
                }
            }
            if let Some(item) = store.outbox_item(&key)? {
                let _ = writeln!(
                    out,
                    "  to push: {} (queued {})",
                    item.action,
                    when(item.queued_at)
                );
            }
            if let Some(parked) = store.parked_item(&key)? {
                let _ = writeln!(out, "  parked at {}: {}", when(parked.at), parked.reason);
            }
        }
    }
    Ok(found)
}

/// `rostersync forget-target NAME`: drops what the store holds for a
/// target that left the config (its records, what waits, its parked
/// records), and says what it dropped. Refused while the config has it.
pub fn forget_target(config: &Config, store: &Store, name: &str) -> Result<Answer, StoreError> {
    if config.targets.iter().any(|t| t.name.get_ref() == name) {
        return Ok(Answer::new(
            exit::USAGE,
            format!(
                "target {name:?} is still in the config: remove it from the config first (and reload the daemon if one runs), then forget it\n"
            ),
        ));
    }
    let forgotten = store.forget_target(name)?;
    if forgotten == crate::store::Forgotten::default() {
        return Ok(Answer::new(
            exit::OK,
            format!("the store held nothing for target {name:?}\n"),
        ));
    }
    let counted =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    Ok(Answer::new(
        exit::OK,
        format!(
            "forgot target {name:?}: {}, {}, {}\n",
            counted(forgotten.users, "user", "users"),
            counted(forgotten.orgs, "organisation", "organisations"),
            counted(forgotten.parked, "parked record", "parked records"),
        ),
    ))
}
