//! Targets that come and go (issue 12), through the real binary on
//! wbt-file targets: a target added to a source later gets every record of
//! the source's last file, without a new file (on the daemon's start, after
//! a SIGHUP, and in `rostersync sync`); a seed that a safety rule holds is
//! not committed; a target removed from the config keeps its state until
//! `rostersync forget-target NAME`, with the daemon running or not.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::*;

/// One users source (settling in 200 ms) feeding `targets`, of wbt-file
/// targets `a` (writing to `out-a`) and `b` (`out-b`); `defined` are the
/// targets of the config.
fn builder(targets: &[&str], defined: &[&str]) -> Builder {
    let mut builder = Harness::builder()
        .daemon("grace", "1s")
        .safety("max_block_percent", 100.0)
        .safety("max_shrink_percent", 100.0)
        .source(
            Source::users("users", "inbox")
                .set("settle", "200ms")
                .targets(targets),
        );
    for name in defined {
        builder = builder
            .target(Target::wbt_file(name, &format!("out-{name}")).retry("5ms", "10ms", "50ms"));
    }
    builder
}

fn config(targets: &[&str], defined: &[&str]) -> String {
    builder(targets, defined).config()
}

/// The first file: E1 to E4, all active.
fn first_file() -> String {
    users_file(&(1..=4).map(|n| user(n, false)).collect::<Vec<_>>())
}

/// The last file: E1 and E4 active, E2 disabled, E3 gone.
fn last_file() -> String {
    users_file(&[user(1, false), user(2, true), user(4, false)])
}

/// What a wbt-file target's folder says of each user, its files applied in
/// order: external id → disabled.
fn written(h: &Harness, target: &str) -> BTreeMap<String, bool> {
    let mut users = BTreeMap::new();
    for name in files(&h.path(&format!("out-{target}"))) {
        if name.ends_with(".tmp") || !name.starts_with("users_") {
            continue;
        }
        let bytes = std::fs::read(h.path(&format!("out-{target}/{name}"))).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim_start_matches('\u{feff}');
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(';').collect();
        let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (id, disabled) = (column("user_extid"), column("user_disable"));
        for line in lines.filter(|l| !l.is_empty()) {
            let values: Vec<&str> = line.split(';').collect();
            users.insert(values[id].to_string(), values[disabled] == "1");
        }
    }
    users
}

/// A log without its colours (tracing's terminal escapes), so that its
/// `field=value` pairs read as such.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn users_at(ids: &[(&str, bool)]) -> BTreeMap<String, bool> {
    ids.iter().map(|(id, d)| (id.to_string(), *d)).collect()
}

/// What the seed of `b` must write: the last file's active records only.
fn seeded_b() -> BTreeMap<String, bool> {
    users_at(&[("E1", false), ("E4", false)])
}

#[test]
fn sync_seeds_a_new_target_before_its_file_even_a_duplicate() {
    let h = builder(&["a"], &["a"]).build();
    let first = h.write("inbox/users1.csv", &first_file());
    let last = h.write("inbox/users2.csv", &last_file());
    assert_eq!(h.sync_file(&first).0, 0);
    assert_eq!(h.sync_file(&last).0, 0);
    h.rewrite_config(|_| config(&["a", "b"], &["a", "b"]));
    let (code, out, err) = h.sync_file(&last);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("nothing to do"), "the same bytes: {out}");
    assert!(err.contains("target seeded"), "{err}");
    assert_eq!(written(&h, "b"), seeded_b());
}

#[test]
fn sync_exits_1_when_seeded_records_are_parked() {
    let h = builder(&["a"], &["a"]).build();
    // Ł is not in windows-1252: a target writing it refuses that record.
    let mut rows = vec![user(1, false), user(2, false)];
    rows[1] = rows[1].replace("First2", "Łukasz");
    let file = h.write("inbox/users1.csv", &users_file(&rows));
    assert_eq!(h.sync_file(&file).0, 0);
    h.rewrite_config(|_| {
        config(&["a", "b"], &["a", "b"]).replace(
            "dir = \"out-b\"",
            "dir = \"out-b\"\nencoding = \"windows-1252\"",
        )
    });
    assert!(h.config().contains("windows-1252"), "{}", h.config());
    let (code, out, err) = h.sync_file(&file);
    assert_eq!(code, 1, "{out}{err}");
    let err = plain(&err);
    let pushed: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("seeded records pushed"))
        .collect();
    assert_eq!(pushed.len(), 1, "{err}");
    for part in ["target=b", "done=1", "parked=1"] {
        assert!(pushed[0].contains(part), "{part} in {}", pushed[0]);
    }
}

