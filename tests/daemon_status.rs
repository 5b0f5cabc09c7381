//! What `status` tells across the daemon's life: a held file stays listed
//! (in `status`, `status.json` and the count of held files) whatever its
//! source takes after it, and a restart keeps the files of today, each
//! source's last file and each target's last push.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::fakes::collaborator::Fake;
use support::{Harness, user, users_file, wait_until};

const TOKEN: &str = "cbr-st4tus-t0ken-7";

fn status_json(h: &Harness<Fake>) -> Value {
    let (code, out, err) = h.run(&["status", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn a_held_file_stays_listed_after_later_files_and_a_restart_keeps_the_counts() {
    let h = support::held::harness(TOKEN);
    let daemon = h.start();
    // Three of four leave at once: held by max_block_percent.
    let held_path = support::held::hold_a_file(&h, &daemon, "users_1.csv", "users_2.csv");
    let all: Vec<String> = (1..=4).map(|n| user(n, false)).collect();
    // A later file of the source is accepted: the held one still waits.
    let mut newer = all.clone();
    newer[3] = user(4, true);
    h.drop_file("inbox/users_3.csv", &users_file(&newer));
    h.wait_archived(&daemon, "inbox", 2);
    let held_name = held_path.trim_start_matches("inbox/held/").to_string();

    let shows_the_held_file = |status: &Value| {
        let held = &status["sources"]["users"]["held"];
        held.as_array().map(Vec::len) == Some(1)
            && held[0]["file"] == held_name.as_str()
            && held[0]["rule"]
                .as_str()
                .is_some_and(|rule| rule.starts_with("max_block_percent"))
            && held[0]["since"].is_string()
    };
    wait_until(
        Duration::from_secs(20),
        || {
            let status = status_json(&h);
            shows_the_held_file(&status)
                && status["sources"]["users"]["last_file"] == "users_3.csv"
                && status["targets"]["lms"]["last_push_at"].is_string()
        },
        || format!("{}\n{}", status_json(&h), daemon.log()),
    );
    let (code, page, _) = h.run(&["status"]);
    assert_eq!(code, 0);
    assert!(
        page.contains(&format!("    HELD: held/{held_name} since "))
            && page.contains(": max_block_percent"),
        "{page}"
    );
    let before = status_json(&h);
    assert_eq!(before["files_today"], 3, "{before}");
    let (exit, log) = daemon.stop();
    assert!(exit.success(), "{log}");

    // Started again: what the last daemon counted, and the held file, stay.
    let daemon = h.start();
    wait_until(
        Duration::from_secs(20),
        || status_json(&h)["pid"] != before["pid"],
        || daemon.log(),
    );
    let after = status_json(&h);
    assert_eq!(after["files_today"], 3, "{after}");
    assert_eq!(after["day"], before["day"]);
    for field in ["last_file", "outcome", "moved_to", "at"] {
        assert_eq!(
            after["sources"]["users"][field], before["sources"]["users"][field],
            "{field}: {after}"
        );
    }
    assert_eq!(
        after["targets"]["lms"]["last_push_at"],
        before["targets"]["lms"]["last_push_at"]
    );
    assert!(shows_the_held_file(&after), "{after}");
    let (_, page, _) = h.run(&["status"]);
    assert!(
        page.contains("files today") && page.contains(": 3\n") && !page.contains("no file yet"),
        "{page}"
    );
    let (exit, log) = daemon.stop();
    assert!(exit.success(), "{log}");
}
