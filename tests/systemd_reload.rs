//! `systemctl reload` as the packaged unit says it: its `ExecReload=` lines,
//! read from packaging/rostersync.service and run in turn as systemd runs
//! them (the first that fails fails the reload, the rest are not run),
//! against the real daemon. A broken config fails the reload and the
//! daemon is never signalled; a good one reloads it.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

/// How long a wait may take: generous, for a loaded machine (a passing
/// run takes seconds at most).
const PATIENCE: Duration = Duration::from_secs(60);

const UNIT_BINARY: &str = "/usr/bin/rostersync";

fn unit() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/rostersync.service");
    std::fs::read_to_string(path).unwrap()
}

/// A command line of the unit, as words. The test splits on spaces only:
/// no quoting, and no prefix (`-` would ignore a failure) is allowed.
fn words(line: &str) -> Vec<String> {
    assert!(
        !line.contains(['"', '\'', '\\']) && !line.starts_with(['-', '@', ':', '+', '!']),
        "a command line this test cannot read as systemd does: {line}"
    );
    line.split_whitespace().map(str::to_string).collect()
}

fn exec(key: &str) -> Vec<Vec<String>> {
    unit()
        .lines()
        .filter_map(|line| line.strip_prefix(&format!("{key}=")))
        .map(words)
        .collect()
}

/// The config file ExecStart= runs the daemon with.
fn unit_config() -> String {
    let start = exec("ExecStart");
    assert_eq!(start.len(), 1);
    let at = start[0].iter().position(|w| w == "-c").unwrap();
    start[0][at + 1].clone()
}

/// What running the reload did: whether it succeeded, the command lines
/// run (as the unit writes them), and their output.
struct Reload {
    succeeded: bool,
    ran: Vec<String>,
    output: String,
}

/// `systemctl reload`: each `ExecReload=` line in turn, the unit's binary
/// and config replaced by the harness's, `$MAINPID` by the daemon's pid,
/// until one fails.
fn reload(setup: &Harness, daemon: &Daemon) -> Reload {
    let config = unit_config();
    let mut done = Reload {
        succeeded: true,
        ran: Vec::new(),
        output: String::new(),
    };
    for line in exec("ExecReload") {
        let args: Vec<String> = line[1..]
            .iter()
            .map(|word| match word.as_str() {
                "$MAINPID" => daemon.child.id().to_string(),
                w if w == config => setup.path("config.toml").display().to_string(),
                w => w.to_string(),
            })
            .collect();
        let mut command = if line[0] == UNIT_BINARY {
            setup.command()
        } else {
            Command::new(&line[0])
        };
        let output = command.args(&args).output().unwrap();
        done.ran.push(line.join(" "));
        done.output
            .push_str(&String::from_utf8_lossy(&output.stdout));
        done.output
            .push_str(&String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            done.succeeded = false;
            break;
        }
    }
    done
}

#[test]
fn the_unit_checks_the_config_it_runs_before_it_signals() {
    let reload = exec("ExecReload");
    assert_eq!(reload.len(), 2, "{reload:?}");
    assert_eq!(
        reload[0],
        [UNIT_BINARY, "check", "-c", &unit_config()],
        "the first ExecReload= checks ExecStart's config"
    );
    assert_eq!(reload[1], ["/bin/kill", "-HUP", "$MAINPID"]);
    assert_eq!(exec("ExecStart")[0][0], UNIT_BINARY);
}

#[test]
fn a_broken_config_fails_the_reload_and_the_daemon_keeps_its_own() {
    let setup = Harness::builder()
        .source(
            Source::users("users", "inbox")
                .set("settle", "300ms")
                .targets(&["wbt"]),
        )
        .target(Target::wbt_file("wbt", "out1"))
        .build();
    let daemon = setup.start();
    let old = setup.config();
    let moved = old.replace("dir = \"out1\"", "dir = \"out2\"");
    assert_ne!(moved, old);

    // Broken: a key that does not exist, beside a new folder for the target.
    setup.rewrite_config(|_| moved.replace("settle = ", "setle = 1\nsettle = "));
    let refused = reload(&setup, &daemon);
    assert!(!refused.succeeded, "{}", refused.output);
    assert_eq!(refused.ran.len(), 1, "{:?}", refused.ran);
    assert!(refused.output.contains("setle"), "{}", refused.output);
    // The daemon keeps its config: a file goes to the old folder.
    setup.drop_file("inbox/users1.csv", &users_file(&[user(1, false)]));
    setup.wait_archived(&daemon, "inbox", 1);
    wait_until(
        PATIENCE,
        || !files(&setup.path("out1")).is_empty(),
        || daemon.log(),
    );
    assert!(files(&setup.path("out2")).is_empty());
    // Never signalled: a SIGHUP would have been logged before the file.
    assert!(!daemon.log().contains("SIGHUP"), "{}", daemon.log());

    // Good: the reload succeeds and the daemon takes the new folder.
    setup.rewrite_config(|_| moved.clone());
    let reloaded = reload(&setup, &daemon);
    assert!(reloaded.succeeded, "{}", reloaded.output);
    assert_eq!(reloaded.ran.len(), 2, "{:?}", reloaded.ran);
    daemon.wait_log("config reloaded", PATIENCE);
    setup.drop_file(
        "inbox/users2.csv",
        &users_file(&[user(1, false), user(2, false)]),
    );
    setup.wait_archived(&daemon, "inbox", 2);
    wait_until(
        PATIENCE,
        || !files(&setup.path("out2")).is_empty(),
        || daemon.log(),
    );
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}
