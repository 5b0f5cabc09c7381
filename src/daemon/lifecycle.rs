//! Where a processed file goes (README, *Reports*): `archive/` with its
//! `.report.json`, `rejected/` with its `.errors.txt`, `held/` with its
//! `.plan.txt` (and `.plan.json`, which `approve` reads back). Names are
//! plain functions (report contents are in `file_report.rs`); moving and
//! writing are the IO part,
//! always atomic (temporary file, fsync, rename, fsync of the folder).

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::config::Config;
use crate::file_modes::{self, Access};
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
pub const ACTIONS_SUFFIX: &str = ".actions.jsonl";

/// `<UTC timestamp>_<name>`, the timestamp to the millisecond and free of
/// characters that network shares refuse: `20261121T093012.345Z_users.csv`.
/// A long name is shortened ([`kept_name`]).
pub fn timestamped(at: DateTime<Utc>, name: &str) -> String {
    format!("{}_{}", at.format("%Y%m%dT%H%M%S%.3fZ"), kept_name(name))
}

/// The most bytes of a file's name kept after its timestamp: with the
/// timestamp, the longest side file's suffix, a `-N` of a second file in
/// the same millisecond and the hidden temporary name of an atomic write
/// (`.NAME.SUFFIX.PID.tmp`), a name stays well within the 255 bytes file
/// systems allow.
pub const KEPT_NAME_BYTES: usize = 170;

/// An extension longer than this is not one worth keeping.
const KEPT_EXTENSION_BYTES: usize = 16;

/// `name` as an archived, rejected or held file keeps it: whole when short
/// enough, else its start, `~`, eight hex digits of the SHA-256 of the whole
/// name (two long names that share their start stay apart) and its
/// extension, in at most [`KEPT_NAME_BYTES`].
pub fn kept_name(name: &str) -> std::borrow::Cow<'_, str> {
    if name.len() <= KEPT_NAME_BYTES {
        return std::borrow::Cow::Borrowed(name);
    }
    let extension = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= KEPT_EXTENSION_BYTES => &name[dot..],
        _ => "",
    };
    let digest = sha2::Sha256::digest(name.as_bytes());
    let tag = format!("~{}", hex(&digest[..4]));
    let mut end = KEPT_NAME_BYTES - tag.len() - extension.len();
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}{tag}{extension}", &name[..end]))
}

