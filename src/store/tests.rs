//! The store against a real sled database in a temporary folder.

use super::*;
use crate::projection::ProjectionHash;

fn key(k: &str) -> RecordKey {
    RecordKey {
        target: "lms".into(),
        kind: RecordKind::Users,
        key: k.into(),
    }
}

fn entry(hash: u8, active: bool) -> Entry {
    Entry {
        source: "hr".into(),
        desired: Desired {
            hash: ProjectionHash([hash; 16]),
            active,
            disabled: !active,
            activation: None,
            expiration: None,
            present: true,
        },
        acked: None,
    }
}

fn write(k: &str, hash: u8) -> EntryWrite {
    EntryWrite {
        key: key(k),
        entry: entry(hash, true),
        desired_fields: Some(
            EncodedFields::new(&Fields::from([("login".into(), k.into())])).unwrap(),
        ),
        outbox: OutboxChange::Put(OutboxItem {
            action: ActionKind::Create,
            queued_at: 0,
        }),
    }
}

/// What a target confirmed: projection `hash`, active, no id of its own.
fn acked(hash: u8) -> Acked {
    Acked {
        hash: ProjectionHash([hash; 16]),
        active: true,
        target_id: None,
        at: 1,
    }
}

/// A store in a temp dir holding one committed record, E1 (hash 1).
fn store_with_e1() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .commit(&Commit {
            writes: vec![write("E1", 1)],
            ..Commit::default()
        })
        .unwrap();
    (dir, store)
}

#[test]
fn commit_then_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let commit = Commit {
            writes: vec![write("E1", 1), write("E2", 2)],
            ..Commit::default()
        };
        store.commit(&commit).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), Some(SCHEMA_VERSION));
    let entries: Vec<_> = store
        .entries("lms", RecordKind::Users)
        .map(|e| e.unwrap().0)
        .collect();
    assert_eq!(entries, ["E1", "E2"]);
    assert_eq!(store.outbox_len("lms"), 2);
    assert_eq!(store.outbox_len("other"), 0);
    assert_eq!(
        store.desired_fields(&key("E2")).unwrap().unwrap()["login"],
        "E2"
    );
}

#[test]
fn acknowledge_removes_the_outbox_entry_unless_superseded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .commit(&Commit {
            writes: vec![write("E1", 1), write("E2", 2)],
            ..Commit::default()
        })
        .unwrap();
    let acked = |hash: u8| Acked {
        hash: ProjectionHash([hash; 16]),
        active: true,
        target_id: Some("42".into()),
        at: 1,
    };
    store
        .acknowledge(&key("E1"), &acked(1), &Fields::new())
        .unwrap();
    assert!(store.outbox_item(&key("E1")).unwrap().is_none());
    assert_eq!(
        store.entry(&key("E1")).unwrap().unwrap().acked,
        Some(acked(1))
    );
    // E2 was pushed with hash 9, but the desired state is hash 2 by now.
    store
        .acknowledge(&key("E2"), &acked(9), &Fields::new())
        .unwrap();
    assert!(store.outbox_item(&key("E2")).unwrap().is_some());
}

#[test]
fn acknowledged_fields_survive_a_new_desired_state() {
    let (_dir, store) = store_with_e1();
    let pushed = Fields::from([("login".into(), "E1".into())]);
    let acked = acked(1);
    store.acknowledge(&key("E1"), &acked, &pushed).unwrap();
    // Equal to the desired projection: not stored twice.
    assert!(!store.tree.contains_key(key("E1").encode(b'a')).unwrap());
    assert_eq!(
        store.acked_fields(&key("E1")).unwrap(),
        Some(pushed.clone())
    );
    let (_, desired, implicit) = store.entry_with_fields(&key("E1")).unwrap().unwrap();
    assert_eq!(implicit, Some(desired));

    let mut newer = write("E1", 2);
    newer.entry.acked = Some(acked);
    newer.desired_fields =
        Some(EncodedFields::new(&Fields::from([("login".into(), "new".into())])).unwrap());
    store
        .commit(&Commit {
            writes: vec![newer],
            ..Commit::default()
        })
        .unwrap();
    assert_eq!(
        store.acked_fields(&key("E1")).unwrap(),
        Some(pushed.clone())
    );
    assert_eq!(
        store.desired_fields(&key("E1")).unwrap().unwrap()["login"],
        "new"
    );
    let (entry, desired, acked) = store.entry_with_fields(&key("E1")).unwrap().unwrap();
    assert_eq!((desired["login"].as_str(), acked), ("new", Some(pushed)));
    assert_eq!(entry.desired.hash, ProjectionHash([2; 16]));
    assert!(store.entry_with_fields(&key("nobody")).unwrap().is_none());
}

