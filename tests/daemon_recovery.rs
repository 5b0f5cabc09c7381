//! `rostersync run` stopped between a file's commit and its archive (the
//! test-only `ROSTERSYNC_TEST_EXIT_AFTER_COMMIT=1` makes it exit right
//! there): the restart finds the file in the inbox with the bytes of the
//! source's last accepted file, and must archive it with the plan that was
//! committed as its report, not as a duplicate. And stopped right after the
//! archive (`ROSTERSYNC_TEST_EXIT_AFTER_ARCHIVE=1`): the report must still
//! have every action, those beyond the ones it lists in its actions file.

mod support;

use std::time::Duration;

use support::fakes::collaborator::Fake;
use support::*;

/// The portal's fake and one users source settling in 200 ms.
fn setup() -> Harness<Fake> {
    Harness::builder()
        .fake(Fake::start(TOKEN))
        .safety("max_block_percent", 50.0)
        .source(
            Source::users("users", "inbox")
                .set("settle", "200ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .fast(),
        )
        .build()
}

/// `n` files archived, every report complete.
fn complete(h: &Harness<Fake>, n: usize) -> bool {
    h.complete("inbox")
        .is_some_and(|archived| archived.len() == n)
}

#[test]
fn a_file_committed_just_before_a_crash_is_archived_with_its_real_report() {
    let h = setup();
    let (root, fake) = (h.root(), &h.fake);
    let text = users_file(&[user(1, false), user(2, false), user(3, false)]);
    std::fs::write(root.join("inbox/users.csv"), &text).unwrap();

    // Dies right after the commit: the file is still in the inbox.
    let mut daemon = h.spawn_with(&[("ROSTERSYNC_TEST_EXIT_AFTER_COMMIT", "1")]);
    let status = wait_exit(&mut daemon.child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(86), "{}", daemon.log());
    assert_eq!(files(&root.join("inbox")), ["users.csv"]);
    assert!(h.archived("inbox").is_empty());
    assert!(root.join("state/commits/users.json").exists());
    drop(daemon);

    let daemon = h.start();
    wait_until(
        Duration::from_secs(20),
        || complete(&h, 1),
        || format!("{:?}\n{}", h.archived("inbox"), daemon.log()),
    );
    let first = h.archived("inbox")[0].clone();
    assert!(first.ends_with("Z_users.csv"), "{first}");
    let first_report = report(&root.join("inbox/archive").join(&first));
    assert_eq!(first_report["duplicate"], false, "{first_report}");
    assert_eq!(
        first_report["committed_before_restart"], true,
        "{first_report}"
    );
    assert_eq!(first_report["file"], "users.csv");
    let lms = &first_report["targets"]["lms"];
    assert_eq!(lms["create"], 3, "{first_report}");
    let actions = lms["actions"].as_array().unwrap();
    let keys: Vec<&str> = actions
        .iter()
        .map(|a| a["ext_id"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["E1", "E2", "E3"]);
    assert!(
        actions.iter().all(|a| a["status"] == "done"),
        "{first_report}"
    );
    assert_eq!(fake.directory().len(), 3);
    assert!(
        !root.join("state/commits/users.json").exists(),
        "the note goes once the file is archived"
    );
    assert!(
        daemon.log().contains("committed before a restart"),
        "{}",
        daemon.log()
    );

    // The same bytes under the same name again: now a real duplicate.
    let requests = fake.requests();
    h.drop_file("inbox/users.csv", &text);
    wait_until(
        Duration::from_secs(20),
        || complete(&h, 2),
        || format!("{:?}\n{}", h.archived("inbox"), daemon.log()),
    );
    let second = h
        .archived("inbox")
        .into_iter()
        .find(|n| n != &first)
        .unwrap();
    let again = report(&root.join("inbox/archive").join(second));
    assert_eq!(again["duplicate"], true, "{again}");
    assert!(again.get("committed_before_restart").is_none(), "{again}");
    assert_eq!(fake.requests(), requests);
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_file_archived_just_before_a_crash_keeps_every_action_in_its_report() {
    // A report lists 5 actions; the others are in its `.actions.jsonl`.
    let h = Harness::builder()
        .fake(Fake::start(TOKEN))
        .daemon("report_actions", 5)
        .source(
            Source::users("users", "inbox")
                .set("settle", "200ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .fast(),
        )
        .build();
    let (root, fake) = (h.root(), &h.fake);
    let rows: Vec<String> = (1..=12).map(|n| user(n, false)).collect();
    std::fs::write(root.join("inbox/users.csv"), users_file(&rows)).unwrap();

    // Dies right after the archive: the commit note is still there.
    let mut daemon = h.spawn_with(&[("ROSTERSYNC_TEST_EXIT_AFTER_ARCHIVE", "1")]);
    let status = wait_exit(&mut daemon.child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(87), "{}", daemon.log());
    assert_eq!(h.archived("inbox").len(), 1);
    assert!(root.join("state/commits/users.json").exists());
    drop(daemon);

    let daemon = h.start();
    wait_until(
        Duration::from_secs(20),
        || complete(&h, 1) && fake.directory().len() == 12,
        || format!("{:?}\n{}", h.archived("inbox"), daemon.log()),
    );
    let archived = root.join("inbox/archive").join(&h.archived("inbox")[0]);
    let report = report(&archived);
    assert_eq!(report["targets"]["lms"]["create"], 12, "{report}");
    let mut name = archived.file_name().unwrap().to_owned();
    name.push(".actions.jsonl");
    assert_eq!(report["actions_file"], name.to_str().unwrap(), "{report}");
    let actions = std::fs::read_to_string(archived.with_file_name(&name)).unwrap();
    let statuses: Vec<String> = actions
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            format!("{} {}", line["ext_id"], line["status"])
        })
        .collect();
    assert_eq!(statuses.len(), 12, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| s.ends_with("\"done\"")),
        "{statuses:?}"
    );
    let (exit, log) = daemon.stop();
    assert!(exit.success(), "{log}");
}
