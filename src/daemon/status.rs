//! `status.json` (README, *Status*): what the daemon is doing, written
//! atomically to the log folder, read back by `rostersync status` and
//! summed up in one line for systemd's `STATUS=`. Rendering is pure.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::model::{Candidate, RecordKind};

pub const FILE_NAME: &str = "status.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    /// UTC, RFC 3339.
    pub started_at: String,
    pub updated_at: String,
    /// `false` once the daemon stopped cleanly.
    pub running: bool,
    /// The local day `files_today` counts.
    pub day: String,
    pub files_today: u64,
    /// Set while the state directory cannot be written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_error: Option<StateFailure>,
    pub sources: BTreeMap<String, SourceStatus>,
    pub targets: BTreeMap<String, TargetStatus>,
}

/// What `status` shows while the state directory fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFailure {
    /// UTC, RFC 3339.
    pub since: String,
    pub error: String,
    /// The store itself failed: the daemon restarts once the disk recovers.
    pub store: bool,
    /// Probes tried so far.
    pub probes: u32,
    /// The next probe (UTC, RFC 3339).
    pub next_probe: Option<String>,
}

/// The last file of a source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    pub last_file: Option<String>,
    /// `archived`, `duplicate`, `rejected`, `held`, or `failed`.
    pub outcome: Option<String>,
    /// Where the file went.
    pub moved_to: Option<String>,
    pub at: Option<String>,
    /// Why the last file failed (an IO or store error), if it did.
    pub error: Option<String>,
    /// Why the last file was refused (its verdict) or held (the safety rule).
    #[serde(default)]
    pub reason: Option<String>,
    /// Entries of the inbox that are not taken (links, folders, pipes), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<IgnoredEntry>,
    /// The files waiting in `held/` for `approve`, oldest first: whatever
    /// came after them, they wait until someone decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldFile>,
}

/// A file waiting in a source's `held/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldFile {
    /// Its name in `held/` (timestamped), escaped as in the log.
    pub file: String,
    /// When it was held (UTC, RFC 3339), from its name.
    pub since: Option<String>,
    /// The safety rule that holds it, from its `.plan.txt`.
    pub rule: Option<String>,
}

/// An inbox entry that is not taken, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoredEntry {
    /// Escaped, as in the log.
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetStatus {
    /// Records still to push, parked ones included.
    pub outbox: u64,
    pub parked: u64,
    /// Of the parked, those the target holds several accounts for.
    #[serde(default)]
    pub ambiguous: u64,
    /// The first of them ([`AMBIGUOUS_LISTED`]), with their candidates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ambiguous_records: Vec<AmbiguousRecord>,
    pub last_error: Option<String>,
    /// When the target last confirmed a record (UTC, RFC 3339).
    pub last_push_at: Option<String>,
    /// Why the daily re-plan deleted none of the accounts due
    /// (`max_delete_count`), until a re-plan finds them within it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletes_held: Option<String>,
}

/// How many ambiguous records of a target `status` lists (`show` tells
/// the candidates of any record).
pub const AMBIGUOUS_LISTED: usize = 20;

/// A record parked because the target holds several accounts that could be its.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmbiguousRecord {
    pub kind: RecordKind,
    pub key: String,
    pub candidates: Vec<Candidate>,
}

