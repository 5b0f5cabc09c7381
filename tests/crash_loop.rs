//! A crash loop of `rostersync run`: three large users files, one after the
//! other (a first import; changes, leavers and new hires; rehires, more
//! changes and blocks), the daemon killed with SIGKILL again and again,
//! each kill aimed at a phase of a file's way: the daemon starting, the
//! file's intake (seen, settling, read and planned), its store commit, its
//! push (requests in flight at the target) and the acknowledgement of what
//! the target answered; then, for the first file, its push let finish.
//! Which phase each kill hit is read from what the daemon left: its log,
//! the plan it writes down just before a commit, the file still in the
//! inbox, the requests the fake had under way, and `show` of the last
//! record the fake answered for. Every phase must be hit, and the kills are
//! printed with their phase.
//!
//! Then a last run to the end. The target must hold exactly what a run
//! without crashes gives (every field of every account, blocked ones
//! included), each account created once (and, per record, asked to be
//! created once), the inboxes empty, every report complete, saying what the
//! run without crashes said, nothing left in the outbox or parked. And
//! whenever the reports say complete, nothing of theirs still waits.
//!
//! Against a batch target (Collaborator: batches of 25, two at a time; a
//! first import of 10,000, committed in chunks) and a per-record one (SCIM:
//! one request per record, a lookup before each create, managers as
//! references). The moments come from a deterministic generator, as
//! fractions of how long each phase took in the run without crashes.

mod support;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use support::fakes::{collaborator, scim};
use support::*;

const ORGS: usize = 20;
/// How long a file must stay unchanged before it is taken: the first part
/// of its intake, which kills aimed at the intake are sure to find.
const SETTLE: &str = "300ms";
/// New hires of the second file.
const HIRES: usize = 200;
/// Left with the second file; the first half come back with the third.
const LEAVERS: usize = 300;

// ---------------------------------------------------------------------------
// The files.

const HEADER: &str = "user_extid;user_lname;user_fname;user_login;user_email;org_extid;user_manager_extid;user_disable";

fn orgs_file() -> String {
    let mut text = String::from("org_extid;org_label;org_parentextid;org_disable\n");
    for n in 0..ORGS {
        let parent = if n == 0 {
            String::new()
        } else {
            format!("O{}", (n - 1) / 3)
        };
        text.push_str(&format!("O{n};Org {n};{parent};0\n"));
    }
    text
}

/// Who is in the `file`th export (1 to 3) of `users` people, and as what.
struct Person {
    n: usize,
    last_name: String,
    email: String,
    manager: String,
    disabled: bool,
}

/// File 1: everyone. File 2: the even ones a new address, the last
/// [`LEAVERS`] gone, [`HIRES`] new people. File 3: the first half of the
/// leavers back, the odd ones a new last name, every seventh another
/// manager, one in fifty of the first file's people disabled in the file.
///
/// No one the second file brings leaves or is disabled in the third: a
/// create still waiting when a newer file disables the person is dropped
/// (a per-record target is never sent an account only to block it), so
/// whether such a person gets an account would depend on how far the push
/// of the second file got, crash or no crash.
fn people(users: usize, file: usize) -> Vec<Person> {
    let present = |n: usize| match file {
        1 => n <= users,
        2 => n <= users - LEAVERS || n > users,
        _ => n <= users - LEAVERS / 2 || n > users,
    };
    let count = if file == 1 { users } else { users + HIRES };
    (1..=count)
        .filter(|&n| present(n))
        .map(|n| {
            // Ten managers, who never leave; everyone else reports to one.
            let boss = |shift: usize| format!("E{}", (n + shift) % 10 + 1);
            let manager = match n {
                ..=10 => String::new(),
                _ if file == 3 && n % 7 == 0 => boss(1),
                _ => boss(0),
            };
            Person {
                n,
                last_name: if file == 3 && n % 2 == 1 {
                    format!("Name{n}b")
                } else {
                    format!("Name{n}")
                },
                email: if file >= 2 && n % 2 == 0 {
                    format!("new{n}@x.fr")
                } else {
                    format!("login{n}@x.fr")
                },
                manager,
                disabled: file == 3 && n <= users && n % 50 == 25,
            }
        })
        .collect()
}

