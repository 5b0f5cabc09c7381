//! A folder the service's sandbox leaves read-only (`ProtectSystem=strict`
//! without `ReadWritePaths=` for it) fails writes with EROFS: the daemon
//! says that this is probably the sandbox and how to open the folder, not
//! only "Read-only file system".
//!
//! The read-only folder is a read-only bind mount of the inbox over itself,
//! in a private mount namespace (`unshare --user --map-root-user --mount`,
//! as tests/daemon_state_disk.rs does): the test re-runs itself there.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

/// How long a wait may take: generous, for a loaded machine (a passing
/// run takes seconds at most).
const PATIENCE: Duration = Duration::from_secs(60);

/// Set in the re-run inside the namespace.
const INSIDE: &str = "ROSTERSYNC_TEST_IN_MOUNT_NAMESPACE";

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

fn mount(root: &Path, args: &[&str]) {
    let status = Command::new("mount")
        .args(args)
        .current_dir(root)
        .status()
        .unwrap();
    assert!(status.success(), "mount {args:?} failed");
}

#[test]
fn a_read_only_folder_is_named_as_the_sandbox_with_its_fix() {
    in_mount_namespace(
        "a_read_only_folder_is_named_as_the_sandbox_with_its_fix",
        || {
            let setup = Harness::builder()
                .source(
                    Source::users("users", "inbox")
                        .set("ready", "marker")
                        .targets(&["wbt"]),
                )
                .target(Target::wbt_file("wbt", "out"))
                .build();
            let daemon = setup.start();
            // HR still writes through `rw`; the daemon's inbox is read-only.
            std::fs::create_dir(setup.path("rw")).unwrap();
            mount(setup.root(), &["--bind", "inbox", "rw"]);
            mount(setup.root(), &["--bind", "inbox", "inbox"]);
            mount(setup.root(), &["-o", "remount,bind,ro", "inbox"]);
            setup.write("rw/users.csv", &users_file(&[user(1, false)]));
            setup.write("rw/users.csv.done", "");

            daemon.wait_log("cannot be moved to archive/", PATIENCE);
            let log = daemon.log();
            let line = log
                .lines()
                .find(|l| l.contains("cannot be moved to archive/"))
                .unwrap();
            assert!(line.contains("Read-only file system"), "{line}");
            assert!(line.contains("most likely its sandbox"), "{line}");
            assert!(line.contains("ReadWritePaths="), "{line}");
            assert!(line.contains("systemctl edit rostersync"), "{line}");
            // `status` says it too.
            let (code, out, _) = setup.run(&["status"]);
            assert_eq!(code, 0, "{out}");
            assert!(out.contains("ReadWritePaths="), "{out}");
            let (status, log) = daemon.stop();
            assert!(status.success(), "{log}");
            // Let the temporary folder go.
            for folder in ["inbox", "rw"] {
                let status = Command::new("umount")
                    .arg(folder)
                    .current_dir(setup.root())
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        },
    );
}

#[test]
fn check_names_the_sandbox_for_a_read_only_folder_in_the_daemons_words() {
    in_mount_namespace(
        "check_names_the_sandbox_for_a_read_only_folder_in_the_daemons_words",
        || {
            let setup = Harness::builder()
                .source(Source::users("users", "ro/users").targets(&["wbt"]))
                .source(Source::orgs("orgs", "ro/orgs").targets(&["wbt"]))
                .target(Target::wbt_file("wbt", "out"))
                .build();
            // ro/users exists, ro/orgs is yet to be made: both under a
            // read-only ro/, as ProtectSystem=strict leaves a folder.
            std::fs::remove_dir(setup.path("ro/orgs")).unwrap();
            mount(setup.root(), &["--bind", "ro", "ro"]);
            mount(setup.root(), &["-o", "remount,bind,ro", "ro"]);
            let (code, out, err) = setup.run(&["check"]);
            let status = Command::new("umount")
                .arg("ro")
                .current_dir(setup.root())
                .status()
                .unwrap();
            assert!(status.success());

            assert_eq!(code, 2, "{out}{err}");
            let line = |folder: &str| {
                out.lines()
                    .find(|l| l.contains(&format!(": inbox ./{folder} ")))
                    .unwrap_or_else(|| panic!("no line about {folder}:\n{out}"))
                    .to_string()
            };
            let users = line("ro/users");
            assert!(users.contains("cannot be written"), "{users}");
            let orgs = line("ro/orgs");
            assert!(
                orgs.contains("does not exist and cannot be created"),
                "{orgs}"
            );
            // The daemon's own words (sandbox::hint), one wording for both.
            for line in [&users, &orgs] {
                assert!(!line.contains("not writable by this user"), "{line}");
                assert!(line.contains("a read-only file system"), "{line}");
                assert!(line.contains("most likely its sandbox"), "{line}");
                assert!(line.contains("ReadWritePaths="), "{line}");
                assert!(line.contains("systemctl edit rostersync"), "{line}");
            }
        },
    );
}
