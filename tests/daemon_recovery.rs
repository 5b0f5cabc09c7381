//! `rostersync run` stopped between a file's commit and its archive (the
//! test-only `ROSTERSYNC_TEST_EXIT_AFTER_COMMIT=1` makes it exit right
//! there): the restart finds the file in the inbox with the bytes of the
//! source's last accepted file, and must archive it with the plan that was
//! committed as its report, not as a duplicate.

mod daemon_support;
mod support;

use std::time::Duration;

use daemon_support::*;
use support::fakes::collaborator::Fake;

fn config(url: &str) -> String {
    format!(
        r#"
[daemon]
state_dir = "state"
log_dir = "log"

[safety]
max_block_percent = 50.0

[[source]]
name = "users"
kind = "users"
inbox = "inbox"
settle = "200ms"
targets = ["lms"]

[[target]]
name = "lms"
kind = "collaborator"
url = "{url}"
token_env = "LMS_TOKEN"
timeout = "2s"
retry = {{ initial = "1ms", max_interval = "5ms", max_elapsed = "10s" }}
"#
    )
}

fn archived(dir: &std::path::Path) -> Vec<String> {
    files(&dir.join("inbox/archive"))
        .into_iter()
        .filter(|n| !n.ends_with(".report.json"))
        .collect()
}

fn complete(dir: &std::path::Path, n: usize) -> bool {
    let archived = archived(dir);
    archived.len() == n
        && archived.iter().all(|name| {
            std::fs::read(dir.join(format!("inbox/archive/{name}.report.json")))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|r| r["complete"] == true)
        })
}

#[test]
fn a_file_committed_just_before_a_crash_is_archived_with_its_real_report() {
    let fake = Fake::start(TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("config.toml"), config(&fake.url)).unwrap();
    std::fs::create_dir(root.join("inbox")).unwrap();
    let text = users_file(&[user(1, false), user(2, false), user(3, false)]);
    std::fs::write(root.join("inbox/users.csv"), &text).unwrap();

    // Dies right after the commit: the file is still in the inbox.
    let mut daemon = Daemon::spawn_with(root, &[("ROSTERSYNC_TEST_EXIT_AFTER_COMMIT", "1")]);
    let status = wait_exit(&mut daemon.child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(86), "{}", daemon.log());
    assert_eq!(files(&root.join("inbox")), ["users.csv"]);
    assert!(archived(root).is_empty());
    assert!(root.join("state/commits/users.json").exists());
    drop(daemon);

    let daemon = Daemon::start(root);
    wait_until(
        Duration::from_secs(20),
        || complete(root, 1),
        || format!("{:?}\n{}", archived(root), daemon.log()),
    );
    let first = archived(root)[0].clone();
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
    std::fs::write(root.join("inbox/users.csv.part"), &text).unwrap();
    std::fs::rename(
        root.join("inbox/users.csv.part"),
        root.join("inbox/users.csv"),
    )
    .unwrap();
    wait_until(
        Duration::from_secs(20),
        || complete(root, 2),
        || format!("{:?}\n{}", archived(root), daemon.log()),
    );
    let second = archived(root).into_iter().find(|n| n != &first).unwrap();
    let again = report(&root.join("inbox/archive").join(second));
    assert_eq!(again["duplicate"], true, "{again}");
    assert!(again.get("committed_before_restart").is_none(), "{again}");
    assert_eq!(fake.requests(), requests);
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}