#[test]
fn a_stored_acknowledged_projection_is_dropped_once_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let fields = |login: &str| Fields::from([("login".into(), login.into())]);
    let commit = |hash: u8, login: &str, previous: Option<Acked>| {
        let mut newer = write("E1", hash);
        newer.entry.acked = previous;
        newer.desired_fields = Some(EncodedFields::new(&fields(login)).unwrap());
        store
            .commit(&Commit {
                writes: vec![newer],
                ..Commit::default()
            })
            .unwrap();
    };
    commit(1, "one", None);
    store
        .acknowledge(&key("E1"), &acked(1), &fields("one"))
        .unwrap();
    // The desired state moves on: what the target holds is kept aside.
    commit(2, "two", Some(acked(1)));
    assert!(store.tree.contains_key(key("E1").encode(b'a')).unwrap());
    // The target catches up: the kept copy is stale and goes.
    store
        .acknowledge(&key("E1"), &acked(2), &fields("two"))
        .unwrap();
    assert!(!store.tree.contains_key(key("E1").encode(b'a')).unwrap());
    let (_, _, held) = store.entry_with_fields(&key("E1")).unwrap().unwrap();
    assert_eq!(held, Some(fields("two")));
    assert_eq!(store.acked_fields(&key("E1")).unwrap(), Some(fields("two")));
}

#[test]
fn acknowledging_releases_a_parked_record_however_many_are_parked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let parked = Parked {
        action: ActionKind::Create,
        reason: "r".into(),
        at: 1,
        transient: true,
    };
    let acked = acked(1);
    // Few parked: looked up once; many: read record by record.
    for parked_count in [3, 1_100] {
        let names: Vec<String> = (0..parked_count).map(|i| format!("P{i:05}")).collect();
        store
            .commit(&Commit {
                writes: names.iter().map(|name| write(name, 1)).collect(),
                ..Commit::default()
            })
            .unwrap();
        for name in &names {
            store.park(&key(name), &parked).unwrap();
        }
        assert_eq!(
            store.parked_keys("lms", RecordKind::Users).unwrap().len(),
            parked_count
        );
        let acks: Vec<_> = [&names[0], &names[2]]
            .into_iter()
            .map(|name| (key(name), acked.clone(), Fields::new()))
            .collect();
        store.acknowledge_many(&acks).unwrap();
        assert!(store.parked_item(&key(&names[0])).unwrap().is_none());
        assert!(store.parked_item(&key(&names[1])).unwrap().is_some());
        assert!(store.parked_item(&key(&names[2])).unwrap().is_none());
        assert_eq!(store.unpark_all("lms").unwrap(), parked_count - 2);
    }
}

#[test]
fn desired_fields_can_be_looked_at_without_a_copy() {
    let (_dir, store) = store_with_e1();
    let login = store
        .look_at_desired(&key("E1"), |fields| {
            fields.get("login").map(|v| v.to_string())
        })
        .unwrap();
    assert_eq!(login, Some(Some("E1".to_string())));
    assert_eq!(store.look_at_desired(&key("nobody"), |_| ()).unwrap(), None);
}

#[test]
fn only_records_parked_after_transient_failures_are_released_on_the_timer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let parked = |transient| Parked {
        action: ActionKind::Create,
        reason: "r".into(),
        at: 1,
        transient,
    };
    store.park(&key("E1"), &parked(true)).unwrap();
    store.park(&key("E2"), &parked(false)).unwrap();
    assert_eq!(store.unpark_transient("lms").unwrap(), 1);
    assert!(store.parked_item(&key("E1")).unwrap().is_none());
    assert!(store.parked_item(&key("E2")).unwrap().is_some());
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.set_schema_version(SCHEMA_VERSION + 1).unwrap();
    }
    // sled's flusher thread holds the lock of a just-dropped store a
    // moment longer: wait for it, then the schema must be refused.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let error = loop {
        match Store::open(dir.path()) {
            Err(StoreError::Sled(sled::Error::Io(_))) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.err().unwrap(),
        }
    };
    assert!(matches!(error, StoreError::NewerSchema { .. }), "{error}");
}

