//! Which files in an inbox are HR drops, when they are complete, and in what
//! order they are taken (README, *Sources: the drop folders*). The decisions are plain functions
//! over what a scan saw ([`Tracker`]); the folder scan and the `notify`
//! watchers are the thin IO part.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::ingest::record::RecordKind;

/// Sub-folders rostersync keeps in each inbox.
pub const SUBFOLDERS: [&str; 3] = ["archive", "rejected", "held"];

/// Marker files that say `NAME` is complete (`ready = "marker"`).
pub const MARKER_SUFFIXES: [&str; 2] = [".done", ".ok"];

/// An organisations file is taken before a users file that arrived up to this
/// long after it, and a users file waits for an organisations file that
/// arrived this close to it and is not complete yet.
pub const ORGS_FIRST_WINDOW: Duration = Duration::from_secs(10);

/// Hidden files, `*.tmp`, `*.part`, Office lock files (`~$*`) and markers are never taken.
pub fn is_candidate(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !(name.starts_with('.')
        || name.starts_with("~$")
        || lower.ends_with(".tmp")
        || lower.ends_with(".part")
        || MARKER_SUFFIXES.iter().any(|suffix| lower.ends_with(suffix)))
}

/// The marker files that would say `file` is complete.
pub fn markers(file: &Path) -> Vec<PathBuf> {
    MARKER_SUFFIXES
        .iter()
        .map(|suffix| {
            let mut marker = file.as_os_str().to_owned();
            marker.push(suffix);
            PathBuf::from(marker)
        })
        .collect()
}

/// `ready = "marker"`: `NAME.done` or `NAME.ok` exists beside it.
pub fn has_marker(file: &Path) -> bool {
    markers(file).iter().any(|marker| marker.exists())
}

/// When a candidate counts as complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Size and mtime unchanged for this long, as seen by this process.
    Settle(Duration),
    /// A marker file exists (whether it does is in [`Candidate::marker`]).
    Marker,
}

/// A file seen in an inbox by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Index of its source in the config.
    pub source: usize,
    pub kind: RecordKind,
    pub path: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
    pub rule: Rule,
    /// With [`Rule::Marker`]: the marker exists.
    pub marker: bool,
}

impl Candidate {
    fn stamp(&self) -> (u64, SystemTime) {
        (self.size, self.modified)
    }

