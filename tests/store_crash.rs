//! Killing the process while the store migrates a schema-1 layout, or while
//! it folds its acknowledgement log, loses nothing and mixes nothing: after
//! a restart the store holds exactly what a run without the kill leaves.
//! The test runs itself as the child process that gets killed.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rostersync::ingest::Mode;
use rostersync::ingest::record::RecordKind;
use rostersync::model::{ActionKind, Desired, Entry};
use rostersync::projection::{Fields, hash};
use rostersync::store::{Acked, OutboxItem, Parked, RecordKey, Store};
use support::{World, source};

const CHILD_ENV: &str = "ROSTERSYNC_STORE_CRASH_CHILD";

/// What the store holds, record by record, per target.
fn dump(store: &Store) -> Vec<String> {
    let mut lines = Vec::new();
    for target in ["lms", "erp"] {
        for kind in [RecordKind::Orgs, RecordKind::Users] {
            for item in store.stored_entries(target, kind) {
                let (key, stored) = item.unwrap();
                lines.push(format!("{target} {kind} {key} {stored:?}"));
            }
            for item in store.parked(target, kind) {
                let (key, parked) = item.unwrap();
                lines.push(format!("parked {target} {kind} {key} {parked:?}"));
            }
        }
    }
    lines.push(format!("{:?}", store.source_state("hr").unwrap()));
    lines
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

/// Runs `test_name` as a child on `db` with `env`, and kills it once it
/// printed `after_lines` lines (and `delay` more), or when it is done.
fn kill_child(
    test_name: &str,
    db: &Path,
    env: &[(&str, &str)],
    after_lines: usize,
    delay: Duration,
) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, db)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut said = Vec::new();
    while said.len() < after_lines {
        match lines.next() {
            // libtest's own "test NAME ... " may start the first line.
            Some(Ok(line)) if line.contains("child: ") => {
                let finished = line.ends_with("done") || line.ends_with("migrated");
                said.push(line);
                if finished {
                    break;
                }
            }
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Lines said before the kill took effect (the pipe ends with the child).
    for line in lines.map_while(Result::ok) {
        if line.contains("child: ") {
            said.push(line);
        }
    }
    said
}

fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout();
    writeln!(out, "child: {line}").unwrap();
    out.flush().unwrap();
}

// ---------------------------------------------------------------------------
// Migration

/// A schema-1 store as the v1 code laid it out: per target and record an
/// entry, a desired projection and an outbox item; some acknowledged, some
/// lagging with their acknowledged projection apart, some parked.
fn write_v1_store(db: &Path, users: usize) {
    let sled = support::open_sled(db);
    let tree = sled.open_tree("state").unwrap();
    let key = |tag: u8, target: &str, k: &str| {
        let mut bytes = vec![tag, 0];
        bytes.extend_from_slice(target.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(b"users\0");
        bytes.extend_from_slice(k.as_bytes());
        bytes
    };
    let mut batch = sled::Batch::default();
    for target in ["lms", "erp"] {
        for i in 0..users {
            let k = format!("E{i:06}");
            let fields = Fields::from([
                ("login".to_string(), format!("u{i}")),
                ("email".to_string(), format!("u{i}@{target}.example")),
            ]);
            let acked = (i % 3 != 0).then(|| Acked {
                hash: hash(&fields),
                active: true,
                target_id: Some(format!("{target}-{i}")),
                at: 10,
            });
            let lagging = i % 7 == 0 && acked.is_some();
            let desired_fields = if lagging {
                let mut newer = fields.clone();
                newer.insert("email".into(), format!("u{i}@new.example"));
                newer
            } else {
                fields.clone()
            };
            let entry = Entry {
                source: "hr".into(),
                desired: Desired {
                    hash: hash(&desired_fields),
                    active: true,
                    disabled: false,
                    activation: None,
                    expiration: None,
                    present: true,
                },
                acked: acked.clone(),
            };
            batch.insert(key(b'e', target, &k), enc(&entry));
            batch.insert(key(b'd', target, &k), enc(&desired_fields));
            if lagging {
                batch.insert(key(b'a', target, &k), enc(&fields));
            }
            if acked.is_none() || lagging {
                let item = OutboxItem {
                    action: if lagging {
                        ActionKind::Update
                    } else {
                        ActionKind::Create
                    },
                    queued_at: 20,
                };
                batch.insert(key(b'o', target, &k), enc(&item));
            }
            if i % 11 == 0 && acked.is_none() {
                let parked = Parked {
                    action: ActionKind::Create,
                    reason: format!("refused {i}"),
                    at: 30,
                    transient: i % 2 == 0,
                };
                batch.insert(key(b'p', target, &k), enc(&parked));
            }
        }
    }
    #[derive(serde::Serialize)]
    struct SourceStateV1 {
        last_file: String,
        last_sha256: [u8; 32],
        rows: u64,
        at: i64,
    }
    let state = SourceStateV1 {
        last_file: "users.csv".into(),
        last_sha256: [9; 32],
        rows: users as u64,
        at: 40,
    };
    batch.insert(&b"s\0hr"[..], enc(&state));
    batch.insert(&b"m\0schema_version"[..], &1u32.to_be_bytes());
    tree.apply_batch(batch).unwrap();
    sled.flush().unwrap();
}

/// postcard, as the v1 code encoded its values.
fn enc<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).unwrap()
}