fn users_file(users: usize, file: usize) -> String {
    let mut text = format!("{HEADER}\n");
    for p in people(users, file) {
        text.push_str(&format!(
            "E{n};{};First{n};login{n};{};O{};{};{}\n",
            p.last_name,
            p.email,
            p.n % ORGS,
            p.manager,
            u8::from(p.disabled),
            n = p.n
        ));
    }
    text
}

/// What every account must end as (ext id → e-mail, active): people of the
/// last file as it says, leavers blocked with what they last had.
fn expected_accounts(users: usize) -> BTreeMap<String, (String, bool)> {
    let mut accounts: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for file in 1..=3 {
        let present: Vec<Person> = people(users, file);
        for account in accounts.values_mut() {
            account.1 = false;
        }
        for p in present {
            accounts.insert(format!("E{}", p.n), (p.email, !p.disabled));
        }
    }
    accounts
}

// ---------------------------------------------------------------------------
// The targets, as the loop watches them.

/// A fake as the crash loop sees it.
trait Watched: Served + Sized {
    const TARGET: &'static str;
    fn launch() -> Self;
    fn target() -> Target;
    /// Requests begun and not finished.
    fn in_flight(&self) -> u64;
    /// Writes of users answered so far (imports, creates, updates).
    fn writes(&self) -> u64;
    /// The key of the last user a write was answered for.
    fn last_written(&self) -> Option<String>;
    /// Everything it holds, comparable across runs: `user:EXT` and `org:EXT`.
    fn state(&self) -> BTreeMap<String, Value>;
    /// An account's e-mail and whether it is active, from [`Watched::state`].
    fn account(value: &Value) -> (String, bool);
    /// Users created more than once, and users whose create was asked
    /// more than once (by key, with the count).
    fn duplicates(&self) -> Vec<(String, u64)>;
    /// Users created in all.
    fn created(&self) -> usize;
    /// Users sent exactly as held: replays of unacknowledged writes.
    fn replays(&self) -> u64;
}

const LMS_TOKEN: &str = TOKEN;
const IDP_TOKEN: &str = "crash-loop-scim-t0ken";

impl Watched for collaborator::Fake {
    const TARGET: &'static str = "lms";

    fn launch() -> Self {
        let fake = collaborator::Fake::start(LMS_TOKEN);
        fake.with(|p| p.faults.slow_ms = 10);
        fake
    }

    fn target() -> Target {
        Target::collaborator(Self::TARGET)
            .token_env("LMS_TOKEN", LMS_TOKEN)
            .set("batch_size", 25)
    }

    fn in_flight(&self) -> u64 {
        collaborator::Fake::in_flight(self)
    }

    fn writes(&self) -> u64 {
        self.with(|p| p.imports)
    }

    fn last_written(&self) -> Option<String> {
        self.with(|p| p.last_answered.last().cloned())
    }

    fn state(&self) -> BTreeMap<String, Value> {
        self.with(|p| {
            let users = p
                .users
                .iter()
                .map(|(uid, user)| (format!("user:{uid}"), Value::Object(user.clone())));
            let orgs = p
                .orgs
                .iter()
                .map(|(uid, org)| (format!("org:{uid}"), org.clone()));
            users.chain(orgs).collect()
        })
    }

    fn account(value: &Value) -> (String, bool) {
        let email = value["email"].as_str().unwrap_or("").to_string();
        (email, value["status"] != "1")
    }

    fn duplicates(&self) -> Vec<(String, u64)> {
        self.with(|p| {
            p.created
                .iter()
                .filter(|(_, count)| **count > 1)
                .map(|(uid, count)| (uid.clone(), *count))
                .collect()
        })
    }

    fn created(&self) -> usize {
        self.with(|p| p.created.len())
    }

    fn replays(&self) -> u64 {
        self.with(|p| p.unchanged)
    }
}

impl Watched for scim::Fake {
    const TARGET: &'static str = "idp";

    fn launch() -> Self {
        let fake = scim::Fake::start(IDP_TOKEN, true);
        fake.with(|p| p.faults.slow_ms = 2);
        fake
    }

    fn target() -> Target {
        Target::scim(Self::TARGET)
            .token_env("IDP_TOKEN", IDP_TOKEN)
            .set("match", &["ext_id"][..])
    }

    fn in_flight(&self) -> u64 {
        scim::Fake::in_flight(self)
    }

