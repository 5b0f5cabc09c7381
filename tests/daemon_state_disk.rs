//! `rostersync run` when its state directory runs out of space: the file
//! waits in its inbox, nothing is pushed, `status` says why while the
//! daemon keeps answering it and SIGTERM, and once space returns the file
//! is taken and pushed without anyone stepping in: after a failure of the
//! store itself the daemon starts again by itself (sled keeps an IO error
//! for good), after one of the plan notes it just goes on.
//!
//! A full disk is a small tmpfs mounted over a folder of the state
//! directory. Each test runs in a private mount namespace of its own
//! (`unshare --user --map-root-user --mount`, which needs no privilege where
//! unprivileged user namespaces are allowed): the test re-runs itself there,
//! so that the mount is seen by it and its daemon only and goes with them.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::fakes::collaborator::Fake;
use support::*;

/// Set in the re-run inside the namespace.
const INSIDE: &str = "ROSTERSYNC_TEST_IN_MOUNT_NAMESPACE";

/// Runs `test` in a private mount namespace: re-runs this test binary
/// there for this one test, and fails with its output if it fails.
fn in_mount_namespace(name: &str, test: impl FnOnce()) {
    if std::env::var_os(INSIDE).is_some() {
        test();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "--"])
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .expect("unshare (util-linux) is needed to run this test");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "the test in its mount namespace failed:\n{text}"
    );
}

/// A tmpfs of `size` over `dir` (created).
fn mount_tmpfs(dir: &Path, size: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cannot mount a tmpfs on {}",
        dir.display()
    );
}

/// Fills the file system of `dir` to the last byte; returns the filler.
fn fill(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).is_ok() {}
    while file.write_all(&[0]).is_ok() {}
    path
}

fn setup() -> Harness<Fake> {
    Harness::builder()
        .fake(Fake::start(TOKEN))
        .daemon("grace", "1s")
        .source(
            Source::users("users", "inbox")
                .set("settle", "100ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .fast(),
        )
        .build()
}

fn users(count: usize) -> String {
    users_file(&(1..=count).map(|n| user(n, false)).collect::<Vec<_>>())
}

fn status(h: &Harness<Fake>) -> serde_json::Value {
    let (code, out, err) = h.run(&["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The daemon's pid as `status` has it.
fn pid(h: &Harness<Fake>) -> u64 {
    status(h)["pid"].as_u64().unwrap()
}

/// The file waits, nothing is pushed, `status` tells; returns the
/// requests the portal had when the failure showed.
fn assert_waiting(h: &Harness<Fake>, daemon: &Daemon, store: bool) -> u64 {
    wait_until(
        Duration::from_secs(20),
        || !status(h)["state_error"].is_null(),
        || format!("no state error in status\n{}", daemon.log()),
    );
    let requests = h.fake.requests();
    let state = status(h);
    let error = &state["state_error"];
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{state}"
    );
    assert_eq!(error["store"], store, "{state}");
    assert_eq!(state["sources"]["users"]["outcome"], "waiting", "{state}");
    let (code, text, _) = h.run(&["status"]);
    assert_eq!(code, 0);
    assert!(text.contains("STATE DIRECTORY FAILING since"), "{text}");
    // A few probes later: still waiting, still nothing sent.
    wait_until(
        Duration::from_secs(20),
        || status(h)["state_error"]["probes"].as_u64() >= Some(2),
        || format!("the state directory is not probed again\n{}", daemon.log()),
    );
    assert!(h.path("inbox/users2.csv").exists());
    assert!(h.archived("inbox").len() == 1, "{:?}", h.archived("inbox"));
    assert_eq!(h.fake.requests(), requests, "pushed while the state failed");
    requests
}

/// The store's own disk fills up: the daemon waits, then starts again by
/// itself (same pid) and takes the file once the space is back.
#[test]
fn a_full_store_disk_pauses_the_daemon_which_starts_again_once_space_returns() {
    in_mount_namespace(
        "a_full_store_disk_pauses_the_daemon_which_starts_again_once_space_returns",
        || {
            let h = setup();
            let db = h.path("state/db");
            mount_tmpfs(&db, "4m");
            let daemon = h.start();
            h.drop_file("inbox/users1.csv", &users(10));
            h.wait_archived(&daemon, "inbox", 1);
            let before = pid(&h);
            let filler = fill(&db);
            h.drop_file("inbox/users2.csv", &users(3000));
            assert_waiting(&h, &daemon, true);

            std::fs::remove_file(filler).unwrap();
            daemon.wait_log("restarting to reopen the store", Duration::from_secs(30));
            h.wait_archived(&daemon, "inbox", 2);
            wait_until(
                Duration::from_secs(30),
                || h.fake.directory().len() == 3000,
                || {
                    format!(
                        "the portal holds {}\n{}",
                        h.fake.directory().len(),
                        daemon.log()
                    )
                },
            );
            let state = status(&h);
            assert!(state["state_error"].is_null(), "{state}");
            assert_eq!(state["pid"].as_u64(), Some(before), "not the same process");
            assert_eq!(state["targets"]["lms"]["outbox"], 0, "{state}");
            let (stopped, log) = daemon.stop();
            assert!(stopped.success(), "{log}");
        },
    );
}

/// The plan notes' folder fills up: the daemon waits and answers SIGTERM;
/// started again with space back, it takes the file. A second run, that
/// one fills up and recovers without a restart.
#[test]
fn a_full_state_folder_waits_answers_sigterm_and_resumes_without_a_restart() {
    in_mount_namespace(
        "a_full_state_folder_waits_answers_sigterm_and_resumes_without_a_restart",
        || {
            let h = setup();
            let commits = h.path("state/commits");
            mount_tmpfs(&commits, "2m");
            let daemon = h.start();
            h.drop_file("inbox/users1.csv", &users(10));
            h.wait_archived(&daemon, "inbox", 1);
            let filler = fill(&commits);
            h.drop_file("inbox/users2.csv", &users(300));
            assert_waiting(&h, &daemon, false);
            // Half-written notes do not stay to fill the disk.
            assert_eq!(files(&commits), vec!["filler".to_string()]);

            // SIGTERM is answered at once.
            let (stopped, log) = daemon.stop();
            assert!(stopped.success(), "{log}");
            assert!(log.contains("stopped"), "{log}");

            // Started again, still full: it waits again; then space returns.
            let daemon = h.start();
            let before = pid(&h);
            assert_waiting(&h, &daemon, false);
            std::fs::remove_file(filler).unwrap();
            h.wait_archived(&daemon, "inbox", 2);
            wait_until(
                Duration::from_secs(30),
                || h.fake.directory().len() == 300,
                || {
                    format!(
                        "the portal holds {}\n{}",
                        h.fake.directory().len(),
                        daemon.log()
                    )
                },
            );
            let state = status(&h);
            assert!(state["state_error"].is_null(), "{state}");
            assert_eq!(state["pid"].as_u64(), Some(before));
            let (stopped, log) = daemon.stop();
            assert!(stopped.success(), "{log}");
            assert!(!log.contains("restarting to reopen the store"), "{log}");
        },
    );
}
