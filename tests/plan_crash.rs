//! Killing the process while it commits a plan leaves the store as it was
//! before or as it is after, never in between. The test runs itself as the
//! child process that gets killed.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rostersync::ingest::Mode;
use rostersync::ingest::record::RecordKind;
use rostersync::store::Store;
use support::{World, source};

const CHILD_ENV: &str = "ROSTERSYNC_CRASH_CHILD";
const TEST_NAME: &str = "a_kill_during_commit_leaves_before_or_after";

fn users(count: usize, variant: &str) -> String {
    let mut text = String::from("user_extid;user_lname;user_fname;user_login;user_email\n");
    for i in 0..count {
        text.push_str(&format!(
            "E{i:05};Nom{i}{variant};Pré{i};login{i};u{i}@{variant}x.fr\n"
        ));
    }
    text
}

fn world_at(db: &Path) -> World {
    let mut world = World::new();
    world.relax_safety();
    world.store = Store::open(db).unwrap();
    world
}

/// Every key and value of the store's tree.
fn snapshot(db: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = sled::open(db).unwrap();
    let tree = db.open_tree("state").unwrap();
    tree.iter()
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

/// The state before: 3,000 users synced and acknowledged.
fn prepare(db: &Path) {
    let mut world = world_at(db);
    let hr = source("hr", RecordKind::Users, Mode::Full);
    world.sync(&hr, &users(3_000, "a"));
}

/// The change under test: every user updated, 1,000 new ones.
fn commit_change(db: &Path, before_commit: impl FnOnce()) {
    let mut world = world_at(db);
    let hr = source("hr", RecordKind::Users, Mode::Full);
    let planned = world.plan(&hr, &users(4_000, "b"));
    before_commit();
    world.store.commit(&planned.commit).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_kill_during_commit_leaves_before_or_after() {
    if let Some(db) = std::env::var_os(CHILD_ENV) {
        // The child: say when the commit starts, commit, then wait to be killed.
        commit_change(Path::new(&db), || {
            let mut out = std::io::stdout();
            out.write_all(b"C").unwrap();
            out.flush().unwrap();
        });
        let mut out = std::io::stdout();
        out.write_all(b"D").unwrap();
        out.flush().unwrap();
        std::thread::sleep(Duration::from_secs(60));
        return;
    }

    let reference = tempfile::tempdir().unwrap();
    let before_db = reference.path().join("before");
    let after_db = reference.path().join("after");
    prepare(&before_db);
    prepare(&after_db);
    let mut started = None;
    commit_change(&after_db, || started = Some(std::time::Instant::now()));
    // Kill moments are spread over several commit durations (the child, on a
    // freshly opened store, commits more slowly than this warm process).
    let commit_time = started.unwrap().elapsed();
    let before = snapshot(&before_db);
    let after = snapshot(&after_db);
    assert_ne!(before, after);

    let prepared = reference.path().join("prepared");
    prepare(&prepared);
    let (mut saw_before, mut saw_after) = (0, 0);
    for round in 0..20u64 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        copy_dir(&prepared, &db);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut signal = [0u8; 1];
        let mut stdout = child.stdout.take().unwrap();
        // Skip the harness's own output up to the child's "C".
        loop {
            stdout.read_exact(&mut signal).unwrap();
            if signal[0] == b'C' {
                break;
            }
        }
        // Kill at a different moment of the commit each round; the last
        // rounds wait for the commit to have returned.
        if round < 16 {
            std::thread::sleep(commit_time * 3 * round as u32 / 16);
        } else {
            stdout.read_exact(&mut signal).unwrap();
            assert_eq!(signal[0], b'D');
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let state = snapshot(&db);
        if state == before {
            saw_before += 1;
        } else if state == after {
            saw_after += 1;
        } else {
            panic!("round {round}: the store is neither before nor after the commit");
        }
    }
    eprintln!(
        "killed 20 times over {commit_time:?} commits: {saw_before} before, {saw_after} after"
    );
}
