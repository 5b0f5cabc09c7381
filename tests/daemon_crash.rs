//! Crash safety of `rostersync run`: SIGKILL at 20 moments of a large import
//! (and of a second file dropped half-way), a restart after each, then one
//! last run to the end. The portal must hold exactly what a clean run gives,
//! every user created once, nothing left in the inbox, every report complete.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::fakes::collaborator::Fake;
use support::*;

const USERS: usize = 10_000;
const ORGS: usize = 20;

/// The portal's fake (2 ms per answer), organisations and users settling
/// in 100 ms, batches of 50, retries for up to 30 s.
fn setup() -> Harness<Fake> {
    let fake = Fake::start(TOKEN);
    fake.with(|p| p.faults.slow_ms = 2);
    Harness::builder()
        .fake(fake)
        .safety("max_block_percent", 50.0)
        .safety("max_block_count", 100000)
        .source(
            Source::orgs("orgs", "inbox/orgs")
                .set("settle", "100ms")
                .targets(&["lms"]),
        )
        .source(
            Source::users("users", "inbox/users")
                .set("settle", "100ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .set("batch_size", 50)
                .set("timeout", "5s")
                .retry("1ms", "5ms", "30s"),
        )
        .build()
}

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

/// The first export: every user; the second: e-mail changes for the first
/// 100 and the last 100 gone (blocked).
fn users_export(second: bool) -> String {
    let mut text = String::from(
        "user_extid;user_lname;user_fname;user_login;user_email;org_extid;user_disable\n",
    );
    let count = if second { USERS - 100 } else { USERS };
    for n in 1..=count {
        let email = if second && n <= 100 {
            format!("new{n}@x.fr")
        } else {
            format!("login{n}@x.fr")
        };
        text.push_str(&format!(
            "E{n};Name{n};First{n};login{n};{email};O{};0\n",
            n % ORGS
        ));
    }
    text
}

fn expected() -> BTreeMap<String, (String, String, String, String)> {
    (1..=USERS)
        .map(|n| {
            let email = if n <= 100 {
                format!("new{n}@x.fr")
            } else {
                format!("login{n}@x.fr")
            };
            let status = if n > USERS - 100 { "1" } else { "0" };
            (
                format!("E{n}"),
                (
                    format!("login{n}"),
                    format!("Name{n}"),
                    email,
                    status.to_string(),
                ),
            )
        })
        .collect()
}

/// A small deterministic generator: the same moments on every run.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, max: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % max
    }
}

#[test]
fn sigkill_at_20_moments_then_a_restart_ends_as_a_clean_run() {
    let h = setup();
    let (root, fake) = (h.root(), &h.fake);
    h.drop_file("inbox/orgs/orgs.csv", &orgs_file());
    h.drop_file("inbox/users/users1.csv", &users_export(false));

    let started = Instant::now();
    let mut moments = Moments(0x5eed);
    let mut kills = Vec::new();
    for round in 0..20 {
        if round == 10 {
            h.drop_file("inbox/users/users2.csv", &users_export(true));
        }
        let daemon = h.spawn();
        let after = 150 + moments.next_ms(1_200);
        std::thread::sleep(Duration::from_millis(after));
        daemon.kill();
        kills.push((after, fake.requests()));
    }
    eprintln!("killed at (ms after start, portal requests so far): {kills:?}");

    let daemon = h.start();
    let archived = |inbox: &str| h.archived(inbox);
    wait_until(
        Duration::from_secs(60),
        || {
            archived("inbox/users").len() == 2
                && archived("inbox/orgs").len() == 1
                && fake.directory() == expected()
        },
        || {
            format!(
                "not done: archived {:?} {:?}, portal holds {} users\n{}",
                archived("inbox/orgs"),
                archived("inbox/users"),
                fake.directory().len(),
                daemon.log()
            )
        },
    );
    // Every report is completed, including those a kill left pending.
    wait_until(
        Duration::from_secs(20),
        || {
            ["inbox/orgs", "inbox/users"].iter().all(|inbox| {
                archived(inbox).iter().all(|name| {
                    let report = report(&root.join(inbox).join("archive").join(name));
                    report["complete"] == true
                })
            })
        },
        || {
            let mut pending = Vec::new();
            for inbox in ["inbox/orgs", "inbox/users"] {
                for name in archived(inbox) {
                    let report = report(&root.join(inbox).join("archive").join(&name));
                    if report["complete"] != true {
                        let actions = report["targets"]["lms"]["actions"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter(|x| x["status"] == "pending")
                                    .take(3)
                                    .map(|x| format!("{} {}", x["action"], x["ext_id"]))
                                    .collect::<Vec<_>>()
                            })
                            .unwrap_or_default();
                        pending.push(format!("{name}: {actions:?}"));
                    }
                }
            }
            let (_, status, _) = h.run(&["status", "--json"]);
            let log = daemon.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            format!(
                "reports still pending: {pending:?}\nstatus: {status}\nlog (last lines first):\n{}",
                tail.join("\n")
            )
        },
    );
    let (code, out, _) = h.run(&["status", "--json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["targets"]["lms"]["outbox"], 0, "{status}");
    assert_eq!(status["targets"]["lms"]["parked"], 0, "{status}");
    let (exit, log) = daemon.stop();
    assert!(exit.success(), "{log}");

    assert_eq!(fake.directory(), expected());
    let (orgs, creates, received) = fake.with(|p| (p.orgs.len(), p.creates, p.received));
    assert_eq!(orgs, ORGS);
    // Each user created once; a replay after a kill is an update of the same uid.
    assert_eq!(creates, USERS as u64);
    eprintln!(
        "{creates} users created, {received} user records received in all ({} replayed or updated), {:?}",
        received - creates,
        started.elapsed()
    );
    for inbox in ["inbox/orgs", "inbox/users"] {
        assert!(files(&root.join(inbox)).is_empty(), "{inbox} is not empty");
        assert!(files(&root.join(inbox).join("held")).is_empty());
        assert!(files(&root.join(inbox).join("rejected")).is_empty());
    }
}