/// The time in a timestamped name, if it has one.
pub fn stamp_of(timestamped: &str) -> Option<DateTime<Utc>> {
    let stamp = timestamped.get(..20)?;
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ")
        .ok()
        .map(|t| t.and_utc())
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

/// Creates the state folder (owner-only, closed if it was open), the log
/// folder, and each inbox's sub-folders (shared; see [`file_modes`]).
pub fn prepare_folders(config: &Config) -> std::io::Result<()> {
    fn in_folder(path: &Path) -> impl FnOnce(std::io::Error) -> std::io::Error + '_ {
        move |error| {
            std::io::Error::new(
                error.kind(),
                format!(
                    "cannot create folder {}: {error}{}",
                    path.display(),
                    crate::sandbox::hint(&error)
                ),
            )
        }
    }
    let state = &config.daemon.state_dir;
    file_modes::private_dir(state).map_err(in_folder(state))?;
    let logs = &config.daemon.log_dir;
    std::fs::create_dir_all(logs).map_err(in_folder(logs))?;
    for source in &config.sources {
        for sub in watch::SUBFOLDERS {
            let path = source.inbox.get_ref().join(sub);
            file_modes::shared_dir(&path).map_err(in_folder(&path))?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically, with its access: a temporary file
/// beside it, fsync, rename over, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access) -> std::io::Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = folder.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = file_modes::create_file(&temporary, access)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, path)
    })();
    if let Err(error) = written {
        // A full disk must not stay full of the half-written copy.
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
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
    let destination = place_sides(inbox, folder, name, at, sides)?;
    move_into(file, &destination)?;
    Ok(destination)
}

/// The first half of [`file_away`]: picks the file's new path in
/// `inbox/<folder>/` and writes its side files there. Returns that path.
pub fn place_sides(
    inbox: &Path,
    folder: &str,
    name: &str,
    at: DateTime<Utc>,
    sides: &[(&str, &[u8])],
) -> std::io::Result<PathBuf> {
    let destination = destination(inbox, folder, name, at)?;
    write_sides(&destination, sides)?;
    Ok(destination)
}

/// A file's new path in `inbox/<folder>/` (the folder made if need be):
/// its name stamped with `at`, told apart from one archived in the same
/// millisecond.
pub fn destination(
    inbox: &Path,
    folder: &str,
    name: &str,
    at: DateTime<Utc>,
) -> std::io::Result<PathBuf> {
    let dir = inbox.join(folder);
    file_modes::shared_dir(&dir)?;
    let mut destination = dir.join(timestamped(at, name));
    let mut n = 1;
    while destination.exists() {
        destination = dir.join(format!("{}-{n}", timestamped(at, name)));
        n += 1;
    }
    Ok(destination)
}

/// Writes the side files (`suffix` → contents) of a file going to `destination`.
pub fn write_sides(destination: &Path, sides: &[(&str, &[u8])]) -> std::io::Result<()> {
    for (suffix, bytes) in sides {
        write_atomic(&beside(destination, suffix), bytes, Access::Shared)?;
    }
    Ok(())
}

/// The second half of [`file_away`]: moves the file to `destination`, its
/// markers removed.
pub fn move_into(file: &Path, destination: &Path) -> std::io::Result<()> {
    std::fs::rename(file, destination)?;
    if let Some(dir) = destination.parent() {
        sync_folder(dir);
    }
    if let Some(from) = file.parent() {
        sync_folder(from);
    }
    // The markers that said the file was complete go with it.
    for marker in watch::markers(file) {
        let _ = std::fs::remove_file(marker);
    }
    Ok(())
}

/// Removes the side files [`place_sides`] wrote, for a file that did not
/// move after all (best effort: a side file without its file misleads).
pub fn remove_sides(destination: &Path, suffixes: &[&str]) {
    for suffix in suffixes {
        let _ = std::fs::remove_file(beside(destination, suffix));
    }
}

/// Puts the source's written-down actions (see `sync::actions_note_path`)
/// beside a file going to `destination`; returns the name they have there,
/// if there were any. The note stays until the file has moved: a crash
/// before that files it again, and its report needs them again.
pub fn link_actions_note(note: &Path, destination: &Path) -> std::io::Result<Option<String>> {
    if !note.exists() {
        return Ok(None);
    }
    let beside_it = beside(destination, ACTIONS_SUFFIX);
    // A second name for the same bytes (the reporter rewrites its copy by
    // renaming over it); a copy where the state and the inbox are on
    // different filesystems.
    if std::fs::hard_link(note, &beside_it).is_err() {
        std::fs::copy(note, &beside_it)?;
    }
    // Written in the state, owner-only; read beside the report (the
    // note, the same file, goes once the file is filed).
    file_modes::share(&beside_it)?;
    if let Some(dir) = beside_it.parent() {
        sync_folder(dir);
    }
    Ok(beside_it
        .file_name()
        .map(|name| name.to_string_lossy().into_owned()))
}

/// Where the daemon writes down, just before a commit, the plan it commits
/// for a source (`state_dir/commits/<source>.json`): if it dies after the
/// commit but before the file is archived, the restart finds the file in the
/// inbox with the bytes of the source's last accepted file, and archives it
/// with this plan as its report instead of as a duplicate. Removed once the
/// file is archived.
pub const COMMITS: &str = "commits";

/// A plan written down before its commit.
#[derive(Debug, Serialize, Deserialize)]
pub struct CommitNote {
    /// The SHA-256 of the file, in hex.
    pub sha256: String,
    pub plan: Plan,
}

pub fn commit_note_path(state_dir: &Path, source: &str) -> PathBuf {
    state_dir.join(COMMITS).join(format!("{source}.json"))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the plan down (atomically) before its commit.
pub fn write_commit_note(state_dir: &Path, plan: &Plan, sha256: &[u8; 32]) -> std::io::Result<()> {
    let path = commit_note_path(state_dir, &plan.source);
    if let Some(folder) = path.parent() {
        file_modes::private_dir(folder)?;
    }
    let note = CommitNote {
        sha256: hex(sha256),
        plan: plan.clone(),
    };
    let bytes = serde_json::to_vec(&note).map_err(std::io::Error::other)?;
    write_atomic(&path, &bytes, Access::Private)
}

/// The plan written down before the source's last commit, if its file is not
/// archived yet (an unreadable note is none: the file is then archived
/// without its actions).
pub fn read_commit_note(state_dir: &Path, source: &str) -> Option<CommitNote> {
    let bytes = std::fs::read(commit_note_path(state_dir, source)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The file of the source's last commit is archived: its note goes.
pub fn remove_commit_note(state_dir: &Path, source: &str) -> std::io::Result<()> {
    match std::fs::remove_file(commit_note_path(state_dir, source)) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Whether `inbox/archive/` holds a file named `name` archived at or after
/// `since` (Unix seconds): the file committed then was archived.
pub fn archived_since(inbox: &Path, name: &str, since: i64) -> bool {
    let Ok(entries) = std::fs::read_dir(inbox.join(ARCHIVE)) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        archive_entry_of(&file_name, name).is_some_and(|at| at.timestamp() >= since)
    })
}

/// When an archive entry (not a side file) of a file named `name` was archived.
fn archive_entry_of(entry: &str, name: &str) -> Option<DateTime<Utc>> {
    let at = stamp_of(entry)?;
    let rest = entry.get(21..)?;
    let name = kept_name(name);
    let name = name.as_ref();
    // A second file archived in the same millisecond gets `-N` after its name.
    let same = rest == name
        || rest.strip_prefix(name).is_some_and(|tail| {
            tail.strip_prefix('-')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
    same.then_some(at)
}

/// A commit as the store recorded it: which source committed which bytes,
/// under which name, when, and how many rows the file had (when known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedFile {
    pub source: String,
    pub name: String,
    pub sha256: [u8; 32],
    pub rows: u64,
    /// Unix seconds.
    pub at: i64,
}

/// A file whose bytes were committed is that very file, committed before a
/// restart (or a failed move) but not archived, when that commit was its
/// source's, under its name, and no file of that name was archived since
/// the commit. Its report is then the plan written down before the commit,
/// if that note is the one of these bytes; else (a commit by `rostersync
/// sync`, by a version that wrote no notes, or one that newer commits
/// followed) a plan without actions.
pub fn landed_commit(
    source: &str,
    committed: &CommittedFile,
    name: &str,
    archived_since_commit: bool,
    note: Option<CommitNote>,
) -> Option<Plan> {
    if committed.source != source || committed.name != name || archived_since_commit {
        return None;
    }
    Some(match note {
        Some(note) if note.sha256 == hex(&committed.sha256) && note.plan.file == name => note.plan,
        _ => Plan {
            source: source.to_string(),
            file: name.to_string(),
            rows: committed.rows,
            held: None,
            problems: Vec::new(),
            held_also: Vec::new(),
            targets: Default::default(),
        },
    })
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
        // `complete` is among the first keys, but not always the first: a
        // report rewritten as a JSON value has its keys sorted, and
        // `committed_before_restart` comes before it.
        let mut head = [0u8; 256];
        let read = std::fs::File::open(&path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .unwrap_or(0);
        let head = String::from_utf8_lossy(&head[..read]);
        let compact: String = head.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.contains("\"complete\":false") {
            open.push(path);
        }
    }
    open.sort();
    open
}

#[cfg(test)]
mod tests {
    use super::super::file_report::{Archived, FileReport, test_plan};
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

    #[test]
    fn long_names_are_shortened_keeping_their_extension_and_told_apart() {
        let at = Utc::now();
        let long = format!("{}.csv", "é".repeat(150));
        let other = format!("{}x.csv", "é".repeat(150));
        let kept = kept_name(&long);
        assert!(kept.len() <= KEPT_NAME_BYTES, "{}", kept.len());
        assert!(kept.starts_with("éé") && kept.ends_with(".csv"), "{kept}");
        assert_ne!(kept, kept_name(&other), "two long names stay apart");
        assert_eq!(kept, kept_name(&long), "the same name, the same short name");
        let longest = format!("{}{ACTIONS_SUFFIX}.4194304.tmp", timestamped(at, &long));
        assert!(longest.len() + ".-99".len() < 255, "{}", longest.len());
        // No extension worth keeping: the name is cut all the same.
        let bare = "u".repeat(240);
        assert_eq!(kept_name(&bare).len(), KEPT_NAME_BYTES);
        let odd = format!("{}.{}", "u".repeat(100), "x".repeat(100));
        assert!(!kept_name(&odd).ends_with(&"x".repeat(20)));
        assert_eq!(kept_name("users.csv"), "users.csv");

        // A long name archived is found again by its whole name.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(ARCHIVE)).unwrap();
        std::fs::write(dir.path().join(ARCHIVE).join(timestamped(at, &long)), "x").unwrap();
        assert!(archived_since(dir.path(), &long, at.timestamp()));
        assert!(!archived_since(dir.path(), &other, at.timestamp()));
    }

    #[test]
    fn a_report_rewritten_with_sorted_keys_is_still_found_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(ARCHIVE)).unwrap();
        let report = FileReport::new(&test_plan(), Archived::CommittedBeforeRestart, Utc::now());
        // What an older reporter wrote back: a JSON value, keys in sorted order.
        let rewritten = serde_json::to_value(&report).unwrap();
        let bytes = serde_json::to_vec_pretty(&rewritten).unwrap();
        assert!(
            String::from_utf8_lossy(&bytes).trim_start()[1..]
                .trim_start()
                .starts_with("\"committed_before_restart\""),
            "the case this test is about"
        );
        let path = dir
            .path()
            .join(ARCHIVE)
            .join(format!("x_u.csv{REPORT_SUFFIX}"));
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(open_reports(dir.path()), [path]);
    }

    #[test]
    fn files_move_with_their_side_files_and_open_reports_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path();
        let file = inbox.join("u.csv");
        std::fs::write(&file, "x").unwrap();
        std::fs::write(beside(&file, ".done"), "").unwrap();
        let report = serde_json::to_vec_pretty(&FileReport::new(
            &test_plan(),
            Archived::Committed,
            Utc::now(),
        ))
        .unwrap();
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

    #[test]
    fn a_file_committed_before_a_restart_is_told_from_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let (state_dir, inbox) = (dir.path().join("state"), dir.path().join("inbox"));
        let sha = [7u8; 32];
        let state = CommittedFile {
            source: "hr".into(),
            name: "u.csv".into(),
            sha256: sha,
            rows: 2,
            at: 1_800_000_000,
        };
        let mut committed = test_plan();
        committed.file = "u.csv".into();
        write_commit_note(&state_dir, &committed, &sha).unwrap();
        let note = || read_commit_note(&state_dir, "hr");
        assert_eq!(note().unwrap().sha256, hex(&sha));

        // Not archived since the commit: the plan written down is its report.
        let archived = archived_since(&inbox, "u.csv", state.at);
        assert!(!archived);
        let landed = landed_commit("hr", &state, "u.csv", archived, note()).unwrap();
        assert_eq!(landed.targets["a"].actions.len(), 2);
        assert_eq!(landed.targets["a"].actions[0].ext_id, "E1");

        // Another name or source, or a note of other bytes: not this file's plan.
        assert!(landed_commit("hr", &state, "v.csv", false, note()).is_none());
        assert!(landed_commit("crm", &state, "u.csv", false, note()).is_none());
        let other = CommitNote {
            sha256: hex(&[8u8; 32]),
            plan: committed.clone(),
        };
        let bare = landed_commit("hr", &state, "u.csv", false, Some(other)).unwrap();
        assert!(bare.targets.is_empty(), "{bare:?}");
        assert_eq!((bare.source.as_str(), bare.rows), ("hr", 2));

        // Archived at or after the commit: a real duplicate. Before it: not.
        let at = |secs| DateTime::from_timestamp(secs, 0).unwrap();
        std::fs::create_dir_all(inbox.join(ARCHIVE)).unwrap();
        let earlier = inbox
            .join(ARCHIVE)
            .join(timestamped(at(state.at - 1), "u.csv"));
        std::fs::write(&earlier, "x").unwrap();
        std::fs::write(beside(&earlier, REPORT_SUFFIX), "{}").unwrap();
        assert!(!archived_since(&inbox, "u.csv", state.at));
        let later = format!("{}-1", timestamped(at(state.at), "u.csv"));
        std::fs::write(inbox.join(ARCHIVE).join(&later), "x").unwrap();
        assert!(archived_since(&inbox, "u.csv", state.at));
        assert!(!archived_since(&inbox, "u.cs", state.at));
        assert!(landed_commit("hr", &state, "u.csv", true, note()).is_none());

        remove_commit_note(&state_dir, "hr").unwrap();
        assert!(note().is_none());
        remove_commit_note(&state_dir, "hr").unwrap();
    }
}
