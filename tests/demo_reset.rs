//! `scripts/demo.sh --reset` (and every demo start) puts the example back as
//! a fresh clone has it: on a git copy of the repository's demo files,
//! after a daemon run on config.example.toml in place (which moves the
//! tracked samples into archive/ and leaves state, logs and WBT files) and
//! with a demo's example/run/, `git status --ignored` shows nothing; a sample
//! edited on purpose stays edited.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

/// How long a wait may take: generous, for a loaded machine (a passing
/// run takes seconds at most).
const PATIENCE: Duration = Duration::from_secs(60);

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Everything git sees besides the commit: changes, untracked and ignored files.
fn status(dir: &Path) -> String {
    git(
        dir,
        &[
            "status",
            "--porcelain",
            "--ignored",
            "--untracked-files=all",
        ],
    )
}

/// A git repository holding the demo's tracked files, committed.
fn demo_clone() -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = tempfile::tempdir().unwrap();
    let tracked = git(repo, &["ls-files", "example", "scripts/demo.sh"]);
    let mut files: Vec<&str> = tracked.lines().collect();
    files.extend(["config.example.toml", ".gitignore"]);
    for file in &files {
        let to = copy.path().join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(file), &to).unwrap();
    }
    git(copy.path(), &["init", "-q"]);
    git(copy.path(), &["add", "-A"]);
    git(copy.path(), &["commit", "-q", "-m", "demo"]);
    assert_eq!(status(copy.path()), "");
    copy
}

/// A child killed when the test ends, even by a failed assertion.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn demo_sh(dir: &Path, args: &[&str]) {
    let status = Command::new(dir.join("scripts/demo.sh"))
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "scripts/demo.sh {args:?} failed");
}

#[test]
fn a_reset_leaves_git_status_clean_after_a_run_in_place() {
    let copy = demo_clone();
    let dir = copy.path();
    // The daemon on config.example.toml itself, until both samples are taken.
    let mut daemon = Killed(
        Command::new(binary())
            .args(["run", "-c", "config.example.toml"])
            .current_dir(dir)
            .env("ROSTERSYNC_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let archived = |inbox: &str| files(&dir.join("example/inbox").join(inbox).join("archive"));
    wait_until(
        PATIENCE,
        || archived("orgs").len() == 2 && archived("users").len() == 2,
        || {
            format!(
                "not archived: {:?} {:?}",
                archived("orgs"),
                archived("users")
            )
        },
    );
    let stopped = Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(wait_exit(&mut daemon.0, PATIENCE).success());
    // A demo run's copy (seeding needs the samples back, which the reset does).
    std::fs::create_dir_all(dir.join("example/run/log")).unwrap();
    std::fs::write(dir.join("example/run/config.toml"), "").unwrap();
    let before = status(dir);
    for left in [
        " D example/inbox/users/",
        "!! example/log/",
        "!! example/state/",
        "!! example/wbt-out/",
        "!! example/inbox/orgs/archive/",
        "!! example/run/",
    ] {
        assert!(before.contains(left), "{left:?} not in:\n{before}");
    }

    demo_sh(dir, &["--reset"]);
    assert_eq!(status(dir), "", "left after the reset");

    // A sample edited on purpose is not taken back.
    let sample = git(dir, &["ls-files", "example/inbox/users"]);
    let sample = dir.join(sample.trim());
    let mut text = std::fs::read_to_string(&sample).unwrap();
    text.push_str("E99;Added;On purpose;added;added@example.org;0\n");
    std::fs::write(&sample, &text).unwrap();
    demo_sh(dir, &["--reset"]);
    assert_eq!(std::fs::read_to_string(&sample).unwrap(), text);
    assert!(status(dir).starts_with(" M example/inbox/users/"));
}
