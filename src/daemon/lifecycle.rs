//! Where a processed file goes (DESIGN.md, *Folders*): `archive/` with its
//! `.report.json`, `rejected/` with its `.errors.txt`, `held/` with its
//! `.plan.txt` (and `.plan.json`, which `approve` reads back). Names and
//! report contents are plain functions; moving and writing are the IO part,
//! always atomic (temporary file, fsync, rename, fsync of the folder).

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::ingest::Ingested;
use crate::plan::Plan;
use crate::watch;

pub const ARCHIVE: &str = "archive";
pub const REJECTED: &str = "rejected";
pub const HELD: &str = "held";

pub const REPORT_SUFFIX: &str = ".report.json";
pub const ERRORS_SUFFIX: &str = ".errors.txt";
pub const PLAN_TEXT_SUFFIX: &str = ".plan.txt";
pub const PLAN_JSON_SUFFIX: &str = ".plan.json";

/// `<UTC timestamp>_<name>`, the timestamp to the millisecond and free of
/// characters that network shares refuse: `20261121T093012.345Z_users.csv`.
pub fn timestamped(at: DateTime<Utc>, name: &str) -> String {
    format!("{}_{name}", at.format("%Y%m%dT%H%M%S%.3fZ"))
}

/// The name a file arrived with, from a timestamped name (a held file's).
pub fn original_name(timestamped: &str) -> &str {
    match timestamped.split_once('_') {
        Some((stamp, rest))
            if stamp.len() == 20 && stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T' =>
        {
            rest
        }
        _ => timestamped,
    }
}

/// `name` with `suffix` appended (`a.csv` → `a.csv.report.json`).
pub fn beside(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// What a `.report.json` holds: the plan (the shape `plan --json` prints),
/// each action with its status once known, and whether every target has
/// taken or parked everything (`complete`).
#[derive(Debug, Serialize)]
pub struct FileReport<'a> {
    /// First, so that a restart finds open reports by reading a few bytes.
    pub complete: bool,
    /// Same bytes as the source's last accepted file: nothing was done.
    pub duplicate: bool,
    /// UTC, RFC 3339.
    pub processed_at: String,
    #[serde(flatten)]
    pub plan: &'a Plan,
}

/// A report as JSON, with every action `pending` until its target took it.
pub fn report_value(plan: &Plan, duplicate: bool, at: DateTime<Utc>) -> Value {
    let report = FileReport {
        complete: false,
        duplicate,
        processed_at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        plan,
    };
    let mut value = serde_json::to_value(&report).unwrap_or(Value::Null);
    if let Some(targets) = value.get_mut("targets").and_then(Value::as_object_mut) {
        for target in targets.values_mut() {
            for action in actions_mut(target) {
                if action.get("status").is_none() {
                    action["status"] = Value::from("pending");
                }
            }
        }
    }
    let complete = is_complete(&value);
    value["complete"] = Value::from(complete);
    value
}

fn actions_mut(target: &mut Value) -> impl Iterator<Item = &mut Value> {
    target
        .get_mut("actions")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// No action of any target is still pending.
pub fn is_complete(report: &Value) -> bool {
    report
        .get("targets")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|targets| targets.values())
        .filter_map(|target| target.get("actions").and_then(Value::as_array))
        .flatten()
        .all(|action| action.get("status").and_then(Value::as_str) != Some("pending"))
}

/// Where a record stands at a target, for a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordStatus {
    Pending,
    Done,
    Parked(String),
}

