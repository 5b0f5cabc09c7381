//! The daemon's timing of records parked after transient failures: they
//! wait `retry.max_interval` after being parked before they are tried again,
//! however long the drain that parked them took.

mod support;

use std::time::{Duration, Instant};

use support::fakes::collaborator::Fake;
use support::{Harness, Source, Target, user, users_file, wait_until};

const TOKEN: &str = "cbr-s3cr3t-t0ken-42";

#[test]
fn a_record_parked_after_transient_failures_waits_max_interval_before_it_is_tried_again() {
    // Every request fails; a drain retries for 1.5 s, longer than
    // max_interval, before it parks the record.
    let h = Harness::builder()
        .fake(Fake::start(TOKEN))
        .source(
            Source::users("hr", "inbox")
                .set("settle", "100ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .set("timeout", "2s")
                .retry("50ms", "1s", "1500ms"),
        )
        .build();
    h.fake.with(|p| p.faults.fail_percent = 100);
    let daemon = h.start();
    h.drop_file("inbox/users.csv", &users_file(&[user(1, false)]));
    let status = || -> serde_json::Value {
        let (_, out, _) = h.run(&["status", "--json"]);
        serde_json::from_str(&out).unwrap_or_default()
    };
    wait_until(
        Duration::from_secs(20),
        || status()["targets"]["lms"]["parked"] == 1,
        || format!("never shown parked: {}\n{}", status(), daemon.log()),
    );
    let parked_at = Instant::now();
    let hits = h.fake.requests();
    // Nothing is sent while it waits out max_interval.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        h.fake.requests(),
        hits,
        "tried again {:?} after it was parked\n{}",
        parked_at.elapsed(),
        daemon.log()
    );
    assert_eq!(status()["targets"]["lms"]["parked"], 1, "{}", status());
    // Then it is tried again, by itself.
    wait_until(
        Duration::from_secs(10),
        || h.fake.requests() > hits,
        || {
            format!(
                "never tried again: {} requests, {hits} when parked\n{}",
                h.fake.requests(),
                daemon.log()
            )
        },
    );
    let (code, log) = daemon.stop();
    assert!(code.success(), "{log}");
}

#[test]
fn a_report_says_done_once_a_retry_gets_its_parked_records_through() {
    let h = Harness::builder()
        .fake(Fake::start(TOKEN))
        .source(
            Source::users("hr", "inbox")
                .set("settle", "100ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .set("timeout", "2s")
                .retry("20ms", "1h", "200ms"),
        )
        .build();
    h.fake.with(|p| p.faults.fail_percent = 100);
    let daemon = h.start();
    h.drop_file(
        "inbox/users.csv",
        &users_file(&[user(1, false), user(2, false)]),
    );
    let report = || {
        h.archived("inbox")
            .first()
            .map(|name| support::report(&h.path("inbox/archive").join(name)))
            .unwrap_or_default()
    };
    wait_until(
        Duration::from_secs(20),
        || report()["complete"] == true && report()["targets"]["lms"]["parked"] == 2,
        || format!("never parked in the report: {}\n{}", report(), daemon.log()),
    );
    h.fake.with(|p| p.faults.fail_percent = 0);
    let (code, out, err) = h.run(&["retry", "--target", "lms"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_until(
        Duration::from_secs(20),
        || report()["targets"]["lms"]["parked"] == 0,
        || {
            format!(
                "the report still lists them parked: {}\n{}",
                report(),
                daemon.log()
            )
        },
    );
    let report = report();
    for action in report["targets"]["lms"]["actions"].as_array().unwrap() {
        assert_eq!(action["status"], "done", "{report}");
        assert!(action["reason"].is_null(), "{report}");
    }
    assert_eq!(h.fake.directory().len(), 2);
    let (code, log) = daemon.stop();
    assert!(code.success(), "{log}");
}