#[test]
fn keys_of_one_target_do_not_leak_into_another_with_a_longer_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut other = write("E1", 1);
    other.key.target = "lms2".into();
    store
        .commit(&Commit {
            writes: vec![other],
            ..Commit::default()
        })
        .unwrap();
    assert_eq!(store.entries("lms", RecordKind::Users).count(), 0);
}

/// Writes the v1 fixture used by the v2 migration test (run once, by hand).
#[test]
#[ignore]
fn write_v1_fixture() {
    let dir = std::path::PathBuf::from(std::env::var("V1_FIXTURE_DIR").unwrap());
    let store = Store::open(&dir).unwrap();
    let fields = |login: &str, mail: &str| {
        Fields::from([
            ("login".into(), login.into()),
            ("email".into(), mail.into()),
        ])
    };
    let hash_of = |f: &Fields| crate::projection::hash(f);
    let mut writes = Vec::new();
    for (target, kind, k, login) in [
        ("lms", RecordKind::Users, "E1", "ana"),
        ("lms", RecordKind::Users, "E2", "ben"),
        ("lms", RecordKind::Users, "E3", "cy"),
        ("lms", RecordKind::Users, "E4", "dee"),
        ("lms", RecordKind::Orgs, "O1", "org-one"),
        ("crm", RecordKind::Users, "E1", "ana"),
        ("crm", RecordKind::Users, "E2", "ben"),
    ] {
        let f = fields(login, &format!("{login}@old.example"));
        writes.push(EntryWrite {
            key: RecordKey {
                target: target.into(),
                kind,
                key: k.into(),
            },
            entry: Entry {
                source: if kind == RecordKind::Orgs {
                    "hr-orgs".into()
                } else {
                    "hr".into()
                },
                desired: Desired {
                    hash: hash_of(&f),
                    active: true,
                    disabled: false,
                    activation: None,
                    expiration: Some(800_000),
                    present: true,
                },
                acked: None,
            },
            desired_fields: Some(EncodedFields::new(&f).unwrap()),
            outbox: OutboxChange::Put(OutboxItem {
                action: ActionKind::Create,
                queued_at: 100,
            }),
        });
    }
    store
        .commit(&Commit {
            writes: writes.clone(),
            file: Some((
                [7; 32],
                FileSeen {
                    source: "hr".into(),
                    name: "users_1.csv".into(),
                    at: 100,
                },
            )),
            source: Some((
                "hr".into(),
                SourceState {
                    last_file: "users_1.csv".into(),
                    last_sha256: [7; 32],
                    rows: 4,
                    at: 100,
                },
            )),
        })
        .unwrap();
    // lms acknowledges E1, E2, O1 (with ids); crm acknowledges E1.
    let ack = |w: &EntryWrite, id: &str| {
        let f: Fields = postcard::from_bytes(&w.desired_fields.as_ref().unwrap().0).unwrap();
        (
            w.key.clone(),
            Acked {
                hash: w.entry.desired.hash,
                active: true,
                target_id: Some(id.into()),
                at: 200,
            },
            f,
        )
    };
    store
        .acknowledge_many(&[
            ack(&writes[0], "u-1"),
            ack(&writes[1], "u-2"),
            ack(&writes[4], "g-1"),
            ack(&writes[5], "c-1"),
        ])
        .unwrap();
    // A second file changes E2's e-mail: lms E2 now lags (explicit acknowledged projection).
    let mut w = writes[1].clone();
    let f = fields("ben", "ben@new.example");
    w.entry.desired.hash = hash_of(&f);
    w.entry.acked = store.entry(&w.key).unwrap().unwrap().acked;
    w.desired_fields = Some(EncodedFields::new(&f).unwrap());
    w.outbox = OutboxChange::Put(OutboxItem {
        action: ActionKind::Update,
        queued_at: 300,
    });
    store
        .commit(&Commit {
            writes: vec![w],
            ..Commit::default()
        })
        .unwrap();
    // lms parks E3 (refused) and crm parks E2 (transient).
    store
        .park(
            &writes[2].key,
            &Parked {
                action: ActionKind::Create,
                reason: "login taken".into(),
                at: 400,
                transient: false,
            },
        )
        .unwrap();
    store
        .park(
            &writes[6].key,
            &Parked {
                action: ActionKind::Create,
                reason: "timed out".into(),
                at: 401,
                transient: true,
            },
        )
        .unwrap();
    store.flush().unwrap();
}
