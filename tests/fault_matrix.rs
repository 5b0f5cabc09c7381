//! The fault matrix: each HTTP target kind's fake under each fault, through
//! the real daemon (`rostersync run`), a file of a dozen users dropped while
//! the fault is on. For every cell: the directory the target holds once the
//! fault is over (exactly the file's users, each created once), the requests
//! the fake received against what the retry settings allow, and what
//! `rostersync status --json` and the file's `.report.json` say (done,
//! parked or stopped, with the reason, never the target's secret).
//!
//! A cell is one line of a kind's table ([`Cell`]); the faults are the fake
//! kernel's ([`Burst`], `refuse_credentials`, `wrong_counts_percent`,
//! [`Server::down`]). The first cell of each kind runs without a fault: its
//! request count is the kind's `base`, what the others are measured against.
//! Every cell runs even when one fails; the test fails at the end, with the
//! whole matrix.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use support::fakes::{Burst, Fault, RetryAfter, Server, collaborator, gestimum, maarch};
use support::fakes::{pleasanter, scim};
use support::{Daemon, Harness, Source, Target, user, users_file};

/// Every target's timeout: generous on a loaded machine, so that only the
/// replies held back on purpose (4 s) outlast it.
const TIMEOUT: &str = "3s";

/// Users in the file, in batches of `BATCH` where the kind takes batches.
const USERS: usize = 12;
const BATCH: usize = 4;

/// What the fake holds of each account, one line each, by its key there.
type Directory = BTreeMap<String, String>;

/// A target kind, its fake and how to read it.
struct Kind<S> {
    /// The target's name and kind.
    name: &'static str,
    start: fn() -> Server<S>,
    /// The target with its credentials (the cell adds its retry settings).
    target: fn() -> Target,
    /// The secret no status, report or log line may show.
    secret: &'static str,
    directory: fn(&Server<S>) -> Directory,
    /// Line `n` of the file, as the fake must hold it.
    expected: fn(usize) -> (String, String),
    /// Accounts the fake created: one more than the file's users is a
    /// record created twice.
    created: fn(&Server<S>) -> u64,
    /// The most requests a record's push makes (lookups, create, update):
    /// what one spoiled request can cost again, at most.
    per_record: u64,
    /// The requests a batch costs when every reply's counts are wrong.
    wrong_counts_cost: u64,
}

/// What a cell does to the fake while the file is pushed.
#[derive(Debug, Clone, Copy)]
enum Inject {
    Nothing,
    /// The next `count` requests (or replies) spoiled, after `skip` others.
    Burst {
        fault: Fault,
        skip: u64,
        count: u64,
    },
    /// Every reply's counts wrong, until the cell is over.
    WrongCounts,
    /// Every request answered 401 until the fault is cleared.
    Credentials,
    /// Connections refused for a whole drain, then taken again.
    Down,
}

fn burst(fault: Fault, count: u64) -> Inject {
    Inject::Burst {
        fault,
        skip: 0,
        count,
    }
}