/// How many keys the schema-1 tree holds, if it is still there.
fn v1_keys(db: &Path) -> Option<usize> {
    let sled = support::open_sled(db);
    let names = sled.tree_names();
    names
        .iter()
        .any(|name| name.as_ref() == b"state")
        .then(|| sled.open_tree("state").unwrap().len())
}

fn v2_done(db: &Path) -> bool {
    let sled = support::open_sled(db);
    let tree = sled.open_tree("state2").unwrap();
    tree.get(b"m\0schema_version").unwrap().is_some()
}

#[test]
fn a_kill_during_migration_leaves_schema_1_whole_or_schema_2_whole() {
    const NAME: &str = "a_kill_during_migration_leaves_schema_1_whole_or_schema_2_whole";
    if let Some(db) = std::env::var_os(CHILD_ENV) {
        say("opening");
        let store = Store::open(Path::new(&db)).unwrap();
        drop(store);
        say("migrated");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let v1 = work.path().join("v1");
    write_v1_store(&v1, 6_000);
    let v1_count = v1_keys(&v1).unwrap();
    let reference = work.path().join("reference");
    copy_dir(&v1, &reference);
    let started = std::time::Instant::now();
    let expected = dump(&support::open_store(&reference));
    let took = started.elapsed();
    assert!(expected.len() > 12_000, "{}", expected.len());

    let (mut whole_v1, mut whole_v2) = (0, 0);
    for round in 0..12u32 {
        let db = work.path().join(format!("round{round}"));
        copy_dir(&v1, &db);
        let delay = if round < 10 {
            took * 2 * round / 10
        } else {
            Duration::from_secs(5) // done by then
        };
        kill_child(NAME, &db, &[], 1, delay);
        // Never a mix: either the old tree is whole, or the new one is done.
        if v2_done(&db) {
            whole_v2 += 1;
        } else {
            assert_eq!(
                v1_keys(&db),
                Some(v1_count),
                "round {round}: schema 1 is not whole"
            );
            whole_v1 += 1;
        }
        let store = support::open_store(&db);
        assert!(
            dump(&store) == expected,
            "round {round}: the migrated store differs"
        );
        drop(store);
        assert_eq!(v1_keys(&db), None, "round {round}: the old tree is left");
    }
    eprintln!("killed 12 times over {took:?} migrations: {whole_v1} v1, {whole_v2} v2");
    assert!(whole_v2 >= 2, "no round saw the migration finish");
}

// ---------------------------------------------------------------------------
// Folding the acknowledgement log

const USERS: usize = 3_000;
const PER_BATCH: usize = 100;

fn users_file() -> String {
    let mut text = String::from("user_extid;user_lname;user_fname;user_login;user_email\n");
    for i in 0..USERS {
        text.push_str(&format!("E{i:05};Nom{i};Pré{i};login{i};u{i}@x.fr\n"));
    }
    text
}

/// In the child: acknowledges every waiting record of `lms` in batches,
/// saying how many batches returned, folding every 500 acknowledgements.
fn acknowledge_in_batches(db: &Path) {
    let store = Store::open(db).unwrap();
    let keys: Vec<String> = store
        .outbox("lms", RecordKind::Users)
        .map(|item| item.unwrap().0)
        .collect();
    let mut reader = store.reader();
    let entries: Vec<_> = keys
        .iter()
        .map(|k| {
            let key = RecordKey {
                target: "lms".into(),
                kind: RecordKind::Users,
                key: k.clone(),
            };
            reader.entry(&key).unwrap().unwrap()
        })
        .collect();
    drop(reader);
    let mut entries = entries.into_iter();
    for (n, batch) in keys.chunks(PER_BATCH).enumerate() {
        let acks: Vec<_> = batch
            .iter()
            .map(|k| {
                let key = RecordKey {
                    target: "lms".into(),
                    kind: RecordKind::Users,
                    key: k.clone(),
                };
                let entry = entries.next().unwrap();
                let acked = Acked {
                    hash: entry.desired.hash,
                    active: entry.desired.active,
                    target_id: Some(format!("id-{k}")),
                    at: 1,
                };
                (key, acked, Fields::new())
            })
            .collect();
        store.acknowledge_many(&acks).unwrap();
        // Flushed, so that a confirmed batch must survive the kill (folds included).
        store.flush().unwrap();
        say(&format!("batch {n}"));
    }
    say("done");
}

#[test]
fn a_kill_while_acknowledgements_are_folded_leaves_whole_batches_and_the_rest_waiting() {
    const NAME: &str =
        "a_kill_while_acknowledgements_are_folded_leaves_whole_batches_and_the_rest_waiting";
    if let Some(db) = std::env::var_os(CHILD_ENV) {
        acknowledge_in_batches(Path::new(&db));
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let prepared = work.path().join("prepared");
    {
        let mut world = World::new();
        world.relax_safety();
        world.store = support::open_store(&prepared);
        let planned = world.plan(&source("hr", RecordKind::Users, Mode::Full), &users_file());
        world.commit(&planned);
    }
    let batches = USERS / PER_BATCH;
    for round in 0..10usize {
        let db = work.path().join(format!("round{round}"));
        copy_dir(&prepared, &db);
        // Killed after a different number of batches each round, a moment later.
        let after = 1 + round * batches / 10;
        let said = kill_child(
            NAME,
            &db,
            &[("ROSTERSYNC_TEST_FOLD_AT", "500")],
            after,
            Duration::from_millis(3 * round as u64),
        );
        let confirmed = said.iter().filter(|l| l.contains("batch")).count();
        let store = support::open_store(&db);
        let mut acked: BTreeMap<bool, usize> = BTreeMap::new();
        let mut seen_waiting = false;
        for item in store.stored_entries("lms", RecordKind::Users) {
            let (key, stored) = item.unwrap();
            let done = stored.entry.acked.is_some();
            // Acknowledged in key order: a prefix is done, the rest waits.
            assert!(
                !(done && seen_waiting),
                "round {round}: {key} acked after a waiting one"
            );
            seen_waiting |= !done;
            assert_eq!(
                done,
                stored.queued.is_none(),
                "round {round}: {key} {stored:?}"
            );
            if done {
                let id = stored.entry.acked.unwrap().target_id.unwrap();
                assert_eq!(id, format!("id-{key}"));
            }
            *acked.entry(done).or_default() += 1;
        }
        let done = acked.get(&true).copied().unwrap_or(0);
        assert!(
            done >= confirmed * PER_BATCH && done <= (confirmed + 1) * PER_BATCH,
            "round {round}: {confirmed} batches confirmed, {done} records acknowledged"
        );
        assert_eq!(
            done % PER_BATCH,
            0,
            "round {round}: a batch half acknowledged"
        );
        // What is left is pushed and acknowledged as usual.
        drop(store);
        if done < USERS {
            let said = kill_child(NAME, &db, &[], usize::MAX, Duration::ZERO);
            assert!(said.iter().any(|l| l.ends_with("done")), "{said:?}");
            let store = support::open_store(&db);
            assert_eq!(store.outbox_len("lms"), 0, "round {round}");
        }
    }
}