    fn writes(&self) -> u64 {
        self.with(|p| p.writes)
    }

    fn last_written(&self) -> Option<String> {
        self.with(|p| p.last_written.clone())
    }

    /// Users by externalId, groups by theirs; the provider's ids (which
    /// differ from run to run) left out, a manager named by its externalId.
    fn state(&self) -> BTreeMap<String, Value> {
        self.with(|p| {
            let external_of: BTreeMap<&str, &str> = p
                .users
                .iter()
                .map(|(id, u)| (id.as_str(), u["externalId"].as_str().unwrap_or("")))
                .collect();
            let without_ids = |resource: &serde_json::Map<String, Value>| {
                let mut resource = resource.clone();
                resource.remove("id");
                resource.remove("meta");
                resource
            };
            let users = p.users.values().map(|u| {
                let mut user = without_ids(u);
                if let Some(manager) = user
                    .get_mut(scim::ENTERPRISE)
                    .and_then(|e| e.get_mut("manager"))
                {
                    let id = manager["value"].as_str().unwrap_or("");
                    let external = external_of.get(id).copied().unwrap_or("dangling");
                    *manager = json!({ "value": external });
                }
                let key = format!("user:{}", u["externalId"].as_str().unwrap_or(""));
                (key, Value::Object(user))
            });
            let groups = p.groups.values().map(|g| {
                let key = format!("org:{}", g["externalId"].as_str().unwrap_or(""));
                (key, Value::Object(without_ids(g)))
            });
            users.chain(groups).collect()
        })
    }

    fn account(value: &Value) -> (String, bool) {
        let email = value["emails"]
            .as_array()
            .and_then(|emails| emails.iter().find(|e| e["type"] == "work"))
            .and_then(|e| e["value"].as_str())
            .unwrap_or("")
            .to_string();
        (email, value["active"] == true)
    }

    fn duplicates(&self) -> Vec<(String, u64)> {
        self.with(|p| {
            let created = p.created.iter().map(|(k, c)| (format!("created {k}"), *c));
            let asked = p
                .create_requests
                .iter()
                .map(|(k, c)| (format!("POST /Users {k}"), *c));
            created.chain(asked).filter(|(_, c)| *c > 1).collect()
        })
    }

    fn created(&self) -> usize {
        self.with(|p| p.created.len())
    }

    fn replays(&self) -> u64 {
        self.with(|p| p.unchanged_writes)
    }
}

// ---------------------------------------------------------------------------
// The daemon's folder.

fn harness<F: Watched>() -> Harness<F> {
    Harness::builder()
        .fake(F::launch())
        .safety("max_block_percent", 50.0)
        .safety("max_block_count", 100000)
        .source(
            Source::orgs("orgs", "inbox/orgs")
                .set("settle", SETTLE)
                .targets(&[F::TARGET]),
        )
        .source(
            Source::users("users", "inbox/users")
                .set("settle", SETTLE)
                .targets(&[F::TARGET]),
        )
        .target(
            F::target()
                .set("concurrency", 2)
                .set("timeout", "5s")
                .retry("1ms", "5ms", "30s"),
        )
        .build()
}

/// The plan the daemon writes down just before committing a users file,
/// and when it was written.
fn commit_note<F>(h: &Harness<F>) -> Option<SystemTime> {
    std::fs::metadata(h.path("state/commits/users.json"))
        .and_then(|m| m.modified())
        .ok()
}

fn users_waiting<F>(h: &Harness<F>) -> bool {
    !files(&h.path("inbox/users")).is_empty()
}

/// Every archived file's report complete, for both inboxes, as the first
/// bytes of each report say (what the daemon itself reads to tell an open
/// report: a first import's report is megabytes, too much to parse every
/// few milliseconds); [`Harness::complete`] parses them whole at the end.
fn all_complete<F>(h: &Harness<F>, users_files: usize) -> bool {
    let done = |inbox: &str, files: usize| {
        let archived = h.archived(inbox);
        archived.len() == files
            && archived.iter().all(|name| {
                let path = h
                    .path(inbox)
                    .join("archive")
                    .join(format!("{name}.report.json"));
                let mut head = [0u8; 256];
                let read = std::fs::File::open(path)
                    .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
                    .unwrap_or(0);
                let head: String = String::from_utf8_lossy(&head[..read])
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                head.contains("\"complete\":true")
            })
    };
    done("inbox/orgs", 1) && done("inbox/users", users_files)
}