#[test]
fn a_seed_held_by_a_safety_rule_is_not_committed_until_the_rule_allows_it() {
    // b had every record, then left the source, which dropped E2 to E4
    // meanwhile: listing b again would block three records there.
    let h = builder(&["a", "b"], &["a", "b"]).build();
    let first = h.write("inbox/users1.csv", &first_file());
    assert_eq!(h.sync_file(&first).0, 0);
    h.rewrite_config(|_| config(&["a"], &["a", "b"]));
    let only_e1 = h.write("inbox/users2.csv", &users_file(&[user(1, false)]));
    assert_eq!(h.sync_file(&only_e1).0, 0);
    let before = files(&h.path("out-b"));

    h.rewrite_config(|_| {
        builder(&["a", "b"], &["a", "b"])
            .safety("max_block_count", 2)
            .config()
    });
    let (code, out, err) = h.sync_file(&only_e1);
    assert_eq!(code, 0, "{out}{err}");
    let err = plain(&err);
    let held: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("held by a safety rule"))
        .collect();
    assert_eq!(held.len(), 1, "{err}");
    for part in [
        "source=users",
        "target=b",
        "rule=max_block_count",
        "value=3",
        "limit=2",
    ] {
        assert!(held[0].contains(part), "{part} in {}", held[0]);
    }
    assert_eq!(files(&h.path("out-b")), before, "nothing pushed to b");

    // Tried again next time; allowed now, b blocks what left.
    h.rewrite_config(|_| config(&["a", "b"], &["a", "b"]));
    let (code, out, err) = h.sync_file(&only_e1);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("target seeded"), "{err}");
    assert_eq!(
        written(&h, "b"),
        users_at(&[("E1", false), ("E2", true), ("E3", true), ("E4", true)])
    );
}

/// The daemon with target `a` takes both files; then stops.
fn two_files_to_a() -> Harness {
    let h = builder(&["a"], &["a"]).build();
    let daemon = h.start();
    h.drop_file("inbox/users1.csv", &first_file());
    wait_taken(&h, &daemon, 1);
    h.drop_file("inbox/users2.csv", &last_file());
    wait_taken(&h, &daemon, 2);
    wait_written(
        &h,
        &daemon,
        "a",
        &users_at(&[("E1", false), ("E2", true), ("E3", true), ("E4", false)]),
    );
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    h
}

/// Waits until the daemon took `n` files (archived; their reports are
/// another story, not these tests').
fn wait_taken(h: &Harness, daemon: &Daemon, n: usize) {
    wait_until(
        Duration::from_secs(20),
        || h.archived("inbox").len() >= n,
        || format!("{n} archived files expected\n{}", daemon.log()),
    );
}

fn wait_written(h: &Harness, daemon: &Daemon, target: &str, want: &BTreeMap<String, bool>) {
    wait_until(
        Duration::from_secs(20),
        || &written(h, target) == want,
        || {
            format!(
                "{target} holds {:?}, {want:?} expected\n{}",
                written(h, target),
                daemon.log()
            )
        },
    );
}

#[test]
fn a_target_added_to_a_source_gets_its_last_file_on_restart() {
    let h = two_files_to_a();
    let a_files = files(&h.path("out-a"));
    h.rewrite_config(|_| config(&["a", "b"], &["a", "b"]));
    let daemon = h.start();
    wait_written(&h, &daemon, "b", &seeded_b());
    daemon.wait_log("target seeded", Duration::from_secs(5));
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    let log = plain(&log);
    let seeded: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("target seeded"))
        .collect();
    assert_eq!(seeded.len(), 1, "one line per seeded target:\n{log}");
    for part in ["source=users", "target=b", "records=2", "file=users2.csv"] {
        assert!(seeded[0].contains(part), "{part} in {}", seeded[0]);
    }
    assert_eq!(files(&h.path("out-a")), a_files, "a is left as it was");
    assert!(h.archived("inbox").len() == 2, "no new file was needed");

    // Seeded once: the next start has nothing to seed.
    let daemon = h.start();
    std::thread::sleep(Duration::from_millis(500));
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains("target seeded"), "{log}");
    assert_eq!(written(&h, "b"), seeded_b());
}

#[test]
fn a_target_added_to_a_source_gets_its_last_file_after_sighup() {
    let h = builder(&["a"], &["a"]).build();
    let daemon = h.start();
    h.drop_file("inbox/users1.csv", &first_file());
    wait_taken(&h, &daemon, 1);
    h.drop_file("inbox/users2.csv", &last_file());
    wait_taken(&h, &daemon, 2);
    wait_written(
        &h,
        &daemon,
        "a",
        &users_at(&[("E1", false), ("E2", true), ("E3", true), ("E4", false)]),
    );
    assert!(files(&h.path("out-b")).is_empty());

    h.rewrite_config(|_| config(&["a", "b"], &["a", "b"]));
    daemon.signal("HUP");
    daemon.wait_log("config reloaded", Duration::from_secs(10));
    wait_written(&h, &daemon, "b", &seeded_b());
    // A file after it changes b as it changes a.
    h.drop_file(
        "inbox/users3.csv",
        &users_file(&[user(1, false), user(4, true), user(5, false)]),
    );
    wait_taken(&h, &daemon, 3);
    wait_written(
        &h,
        &daemon,
        "b",
        &users_at(&[("E1", false), ("E4", true), ("E5", false)]),
    );
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert_eq!(log.matches("target seeded").count(), 1, "{log}");
}

