//! `rostersync push EXT_ID`: one person sent now, ahead of a long outbox
//! (a 2,000-record first import still pushing to a slowed target), through
//! the running daemon to a per-record target (SCIM) and a batch target
//! (Collaborator); and without a daemon, on the store directly.

mod support;

use std::time::Duration;

use support::fakes::{collaborator, scim};
use support::{Harness, Source, Target, user, users_file, wait_until};

const TOKEN: &str = "push-s3cr3t-t0ken-42";

/// 2,000 users: in key order `E999` comes last, so a drain reaches it last.
fn first_import() -> String {
    users_file(&(1..=2000).map(|n| user(n, false)).collect::<Vec<_>>())
}

#[test]
fn push_sends_one_person_to_a_per_record_target_ahead_of_a_long_outbox() {
    let h = Harness::builder()
        .fake(scim::Fake::start(TOKEN, true))
        .daemon("grace", "1s")
        .source(
            Source::users("users", "inbox")
                .set("settle", "200ms")
                .targets(&["idp"]),
        )
        .target(Target::scim("idp").token_env("IDP_TOKEN", TOKEN))
        .build();
    // 50 ms a request, four at a time, two requests a create: the whole
    // import would take about 50 s.
    h.fake.with(|p| p.faults.slow_ms = 50);
    let daemon = h.start();
    h.drop_file("inbox/users.csv", &first_import());
    wait_until(
        Duration::from_secs(30),
        || !h.fake.directory().is_empty(),
        || daemon.log(),
    );

    let (code, out, err) = h.run(&["push", "E999"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "idp users E999: create sent and confirmed\n");
    let directory = h.fake.directory();
    assert!(directory.contains_key("login999"), "{directory:?}");
    assert!(
        directory.len() < 1000,
        "E999 came with the drain, not ahead of it: {} of 2000 there",
        directory.len()
    );
    let (code, out, _) = h.run(&["push", "E999"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        "idp users E999: nothing waits: the target holds its desired state\n"
    );
    // `plan --person`, through the daemon: E999 is where it should be, E998 still waits.
    wait_until(
        Duration::from_secs(20),
        || !h.archived("inbox").is_empty(),
        || daemon.log(),
    );
    let archived = format!("inbox/archive/{}", h.archived("inbox")[0]);
    let (code, out, err) = h.run(&["plan", &archived, "--person", "E999"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with("\ntarget idp:\n  nothing to do\n"), "{out}");
    let (code, out, err) = h.run(&["plan", &archived, "--person", "E998"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\ntarget idp:\n  create   E998  "), "{out}");
    let (code, out, _) = h.run(&["push", "E5000"]);
    assert_eq!(
        (code, out.as_str()),
        (2, "E5000: no target holds a record with this key\n")
    );
    let (code, out, _) = h.run(&["push", "E1", "--target", "nope"]);
    assert_eq!(
        (code, out.as_str()),
        (2, "no target named \"nope\" in the config\n")
    );
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");

    // No daemon: `push` opens the store and sends the one record itself.
    h.fake.with(|p| p.faults.slow_ms = 0);
    let before = h.fake.directory();
    assert!(!before.contains_key("login998"), "{} there", before.len());
    let (code, out, err) = h.run(&["push", "E998", "--target", "idp"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "idp users E998: create sent and confirmed\n");
    let after = h.fake.directory();
    assert_eq!(after.len(), before.len() + 1);
    assert!(after.contains_key("login998"));
}

#[test]
fn push_sends_one_person_to_a_batch_target_ahead_of_a_long_outbox() {
    let h = Harness::builder()
        .fake(collaborator::Fake::start(TOKEN))
        .daemon("grace", "1s")
        .source(
            Source::users("users", "inbox")
                .set("settle", "200ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .set("batch_size", 50)
                .set("concurrency", 1),
        )
        .build();
    // 40 batches of 50, one at a time, 500 ms each: about 20 s in all.
    h.fake.with(|p| p.faults.slow_ms = 500);
    let daemon = h.start();
    h.drop_file("inbox/users.csv", &first_import());
    wait_until(
        Duration::from_secs(30),
        || !h.fake.directory().is_empty(),
        || daemon.log(),
    );

    let (code, out, err) = h.run(&["push", "E999"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "lms users E999: create sent and confirmed\n");
    let directory = h.fake.directory();
    assert!(directory.contains_key("E999"), "{directory:?}");
    assert!(
        directory.len() < 1000,
        "E999 came with the drain, not ahead of it: {} of 2000 there",
        directory.len()
    );
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}