    /// When it arrived, for ordering: an organisations file counts as
    /// arriving [`ORGS_FIRST_WINDOW`] earlier than it did.
    fn order_key(&self) -> (SystemTime, u8, &Path) {
        match self.kind {
            RecordKind::Orgs => (self.modified, 0, &self.path),
            RecordKind::Users => (self.modified + ORGS_FIRST_WINDOW, 1, &self.path),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    stamp: (u64, SystemTime),
    since: Instant,
}

/// What the scans saw so far: when each file last changed, as this process
/// observed it. Settling is judged on the local monotonic clock, never on
/// the file's mtime alone (a network share's clock may be off).
#[derive(Debug, Default)]
pub struct Tracker {
    seen: HashMap<PathBuf, Seen>,
}

/// What one scan decided.
#[derive(Debug, Default, PartialEq)]
pub struct Observed {
    /// Complete files, in the order to take them.
    pub ready: Vec<Candidate>,
    /// When a file still settling will be complete, if it stays unchanged.
    pub next: Option<Instant>,
    /// Files this scan saw for the first time, or changed since the last
    /// (their size or mtime): what they wait for starts again now.
    pub changed: Vec<Candidate>,
}

impl Tracker {
    /// Takes in everything a scan found (all inboxes) at `now`.
    pub fn observe(&mut self, candidates: Vec<Candidate>, now: Instant) -> Observed {
        self.seen
            .retain(|path, _| candidates.iter().any(|c| &c.path == path));
        let mut next: Option<Instant> = None;
        let mut complete = Vec::with_capacity(candidates.len());
        let mut changed = Vec::new();
        for candidate in candidates {
            let mut new = false;
            let seen = self.seen.entry(candidate.path.clone()).or_insert_with(|| {
                new = true;
                Seen {
                    stamp: candidate.stamp(),
                    since: now,
                }
            });
            if seen.stamp != candidate.stamp() {
                new = true;
                *seen = Seen {
                    stamp: candidate.stamp(),
                    since: now,
                };
            }
            if new {
                changed.push(candidate.clone());
            }
            let ready = match candidate.rule {
                Rule::Marker => candidate.marker,
                Rule::Settle(settle) => {
                    let at = seen.since + settle;
                    if now < at {
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                    now >= at
                }
            };
            complete.push((candidate, ready));
        }
        Observed {
            ready: order(complete),
            next,
            changed,
        }
    }

    /// Stops tracking a file (it was taken).
    pub fn forget(&mut self, path: &Path) {
        self.seen.remove(path);
    }
}

/// The complete files in the order to take them: oldest first, an
/// organisations file before a users file that arrived at about the same
/// time; a users file waits while such an organisations file is incomplete.
pub fn order(candidates: Vec<(Candidate, bool)>) -> Vec<Candidate> {
    let waiting_orgs: Vec<SystemTime> = candidates
        .iter()
        .filter(|(c, ready)| !ready && c.kind == RecordKind::Orgs)
        .map(|(c, _)| c.modified)
        .collect();
    let near = |a: SystemTime, b: SystemTime| {
        let gap = a.duration_since(b).or_else(|_| b.duration_since(a));
        gap.is_ok_and(|gap| gap <= ORGS_FIRST_WINDOW)
    };
    let mut ready: Vec<Candidate> = candidates
        .into_iter()
        .filter(|(c, ready)| {
            *ready
                && !(c.kind == RecordKind::Users
                    && waiting_orgs.iter().any(|&org| near(org, c.modified)))
        })
        .map(|(c, _)| c)
        .collect();
    ready.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    ready
}

/// A regular file of an inbox that may be an HR drop: (path, size, mtime).
pub type Found = (PathBuf, u64, SystemTime);

/// Why an inbox entry is not taken (hidden and temporary names aside, which
/// are skipped by design).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unfit {
    /// Never followed: it could point anywhere on the system.
    Symlink,
    Folder,
    /// A FIFO, a socket or a device.
    Special,
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unfit::Symlink => {
                "a symbolic link: links are not followed (they could point anywhere); drop the file itself"
            }
            Unfit::Folder => "a folder: folders are not looked into; drop files in the inbox itself",
            Unfit::Special => {
                "not a regular file (a named pipe, a socket or a device): only files are taken"
            }
        })
    }
}

/// What a scan of one inbox saw.
#[derive(Debug, Default)]
pub struct Scan {
    pub found: Vec<Found>,
    /// Entries that will not be taken, and why.
    pub unfit: Vec<(PathBuf, Unfit)>,
}

/// Lists an inbox's candidate files, and the entries it will not take
/// (blocking IO). A name that is not UTF-8 is taken like any other: it is
/// shown escaped, and kept in reports with its bad bytes replaced.
pub fn scan(inbox: &Path) -> std::io::Result<Scan> {
    let mut scan = Scan::default();
    for entry in std::fs::read_dir(inbox)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let name = file_name.to_string_lossy();
        if !is_candidate(&name) {
            continue;
        }
        // Our own folders, or links to folders standing in for them.
        if SUBFOLDERS.contains(&name.as_ref()) && entry.path().is_dir() {
            continue;
        }
        // Not followed: a link is refused for what it is, not for its target.
        // An entry gone between the listing and the stat is simply not there.
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        let kind = metadata.file_type();
        let unfit = if kind.is_symlink() {
            Unfit::Symlink
        } else if kind.is_dir() {
            Unfit::Folder
        } else if !kind.is_file() {
            Unfit::Special
        } else {
            let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            scan.found.push((entry.path(), metadata.len(), modified));
            continue;
        };
        scan.unfit.push((entry.path(), unfit));
    }
    Ok(scan)
}