/// Sets the status of `target`'s pending actions from `lookup(kind, key)`,
/// recounts its parked ones and the report's `complete`. Returns whether
/// anything changed.
pub fn resolve<E>(
    report: &mut Value,
    target: &str,
    mut lookup: impl FnMut(&str, &str) -> Result<RecordStatus, E>,
) -> Result<bool, E> {
    let mut changed = false;
    if let Some(target_report) = report.get_mut("targets").and_then(|t| t.get_mut(target)) {
        let mut parked = 0u64;
        for action in actions_mut(target_report) {
            if action.get("status").and_then(Value::as_str) == Some("pending") {
                let kind = action.get("kind").and_then(Value::as_str).unwrap_or("");
                let key = action.get("ext_id").and_then(Value::as_str).unwrap_or("");
                match lookup(kind, key)? {
                    RecordStatus::Pending => {}
                    RecordStatus::Done => {
                        action["status"] = Value::from("done");
                        changed = true;
                    }
                    RecordStatus::Parked(reason) => {
                        action["status"] = Value::from("parked");
                        action["reason"] = Value::from(reason);
                        changed = true;
                    }
                }
            }
            if action.get("status").and_then(Value::as_str) == Some("parked") {
                parked += 1;
            }
        }
        target_report["parked"] = Value::from(parked);
    }
    if changed {
        let complete = is_complete(report);
        report["complete"] = Value::from(complete);
    }
    Ok(changed)
}

/// The `.errors.txt` of a refused file: every problem by line, then the verdict.
pub fn errors_text(shown: &str, ingested: &Ingested, spec: &crate::ingest::SourceSpec) -> String {
    let mut text = String::new();
    for problem in &ingested.problems {
        text.push_str(&problem.located(shown).to_string());
        text.push('\n');
    }
    if ingested.problems_not_listed > 0 {
        text.push_str(&format!(
            "{shown}: … and {} more problems\n",
            ingested.problems_not_listed
        ));
    }
    text.push_str(&crate::report::verdict_line(shown, ingested, spec));
    text.push('\n');
    text
}

/// Creates each inbox's sub-folders, the state and log folders.
pub fn prepare_folders(config: &Config) -> std::io::Result<()> {
    let mut folders = vec![
        config.daemon.state_dir.clone(),
        config.daemon.log_dir.clone(),
    ];
    for source in &config.sources {
        let inbox = source.inbox.get_ref();
        folders.extend(watch::SUBFOLDERS.iter().map(|sub| inbox.join(sub)));
    }
    for path in folders {
        std::fs::create_dir_all(&path).map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!("cannot create folder {}: {error}", path.display()),
            )
        })?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync,
/// rename over, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = folder.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    sync_folder(folder);
    Ok(())
}

fn sync_folder(folder: &Path) {
    // Best effort: some file systems refuse to fsync a directory.
    if let Ok(dir) = std::fs::File::open(folder) {
        let _ = dir.sync_all();
    }
}

/// Moves `file` into `inbox/<folder>/<timestamp>_<name>` with its side files
/// (`suffix` → contents), written first so that a file in the folder always
/// has them. Returns the file's new path. `name` is the name to keep (a held
/// file keeps the one it arrived with).
pub fn file_away(
    file: &Path,
    inbox: &Path,
    folder: &str,
    name: &str,
    at: DateTime<Utc>,
    sides: &[(&str, &[u8])],
) -> std::io::Result<PathBuf> {
    let dir = inbox.join(folder);
    std::fs::create_dir_all(&dir)?;
    let mut destination = dir.join(timestamped(at, name));
    let mut n = 1;
    while destination.exists() {
        destination = dir.join(format!("{}-{n}", timestamped(at, name)));
        n += 1;
    }
    for (suffix, bytes) in sides {
        write_atomic(&beside(&destination, suffix), bytes)?;
    }
    std::fs::rename(file, &destination)?;
    sync_folder(&dir);
    if let Some(from) = file.parent() {
        sync_folder(from);
    }
    // The markers that said the file was complete go with it.
    for marker in watch::markers(file) {
        let _ = std::fs::remove_file(marker);
    }
    Ok(destination)
}

