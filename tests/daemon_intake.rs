//! `rostersync run` facing what an inbox may hold besides a well-behaved
//! export: names that would forge log lines, names too long to keep whole
//! after a timestamp, a file deleted once read, a committed file that
//! could not be moved, entries that are not files, names that are not UTF-8,
//! files above `max_file_size`.

mod support;

use std::time::Duration;

use support::fakes::collaborator::Fake;
use support::*;

/// The portal's fake and one users source settling in 200 ms.
fn setup() -> Harness<Fake> {
    builder().build()
}

fn builder() -> Builder<Fake> {
    Harness::builder()
        .fake(Fake::start(TOKEN))
        .daemon("grace", "1s")
        .safety("max_block_percent", 100.0)
        .safety("max_shrink_percent", 100.0)
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
}

/// What a forged line would start with.
const FORGED: &str = "2026-11-21T10:00:00.000000Z  INFO rostersync: file processed";

#[test]
fn a_file_name_holding_a_line_break_cannot_forge_a_log_line() {
    let h = setup();
    let daemon = h.start();
    let good = format!("users.csv\n{FORGED}\x1b[2K.csv");
    let bad = format!("bad\n{FORGED}:1:1.csv");
    h.drop_file(&format!("inbox/{good}"), &users_file(&[user(1, false)]));
    h.wait_archived(&daemon, "inbox", 1);
    h.drop_file(&format!("inbox/{bad}"), "no;header\n");
    wait_until(
        Duration::from_secs(20),
        || files(&h.path("inbox/rejected")).len() == 2,
        || daemon.log(),
    );
    let (code, status, _) = h.run(&["status"]);
    assert_eq!(code, 0);
    let (stopped, log) = daemon.stop();
    assert!(stopped.success(), "{log}");

    // The log file, without colours: what a log reader parses line by line.
    let logged = std::fs::read_dir(h.path("log"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    let forged = |text: &str| text.lines().any(|line| line.starts_with(FORGED));
    assert!(!forged(&logged), "{logged}");
    assert!(
        logged.contains("file=users.csv\\n2026-11-21T10:00:00"),
        "{logged}\n{log}"
    );
    assert!(
        logged.contains("file=bad\\n2026-11-21T10:00:00"),
        "{logged}"
    );
    assert!(!logged.contains('\x1b'), "{logged}");
    assert!(!forged(&status), "{status}");
    assert!(status.contains("last file bad\\n2026"), "{status}");

    let archived = h.archived("inbox");
    let report = report(&h.path("inbox/archive").join(&archived[0]));
    assert_eq!(
        report["file"],
        format!("users.csv\\n{FORGED}\\u{{1b}}[2K.csv"),
        "{report}"
    );
    let errors = files(&h.path("inbox/rejected"))
        .into_iter()
        .find(|n| n.ends_with(".errors.txt"))
        .unwrap();
    let errors = std::fs::read_to_string(h.path("inbox/rejected").join(errors)).unwrap();
    assert!(!forged(&errors), "{errors}");
    assert!(errors.starts_with("bad\\n2026"), "{errors}");
}

#[test]
fn a_name_too_long_to_keep_whole_is_archived_shortened_reported_and_pushed() {
    // One row is held (min_rows = 2): the held file's long name goes through approve too.
    let h = builder().safety("min_rows", 2).build();
    let daemon = h.start();
    let long = format!("{}.csv", "u".repeat(240));
    let rows: Vec<String> = (1..=2).map(|n| user(n, false)).collect();
    h.drop_file(&format!("inbox/{long}"), &users_file(&rows));
    let archived = h.wait_archived(&daemon, "inbox", 1);
    assert!(
        files(&h.path("inbox")).is_empty(),
        "{:?}",
        files(&h.path("inbox"))
    );
    assert!(
        archived[0].len() < 200 && archived[0].ends_with(".csv"),
        "{archived:?}"
    );
    let first = report(&h.path("inbox/archive").join(&archived[0]));
    assert_eq!(first["file"], long, "{first}");
    assert_eq!(first["targets"]["lms"]["create"], 2, "{first}");
    assert_eq!(h.fake.directory().len(), 2);

    let other = format!("{}.csv", "v".repeat(240));
    h.drop_file(&format!("inbox/{other}"), &users_file(&[user(3, false)]));
    wait_until(
        Duration::from_secs(20),
        || {
            files(&h.path("inbox/held"))
                .iter()
                .any(|n| n.ends_with(".csv"))
        },
        || daemon.log(),
    );
    let held = files(&h.path("inbox/held"));
    let held = held.iter().find(|n| n.ends_with(".csv")).unwrap();
    let (code, out, err) = h.run(&["approve", &format!("inbox/held/{held}")]);
    assert_eq!(code, 0, "{out}{err}");
    let archived = h.wait_archived(&daemon, "inbox", 2);
    let second = archived.iter().find(|n| n.contains("vvv")).unwrap();
    let second = report(&h.path("inbox/archive").join(second));
    assert_eq!(second["file"], other, "{second}");
    assert_eq!(h.fake.directory().len(), 3);
    let (stopped, log) = daemon.stop();
    assert!(stopped.success(), "{log}");
}

#[test]
fn approving_a_held_file_whose_name_holds_a_line_break_answers_it_escaped() {
    let h = builder().safety("min_rows", 2).build();
    let daemon = h.start();
    let name = format!("held\n{FORGED}.csv");
    h.drop_file(&format!("inbox/{name}"), &users_file(&[user(1, false)]));
    wait_until(
        Duration::from_secs(20),
        || {
            files(&h.path("inbox/held"))
                .iter()
                .any(|n| n.ends_with(".csv"))
        },
        || daemon.log(),
    );
    let held = files(&h.path("inbox/held"));
    let held = held.iter().find(|n| n.ends_with(".csv")).unwrap();
    let (code, out, err) = h.run(&["approve", &format!("inbox/held/{held}")]);
    assert_eq!(code, 0, "{out}{err}");
    let forged = |text: &str| text.lines().any(|line| line.starts_with(FORGED));
    assert!(!forged(&out) && !forged(&err), "{out}{err}");
    assert!(out.contains("held\\n2026-11-21T10:00:00"), "{out}");
    h.wait_archived(&daemon, "inbox", 1);
    let (stopped, log) = daemon.stop();
    assert!(stopped.success(), "{log}");
    assert!(!forged(&log), "{log}");
}

#[test]
fn a_file_deleted_once_read_is_committed_reported_and_pushed_all_the_same() {
    let h = setup();
    // The file is deleted right after its commit, before its archive.
    let daemon = h.spawn_with(&[("ROSTERSYNC_TEST_REMOVE_AFTER_COMMIT", "1")]);
    daemon.wait_log("watching the inboxes", Duration::from_secs(20));
    let rows: Vec<String> = (1..=3).map(|n| user(n, false)).collect();
    h.drop_file("inbox/users.csv", &users_file(&rows));
    let archive = h.path("inbox/archive");
    let reports = || -> Vec<String> {
        files(&archive)
            .into_iter()
            .filter(|n| n.ends_with(".report.json"))
            .collect()
    };
    let complete = || {
        reports().iter().any(|n| {
            std::fs::read(archive.join(n))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|r| r["complete"] == true)
        })
    };
    wait_until(Duration::from_secs(20), complete, || {
        format!("{:?}\n{}", files(&archive), daemon.log())
    });
    assert_eq!(h.fake.directory().len(), 3);
    assert!(h.archived("inbox").is_empty(), "the file itself is gone");
    assert_eq!(reports().len(), 1);
    let (code, status, _) = h.run(&["status"]);
    assert_eq!(code, 0);
    assert!(
        status.contains("users: last file users.csv: archived"),
        "{status}"
    );
    let (stopped, log) = daemon.stop();
    assert!(stopped.success(), "{log}");
    assert!(
        log.contains("removed from the inbox before it could be archived"),
        "{log}"
    );
}

/// uid → status at the portal ("0" active, "1" blocked).
fn statuses(h: &Harness<Fake>) -> Vec<(String, String)> {
    h.fake
        .directory()
        .into_iter()
        .map(|(uid, (_, _, _, status))| (uid, status))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn a_committed_file_that_could_not_be_moved_is_never_committed_again_over_newer_data() {
    let h = setup();
    let daemon = h.start();
    // archive/ replaced by a link to nowhere: the next file cannot be filed away.
    let archive = h.path("inbox/archive");
    std::fs::remove_dir(&archive).unwrap();
    std::os::unix::fs::symlink(h.path("nowhere"), &archive).unwrap();
    h.drop_file(
        "inbox/a.csv",
        &users_file(&[user(1, false), user(2, false)]),
    );
    daemon.wait_log("cannot be moved to archive/", Duration::from_secs(20));
    // Its commit stands: pushed all the same, and said in the status.
    wait_until(
        Duration::from_secs(20),
        || statuses(&h) == pairs(&[("E1", "0"), ("E2", "0")]),
        || format!("{:?}\n{}", statuses(&h), daemon.log()),
    );
    let (_, status, _) = h.run(&["status"]);
    assert!(status.contains("last file a.csv: failed"), "{status}");
    assert!(status.contains("committed and pushing"), "{status}");

    // A newer file, archived as usual once archive/ is back.
    std::fs::remove_file(&archive).unwrap();
    std::fs::create_dir(&archive).unwrap();
    h.drop_file(
        "inbox/b.csv",
        &users_file(&[user(1, true), user(2, false), user(3, false)]),
    );
    h.wait_archived(&daemon, "inbox", 1);
    let newer = pairs(&[("E1", "1"), ("E2", "0"), ("E3", "0")]);
    wait_until(
        Duration::from_secs(20),
        || statuses(&h) == newer,
        || format!("{:?}", statuses(&h)),
    );
    let (stopped, log) = daemon.stop();
    assert!(stopped.success(), "{log}");
    let requests = h.fake.requests();

    // After a restart a.csv, still in the inbox, is archived: never
    // committed again, which would unblock E1.
    let daemon = h.start();
    let archived = h.wait_archived(&daemon, "inbox", 2);
    let a = archived.iter().find(|n| n.ends_with("_a.csv")).unwrap();
    let a = report(&archive.join(a));
    assert_eq!(a["committed_before_restart"], true, "{a}");
    assert_eq!(a["duplicate"], false, "{a}");
    assert!(files(&h.path("inbox")).is_empty());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(statuses(&h), newer);
    assert_eq!(h.fake.requests(), requests, "nothing sent again");

    // The old export dropped again once archived is a new drop: processed
    // like any other (here it unblocks E1 again, as HR asked).
    h.drop_file(
        "inbox/a.csv",
        &users_file(&[user(1, false), user(2, false)]),
    );
    let archived = h.wait_archived(&daemon, "inbox", 3);
    let again = archived
        .iter()
        .filter(|n| n.ends_with("_a.csv"))
        .nth(1)
        .unwrap();
    let again = report(&archive.join(again));
    assert!(again.get("committed_before_restart").is_none(), "{again}");
    assert_eq!(again["targets"]["lms"]["unblock"], 1, "{again}");
    let (stopped, log) = daemon.stop();
    assert!(stopped.success(), "{log}");
    assert!(log.contains("not committed again"), "{log}");
}

#[test]
fn entries_not_taken_are_named_once_and_listed_in_status_and_odd_names_taken() {
    use std::os::unix::ffi::OsStrExt;
    let h = builder().daemon("rescan", "100ms").build();
    let inbox = h.path("inbox");
    std::os::unix::fs::symlink("/etc/passwd", inbox.join("link.csv")).unwrap();
    std::fs::create_dir(inbox.join("x.csv")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(inbox.join("pipe.csv"))
        .status()
        .unwrap();
    assert!(made.success());
    // A real export whose name is in Latin-1, not UTF-8.
    let latin1 = std::ffi::OsStr::from_bytes(b"Employ\xe9s.csv");
    std::fs::write(inbox.join(latin1), users_file(&[user(1, false)])).unwrap();
    let daemon = h.start();
    h.wait_archived(&daemon, "inbox", 1);
    assert_eq!(h.fake.directory().len(), 1);
    std::thread::sleep(Duration::from_millis(1000)); // ten rescans

    let (_, out, _) = h.run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ignored = &status["sources"]["users"]["ignored"];
    let names: Vec<&str> = ignored
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["link.csv", "pipe.csv", "x.csv"], "{status}");
    assert!(
        ignored[0]["reason"]
            .as_str()
            .unwrap()
            .contains("symbolic link")
    );
    assert!(
        ignored[1]["reason"]
            .as_str()
            .unwrap()
            .contains("named pipe")
    );
    assert!(ignored[2]["reason"].as_str().unwrap().contains("folder"));
    let (_, text, _) = h.run(&["status"]);
    assert!(text.contains("    not taken: x.csv: a folder"), "{text}");
    assert!(
        text.contains("last file Employ\\xe9s.csv: archived"),
        "{text}"
    );

    // Gone: no longer listed.
    std::fs::remove_dir(inbox.join("x.csv")).unwrap();
    wait_until(
        Duration::from_secs(20),
        || {
            let (_, out, _) = h.run(&["status", "--json"]);
            !out.contains("\"x.csv\"")
        },
        || daemon.log(),
    );
    let (stopped, log) = daemon.stop();
    assert!(stopped.success(), "{log}");
    for name in ["link.csv", "pipe.csv", "x.csv"] {
        let lines = log
            .lines()
            .filter(|l| l.contains("not taken") && l.contains(name))
            .count();
        assert_eq!(lines, 1, "{name} named once:\n{log}");
    }
    assert!(log.contains("Employ\\xe9s.csv"), "{log}");
}

#[test]
fn a_file_above_max_file_size_is_rejected_before_it_is_read() {
    let h = builder()
        .edit_source("users", |s| s.set("max_file_size", "1KiB"))
        .build();
    let daemon = h.start();
    let rows: Vec<String> = (1..=40).map(|n| user(n, false)).collect();
    let text = users_file(&rows);
    assert!(text.len() > 1024);
    h.drop_file("inbox/big.csv", &text);
    wait_until(
        Duration::from_secs(20),
        || files(&h.path("inbox/rejected")).len() == 2,
        || daemon.log(),
    );
    let rejected = files(&h.path("inbox/rejected"));
    let errors = std::fs::read_to_string(h.path("inbox/rejected").join(&rejected[1])).unwrap();
    assert!(
        errors.starts_with(&format!(
            "big.csv:1:1: the file is {} bytes, more than max_file_size allows (1 KiB)",
            text.len()
        )),
        "{errors}"
    );
    assert_eq!(h.fake.requests(), 0);
    let (stopped, log) = daemon.stop();
    assert!(stopped.success(), "{log}");
}
