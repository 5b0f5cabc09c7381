//! `rostersync approve` from an operator's shell, which holds none of the
//! targets' secrets: through the running daemon (which has them), and with
//! no daemon the commit alone, pushed by the daemon when it starts.

mod support;

use std::time::Duration;

use support::fakes::collaborator::Fake;
use support::held::hold_a_file;
use support::{Harness, files, wait_until};

const TOKEN: &str = "cbr-appr0ve-t0ken-9";

/// `rostersync approve FILE` without the target's token in the environment.
fn approve_without_the_token(h: &Harness<Fake>, held: &str) -> (i32, String) {
    let output = h
        .command()
        .env_remove("LMS_TOKEN")
        .args(["approve", held, "-c", "config.toml"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(!text.contains(TOKEN));
    (output.status.code().unwrap_or(-1), text)
}

fn blocked(h: &Harness<Fake>) -> usize {
    h.fake
        .directory()
        .values()
        .filter(|(_, _, _, status)| status == "1")
        .count()
}

#[test]
fn approve_goes_through_the_running_daemon_without_secrets_in_the_shell() {
    let h = support::held::harness(TOKEN);
    let daemon = h.start();
    let held = hold_a_file(&h, &daemon, "users_1.csv", "users_2.csv");
    let (code, out) = approve_without_the_token(&h, &held);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("users_2.csv: approved and committed"), "{out}");
    h.wait_archived(&daemon, "inbox", 2);
    assert_eq!(blocked(&h), 3);
    let (exit, log) = daemon.stop();
    assert!(exit.success(), "{log}");
}

#[test]
fn with_no_daemon_approve_commits_and_the_daemon_pushes_when_it_starts() {
    let h = support::held::harness(TOKEN);
    let daemon = h.start();
    let held = hold_a_file(&h, &daemon, "users_1.csv", "users_2.csv");
    let (exit, log) = daemon.stop();
    assert!(exit.success(), "{log}");
    let requests = h.fake.requests();

    let (code, out) = approve_without_the_token(&h, &held);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("users_2.csv: approved → ")
            && out.contains("0 create, 0 update, 3 block")
            && out.contains("LMS_TOKEN")
            && out.contains("the daemon pushes it when it starts"),
        "{out}"
    );
    assert_eq!(h.fake.requests(), requests, "pushed without a token");
    assert!(files(&h.path("inbox/held")).is_empty());
    assert_eq!(h.archived("inbox").len(), 2);

    let daemon = h.start();
    wait_until(
        Duration::from_secs(20),
        || blocked(&h) == 3,
        || daemon.log(),
    );
    h.wait_archived(&daemon, "inbox", 2);
    let (exit, log) = daemon.stop();
    assert!(exit.success(), "{log}");
}