impl Status {
    /// The status of a daemon just started: every source of `config` known,
    /// and what the `previous` daemon's status.json said that still holds:
    /// the files of today, each source's last file, each target's last
    /// push. Not its errors (this daemon finds its own), nor its counts
    /// (read again from the store and the inboxes).
    pub fn starting(
        config: &crate::config::Config,
        previous: Option<&Status>,
        pid: u32,
        now: String,
        today: chrono::NaiveDate,
    ) -> Status {
        let day = today.to_string();
        let previous = previous.cloned().unwrap_or_default();
        let sources = config
            .sources
            .iter()
            .map(|s| {
                let name = s.name.get_ref();
                let last = previous.sources.get(name).cloned().unwrap_or_default();
                let source = SourceStatus {
                    ignored: Vec::new(),
                    held: Vec::new(),
                    ..last
                };
                (name.clone(), source)
            })
            .collect();
        let targets = config
            .targets
            .iter()
            .map(|t| {
                let name = t.name.get_ref();
                let last_push_at = previous
                    .targets
                    .get(name)
                    .and_then(|t| t.last_push_at.clone());
                let target = TargetStatus {
                    last_push_at,
                    ..TargetStatus::default()
                };
                (name.clone(), target)
            })
            .collect();
        Status {
            pid,
            started_at: now.clone(),
            updated_at: now,
            running: true,
            files_today: if previous.day == day {
                previous.files_today
            } else {
                0
            },
            day,
            sources,
            targets,
            ..Status::default()
        }
    }

    /// Files held, over every source.
    pub fn held(&self) -> usize {
        self.sources.values().map(|s| s.held.len()).sum()
    }

    /// Counts a processed file, starting a new count on a new day.
    pub fn count_file(&mut self, day: &str) {
        if self.day != day {
            self.day = day.to_string();
            self.files_today = 0;
        }
        self.files_today += 1;
    }
}

/// The daily summary of `[[notify]]`: the day's figures, and one line per
/// source (its last file) and per target (what waits).
pub fn daily_summary(status: &Status) -> (BTreeMap<String, u64>, Vec<String>) {
    let total = |f: fn(&TargetStatus) -> u64| status.targets.values().map(f).sum::<u64>();
    let held: u64 = status.sources.values().map(|s| s.held.len() as u64).sum();
    let counts = BTreeMap::from([
        ("files".to_string(), status.files_today),
        ("held_files".to_string(), held),
        ("outbox".to_string(), total(|t| t.outbox)),
        ("parked".to_string(), total(|t| t.parked)),
        ("ambiguous".to_string(), total(|t| t.ambiguous)),
    ]);
    let mut lines = vec![format!("{} file(s) on {}", status.files_today, status.day)];
    for (name, source) in &status.sources {
        lines.push(match (&source.last_file, &source.outcome) {
            (Some(file), Some(outcome)) => format!(
                "source {name}: last file {file} {outcome} at {}, {} held",
                source.at.as_deref().unwrap_or("?"),
                source.held.len()
            ),
            _ => format!("source {name}: no file yet"),
        });
    }
    for (name, target) in &status.targets {
        lines.push(format!(
            "target {name}: outbox {}, parked {} ({} ambiguous), last push {}",
            target.outbox,
            target.parked,
            target.ambiguous,
            target.last_push_at.as_deref().unwrap_or("none yet")
        ));
    }
    (counts, lines)
}

/// The one line systemd shows (`STATUS=`).
pub fn status_line(status: &Status) -> String {
    let outbox: u64 = status.targets.values().map(|t| t.outbox).sum();
    let parked: u64 = status.targets.values().map(|t| t.parked).sum();
    let mut line = format!(
        "{} file(s) today, outbox {outbox}, parked {parked}",
        status.files_today
    );
    let held = status.held();
    if held > 0 {
        let _ = write!(line, ", HELD {held} (rostersync status)");
    }
    match &status.state_error {
        Some(state) => format!("STATE DIRECTORY FAILING since {}; {line}", state.since),
        None => line,
    }
}

