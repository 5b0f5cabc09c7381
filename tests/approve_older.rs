//! `rostersync approve` of a held file older than the last file its source
//! accepted: refused, naming both files, unless `--force-older`.

mod support;

use std::time::Duration;

use support::{files, user, users_file};

const TOKEN: &str = "cbr-s3cr3t-t0ken-42";

#[test]
fn approving_a_held_file_older_than_the_last_accepted_one_is_refused_unless_forced() {
    let h = support::held::harness(TOKEN);
    let daemon = h.start();
    let held_path =
        support::held::hold_a_file(&h, &daemon, "users_2026-11-21.csv", "users_2026-11-22.csv");
    let all: Vec<String> = (1..=4).map(|n| user(n, false)).collect();
    // A newer export is accepted meanwhile: E4 leaves, the others stay.
    std::thread::sleep(Duration::from_millis(1100));
    let mut newer = all.clone();
    newer[3] = user(4, true);
    h.drop_file("inbox/users_2026-11-23.csv", &users_file(&newer));
    h.wait_archived(&daemon, "inbox", 2);
    let active = |uid: &str| h.fake.directory()[uid].3 == "0";
    assert!(active("E2") && active("E3") && !active("E4"));

    let (code, out, err) = h.run(&["approve", &held_path]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("users_2026-11-22.csv: refused: users_2026-11-23.csv of source users was accepted after it was held")
            && out.contains("--force-older"),
        "{out}{err}"
    );
    assert!(active("E2") && active("E3"), "the older file was applied");
    assert_eq!(files(&h.path("inbox/held")).len(), 3, "it stays held");

    let (code, out, err) = h.run(&["approve", "--force-older", &held_path]);
    assert_eq!(code, 0, "{out}{err}");
    h.wait_archived(&daemon, "inbox", 3);
    assert!(!active("E2") && !active("E3") && active("E1"));
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}