/// `show E1`: (exit code, stdout and stderr).
fn show(h: &Harness) -> (i32, String) {
    let (code, out, err) = h.run(&["show", "E1"]);
    (code, out + &err)
}

/// `forget-target b`: (exit code, stdout and stderr).
fn forget_b(h: &Harness) -> (i32, String) {
    let (code, out, err) = h.run(&["forget-target", "b"]);
    (code, out + &err)
}

#[test]
fn forget_target_without_a_daemon() {
    let h = builder(&["a", "b"], &["a", "b"]).build();
    let first = h.write("inbox/users1.csv", &first_file());
    assert_eq!(h.sync_file(&first).0, 0);

    let (code, out) = forget_b(&h);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("\"b\" is still in the config: remove it from the config first"),
        "{out}"
    );
    assert!(show(&h).1.contains("b users E1"), "nothing was dropped");

    h.rewrite_config(|_| config(&["a"], &["a"]));
    let (code, out) = show(&h);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("b users E1 (source users; target no longer in the config"),
        "show lists what b keeps: {out}"
    );
    let (code, out) = forget_b(&h);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        "forgot target \"b\": 4 users, 0 organisations, 0 parked records\n"
    );
    let (code, out) = show(&h);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("a users E1"), "{out}");
    assert!(!out.contains("b users"), "b is gone: {out}");
    let (code, out) = forget_b(&h);
    assert_eq!(
        (code, out.as_str()),
        (0, "the store held nothing for target \"b\"\n")
    );

    // b listed again later is a new target: it gets the source's last file.
    h.rewrite_config(|_| config(&["a", "b"], &["a", "b"]));
    let before = files(&h.path("out-b")).len();
    let (code, out, err) = h.sync_file(&first);
    assert_eq!(code, 0, "{out}{err}");
    assert!(plain(&err).contains("records=4"), "{err}");
    assert_eq!(files(&h.path("out-b")).len(), before + 1);
}

#[test]
fn forget_target_with_the_daemon_running() {
    let h = builder(&["a", "b"], &["a", "b"]).build();
    let daemon = h.start();
    h.drop_file("inbox/users1.csv", &first_file());
    wait_taken(&h, &daemon, 1);
    wait_written(
        &h,
        &daemon,
        "b",
        &users_at(&[("E1", false), ("E2", false), ("E3", false), ("E4", false)]),
    );

    let (code, out) = forget_b(&h);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("still in the config"), "{out}");

    // Out of the file but not yet reloaded: the running config has it.
    h.rewrite_config(|_| config(&["a"], &["a"]));
    let (code, out) = forget_b(&h);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("reload the daemon"), "{out}");
    daemon.signal("HUP");
    daemon.wait_log("config reloaded", Duration::from_secs(10));
    daemon.wait_log("its worker stops", Duration::from_secs(10));

    let (code, out) = show(&h);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("b users E1 (source users; target no longer"),
        "{out}"
    );
    // Its worker lets go of it once its last push is over.
    let mut forgot = forget_b(&h);
    while forgot.0 == 1 && forgot.1.contains("still finishing") {
        std::thread::sleep(Duration::from_millis(50));
        forgot = forget_b(&h);
    }
    let (code, out) = forgot;
    assert_eq!(code, 0, "{out}\n{}", daemon.log());
    assert_eq!(
        out,
        "forgot target \"b\": 4 users, 0 organisations, 0 parked records\n"
    );
    let (code, out) = show(&h);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("b users"), "{out}");
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_start_warns_of_each_target_kept_that_the_config_no_longer_has() {
    let h = builder(&["a", "b"], &["a", "b"]).build();
    let first = h.write("inbox/users1.csv", &first_file());
    assert_eq!(h.sync_file(&first).0, 0);
    h.rewrite_config(|_| config(&["a"], &["a"]));
    let daemon = h.start();
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("forget-target"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(warned[0].contains("WARN"), "{}", warned[0]);
    assert!(
        warned[0].contains("`rostersync forget-target b`"),
        "{}",
        warned[0]
    );

    assert_eq!(forget_b(&h).0, 0);
    let daemon = h.start();
    let (_, log) = daemon.stop();
    assert!(!log.contains("forget-target"), "{log}");
}
