//! Killing the process while it commits a plan leaves the store as it was
//! before or as it is after, never in between; a commit too big for one batch
//! leaves a pending marker instead, and planning the file again completes it.
//! The test runs itself as the child process that gets killed.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rostersync::ingest::Mode;
use rostersync::ingest::record::RecordKind;
use rostersync::store::COMMIT_CHUNK;
use support::{World, source};

const CHILD_ENV: &str = "ROSTERSYNC_CRASH_CHILD";
const SIZES_ENV: &str = "ROSTERSYNC_CRASH_SIZES";

/// Users before, users after: every one of them updated, the rest new.
#[derive(Clone, Copy)]
struct Sizes {
    before: usize,
    after: usize,
}

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
    world.store = support::open_store(db);
    world
}

/// What the store holds, record by record: its groups may be cut at other
/// keys after a commit completed in two goes, so the bytes are not compared.
fn snapshot(db: &Path) -> Vec<String> {
    let store = support::open_store(db);
    let mut lines = Vec::new();
    for target in ["lms", "erp"] {
        for item in store.stored_entries(target, RecordKind::Users) {
            let (key, stored) = item.unwrap();
            lines.push(format!("{target} {key} {stored:?}"));
        }
    }
    for item in store.snapshot("hr", RecordKind::Users) {
        let (record, present) = item.unwrap();
        lines.push(format!("hr {record:?} {present}"));
    }
    lines.push(format!("{:?}", store.source_state("hr").unwrap()));
    lines.push(format!("{:?}", store.pending_commit().unwrap()));
    lines
}

fn prepare(db: &Path, sizes: Sizes) {
    let mut world = world_at(db);
    let hr = source("hr", RecordKind::Users, Mode::Full);
    world.sync(&hr, &users(sizes.before, "a"));
}

fn commit_change(db: &Path, sizes: Sizes, before_commit: impl FnOnce()) {
    let mut world = world_at(db);
    let hr = source("hr", RecordKind::Users, Mode::Full);
    let planned = world.plan(&hr, &users(sizes.after, "b"));
    before_commit();
    world.commit(&planned);
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

/// In the child: say when the commit starts and when it returned, then wait to be killed.
fn child(db: &Path, sizes: Sizes) {
    let say = |byte: &[u8]| {
        let mut out = std::io::stdout();
        out.write_all(byte).unwrap();
        out.flush().unwrap();
    };
    commit_change(db, sizes, || say(b"C"));
    say(b"D");
    std::thread::sleep(Duration::from_secs(60));
}

/// Kills a child committing `sizes` at 20 moments; returns how many rounds
/// ended before, after, and pending-then-completed.
fn kill_rounds(test_name: &str, sizes: Sizes) -> (u32, u32, u32) {
    let reference = tempfile::tempdir().unwrap();
    let prepared = reference.path().join("prepared");
    prepare(&prepared, sizes);
    let before = snapshot(&prepared);
    let after_db = reference.path().join("after");
    copy_dir(&prepared, &after_db);
    let mut started = None;
    commit_change(&after_db, sizes, || started = Some(Instant::now()));
    let commit_time = started.unwrap().elapsed();
    let after = snapshot(&after_db);
    assert_ne!(before, after);

    let (mut saw_before, mut saw_after, mut completed) = (0, 0, 0);
    for round in 0..20u32 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        copy_dir(&prepared, &db);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &db)
            .env(SIZES_ENV, format!("{},{}", sizes.before, sizes.after))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut signal = [0u8; 1];
        // Skip the harness's own output up to the child's "C".
        while signal[0] != b'C' {
            stdout.read_exact(&mut signal).unwrap();
        }
        // A different moment of the commit each round (the child, on a freshly
        // opened store, is slower than this warm process); the last rounds
        // wait until the commit returned.
        if round < 16 {
            std::thread::sleep(commit_time * 3 * round / 16);
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
            let store = support::open_store(&db);
            assert!(
                store.pending_commit().unwrap().is_some(),
                "round {round}: the store is neither before nor after, and no commit is pending"
            );
            drop(store);
            // What the daemon does on restart: plan the file again and commit.
            commit_change(&db, sizes, || {});
            assert!(
                snapshot(&db) == after,
                "round {round}: completing the commit did not reach the after state"
            );
            completed += 1;
        }
    }
    eprintln!(
        "killed 20 times over {commit_time:?} commits: {saw_before} before, {saw_after} after, {completed} completed"
    );
    (saw_before, saw_after, completed)
}

fn sizes_from_env() -> Option<(std::ffi::OsString, Sizes)> {
    let db = std::env::var_os(CHILD_ENV)?;
    let sizes = std::env::var(SIZES_ENV).ok()?;
    let (before, after) = sizes.split_once(',')?;
    Some((
        db,
        Sizes {
            before: before.parse().ok()?,
            after: after.parse().ok()?,
        },
    ))
}

fn run(test_name: &str, sizes: Sizes) -> (u32, u32, u32) {
    if let Some((db, sizes)) = sizes_from_env() {
        child(Path::new(&db), sizes);
        return (0, 0, 0);
    }
    kill_rounds(test_name, sizes)
}

#[test]
fn a_kill_during_an_atomic_commit_leaves_before_or_after() {
    // The snapshot and 2 targets × 400 users: below one chunk, so the
    // commit is one batch.
    let sizes = Sizes {
        before: 300,
        after: 400,
    };
    assert!(3 * sizes.after <= COMMIT_CHUNK);
    let (_, _, completed) = run(
        "a_kill_during_an_atomic_commit_leaves_before_or_after",
        sizes,
    );
    assert_eq!(completed, 0, "an atomic commit was left half-done");
}

#[test]
fn a_kill_during_a_chunked_commit_is_completed_by_planning_again() {
    // More users than a chunk holds: written in several chunks.
    let sizes = Sizes {
        before: 200,
        after: COMMIT_CHUNK + 4_000,
    };
    run(
        "a_kill_during_a_chunked_commit_is_completed_by_planning_again",
        sizes,
    );
}