/// The daemon, logging at `info` (its lines of `debug` would be mostly
/// the HTTP client's, thousands a second).
fn spawn<F>(h: &Harness<F>) -> Daemon {
    h.spawn_with(&[("ROSTERSYNC_LOG", "info")])
}

fn start<F>(h: &Harness<F>) -> Daemon {
    let daemon = spawn(h);
    daemon.wait_log("watching the inboxes", Duration::from_secs(30));
    daemon
}

fn status_json<F>(h: &Harness<F>) -> Value {
    let (code, out, err) = h.run(&["status", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap()
}

// ---------------------------------------------------------------------------
// The run without crashes: what the loop must end as, and how long each
// phase takes (the loop aims at fractions of it).

#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    /// From the drop to the plan written down before the commit.
    intake_ms: u64,
    /// From there to the file archived (the commit and the filing).
    commit_ms: u64,
    /// User writes the target answered for the file.
    writes: u64,
}

/// What the run without crashes gave: the target's state, each users file's
/// report counts, and how long each phase took.
struct Reference {
    state: BTreeMap<String, Value>,
    counts: Vec<Value>,
    /// From the start to watching the inboxes.
    startup_ms: u64,
    timings: [Timing; 3],
}

/// The counts of each archived users file's report, in the order filed.
fn report_counts<F: Watched>(h: &Harness<F>) -> Vec<Value> {
    h.archived("inbox/users")
        .iter()
        .map(|name| {
            let report = report(&h.path("inbox/users/archive").join(name));
            let target = &report["targets"][F::TARGET];
            json!([
                target["create"],
                target["update"],
                target["block"],
                target["unblock"],
                target["parked"]
            ])
        })
        .collect()
}

fn clean_run<F: Watched>(users: usize) -> Reference {
    let started = Instant::now();
    let h = harness::<F>();
    let daemon = spawn(&h);
    let watching = poll(Duration::from_secs(30), || {
        daemon.log().contains("watching the inboxes")
    });
    assert!(watching, "{}", daemon.log());
    let startup_ms = started.elapsed().as_millis() as u64;
    h.drop_file("inbox/orgs/orgs.csv", &orgs_file());
    h.wait_archived(&daemon, "inbox/orgs", 1);
    let mut timings = [Timing::default(); 3];
    for (file, timing) in timings.iter_mut().enumerate() {
        let writes = h.fake.writes();
        let dropped = Instant::now();
        let since = SystemTime::now();
        h.drop_file(
            &format!("inbox/users/users{}.csv", file + 1),
            &users_file(users, file + 1),
        );
        let archived = || h.archived("inbox/users").len() > file;
        wait_until(
            Duration::from_secs(60),
            || commit_note(&h).is_some_and(|at| at >= since) || archived(),
            || format!("file {} was never committed\n{}", file + 1, daemon.log()),
        );
        timing.intake_ms = dropped.elapsed().as_millis() as u64;
        let noted = Instant::now();
        wait_until(
            Duration::from_secs(60),
            || archived() && commit_note(&h).is_none(),
            || format!("file {} was never archived\n{}", file + 1, daemon.log()),
        );
        timing.commit_ms = noted.elapsed().as_millis() as u64;
        wait_until(
            Duration::from_secs(120),
            || all_complete(&h, file + 1),
            || format!("file {} was never pushed\n{}", file + 1, daemon.log()),
        );
        timing.writes = h.fake.writes() - writes;
    }
    let (exit, log) = daemon.stop();
    assert!(exit.success(), "{log}");
    let state = h.fake.state();
    // The reference itself is checked against what the files say.
    let accounts: BTreeMap<String, (String, bool)> = state
        .iter()
        .filter_map(|(key, value)| {
            Some((key.strip_prefix("user:")?.to_string(), F::account(value)))
        })
        .collect();
    assert_eq!(accounts, expected_accounts(users));
    assert_eq!(state.len(), users + HIRES + ORGS);
    assert!(h.fake.duplicates().is_empty(), "{:?}", h.fake.duplicates());
    let counts = report_counts(&h);
    eprintln!(
        "{}: clean run {:?}: startup {startup_ms} ms, per file {timings:?}, reports (create, update, block, unblock, parked) {}",
        F::TARGET,
        started.elapsed(),
        Value::from(counts.clone()),
    );
    Reference {
        state,
        counts,
        startup_ms,
        timings,
    }
}

// ---------------------------------------------------------------------------
// The loop.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// The daemon starting: the store opened, not yet watching.
    Startup,
    /// The file seen, settling, read, planned: not yet written down.
    Intake,
    /// The plan written down, the store commit (or the filing) under way.
    Commit,
    /// Requests in flight at the target.
    Push,
    /// Nothing in flight; the target answered for a record whose
    /// acknowledgement the store does not hold yet.
    Ack,
    /// Watching, nothing under way (aimed at: the file's push let finish).
    Idle,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Kills aimed at each phase, for each file (startup, intake, commit, push,
/// ack), and whether its push is then let finish (and the daemon killed
/// idle) before the next file: the first file's is, so that no one it
/// brings is disabled by the second before being created (see [`people`]);
/// the second's is not, so that the third is taken and committed while
/// that push goes on.
const SCHEDULE: [([usize; 5], bool); 3] = [
    ([2, 3, 5, 5, 5], true),
    ([2, 3, 3, 5, 5], false),
    ([2, 3, 3, 6, 6], false),
];

/// A small deterministic generator: the same moments on every run.
struct Moments(u64);

impl Moments {
    fn next(&mut self, max: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % max.max(1)
    }

    /// A moment in the first `percent` of `whole` milliseconds.
    fn within(&mut self, whole: u64, percent: u64) -> Duration {
        Duration::from_millis(whole * self.next(percent * 10) / 1000)
    }
}

/// One kill: what it aimed at, what it hit, and what was seen.
struct Kill {
    file: usize,
    aim: Phase,
    hit: Phase,
    seen: String,
}

/// Waits until `done`, polling every 200 µs (the moments are milliseconds
/// apart); false at the deadline.
fn poll(timeout: Duration, done: impl FnMut() -> bool) -> bool {
    poll_every(Duration::from_micros(200), timeout, done)
}

fn poll_every(every: Duration, timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(every);
    }
    true
}

/// [`poll`] while the target gets writes: false once none came for 3 s
/// with nothing in flight (the push is over, or never began).
fn pushing<F: Watched>(fake: &F, mut done: impl FnMut() -> bool) -> bool {
    let mut last = (fake.writes(), Instant::now());
    let mut reached = false;
    poll(Duration::from_secs(120), || {
        let writes = fake.writes();
        if writes != last.0 || fake.in_flight() > 0 {
            last = (writes, Instant::now());
        }
        reached = done();
        reached || last.1.elapsed() > Duration::from_secs(3)
    });
    reached
}

/// Whether one line of the log has both texts.
fn logged(log: &str, what: &str, file: &str) -> bool {
    log.lines()
        .any(|line| line.contains(what) && line.contains(file))
}

/// Where the loop stands: the daemon's folder, the moments, the clean
/// run's timings, the kills so far.
struct Loop<'h, F> {
    h: &'h Harness<F>,
    moments: Moments,
    reference: &'h Reference,
    kills: Vec<Kill>,
}

