//! `[daemon] metrics` end to end: the real daemon pushing to the
//! Collaborator fake, its `/metrics` scraped while it runs and read by a
//! Prometheus text-format parser; the counters are the reports' figures,
//! the gauges `status.json`'s. `/readyz` while a target refuses its token.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::fakes::collaborator::Fake;
use support::scrape::{self, Scrape};
use support::*;

/// The portal's fake and one users source feeding it, metrics on `address`.
fn setup(address: &str) -> Harness<Fake> {
    Harness::builder()
        .fake(Fake::start(TOKEN))
        .daemon("grace", "1s")
        .daemon("metrics", address)
        .safety("max_block_percent", 50.0)
        .source(
            Source::users("users", "inbox")
                .set("settle", "200ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .set("batch_size", 10)
                .fast(),
        )
        .build()
}

fn status(harness: &Harness<Fake>) -> Value {
    let text = std::fs::read_to_string(harness.path("log/status.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// How many actions of a kind a report lists with a status.
fn listed(report: &Value, kind: &str, status: &str) -> f64 {
    report["targets"]["lms"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == kind && a["status"] == status)
        .count() as f64
}

#[test]
fn counters_are_the_reports_figures_while_the_daemon_runs() {
    let address = scrape::free_address();
    let harness = setup(&address);
    // Two logins the portal refuses: their records are parked.
    harness.fake.with(|l| {
        l.refused_logins = vec!["login7".into(), "login31".into()];
    });
    let before = sync_now();
    let daemon = harness.start();
    let first: Vec<String> = (1..=40).map(|n| user(n, false)).collect();
    harness.drop_file("inbox/users1.csv", &users_file(&first));
    harness.wait_archived(&daemon, "inbox", 1);
    // 3 changed, 4 gone (blocked), 1 disabled (blocked).
    let second: Vec<String> = (1..=36)
        .map(|n| match n {
            1..=3 => user(n, false).replace(&format!("Name{n};"), &format!("Renamed{n};")),
            5 => user(n, true),
            _ => user(n, false),
        })
        .collect();
    harness.drop_file("inbox/users2.csv", &users_file(&second));
    harness.wait_archived(&daemon, "inbox", 2);
    // A bad row refuses the file; a file that blocks most users is held.
    harness.drop_file(
        "inbox/bad.csv",
        &users_file(&[user(1, false), "E2;;First2;login2;not-an-email;0".into()]),
    );
    wait_until(
        Duration::from_secs(20),
        || files(&harness.path("inbox/rejected")).len() == 2,
        || daemon.log(),
    );
    harness.drop_file("inbox/users3.csv", &users_file(&first[..2]));
    wait_until(
        Duration::from_secs(20),
        || files(&harness.path("inbox/held")).len() == 3,
        || daemon.log(),
    );

    let archived = harness.archived("inbox");
    let reports: Vec<Value> = archived
        .iter()
        .map(|name| report(&harness.path(&format!("inbox/archive/{name}"))))
        .collect();
    // status.json and the gauges are refreshed about every second.
    let mut metrics = Scrape::of(&address);
    wait_until(
        Duration::from_secs(10),
        || {
            metrics = Scrape::of(&address);
            metrics.value("rostersync_held_files", &[("source", "users")]) == Some(1.0)
                && metrics.value("rostersync_outbox", &[("target", "lms")])
                    == status(&harness)["targets"]["lms"]["outbox"].as_f64()
        },
        || format!("gauges not refreshed:\n{}", Scrape::of(&address).text),
    );

    let lms = |kind: &'static str, outcome: &'static str| {
        metrics.count(
            "rostersync_actions_total",
            &[("target", "lms"), ("kind", kind), ("outcome", outcome)],
        )
    };
    for kind in ["create", "update", "block", "unblock"] {
        let planned: f64 = reports
            .iter()
            .map(|r| r["targets"]["lms"][kind].as_f64().unwrap())
            .sum();
        let done: f64 = reports.iter().map(|r| listed(r, kind, "done")).sum();
        let parked: f64 = reports.iter().map(|r| listed(r, kind, "parked")).sum();
        assert_eq!(lms(kind, "done"), done, "{kind} done\n{}", metrics.text);
        assert_eq!(lms(kind, "parked"), parked, "{kind} parked");
        assert_eq!(done + parked, planned, "{kind}: every action settled");
    }
    // The figures themselves: 40 creates (2 refused), then 3 updates, 5
    // blocks, and the 2 refused users planned again and refused again.
    assert_eq!(
        (lms("create", "done"), lms("create", "parked")),
        (38.0, 4.0)
    );
    assert_eq!(lms("update", "done"), 3.0);
    assert_eq!(lms("block", "done") + lms("block", "parked"), 5.0);
    let report_parked: f64 = reports
        .iter()
        .map(|r| r["targets"]["lms"]["parked"].as_f64().unwrap())
        .sum();
    assert_eq!(
        lms("create", "parked") + lms("block", "parked"),
        report_parked
    );

    let files_of = |outcome| {
        metrics.count(
            "rostersync_files_total",
            &[("source", "users"), ("outcome", outcome)],
        )
    };
    assert_eq!(files_of("archived"), 2.0);
    assert_eq!(files_of("rejected"), 1.0);
    assert_eq!(files_of("held"), 1.0);
    assert_eq!(
        metrics.count(
            "rostersync_file_processing_seconds_count",
            &[("source", "users")]
        ),
        4.0
    );

    // Every request to the portal was timed; no transient failure, no retry.
    assert_eq!(
        metrics.count(
            "rostersync_request_duration_seconds_count",
            &[("target", "lms")]
        ),
        harness.fake.requests() as f64
    );
    assert_eq!(
        metrics.count("rostersync_retries_total", &[("target", "lms")]),
        0.0
    );

    let target = &status(&harness)["targets"]["lms"];
    for (gauge, key) in [
        ("rostersync_outbox", "outbox"),
        ("rostersync_parked", "parked"),
        ("rostersync_ambiguous", "ambiguous"),
    ] {
        assert_eq!(
            metrics.value(gauge, &[("target", "lms")]),
            target[key].as_f64(),
            "{gauge}: {target}"
        );
    }
    assert_eq!(target["parked"], 2, "the same 2 records: {target}");

    let now = sync_now() + 1.0;
    for (metric, label) in [
        (
            "rostersync_target_last_success_timestamp_seconds",
            ("target", "lms"),
        ),
        (
            "rostersync_source_last_success_timestamp_seconds",
            ("source", "users"),
        ),
    ] {
        let at = metrics.value(metric, &[label]).unwrap();
        assert!(
            before <= at && at <= now,
            "{metric} {at} not in {before}..{now}"
        );
    }
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");

    // A restart keeps the target's last success (to the second, as
    // status.json has it) and starts the counters afresh. The source's
    // last file was held: status.json keeps no accepted one to read back.
    let daemon = harness.start();
    let again = Scrape::of(&address);
    let metric = "rostersync_target_last_success_timestamp_seconds";
    let label = [("target", "lms")];
    let (was, is) = (metrics.value(metric, &label), again.value(metric, &label));
    assert!(
        is.is_some_and(|is| (was.unwrap() - is).abs() <= 1.0),
        "{metric}: {was:?} then {is:?}"
    );
    let metric = "rostersync_source_last_success_timestamp_seconds";
    assert_eq!(again.value(metric, &[("source", "users")]), None);
    assert_eq!(
        again.count("rostersync_files_total", &[("source", "users")]),
        0.0
    );
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

fn sync_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64
}

#[test]
fn readyz_says_not_ready_while_a_target_refuses_its_token() {
    let address = scrape::free_address();
    let harness = Harness::builder()
        .fake(Fake::start(TOKEN))
        .daemon("grace", "1s")
        .daemon("metrics", address.as_str())
        .source(
            Source::users("users", "inbox")
                .set("settle", "200ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .set("timeout", "2s")
                // A target on hold is tried again every max_interval.
                .retry("1ms", "1s", "10s"),
        )
        .build();
    let daemon = harness.start();
    assert_eq!(
        scrape::get(&address, "/healthz"),
        Some((200, "ok\n".into()))
    );
    assert_eq!(
        scrape::get(&address, "/readyz"),
        Some((200, "ready\n".into()))
    );

    harness.fake.with(|l| l.faults.refuse_credentials = true);
    harness.drop_file("inbox/users1.csv", &users_file(&[user(1, false)]));
    let mut answer = None;
    wait_until(
        Duration::from_secs(20),
        || {
            answer = scrape::get(&address, "/readyz");
            answer.as_ref().is_some_and(|(code, _)| *code == 503)
        },
        || format!("{:?}\n{}", scrape::get(&address, "/readyz"), daemon.log()),
    );
    let (_, body) = answer.clone().unwrap();
    assert!(
        body.starts_with("not ready: target lms stopped: "),
        "{body}"
    );
    assert!(body.contains("401"), "{body}");
    assert!(!body.contains(TOKEN), "{body}");
    // The process itself still answers.
    assert_eq!(
        scrape::get(&address, "/healthz"),
        Some((200, "ok\n".into()))
    );

    harness.fake.with(|l| l.faults.refuse_credentials = false);
    wait_until(
        Duration::from_secs(20),
        || scrape::get(&address, "/readyz") == Some((200, "ready\n".into())),
        || format!("{:?}\n{}", scrape::get(&address, "/readyz"), daemon.log()),
    );
    harness.wait_archived(&daemon, "inbox", 1);
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert_eq!(
        scrape::get(&address, "/healthz"),
        None,
        "stopped with the daemon"
    );
}
