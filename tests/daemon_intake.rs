//! `rostersync run` facing what an inbox may hold besides a well-behaved
//! export: names that would forge log lines.

mod support;

use std::time::Duration;

use support::fakes::collaborator::Fake;
use support::*;

/// The portal's fake and one users source settling in 200 ms.
fn setup() -> Harness<Fake> {
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
        .build()
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