impl<F: Watched> Loop<'_, F> {
    /// Starts the daemon, waits for the moment of `aim` in the way of the
    /// `file`th users file, kills it, and records which phase the kill hit.
    fn kill_round(&mut self, file: usize, aim: Phase) {
        let (h, fake) = (self.h, &self.h.fake);
        let spawned = SystemTime::now();
        let writes = fake.writes();
        let mut daemon = spawn(h);
        let reached = self.wait_for(aim, file, &daemon, spawned, writes);
        let flying = fake.in_flight();
        let last = fake.last_written();
        let _ = daemon.child.kill();
        let _ = daemon.child.wait();
        let wrote = fake.writes() - writes;
        let log = daemon.log();
        drop(daemon);

        // What the daemon was doing, as what it left shows: the plan written
        // down by this run, the file still in the inbox, requests in flight,
        // an answer the store does not hold yet.
        let noted = commit_note(h).is_some_and(|at| at >= spawned);
        let watching = log.contains("watching the inboxes");
        let waiting = users_waiting(h);
        let unacknowledged = || {
            let Some(key) = &last else { return false };
            let (_, out, _) = h.run(&["show", key]);
            out.contains("to push:")
        };
        let shows = |phase: Phase| match phase {
            Phase::Startup => !watching,
            Phase::Intake => watching && waiting && !noted,
            Phase::Commit => noted,
            Phase::Push => watching && flying > 0,
            Phase::Ack => watching && flying == 0 && wrote > 0 && unacknowledged(),
            Phase::Idle => watching && !noted && !waiting && flying == 0,
        };
        // The phase aimed at when it shows (a push may go on while a file
        // settles), else the first that does.
        let hit = std::iter::once(aim)
            .chain([
                Phase::Commit,
                Phase::Startup,
                Phase::Intake,
                Phase::Push,
                Phase::Ack,
                Phase::Idle,
            ])
            .find(|phase| shows(*phase))
            .unwrap_or(Phase::Idle);
        // What the daemon before this one left, as this one found it.
        if let Some(kill) = self.kills.last_mut() {
            let name = format!("users{}.csv", kill.file);
            if logged(&log, "a commit was cut short by a crash", &name) {
                kill.seen.push_str(", the store commit cut short");
            } else if logged(&log, "committed before a restart", &name) {
                kill.seen.push_str(", committed but not archived");
            }
        }
        let missed = if reached { "" } else { ", the aim not reached" };
        self.kills.push(Kill {
            file,
            aim,
            hit,
            seen: format!("{wrote} writes, {flying} in flight{missed}"),
        });
    }

    /// Waits for a moment of the phase: a fraction of the clean run's
    /// startup; a fraction of its intake once the daemon watches; a
    /// fraction of its commit once the plan is written down; some writes
    /// answered, then a request in flight (push) or an answer just in with
    /// nothing else under way (ack); the file's push to its end (idle).
    /// False if the moment never came.
    fn wait_for(
        &mut self,
        aim: Phase,
        file: usize,
        daemon: &Daemon,
        spawned: SystemTime,
        writes: u64,
    ) -> bool {
        let (h, fake) = (self.h, &self.h.fake);
        let timing = self.reference.timings[file - 1];
        match aim {
            Phase::Startup => {
                std::thread::sleep(self.moments.within(self.reference.startup_ms, 100));
                true
            }
            Phase::Intake => {
                daemon.wait_log("watching the inboxes", Duration::from_secs(30));
                std::thread::sleep(self.moments.within(timing.intake_ms, 70));
                true
            }
            Phase::Commit => {
                // Unless the file is gone already (committed by a round before).
                let noted = poll(Duration::from_secs(60), || {
                    commit_note(h).is_some_and(|at| at >= spawned) || !users_waiting(h)
                }) && users_waiting(h);
                std::thread::sleep(self.moments.within(timing.commit_ms, 60));
                noted
            }
            Phase::Push | Phase::Ack => {
                let after = writes + 1 + self.moments.next(timing.writes / 25);
                let mut seen = 0;
                pushing(fake, || fake.writes() >= after)
                    && pushing(fake, || {
                        let (flying, now) = (fake.in_flight(), fake.writes());
                        let answered = now > seen;
                        seen = now;
                        match aim {
                            Phase::Push => flying > 0,
                            // An answer just in, nothing else under way.
                            _ => flying == 0 && answered,
                        }
                    })
            }
            Phase::Idle => {
                let complete =
                    poll_every(Duration::from_millis(25), Duration::from_secs(120), || {
                        all_complete(h, file)
                    });
                // A report is complete once its target took its every record.
                let status = status_json(h);
                let target = &status["targets"][F::TARGET];
                assert!(
                    !complete || (target["outbox"] == 0 && target["parked"] == 0),
                    "the reports are complete, yet records wait: {status}"
                );
                complete
            }
        }
    }
}