/// `rostersync status`, for a person.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let state = if status.running {
        format!("running (pid {})", status.pid)
    } else {
        "stopped".to_string()
    };
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "rostersync {state}, since {}; updated {}",
        status.started_at, status.updated_at
    );
    let _ = writeln!(out, "files today ({}): {}", status.day, status.files_today);
    if let Some(state) = &status.state_error {
        render_state_error(&mut out, state);
    }
    let _ = writeln!(out, "\nsources:");
    for (name, source) in &status.sources {
        match (&source.last_file, &source.outcome) {
            (Some(file), Some(outcome)) => {
                let _ = write!(out, "  {name}: last file {file}: {outcome}");
                if let Some(at) = &source.at {
                    let _ = write!(out, " at {at}");
                }
                if let Some(moved) = &source.moved_to {
                    let _ = write!(out, " → {moved}");
                }
                if let Some(error) = &source.error {
                    let _ = write!(out, " ({error})");
                }
                if let Some(reason) = &source.reason {
                    let _ = write!(out, ": {reason}");
                }
                out.push('\n');
            }
            _ => {
                let _ = writeln!(out, "  {name}: no file yet");
            }
        }
        for entry in &source.ignored {
            let _ = writeln!(out, "    not taken: {}: {}", entry.name, entry.reason);
        }
        for held in &source.held {
            let _ = write!(out, "    HELD: held/{}", held.file);
            if let Some(since) = &held.since {
                let _ = write!(out, " since {since}");
            }
            if let Some(rule) = &held.rule {
                let _ = write!(out, ": {rule}");
            }
            let _ = writeln!(
                out,
                " (see its .plan.txt; `rostersync approve` releases it)"
            );
        }
    }
    let _ = writeln!(out, "\ntargets:");
    for (name, target) in &status.targets {
        let _ = write!(
            out,
            "  {name}: outbox {}, parked {}",
            target.outbox, target.parked
        );
        if target.ambiguous > 0 {
            let _ = write!(out, " ({} ambiguous)", target.ambiguous);
        }
        match &target.last_push_at {
            Some(at) => {
                let _ = write!(out, ", last push {at}");
            }
            None => {
                let _ = write!(out, ", nothing pushed yet");
            }
        }
        out.push('\n');
        if let Some(error) = &target.last_error {
            let _ = writeln!(out, "    last error: {error}");
        }
        if let Some(held) = &target.deletes_held {
            let _ = writeln!(out, "    DELETES HELD: {held}");
        }
        render_ambiguous(&mut out, name, target);
    }
    out
}

/// The state directory's failure: what, since when, what happens next.
fn render_state_error(out: &mut String, state: &StateFailure) {
    let _ = writeln!(
        out,
        "\nSTATE DIRECTORY FAILING since {}: {}",
        state.since, state.error
    );
    let _ = writeln!(
        out,
        "  files wait in their inbox and pushes pause; {} probe(s) so far, next at {}",
        state.probes,
        state
            .next_probe
            .as_deref()
            .unwrap_or("once the first is scheduled")
    );
    if state.store {
        let _ = writeln!(
            out,
            "  the store failed: the daemon starts again by itself once the disk takes writes"
        );
    }
}