/// What must come of it.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Retried through within the drain: every record done, none parked,
    /// no stop, no last error.
    Done,
    /// The target stops, once, records kept waiting (`stopped` in the
    /// report, `stopped: ...` in status, nothing parked); the daemon tries
    /// again by itself once the fault is cleared.
    Held(&'static str),
    /// Every record parked with the reason; once the fault is cleared they
    /// go, by themselves (transient) or with `rostersync retry`.
    Parked(&'static str, Release),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Release {
    ByItself,
    Retry,
}

/// `retry = { initial, max_interval, max_elapsed }` of a cell.
#[derive(Debug, Clone, Copy)]
struct Retry {
    initial: Duration,
    max_interval: Duration,
    max_elapsed: Duration,
}

/// Fast retries, long enough a budget for any burst, and a `max_interval`
/// above the `Retry-After`s asked (it caps them).
const RETRY: Retry = Retry {
    initial: Duration::from_millis(20),
    max_interval: Duration::from_secs(3),
    max_elapsed: Duration::from_secs(15),
};

/// A budget a target that is down outlasts; what it parks is tried again
/// every 2 s, time enough to read what status says of it first.
const SHORT_BUDGET: Retry = Retry {
    initial: Duration::from_millis(50),
    max_interval: Duration::from_secs(2),
    max_elapsed: Duration::from_millis(1000),
};

/// A target on hold is tried again every `max_interval` (1 s at least).
const HOLD_RETRY: Retry = Retry {
    max_interval: Duration::from_secs(1),
    ..RETRY
};

impl Retry {
    fn target(self, target: Target) -> Target {
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        target.retry(
            &ms(self.initial),
            &ms(self.max_interval),
            &ms(self.max_elapsed),
        )
    }

    /// The most attempts one drain makes of a record that keeps failing:
    /// the backoff's delays are at least half the interval (its jitter),
    /// which grows by 1.5 up to `max_interval`, and it gives up once they
    /// add up past `max_elapsed`; one more for the attempt after the last
    /// delay.
    fn max_attempts(self) -> u64 {
        let (mut interval, mut waited, mut attempts) = (self.initial.as_secs_f64(), 0.0, 1);
        while waited <= self.max_elapsed.as_secs_f64() {
            waited += interval / 2.0;
            interval = (interval * 1.5).min(self.max_interval.as_secs_f64());
            attempts += 1;
        }
        attempts
    }
}

/// One line of a kind's table.
struct Cell {
    name: &'static str,
    inject: Inject,
    expect: Expect,
    retry: Retry,
    /// Batches (or records) sent side by side.
    concurrency: usize,
}

impl Cell {
    fn new(name: &'static str, inject: Inject, expect: Expect) -> Cell {
        Cell {
            name,
            inject,
            expect,
            retry: RETRY,
            concurrency: 2,
        }
    }

    fn retry(mut self, retry: Retry) -> Cell {
        self.retry = retry;
        self
    }

    /// One batch at a time: a request that comes after a 429 was
    /// answered is then one sent after it was read.
    fn one_at_a_time(mut self) -> Cell {
        self.concurrency = 1;
        self
    }
}

// ---------------------------------------------------------------------------
// The kinds.

const LMS_TOKEN: &str = "cbr-m4trix-t0ken-42";

fn collaborator() -> Kind<collaborator::Portal> {
    Kind {
        name: "lms",
        start: || collaborator::Fake::start(LMS_TOKEN),
        target: || Target::collaborator("lms").token_env("LMS_TOKEN", LMS_TOKEN),
        secret: LMS_TOKEN,
        directory: |fake| {
            fake.directory()
                .into_iter()
                .map(|(uid, (login, last, mail, status))| {
                    (uid, format!("{login} {last} {mail} status={status}"))
                })
                .collect()
        },
        expected: |n| {
            (
                format!("E{n}"),
                format!("login{n} Name{n} login{n}@x.fr status=0"),
            )
        },
        created: |fake| fake.with(|p| p.creates),
        per_record: 1,
        wrong_counts_cost: 1,
    }
}

const COMPANY: &str = "DEMO.Gestimum";
const ERP_USER: &str = "ROSTER";
const ERP_PASSWORD: &str = "G3st!mum-m4trix;pw";

fn gestimum() -> Kind<gestimum::Erp> {
    Kind {
        name: "erp",
        start: || gestimum::Fake::start(COMPANY, ERP_USER, ERP_PASSWORD),
        target: || {
            Target::gestimum("erp")
                .set("company", COMPANY)
                .user(ERP_USER)
                .password_env("ERP_PASSWORD", ERP_PASSWORD)
        },
        secret: ERP_PASSWORD,
        directory: |fake| {
            fake.directory()
                .into_iter()
                .map(|(name, (group, code, dormant))| {
                    (name, format!("group={group} code={code} dormant={dormant}"))
                })
                .collect()
        },
        expected: |n| (format!("login{n}"), "group= code= dormant=0".to_string()),
        created: |fake| fake.with(|erp| erp.users.len() as u64),
        per_record: 1,
        // Split in halves down to single lines, whose counts are right.
        wrong_counts_cost: 2 * BATCH as u64 - 1,
    }
}

const WIKI_KEY: &str = "4d84b4773a58-m4trix-pl34s4nt3r-k3y";

fn pleasanter() -> Kind<pleasanter::Tenant> {
    Kind {
        name: "wiki",
        start: || pleasanter::Fake::start(WIKI_KEY),
        target: || Target::pleasanter("wiki").token_env("WIKI_KEY", WIKI_KEY),
        secret: WIKI_KEY,
        directory: |fake| {
            fake.directory()
                .into_iter()
                .map(|(login, entry)| {
                    let columns: Vec<String> = entry
                        .columns
                        .iter()
                        .map(|(column, value)| format!("{column}={value}"))
                        .collect();
                    let line = format!("{} disabled={}", columns.join(" "), entry.disabled);
                    (login, line)
                })
                .collect()
        },
        expected: |n| {
            (
                format!("login{n}"),
                format!("MailAddress=login{n}@x.fr Name=Name{n} UserCode=E{n} disabled=false"),
            )
        },
        created: |fake| fake.with(|tenant| tenant.users.len() as u64),
        // Looked up by user code and by login, then imported.
        per_record: 3,
        wrong_counts_cost: 1,
    }
}

const COURRIER_USER: &str = "rostersync";
const COURRIER_PASSWORD: &str = "M4arch-m4trix-p@ss!";

fn maarch() -> Kind<maarch::Courrier> {
    Kind {
        name: "courrier",
        start: || maarch::Fake::start(COURRIER_USER, COURRIER_PASSWORD),
        target: || {
            Target::maarch("courrier")
                .user(COURRIER_USER)
                .password_env("COURRIER_PASSWORD", COURRIER_PASSWORD)
        },
        secret: COURRIER_PASSWORD,
        directory: |fake| {
            fake.directory()
                .into_iter()
                .map(|(login, p)| {
                    let line = format!(
                        "{} {} {} {} groups={:?} entities={:?}",
                        p.first, p.last, p.mail, p.status, p.groups, p.entities
                    );
                    (login, line)
                })
                .collect()
        },
        expected: |n| {
            (
                format!("login{n}"),
                format!("First{n} Name{n} login{n}@x.fr OK groups=[] entities=[]"),
            )
        },
        // Each create queues an activation mail in Maarch.
        created: |fake| fake.with(|c| c.activation_mails.len() as u64),
        // The user list (again, after a 400), the create, the full PUT.
        per_record: 4,
        wrong_counts_cost: 1,
    }
}

const IDP_TOKEN: &str = "scim-m4trix-t0ken-77";

fn scim() -> Kind<scim::Provider> {
    Kind {
        name: "idp",
        // As strict as real providers: what it declares matters.
        start: || scim::Fake::strict(IDP_TOKEN, true),
        target: || Target::scim("idp").token_env("IDP_TOKEN", IDP_TOKEN),
        secret: IDP_TOKEN,
        directory: |fake| {
            fake.directory()
                .into_iter()
                .map(|(login, u)| {
                    let line = format!(
                        "{} {} {} {} active={}",
                        u.external_id, u.given, u.family, u.email, u.active
                    );
                    (login, line)
                })
                .collect()
        },
        expected: |n| {
            (
                format!("login{n}"),
                format!("E{n} First{n} Name{n} login{n}@x.fr active=true"),
            )
        },
        created: |fake| fake.with(|p| p.users.len() as u64),
        // Discovery (three reads), a lookup per match rule (three), the
        // create or, adopted, a read and a PATCH.
        per_record: 9,
        wrong_counts_cost: 1,
    }
}

// ---------------------------------------------------------------------------
// The tables.

fn reset() -> Inject {
    burst(Fault::Reset, 2)
}

fn too_many(after: RetryAfter, count: u64) -> Inject {
    burst(Fault::TooManyRequests(after), count)
}

/// The cells every kind runs, its own (wrong counts, credentials) added.
fn common(credentials: Expect, wrong_counts: Option<Expect>) -> Vec<Cell> {
    let mut cells = vec![
        Cell::new("no fault", Inject::Nothing, Expect::Done),
        Cell::new("503 ×3", burst(Fault::Unavailable, 3), Expect::Done),
        Cell::new(
            "429 Retry-After: 1 ×2",
            too_many(RetryAfter::Seconds(1), 2),
            Expect::Done,
        )
        .one_at_a_time(),
        Cell::new(
            "429 Retry-After: date +2 s",
            too_many(RetryAfter::DateIn(2), 1),
            Expect::Done,
        )
        .one_at_a_time(),
        Cell::new(
            "slower than the timeout ×1",
            burst(Fault::Slow(4_000), 1),
            Expect::Done,
        ),
        Cell::new("reset mid-body ×2", reset(), Expect::Done),
        Cell::new(
            "malformed JSON ×2",
            burst(Fault::Malformed, 2),
            Expect::Done,
        ),
        Cell::new("empty body ×2", burst(Fault::Blank, 2), Expect::Done),
        Cell::new("{} body ×2", burst(Fault::EmptyObject, 2), Expect::Done),
        Cell::new("401", Inject::Credentials, credentials).retry(HOLD_RETRY),
        Cell::new(
            "down a whole drain",
            Inject::Down,
            Expect::Parked(
                "still failing when the retry budget ran out",
                Release::ByItself,
            ),
        )
        .retry(SHORT_BUDGET),
    ];
    if let Some(expect) = wrong_counts {
        cells.push(Cell::new("wrong counts", Inject::WrongCounts, expect));
    }
    cells
}

#[test]
fn collaborator_under_every_fault() {
    let cells = common(
        Expect::Held("the portal refused the token"),
        // Counts above the batch: the portal changed users it was not sent.
        Some(Expect::Parked("the portal answered", Release::Retry)),
    );
    run_matrix(&collaborator(), cells);
}

#[test]
fn gestimum_under_every_fault() {
    let cells = common(
        Expect::Held("Gestimum refused the import"),
        // Statistics short by one: split down to single lines, whose are right.
        Some(Expect::Done),
    );
    run_matrix(&gestimum(), cells);
}

#[test]
fn pleasanter_under_every_fault() {
    let cells = common(
        Expect::Held("the API key was refused"),
        // Its counts are only logged: a row unchanged counts in neither.
        Some(Expect::Done),
    );
    run_matrix(&pleasanter(), cells);
}

#[test]
fn maarch_under_every_fault() {
    let cells = common(Expect::Held("HTTP 401"), None);
    run_matrix(&maarch(), cells);
}

#[test]
fn scim_under_every_fault() {
    let mut cells = common(Expect::Held("HTTP 401"), None);
    // The discovery's second and third reads (`/Schemas`, `/ResourceTypes`).
    cells.push(Cell::new(
        "{} body on the schemas",
        Inject::Burst {
            fault: Fault::EmptyObject,
            skip: 1,
            count: 2,
        },
        Expect::Done,
    ));
    run_matrix(&scim(), cells);
}

// ---------------------------------------------------------------------------
// Running a table.

/// Runs every cell, prints the matrix, and fails with the cells that did.
fn run_matrix<S: Send + 'static>(kind: &Kind<S>, cells: Vec<Cell>) {
    let mut base = None;
    let mut lines = Vec::new();
    let mut failed = Vec::new();
    // `MATRIX_CELLS=401,reset` runs only the cells whose names hold one
    // of those (with the fault-free one, the base), for a look at one.
    let only = std::env::var("MATRIX_CELLS").ok();
    let chosen = |cell: &Cell| match &only {
        None => true,
        Some(only) => {
            matches!(cell.inject, Inject::Nothing) || only.split(',').any(|o| cell.name.contains(o))
        }
    };
    for cell in cells.iter().filter(|cell| chosen(cell)) {
        let started = Instant::now();
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_cell(kind, cell, base)));
        let took = started.elapsed().as_secs_f32();
        match result {
            Ok(row) => {
                if base.is_none() {
                    base = Some(row.requests);
                }
                lines.push(format!(
                    "{} × {}: {} — {} requests (bound {}..={}), {took:.1} s",
                    kind.name, cell.name, row.outcome, row.requests, row.bound.0, row.bound.1
                ));
            }
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                lines.push(format!(
                    "{} × {}: FAILED, {took:.1} s",
                    kind.name, cell.name
                ));
                failed.push(format!("{} × {}: {why}", kind.name, cell.name));
            }
        }
    }
    eprintln!("{}", lines.join("\n"));
    assert!(
        failed.is_empty(),
        "{} cell(s) failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}

/// What a cell came to.
struct Row {
    outcome: String,
    requests: u64,
    bound: (u64, u64),
}

/// A cell's folder, daemon and fake.
struct Bench<'k, S> {
    kind: &'k Kind<S>,
    h: Harness<Server<S>>,
}