fn crash_loop<F: Watched>(users: usize, seed: u64) {
    let started = Instant::now();
    let reference = clean_run::<F>(users);
    let clean = &reference.state;

    let h = harness::<F>();
    let fake = &h.fake;
    h.drop_file("inbox/orgs/orgs.csv", &orgs_file());
    let mut run = Loop {
        h: &h,
        moments: Moments(seed),
        reference: &reference,
        kills: Vec::new(),
    };
    for (index, (counts, finish)) in SCHEDULE.iter().enumerate() {
        let file = index + 1;
        h.drop_file(
            &format!("inbox/users/users{file}.csv"),
            &users_file(users, file),
        );
        let aims = [
            Phase::Startup,
            Phase::Intake,
            Phase::Commit,
            Phase::Push,
            Phase::Ack,
        ];
        let rounds = aims
            .into_iter()
            .zip(*counts)
            .flat_map(|(aim, count)| std::iter::repeat_n(aim, count))
            .chain(finish.then_some(Phase::Idle));
        for aim in rounds {
            run.kill_round(file, aim);
        }
    }
    let kills = run.kills;

    let mut by_phase: BTreeMap<Phase, usize> = BTreeMap::new();
    for kill in &kills {
        *by_phase.entry(kill.hit).or_default() += 1;
        eprintln!(
            "{} file {} aimed {:<7} hit {:<7} ({})",
            F::TARGET,
            kill.file,
            kill.aim,
            kill.hit,
            kill.seen
        );
    }
    eprintln!(
        "{}: {} kills, by phase {by_phase:?}, in {:?}",
        F::TARGET,
        kills.len(),
        started.elapsed()
    );

    // The last run, to the end.
    let daemon = start(&h);
    wait_until(
        Duration::from_secs(120),
        || all_complete(&h, 3) && fake.state() == *clean,
        || {
            format!(
                "not done: archived {:?}, {}\n{}",
                h.archived("inbox/users"),
                differences(&fake.state(), clean),
                daemon.log()
            )
        },
    );
    let status = status_json(&h);
    let target = &status["targets"][F::TARGET];
    assert_eq!(target["outbox"], 0, "{status}");
    assert_eq!(target["parked"], 0, "{status}");
    let (exit, log) = daemon.stop();
    assert!(exit.success(), "{log}");

    assert_eq!(
        fake.state(),
        *clean,
        "{}",
        differences(&fake.state(), clean)
    );
    // Each account created once; a replay after a kill is an update.
    assert!(fake.duplicates().is_empty(), "{:?}", fake.duplicates());
    assert_eq!(fake.created(), users + HIRES);
    for (inbox, count) in [("inbox/orgs", 1), ("inbox/users", 3)] {
        assert_eq!(h.complete(inbox).map(|a| a.len()), Some(count), "{inbox}");
        let inbox = h.path(inbox);
        assert!(files(&inbox).is_empty(), "{} is not empty", inbox.display());
        assert!(files(&inbox.join("held")).is_empty());
        assert!(files(&inbox.join("rejected")).is_empty());
    }
    // Each report says what its file did: the first two as in the run
    // without crashes (the third is planned while the second's push goes
    // on, so what it does depends on how far that got).
    let counts = report_counts(&h);
    assert_eq!(counts[..2], reference.counts[..2], "{counts:?}");

    eprintln!(
        "{}: done, {} replays seen by the target, {:?} in all",
        F::TARGET,
        fake.replays(),
        started.elapsed()
    );
    for phase in [Phase::Intake, Phase::Commit, Phase::Push, Phase::Ack] {
        let hits = by_phase.get(&phase).copied().unwrap_or(0);
        assert!(hits >= 3, "{phase} hit {hits} times: {by_phase:?}");
    }
    let startups = by_phase.get(&Phase::Startup).copied().unwrap_or(0);
    assert!(startups >= 1, "no kill hit a startup: {by_phase:?}");
}

/// The first keys where two states differ, to read a failure.
fn differences(got: &BTreeMap<String, Value>, want: &BTreeMap<String, Value>) -> String {
    let mut out = Vec::new();
    for (key, value) in want {
        match got.get(key) {
            None => out.push(format!("{key} missing")),
            Some(held) if held != value => out.push(format!("{key}: {held} instead of {value}")),
            Some(_) => {}
        }
    }
    for key in got.keys().filter(|k| !want.contains_key(*k)) {
        out.push(format!("{key} not expected"));
    }
    let total = out.len();
    out.truncate(8);
    format!("{total} differences: {}", out.join("; "))
}

#[test]
fn a_batch_target_survives_sigkill_in_every_phase() {
    crash_loop::<collaborator::Fake>(10_000, 0x5eed);
}

#[test]
fn a_per_record_target_survives_sigkill_in_every_phase() {
    crash_loop::<scim::Fake>(2_000, 0xc0ffee);
}