/// Reports under `inbox/archive/` that still have pending actions (after a
/// restart): only their first bytes are read to tell.
pub fn open_reports(inbox: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(inbox.join(ARCHIVE)) else {
        return Vec::new();
    };
    let mut open = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.to_string_lossy().ends_with(REPORT_SUFFIX) {
            continue;
        }
        let mut head = [0u8; 64];
        let read = std::fs::File::open(&path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .unwrap_or(0);
        let head = String::from_utf8_lossy(&head[..read]);
        let compact: String = head.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.starts_with("{\"complete\":false") {
            open.push(path);
        }
    }
    open.sort();
    open
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn archive_names_carry_the_utc_time() {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 21, 9, 30, 12)
            .single()
            .unwrap()
            + chrono::Duration::milliseconds(345);
        let name = timestamped(at, "users.csv");
        assert_eq!(name, "20261121T093012.345Z_users.csv");
        assert_eq!(original_name(&name), "users.csv");
        assert_eq!(original_name("my_users.csv"), "my_users.csv");
        assert_eq!(
            beside(Path::new("a/b.csv"), REPORT_SUFFIX),
            Path::new("a/b.csv.report.json")
        );
    }

    fn plan() -> Plan {
        let mut plan = Plan {
            source: "hr".into(),
            file: "u.csv".into(),
            rows: 2,
            held: None,
            targets: Default::default(),
        };
        let action = |key: &str| crate::plan::PlannedAction {
            action: crate::plan::ActionName::Create,
            kind: crate::ingest::record::RecordKind::Users,
            ext_id: key.into(),
            changes: Default::default(),
            deferred: Vec::new(),
            status: None,
            reason: None,
        };
        for target in ["a", "b"] {
            plan.targets.insert(
                target.into(),
                crate::plan::TargetPlan {
                    create: 2,
                    actions: vec![action("E1"), action("E2")],
                    ..Default::default()
                },
            );
        }
        plan
    }

    #[test]
    fn a_report_completes_as_each_target_takes_or_parks_its_records() {
        let mut report = report_value(&plan(), false, Utc::now());
        let text = serde_json::to_string_pretty(&report).unwrap();
        assert!(text.starts_with("{\n  \"complete\": false"), "{text}");
        assert_eq!(report["targets"]["a"]["actions"][0]["status"], "pending");

        let changed = resolve::<()>(&mut report, "a", |kind, key| {
            assert_eq!(kind, "users");
            Ok(match key {
                "E1" => RecordStatus::Done,
                _ => RecordStatus::Parked("refused".into()),
            })
        })
        .unwrap();
        assert!(changed);
        assert_eq!(report["targets"]["a"]["actions"][1]["status"], "parked");
        assert_eq!(report["targets"]["a"]["actions"][1]["reason"], "refused");
        assert_eq!(report["targets"]["a"]["parked"], 1);
        assert_eq!(report["complete"], false, "target b has not taken anything");

        // A target that is down leaves its records pending.
        assert!(!resolve::<()>(&mut report, "b", |_, _| Ok(RecordStatus::Pending)).unwrap());
        assert!(resolve::<()>(&mut report, "b", |_, _| Ok(RecordStatus::Done)).unwrap());
        assert_eq!(report["complete"], true);
    }

    #[test]
    fn files_move_with_their_side_files_and_open_reports_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path();
        let file = inbox.join("u.csv");
        std::fs::write(&file, "x").unwrap();
        std::fs::write(beside(&file, ".done"), "").unwrap();
        let report = serde_json::to_vec_pretty(&report_value(&plan(), false, Utc::now())).unwrap();
        let moved = file_away(
            &file,
            inbox,
            ARCHIVE,
            "u.csv",
            Utc::now(),
            &[(REPORT_SUFFIX, &report)],
        )
        .unwrap();
        assert!(!file.exists() && moved.exists());
        assert!(!beside(&file, ".done").exists(), "the marker is removed");
        assert!(beside(&moved, REPORT_SUFFIX).exists());
        assert_eq!(open_reports(inbox), [beside(&moved, REPORT_SUFFIX)]);
        let leftovers: Vec<_> = std::fs::read_dir(inbox.join(ARCHIVE))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
