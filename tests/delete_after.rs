//! `delete_after` and `max_delete_count`, through the daemon and a SCIM
//! provider, with the test clock (`ROSTERSYNC_TEST_TODAY`) moving the days:
//! leavers are blocked first and deleted only once blocked for the delay;
//! a rehire inside the delay is an unblock; more deletes due than
//! `max_delete_count` are held (none goes); a deleted leaver who comes
//! back is created anew, and one who comes back disabled is not recreated.

mod support;

use std::time::Duration;

use chrono::{Days, NaiveDate};
use support::fakes::scim;
use support::{Daemon, Harness, Source, Target, user, users_file, wait_until};

const TOKEN: &str = "delete-s3cr3t-t0ken-77";

fn harness() -> Harness<scim::Fake> {
    Harness::builder()
        .fake(scim::Fake::start(TOKEN, true))
        .daemon("grace", "1s")
        .safety("max_block_percent", 100.0)
        .source(
            Source::users("users", "inbox")
                .set("settle", "200ms")
                .set("create_disabled", true)
                .targets(&["idp"]),
        )
        .target(
            Target::scim("idp")
                .token_env("IDP_TOKEN", TOKEN)
                .set("delete_after", "30d")
                .set("max_delete_count", 1),
        )
        .build()
}

fn file(present: &[usize], disabled: &[usize]) -> String {
    let rows: Vec<String> = present
        .iter()
        .map(|&n| user(n, disabled.contains(&n)))
        .collect();
    users_file(&rows)
}

/// `(userName, active)` of every user the provider holds.
fn accounts(h: &Harness<scim::Fake>) -> Vec<(String, bool)> {
    h.fake
        .directory()
        .into_iter()
        .map(|(name, user)| (name, user.active))
        .collect()
}

fn expected(active: &[usize], blocked: &[usize]) -> Vec<(String, bool)> {
    let mut accounts: Vec<(String, bool)> = active
        .iter()
        .map(|n| (format!("login{n}"), true))
        .chain(blocked.iter().map(|n| (format!("login{n}"), false)))
        .collect();
    accounts.sort();
    accounts
}

fn wait_for(h: &Harness<scim::Fake>, daemon: &Daemon, want: &[(String, bool)]) {
    wait_until(
        Duration::from_secs(30),
        || accounts(h) == want,
        || format!("{:?}\n{}", accounts(h), daemon.log()),
    );
}

/// The daemon, its day `days` after `first`.
fn start_on(h: &Harness<scim::Fake>, first: NaiveDate, days: u64) -> Daemon {
    let day = (first + Days::new(days)).format("%Y-%m-%d").to_string();
    let daemon = h.spawn_with(&[("ROSTERSYNC_TEST_TODAY", &day)]);
    daemon.wait_log("watching the inboxes", Duration::from_secs(20));
    daemon
}

#[test]
fn leavers_are_blocked_then_deleted_after_the_delay_within_max_delete_count() {
    let h = harness();
    // The blocks are confirmed today, by the real clock: the test clock
    // starts on the same day.
    let first = chrono::Local::now().date_naive();
    let all: Vec<usize> = (1..=10).collect();
    let daemon = start_on(&h, first, 0);
    h.drop_file("inbox/users.csv", &file(&all, &[]));
    wait_for(&h, &daemon, &expected(&all, &[]));
    // E8, E9 and E10 leave: blocked, not deleted.
    h.drop_file("inbox/users.csv", &file(&[1, 2, 3, 4, 5, 6, 7], &[]));
    wait_for(&h, &daemon, &expected(&[1, 2, 3, 4, 5, 6, 7], &[8, 9, 10]));
    let (code, out, _) = h.run(&["show", "E8"]);
    assert_eq!(code, 0, "{out}");
    let due = first + Days::new(30);
    assert!(
        out.contains(&format!("  deleted from: {due} (delete_after")),
        "{out}"
    );
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");

    // Day 10: E10 comes back inside the delay: unblocked, the same account.
    let id_of_10 = h.fake.user("login10").unwrap()["id"].clone();
    let daemon = start_on(&h, first, 10);
    h.drop_file("inbox/users.csv", &file(&[1, 2, 3, 4, 5, 6, 7, 10], &[]));
    wait_for(&h, &daemon, &expected(&[1, 2, 3, 4, 5, 6, 7, 10], &[8, 9]));
    assert_eq!(h.fake.user("login10").unwrap()["id"], id_of_10);
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");

    // Day 29 of the block: nothing is deleted yet.
    let daemon = start_on(&h, first, 29);
    daemon.wait_log("dates re-planned", Duration::from_secs(20));
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert!(h.fake.with(|p| p.deleted.is_empty()), "{log}");
    assert_eq!(accounts(&h), expected(&[1, 2, 3, 4, 5, 6, 7, 10], &[8, 9]));

    // Day 30: two deletes are due, max_delete_count is 1: both are held.
    let daemon = start_on(&h, first, 30);
    daemon.wait_log("deletes held", Duration::from_secs(20));
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("the plan deletes 2 accounts on target idp, max_delete_count is 1"),
        "{log}"
    );
    assert!(h.fake.with(|p| p.deleted.is_empty()), "{log}");
    assert_eq!(accounts(&h), expected(&[1, 2, 3, 4, 5, 6, 7, 10], &[8, 9]));

    // The administrator allows two: the next day's re-plan deletes them.
    h.rewrite_config(|config| config.replace("max_delete_count = 1", "max_delete_count = 2"));
    let daemon = start_on(&h, first, 31);
    wait_until(
        Duration::from_secs(30),
        || h.fake.with(|p| p.deleted.len() == 2),
        || {
            format!(
                "{}\n{:?}\n{}",
                daemon.log(),
                h.run(&["show", "E8"]),
                std::fs::read_to_string(h.path("log/status.json")).unwrap_or_default()
            )
        },
    );
    assert_eq!(h.fake.with(|p| p.deleted.clone()), ["E8", "E9"]);
    assert_eq!(accounts(&h), expected(&[1, 2, 3, 4, 5, 6, 7, 10], &[]));
    let (code, out, _) = h.run(&["show", "E8"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("  acknowledged: deleted at "), "{out}");
    assert!(!out.contains("target id"), "{out}");

    // E8 is rehired: a new account. E9 comes back disabled: with
    // create_disabled it would be created blocked, but it was deleted.
    h.drop_file(
        "inbox/users.csv",
        &file(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], &[9]),
    );
    wait_for(&h, &daemon, &expected(&[1, 2, 3, 4, 5, 6, 7, 8, 10], &[]));
    wait_until(
        Duration::from_secs(20),
        || h.archived("inbox").len() == 4,
        || daemon.log(),
    );
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains(TOKEN), "the token leaked into the log");
    assert_eq!(h.fake.with(|p| p.deleted.len()), 2, "nothing deleted twice");
    let (code, out, _) = h.run(&["show", "E9"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("  acknowledged: deleted at "), "{out}");
    assert!(!out.contains("to push"), "{out}");
}