impl<S: Send + 'static> Bench<'_, S> {
    /// `rostersync status --json`, asked of the daemon.
    fn status(&self) -> Value {
        let (code, out, err) = self.h.run(&["status", "--json"]);
        assert_eq!(code, 0, "{out}{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    fn target_status(&self) -> Value {
        self.status()["targets"][self.kind.name].clone()
    }

    /// The archived file's report, once written.
    fn report_path(&self) -> Option<PathBuf> {
        let archive = self.h.path("inbox/archive");
        std::fs::read_dir(archive)
            .ok()?
            .flatten()
            .map(|entry| entry.path())
            .find(|path| path.to_string_lossy().ends_with(".report.json"))
    }

    fn report(&self) -> Option<Value> {
        let bytes = std::fs::read(self.report_path()?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The report's part for the target.
    fn reported(&self) -> Value {
        self.report()
            .map(|r| r["targets"][self.kind.name].clone())
            .unwrap_or_default()
    }

    /// Waits (polling every 100 ms, 60 s at most) for `done`.
    fn wait(&self, daemon: &Daemon, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            if Instant::now() > deadline {
                panic!(
                    "{what} never came: status {}\nreport {:?}\n{}",
                    self.target_status(),
                    self.report(),
                    tail(&daemon.log())
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn expected(&self) -> Directory {
        (1..=USERS).map(self.kind.expected).collect()
    }

    /// Every action of the report with `status`, and the reasons they give.
    fn actions(&self, status: &str) -> Vec<String> {
        self.reported()["actions"]
            .as_array()
            .map(|actions| {
                actions
                    .iter()
                    .filter(|a| a["status"] == status)
                    .map(|a| a["reason"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A log without its colours.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // ESC [ ... letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn tail(log: &str) -> String {
    let log = plain(log);
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn run_cell<S: Send + 'static>(kind: &Kind<S>, cell: &Cell, base: Option<u64>) -> Row {
    let target = cell.retry.target(
        (kind.target)()
            .set("timeout", TIMEOUT)
            .set("batch_size", BATCH)
            .set("concurrency", cell.concurrency),
    );
    let h = Harness::builder()
        .fake((kind.start)())
        .source(
            Source::users("hr", "inbox")
                .set("settle", "100ms")
                .targets(&[kind.name]),
        )
        .target(target)
        .build();
    let bench = Bench { kind, h };
    let fake = &bench.h.fake;
    match cell.inject {
        Inject::Nothing => {}
        Inject::Burst { fault, skip, count } => {
            fake.with(|l| l.faults.burst = Burst::of(fault, count).after_passing(skip));
        }
        Inject::WrongCounts => fake.with(|l| l.faults.wrong_counts_percent = 100),
        Inject::Credentials => fake.with(|l| l.faults.refuse_credentials = true),
        Inject::Down => fake.down(),
    }
    let daemon = bench.h.start();
    let dropped = Instant::now();
    let rows: Vec<String> = (1..=USERS).map(|n| user(n, false)).collect();
    bench.h.drop_file("inbox/users.csv", &users_file(&rows));

    let (mut outcome, during) = bench.while_on(&daemon, cell, dropped);
    let status = bench.once_over(&daemon, cell).to_string();
    let requests = fake.requests();
    let base = base.unwrap_or(requests);
    let bound = bench.request_bound(cell, base, during);
    assert!(
        (bound.0..=bound.1).contains(&requests),
        "{requests} requests, not within {bound:?} (base {base}, {during} while the fault was on)\n{}",
        tail(&daemon.log())
    );
    if let Inject::Down = cell.inject {
        outcome.push_str(&retries_within_budget(&daemon, cell.retry));
    }

    // No secret anywhere a person reads.
    let report = bench.report().map(|r| r.to_string()).unwrap_or_default();
    let (exit, log) = daemon.stop();
    assert!(exit.success(), "{}", tail(&log));
    if std::env::var_os("MATRIX_LOG").is_some() {
        eprintln!("--- {} × {}\n{log}", kind.name, cell.name);
    }
    for (what, text) in [
        ("the report", &report),
        ("status", &status),
        ("the log", &log),
    ] {
        assert!(!text.contains(kind.secret), "the secret shows in {what}");
    }
    Row {
        outcome,
        requests,
        bound,
    }
}

impl<S: Send + 'static> Bench<'_, S> {
    /// What the report and status say while the fault is on, then the
    /// fault cleared: the outcome in words, and the requests received
    /// until then when the fault needs clearing.
    fn while_on(&self, daemon: &Daemon, cell: &Cell, dropped: Instant) -> (String, u64) {
        let fake = &self.h.fake;
        match cell.expect {
            Expect::Done => {
                self.wait(daemon, "a complete report", |b| {
                    b.report().is_some_and(|r| r["complete"] == true)
                });
                let done = self.actions("done").len();
                assert_eq!(done, USERS, "not all done: {}", self.reported());
                ("done".into(), 0)
            }
            Expect::Held(reason) => {
                self.wait(daemon, "a stop in the report", |b| {
                    b.reported()["stopped"].is_string()
                });
                let reported = self.reported();
                let stopped = reported["stopped"].as_str().unwrap_or("");
                assert!(stopped.contains(reason), "{reported}");
                assert_eq!(reported["parked"], 0, "{reported}");
                assert_eq!(self.report().unwrap()["complete"], false);
                let status = self.target_status();
                let last_error = status["last_error"].as_str().unwrap_or("");
                assert!(
                    last_error.starts_with("stopped: ") && last_error.contains(reason),
                    "{status}"
                );
                assert_eq!(status["parked"], 0, "{status}");
                assert_eq!(status["outbox"], USERS, "{status}");
                self.shows_no_secret("status", &status);
                self.shows_no_secret("the report", &reported);
                assert!(
                    (self.kind.directory)(fake).is_empty(),
                    "taken while refused"
                );
                // Tried again every `max_interval` (1 s at least; the first
                // time after half of it): once more before the credentials
                // are right again.
                std::thread::sleep(Duration::from_millis(1200));
                let during = fake.requests();
                let held = dropped.elapsed();
                fake.with(|l| l.faults.refuse_credentials = false);
                // One request per batch under way and try, no more.
                let every = cell.retry.max_interval.max(Duration::from_secs(1)) / 2;
                let tries = 2 + (held.as_secs_f64() / every.as_secs_f64()) as u64;
                let most = tries * cell.concurrency as u64;
                assert!(
                    during <= most,
                    "{during} requests refused in {held:?}, more than {most} ({tries} tries)\n{}",
                    tail(&daemon.log())
                );
                let outcome = format!("stopped ({reason}…), {during} requests refused (≤ {most})");
                (outcome, during)
            }
            Expect::Parked(reason, release) => {
                self.wait(daemon, "a complete report", |b| {
                    b.report().is_some_and(|r| r["complete"] == true)
                });
                let parked = self.actions("parked");
                assert!(!parked.is_empty(), "nothing parked: {}", self.reported());
                assert!(
                    parked.iter().all(|r| r.contains(reason)),
                    "{}",
                    self.reported()
                );
                let status = self.target_status();
                assert_eq!(status["parked"], parked.len(), "{status}");
                let last_error = status["last_error"].as_str().unwrap_or("");
                assert!(last_error.contains(reason), "{status}");
                self.shows_no_secret("status", &status);
                self.shows_no_secret("the report", &self.reported());
                let during = fake.requests();
                match cell.inject {
                    Inject::Down => fake.up(),
                    Inject::WrongCounts => fake.with(|l| l.faults.wrong_counts_percent = 0),
                    _ => {}
                }
                if release == Release::Retry {
                    let (code, out, err) = self.h.run(&["retry", "--target", self.kind.name]);
                    assert_eq!(code, 0, "{out}{err}");
                }
                let outcome = format!("{} parked ({reason}…), released", parked.len());
                (outcome, during)
            }
        }
    }

    fn shows_no_secret(&self, what: &str, said: &Value) {
        let text = said.to_string();
        assert!(
            !text.contains(self.kind.secret),
            "the secret shows in {what}"
        );
    }

    /// Once the fault is over: every user there, each created once, nothing
    /// waiting; a burst struck as often as it was set to, and a `Retry-After`
    /// was waited out.
    /// Returns what `status --json` said of the target last.
    fn once_over(&self, daemon: &Daemon, cell: &Cell) -> Value {
        let fake = &self.h.fake;
        let mut status = Value::Null;
        self.wait(daemon, "an empty outbox", |b| {
            status = b.target_status();
            status["outbox"] == 0 && status["parked"] == 0
        });
        if matches!(cell.expect, Expect::Done) {
            assert!(status["last_error"].is_null(), "{status}");
        }
        assert!(status["last_push_at"].is_string(), "{status}");
        assert_eq!((self.kind.directory)(fake), self.expected());
        let created = (self.kind.created)(fake);
        assert_eq!(created, USERS as u64, "an account created twice");
        if let Inject::Burst { fault, count, .. } = cell.inject {
            let burst = fake.with(|l| l.faults.burst.clone());
            assert_eq!(
                burst.spoiled(),
                count,
                "the burst did not strike: {burst:?}"
            );
            if let Fault::TooManyRequests(after) = fault {
                retry_after_honoured(&burst, after);
            }
        }
        status
    }

    /// The requests the fake may have received, from the fault-free
    /// cell's (`base`) and the retry settings.
    fn request_bound(&self, cell: &Cell, base: u64, during: u64) -> (u64, u64) {
        let requests = self.h.fake.requests();
        match cell.inject {
            Inject::Nothing => (requests, requests),
            // Each spoiled request costs one again at least, a record's
            // whole push at most.
            Inject::Burst { count, .. } => (base + count, base + count * self.kind.per_record),
            // Refused (a request per batch under way and try, checked
            // while held), then the file's requests, and one more per
            // sender refused as the fault cleared.
            Inject::Credentials => (base + 1, base + during + cell.concurrency as u64),
            // Nothing reaches a fake that is down; then the file's requests.
            Inject::Down => (base, base),
            // Split down to single lines, or stopped, then sent again.
            Inject::WrongCounts => (base, base * self.kind.wrong_counts_cost + during),
        }
    }
}

/// The first drain's rounds of retries (one log line each, up to the
/// drain's "pushed" line) are no more than the retry budget allows.
fn retries_within_budget(daemon: &Daemon, retry: Retry) -> String {
    let attempts = retry.max_attempts();
    let log = plain(&daemon.log());
    let first_drain = log
        .split("rostersync::daemon::worker: pushed")
        .next()
        .unwrap_or("");
    let retries = first_drain
        .matches("retrying after a transient failure")
        .count() as u64;
    assert!(
        retries < attempts,
        "{retries} retries, more than {attempts} attempts"
    );
    format!(", {retries} retries (< {attempts} attempts)")
}

/// No request reached the fake sooner after a 429 than its `Retry-After`
/// asked (one at a time: a request after a 429 was sent after it was read).
fn retry_after_honoured(burst: &Burst, after: RetryAfter) {
    let least = after.least_wait();
    let mut arrivals: Vec<(Instant, bool)> = burst
        .spoiled_at
        .iter()
        .map(|at| (*at, true))
        .chain(burst.after.iter().map(|at| (*at, false)))
        .collect();
    arrivals.sort();
    for pair in arrivals.windows(2) {
        let ((refused, was_429), (next, _)) = (pair[0], pair[1]);
        if was_429 {
            let gap = next.duration_since(refused);
            assert!(
                gap + Duration::from_millis(50) >= least,
                "a request came {gap:?} after a 429 asking for {least:?}"
            );
        }
    }
}