/// The `notify` watchers of the inboxes; each change pokes `wake`. Dropping
/// this stops them.
pub struct Watchers {
    _watchers: Vec<Box<dyn notify::Watcher + Send>>,
}

/// How often a `poll = true` inbox is looked at.
pub fn poll_interval(settle: Duration) -> Duration {
    (settle / 2).clamp(Duration::from_millis(100), Duration::from_secs(2))
}

impl Watchers {
    /// Watches each inbox: (folder, poll instead of inotify, poll interval).
    pub fn start(
        inboxes: &[(PathBuf, bool, Duration)],
        wake: Arc<tokio::sync::Notify>,
    ) -> Result<Watchers, notify::Error> {
        use notify::Watcher;
        let mut watchers: Vec<Box<dyn notify::Watcher + Send>> = Vec::new();
        for (inbox, poll, interval) in inboxes {
            let wake = Arc::clone(&wake);
            let handler = move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|e| !e.kind.is_access()) {
                    wake.notify_one();
                }
            };
            let mut watcher: Box<dyn notify::Watcher + Send> = if *poll {
                let config = notify::Config::default().with_poll_interval(*interval);
                Box::new(notify::PollWatcher::new(handler, config)?)
            } else {
                Box::new(notify::RecommendedWatcher::new(
                    handler,
                    notify::Config::default(),
                )?)
            };
            watcher.watch(inbox, notify::RecursiveMode::NonRecursive)?;
            watchers.push(watcher);
        }
        Ok(Watchers {
            _watchers: watchers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_temporary_hidden_and_marker_files() {
        for name in [
            ".users.csv",
            "users.csv.tmp",
            "users.CSV.PART",
            "~$users.xlsx",
            "users.csv.done",
            "users.csv.ok",
        ] {
            assert!(!is_candidate(name), "{name}");
        }
        for name in ["users.csv", "orgs_2026-11-21.csv", "export.txt"] {
            assert!(is_candidate(name), "{name}");
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn file(name: &str, kind: RecordKind, size: u64, modified: SystemTime) -> Candidate {
        Candidate {
            source: 0,
            kind,
            path: PathBuf::from(name),
            size,
            modified,
            rule: Rule::Settle(Duration::from_secs(2)),
            marker: false,
        }
    }

    fn names(observed: &Observed) -> Vec<String> {
        observed
            .ready
            .iter()
            .map(|c| c.path.display().to_string())
            .collect()
    }

    #[test]
    fn a_file_is_complete_once_unchanged_for_settle() {
        let mut tracker = Tracker::default();
        let t0 = Instant::now();
        let sec = Duration::from_secs(1);
        let growing = |size| file("u.csv", RecordKind::Users, size, at(size));
        let seen = tracker.observe(vec![growing(10)], t0);
        assert!(seen.ready.is_empty());
        assert_eq!(seen.next, Some(t0 + 2 * sec));
        assert_eq!(seen.changed, [growing(10)]);
        // It grew: the settle starts again from this scan.
        let seen = tracker.observe(vec![growing(20)], t0 + sec);
        assert!(seen.ready.is_empty());
        assert_eq!(seen.next, Some(t0 + 3 * sec));
        assert_eq!(seen.changed, [growing(20)]);
        let seen = tracker.observe(vec![growing(20)], t0 + 2 * sec);
        assert!(seen.ready.is_empty() && seen.changed.is_empty());
        let seen = tracker.observe(vec![growing(20)], t0 + 3 * sec);
        assert_eq!(names(&seen), ["u.csv"]);
        assert_eq!(seen.next, None);
        assert!(seen.changed.is_empty());
    }

    #[test]
    fn an_old_mtime_alone_does_not_make_a_file_complete() {
        // A file copied with its old mtime (or from a share whose clock is
        // behind) is still watched for `settle` by this process.
        let mut tracker = Tracker::default();
        let t0 = Instant::now();
        let old = file("u.csv", RecordKind::Users, 10, at(0));
        assert!(tracker.observe(vec![old.clone()], t0).ready.is_empty());
        let mut bigger = old.clone();
        bigger.size = 11;
        let later = t0 + Duration::from_secs(5);
        assert!(tracker.observe(vec![bigger], later).ready.is_empty());
    }

    #[test]
    fn marker_mode_waits_for_the_marker() {
        let mut tracker = Tracker::default();
        let t0 = Instant::now();
        let mut f = file("u.csv", RecordKind::Users, 10, at(0));
        f.rule = Rule::Marker;
        let seen = tracker.observe(vec![f.clone()], t0 + Duration::from_secs(60));
        assert!(seen.ready.is_empty());
        assert_eq!(seen.next, None);
        f.marker = true;
        assert_eq!(names(&tracker.observe(vec![f], t0)), ["u.csv"]);
    }

    #[test]
    fn oldest_first_organisations_before_users_of_the_same_time() {
        let ready = |c: Candidate| (c, true);
        let order = order(vec![
            ready(file("users2.csv", RecordKind::Users, 1, at(100))),
            ready(file("users1.csv", RecordKind::Users, 1, at(0))),
            ready(file("orgs1.csv", RecordKind::Orgs, 1, at(3))),
            ready(file("orgs2.csv", RecordKind::Orgs, 1, at(50))),
        ]);
        let names: Vec<_> = order.iter().map(|c| c.path.display().to_string()).collect();
        // orgs1 arrived 3 s after users1: same time, organisations first.
        assert_eq!(
            names,
            ["orgs1.csv", "users1.csv", "orgs2.csv", "users2.csv"]
        );
    }

    #[test]
    fn users_wait_for_an_incomplete_organisations_file_of_the_same_time() {
        let order = order(vec![
            (file("users.csv", RecordKind::Users, 1, at(10)), true),
            (file("orgs.csv", RecordKind::Orgs, 1, at(8)), false),
            (
                file(
                    "old-users.csv",
                    RecordKind::Users,
                    1,
                    at(0) - ORGS_FIRST_WINDOW,
                ),
                true,
            ),
        ]);
        let names: Vec<_> = order.iter().map(|c| c.path.display().to_string()).collect();
        assert_eq!(names, ["old-users.csv"]);
    }

    #[test]
    fn links_folders_and_pipes_are_named_and_odd_names_taken() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path();
        let odd = std::ffi::OsStr::from_bytes(b"Employ\xe9s.csv");
        std::fs::write(inbox.join(odd), "x").unwrap();
        std::fs::write(inbox.join("u.csv"), "x").unwrap();
        std::fs::write(inbox.join("u.csv.part"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", inbox.join("link.csv")).unwrap();
        std::fs::create_dir(inbox.join("x.csv")).unwrap();
        std::fs::create_dir(inbox.join("archive")).unwrap();
        std::os::unix::fs::symlink(inbox.join("archive"), inbox.join("held")).unwrap();
        std::os::unix::fs::symlink(inbox.join("nowhere"), inbox.join("rejected")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            inbox.join("pipe.csv"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let scan = scan(inbox).unwrap();
        let mut found: Vec<_> = scan.found.iter().map(|(p, _, _)| p.clone()).collect();
        found.sort();
        assert_eq!(found, [inbox.join(odd), inbox.join("u.csv")]);
        let mut unfit = scan.unfit.clone();
        unfit.sort();
        assert_eq!(
            unfit,
            [
                (inbox.join("link.csv"), Unfit::Symlink),
                (inbox.join("pipe.csv"), Unfit::Special),
                (inbox.join("rejected"), Unfit::Symlink),
                (inbox.join("x.csv"), Unfit::Folder),
            ]
        );
    }

    #[test]
    fn files_gone_are_forgotten() {
        let mut tracker = Tracker::default();
        let t0 = Instant::now();
        tracker.observe(vec![file("a.csv", RecordKind::Users, 1, at(0))], t0);
        tracker.observe(Vec::new(), t0);
        assert!(tracker.seen.is_empty());
    }
}