/// The ambiguous records of a target, each with the accounts it could be.
fn render_ambiguous(out: &mut String, name: &str, target: &TargetStatus) {
    for record in &target.ambiguous_records {
        let accounts: Vec<String> = record
            .candidates
            .iter()
            .map(|c| {
                format!(
                    "{} (login {:?}, by {})",
                    c.id,
                    c.login,
                    c.matched_by.join(" and ")
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "    ambiguous: {} {} could be {}",
            record.kind,
            record.key,
            accounts.join(" or ")
        );
    }
    let unlisted = target
        .ambiguous
        .saturating_sub(target.ambiguous_records.len() as u64);
    if unlisted > 0 {
        let _ = writeln!(
            out,
            "    … and {unlisted} more ambiguous (`rostersync show KEY`)"
        );
    }
    if target.ambiguous > 0 {
        let _ = writeln!(
            out,
            "    sort the accounts out at the target, then `rostersync retry --target {name}`"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        let mut status = Status {
            pid: 42,
            started_at: "2026-11-21T08:00:00Z".into(),
            updated_at: "2026-11-21T09:00:00Z".into(),
            running: true,
            day: "2026-11-21".into(),
            files_today: 3,
            ..Status::default()
        };
        status.sources.insert(
            "hr-users".into(),
            SourceStatus {
                last_file: Some("users.csv".into()),
                outcome: Some("archived".into()),
                moved_to: Some("archive/20261121T085959.000Z_users.csv".into()),
                at: Some("2026-11-21T08:59:59Z".into()),
                error: None,
                reason: None,
                ignored: vec![IgnoredEntry {
                    name: "x.csv".into(),
                    reason: "a folder".into(),
                }],
                held: Vec::new(),
            },
        );
        status
            .sources
            .insert("hr-orgs".into(), SourceStatus::default());
        status.targets.insert(
            "lms".into(),
            TargetStatus {
                outbox: 12,
                parked: 1,
                last_error: Some("login ana is reserved".into()),
                last_push_at: Some("2026-11-21T09:00:00Z".into()),
                ..TargetStatus::default()
            },
        );
        status.targets.insert(
            "erp".into(),
            TargetStatus {
                outbox: 3,
                ..TargetStatus::default()
            },
        );
        status
    }

    #[test]
    fn the_daily_summary_counts_the_day_and_names_each_source_and_target() {
        let status = status();
        let (counts, lines) = daily_summary(&status);
        assert_eq!(counts["files"], 3);
        let total: u64 = status.targets.values().map(|t| t.outbox).sum();
        assert_eq!(counts["outbox"], total);
        assert_eq!(lines[0], "3 file(s) on 2026-11-21");
        assert!(
            lines.iter().any(|l| l.starts_with(
                "source hr-users: last file users.csv archived at 2026-11-21T08:59:59Z"
            )),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 1 + status.sources.len() + status.targets.len());
    }

    #[test]
    fn one_line_for_systemd() {
        assert_eq!(
            status_line(&status()),
            "3 file(s) today, outbox 15, parked 1"
        );
    }

    #[test]
    fn a_page_for_a_person() {
        assert_eq!(
            render(&status()),
            "rostersync running (pid 42), since 2026-11-21T08:00:00Z; updated 2026-11-21T09:00:00Z
files today (2026-11-21): 3

sources:
  hr-orgs: no file yet
  hr-users: last file users.csv: archived at 2026-11-21T08:59:59Z → archive/20261121T085959.000Z_users.csv
    not taken: x.csv: a folder

targets:
  erp: outbox 3, parked 0, nothing pushed yet
  lms: outbox 12, parked 1, last push 2026-11-21T09:00:00Z
    last error: login ana is reserved
"
        );
    }

    #[test]
    fn a_refused_file_is_shown_with_its_reason() {
        let mut status = status();
        status.sources.insert(
            "hr-orgs".into(),
            SourceStatus {
                last_file: Some("orgs.csv".into()),
                outcome: Some("rejected".into()),
                moved_to: Some("rejected/20261121T085959.000Z_orgs.csv".into()),
                at: Some("2026-11-21T08:59:59Z".into()),
                reason: Some("the file is empty".into()),
                ..SourceStatus::default()
            },
        );
        assert!(render(&status).contains(
            "  hr-orgs: last file orgs.csv: rejected at 2026-11-21T08:59:59Z → rejected/20261121T085959.000Z_orgs.csv: the file is empty\n"
        ));
        // A status.json of an older release, without it, still reads.
        let old =
            r#"{"last_file": null, "outcome": null, "moved_to": null, "at": null, "error": null}"#;
        assert_eq!(
            serde_json::from_str::<SourceStatus>(old).unwrap().reason,
            None
        );
    }

    #[test]
    fn ambiguous_records_are_listed_with_the_accounts_they_could_be() {
        let mut status = status();
        let lms = status.targets.get_mut("lms").unwrap();
        lms.last_error = None;
        lms.ambiguous = 2;
        lms.ambiguous_records = vec![AmbiguousRecord {
            kind: RecordKind::Users,
            key: "E5".into(),
            candidates: vec![
                Candidate {
                    id: "17".into(),
                    login: "jdoe".into(),
                    matched_by: vec!["login".into()],
                },
                Candidate {
                    id: "23".into(),
                    login: "john.doe".into(),
                    matched_by: vec!["email".into(), "ext_id".into()],
                },
            ],
        }];
        let page = render(&status);
        assert!(
            page.contains(
                "  lms: outbox 12, parked 1 (2 ambiguous), last push 2026-11-21T09:00:00Z
    ambiguous: users E5 could be 17 (login \"jdoe\", by login) or 23 (login \"john.doe\", by email and ext_id)
    … and 1 more ambiguous (`rostersync show KEY`)
    sort the accounts out at the target, then `rostersync retry --target lms`
"
            ),
            "{page}"
        );
        // A status.json of an older release, without them, still reads.
        let old = r#"{"outbox": 1, "parked": 0, "last_error": null, "last_push_at": null}"#;
        let target: TargetStatus = serde_json::from_str(old).unwrap();
        assert_eq!((target.ambiguous, target.ambiguous_records.len()), (0, 0));
    }

    #[test]
    fn the_count_restarts_each_day_and_json_round_trips() {
        let mut status = status();
        status.count_file("2026-11-21");
        assert_eq!(status.files_today, 4);
        status.count_file("2026-11-22");
        assert_eq!((status.day.as_str(), status.files_today), ("2026-11-22", 1));
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
    }

    #[test]
    fn held_files_are_counted_in_the_line_and_listed_in_the_page() {
        let mut status = status();
        status.sources.get_mut("hr-users").unwrap().held = vec![HeldFile {
            file: "20261120T070000.000Z_users.csv".into(),
            since: Some("2026-11-20T07:00:00Z".into()),
            rule: Some("max_block_percent: 40 of 100".into()),
        }];
        assert_eq!(
            status_line(&status),
            "3 file(s) today, outbox 15, parked 1, HELD 1 (rostersync status)"
        );
        assert!(render(&status).contains(
            "    HELD: held/20261120T070000.000Z_users.csv since 2026-11-20T07:00:00Z: max_block_percent: 40 of 100 (see its .plan.txt; `rostersync approve` releases it)\n"
        ));
    }

    #[test]
    fn a_restarted_daemon_keeps_what_still_holds_of_the_last_status() {
        let config = crate::config::parse(
            r#"
[daemon]
state_dir = "/tmp/s"
log_dir = "/tmp/l"
[[source]]
name = "hr-users"
kind = "users"
inbox = "/tmp/i"
targets = ["lms"]
[[target]]
name = "lms"
kind = "wbt-file"
dir = "/tmp/o"
"#,
            std::path::Path::new("/"),
            crate::config::CheckLevel::SourcesOnly,
        )
        .unwrap();
        let mut previous = status();
        previous.targets.get_mut("lms").unwrap().last_error = Some("refused".into());
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let now = "2026-11-21T10:00:00Z".to_string();
        let resumed = Status::starting(&config, Some(&previous), 7, now.clone(), day);
        assert_eq!((resumed.pid, resumed.files_today), (7, 3));
        let users = &resumed.sources["hr-users"];
        assert_eq!(users.last_file.as_deref(), Some("users.csv"));
        assert!(users.ignored.is_empty(), "found again by this daemon");
        // A source or target no longer configured is gone.
        assert_eq!(resumed.sources.len(), 1);
        assert_eq!(resumed.targets.len(), 1);
        let lms = &resumed.targets["lms"];
        assert_eq!(lms.last_push_at.as_deref(), Some("2026-11-21T09:00:00Z"));
        assert_eq!((lms.last_error.as_ref(), lms.outbox), (None, 0));
        // The next day, the count starts again.
        let next = day.succ_opt().unwrap();
        let resumed = Status::starting(&config, Some(&previous), 7, now, next);
        assert_eq!(
            (resumed.day.as_str(), resumed.files_today),
            ("2026-11-22", 0)
        );
    }
}
