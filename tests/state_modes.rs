//! Who may read what rostersync writes, whatever the umask it is started
//! with (here 000, the most permissive): the state folder, the sled store,
//! the commit notes, the control socket, `status.json` and the logs are the
//! service user's alone; what administrators read in the inboxes (the
//! sub-folders, reports, `.errors.txt`, `.actions.jsonl`) and the WBT files
//! are the group's, never others'.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::fakes::collaborator::Fake;
use support::*;

/// A command started with umask 000.
fn permissive(command: &mut std::process::Command) {
    // SAFETY: umask(2) is async-signal-safe and touches nothing else.
    unsafe {
        command.pre_exec(|| {
            rustix::process::umask(rustix::fs::Mode::empty());
            Ok(())
        });
    }
}

fn setup() -> Harness<Fake> {
    Harness::builder()
        .fake(Fake::start(TOKEN))
        .daemon("grace", "1s")
        // Few actions per report: the rest go to an .actions.jsonl.
        .daemon("report_actions", 1)
        .safety("max_block_percent", 100.0)
        .source(
            Source::users("users", "inbox")
                .set("settle", "200ms")
                .targets(&["lms", "out"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .fast(),
        )
        .target(Target::wbt_file("out", "wbt-out"))
        .build()
}

/// Every entry under `dir`, `dir` included, with its permission bits.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let Ok(metadata) = std::fs::symlink_metadata(dir) else {
        return out;
    };
    out.push((dir.to_path_buf(), metadata.mode() & 0o7777));
    if metadata.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            out.extend(modes(&entry.path()));
        }
    }
    out
}

fn assert_owner_only(what: &str, entries: &[(PathBuf, u32)]) {
    assert!(!entries.is_empty(), "{what}: nothing there");
    let open: Vec<_> = entries
        .iter()
        .filter(|(_, mode)| mode & 0o077 != 0)
        .map(|(path, mode)| format!("{} {mode:o}", path.display()))
        .collect();
    assert!(
        open.is_empty(),
        "{what} readable by group or others:\n{}",
        open.join("\n")
    );
}

/// The group's as the umask (000) allows, others' never: folders 0770
/// (setgid kept), files 0660.
fn assert_shared(what: &str, entries: &[(PathBuf, u32)]) {
    assert!(!entries.is_empty(), "{what}: nothing there");
    for (path, mode) in entries {
        let expected = if path.is_dir() { 0o770 } else { 0o660 };
        assert_eq!(
            mode & 0o777,
            expected,
            "{what}: {} is {mode:o}",
            path.display()
        );
    }
}

#[test]
fn state_files_are_the_service_users_alone_whatever_the_umask() {
    let h = setup();
    // The inbox as the package makes it (mode 2770); the rest the daemon makes.
    std::fs::set_permissions(h.path("inbox"), std::fs::Permissions::from_mode(0o2770)).unwrap();
    let daemon = h.spawn_custom(permissive);
    daemon.wait_log("watching the inboxes", Duration::from_secs(20));
    let rows: Vec<String> = (1..=3).map(|n| user(n, false)).collect();
    h.drop_file("inbox/users.csv", &users_file(&rows));
    h.wait_archived(&daemon, "inbox", 1);
    h.drop_file("inbox/bad.csv", "not;an;export\n");
    wait_until(
        Duration::from_secs(20),
        || files(&h.path("inbox/rejected")).len() == 2,
        || daemon.log(),
    );
    wait_until(
        Duration::from_secs(20),
        || h.path("log/status.json").exists(),
        || daemon.log(),
    );
    assert_eq!(h.fake.directory().len(), 3);
    let socket = h.path("state/control.sock");
    assert_eq!(std::fs::metadata(&socket).unwrap().mode() & 0o777, 0o600);
    // Read while it runs: sled's files, the socket.
    assert_owner_only("the state", &modes(&h.path("state")));
    let (stopped, log) = daemon.stop();
    assert!(stopped.success(), "{log}");

    assert_owner_only("the state", &modes(&h.path("state")));
    assert!(
        h.path("state/db/conf").exists(),
        "the sled store is in the state"
    );
    assert_owner_only("the logs and status.json", &modes(&h.path("log")));
    let inbox = modes(&h.path("inbox"));
    let written: Vec<_> = inbox
        .iter()
        .filter(|(path, _)| {
            let name = path.to_string_lossy();
            path.is_dir() && path != &h.path("inbox")
                || [".report.json", ".errors.txt", ".actions.jsonl"]
                    .iter()
                    .any(|suffix| name.ends_with(suffix))
        })
        .cloned()
        .collect();
    assert_eq!(written.len(), 3 + 3, "{inbox:?}");
    assert_shared("what the inbox's readers see", &written);
    let archive = std::fs::metadata(h.path("inbox/archive")).unwrap().mode();
    assert_eq!(
        archive & 0o2000,
        0o2000,
        "the group's setgid kept: {archive:o}"
    );
    let wbt = modes(&h.path("wbt-out"));
    assert_shared("the WBT files", &wbt);
}

#[test]
fn a_sync_run_by_hand_writes_its_state_owner_only_too() {
    let h = setup();
    let file = h.write("inbox/users.csv", &users_file(&[user(1, false)]));
    let mut command = h.command();
    command.args(["sync", "-c", "config.toml"]).arg(&file);
    permissive(&mut command);
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_owner_only("the state", &modes(&h.path("state")));
    assert_shared("the WBT files", &modes(&h.path("wbt-out")));
}

#[test]
fn a_state_folder_open_to_others_is_closed_on_start() {
    let h = setup();
    std::fs::create_dir_all(h.path("state")).unwrap();
    std::fs::set_permissions(h.path("state"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let daemon = h.spawn_custom(permissive);
    daemon.wait_log("watching the inboxes", Duration::from_secs(20));
    let mode = std::fs::metadata(h.path("state")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let (stopped, log) = daemon.stop();
    assert!(stopped.success(), "{log}");
    assert_owner_only("the state", &modes(&h.path("state")));
}
