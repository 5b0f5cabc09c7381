//! The store against a real sled database in a temporary folder, fed by
//! the real planner with records from real ingest.

use super::*;
use crate::projection::ProjectionHash;
use crate::testing::{commit, target, users};

fn key(k: &str) -> RecordKey {
    RecordKey {
        target: "lms".into(),
        kind: RecordKind::Users,
        key: k.into(),
    }
}

fn fields(login: &str, email: &str) -> Fields {
    Fields::from([
        ("email".into(), email.into()),
        ("login".into(), login.into()),
    ])
}

/// What a target confirmed of a record's current desired state.
fn acked_now(store: &Store, k: &str) -> Acked {
    let entry = store.entry(&key(k)).unwrap().unwrap();
    Acked {
        hash: entry.desired.hash,
        active: entry.desired.active,
        target_id: Some(format!("id-{k}")),
        at: 1,
    }
}

fn ack_all(store: &Store, keys: &[&str]) {
    let lms = target("lms");
    let acks: Vec<_> = keys
        .iter()
        .map(|k| {
            let desired = store
                .desired_fields(&key(k), &lms.projector)
                .unwrap()
                .unwrap();
            (key(k), acked_now(store, k), desired)
        })
        .collect();
    store.acknowledge_many(&acks).unwrap();
}

fn outbox_keys(store: &Store) -> Vec<String> {
    store
        .outbox("lms", RecordKind::Users)
        .map(|item| item.unwrap().0)
        .collect()
}

#[test]
fn a_commit_stores_the_snapshot_once_and_a_summary_per_target() {
    let dir = tempfile::tempdir().unwrap();
    let records = users(&[("E1", "ana", "ana@x.fr"), ("E2", "ben", "ben@x.fr")]);
    {
        let store = Store::open(dir.path()).unwrap();
        commit(&store, &[target("lms"), target("crm")], &records, "u1.csv");
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), Some(SCHEMA_VERSION));
    let entries: Vec<_> = store
        .entries("lms", RecordKind::Users)
        .map(|e| e.unwrap().0)
        .collect();
    assert_eq!(entries, ["E1", "E2"]);
    assert_eq!(store.outbox_len("lms"), 2);
    assert_eq!(store.outbox_len("crm"), 2);
    assert_eq!(store.outbox_len("other"), 0);
    assert_eq!(
        store
            .desired_fields(&key("E2"), &target("lms").projector)
            .unwrap(),
        Some(fields("ben", "ben@x.fr"))
    );
    // One snapshot group for the source, one entry group per target.
    let count = |prefix: &[u8]| store.tree.scan_prefix(prefix).count();
    assert_eq!(count(b"r\0"), 1);
    assert_eq!(count(b"t\0"), 2);
    let snapshot: Vec<_> = store
        .snapshot("hr", RecordKind::Users)
        .map(|item| item.unwrap())
        .collect();
    assert_eq!(snapshot.len(), 2);
    assert_eq!(
        snapshot[1].0.get(crate::ingest::record::Field::Login),
        Some("ben")
    );
    assert_eq!(
        store.source_state("hr").unwrap().unwrap().targets,
        ["lms", "crm"]
    );
}

#[test]
fn an_acknowledgement_counts_at_once_survives_a_restart_and_is_folded() {
    let dir = tempfile::tempdir().unwrap();
    let records = users(&[("E1", "ana", "ana@x.fr"), ("E2", "ben", "ben@x.fr")]);
    {
        let store = Store::open(dir.path()).unwrap();
        commit(&store, &[target("lms")], &records, "u1.csv");
        ack_all(&store, &["E1"]);
        assert_eq!(outbox_keys(&store), ["E2"]);
        assert_eq!(
            store.entry(&key("E1")).unwrap().unwrap().acked,
            Some(acked_now(&store, "E1"))
        );
        // Logged, not yet folded.
        assert_eq!(store.tree.scan_prefix(acklog::LOG_PREFIX).count(), 1);
    }
    // Reopened: the log is read back.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(outbox_keys(&store), ["E2"]);
    // A commit folds the log into the groups first.
    commit(&store, &[target("lms")], &records, "u1-again.csv");
    assert_eq!(store.tree.scan_prefix(acklog::LOG_PREFIX).count(), 0);
    assert!(store.lock_overlay().acks.is_empty());
    assert_eq!(outbox_keys(&store), ["E2"]);
    let e1 = store.entry(&key("E1")).unwrap().unwrap();
    assert_eq!(e1.acked.unwrap().target_id.as_deref(), Some("id-E1"));
}

#[test]
fn an_acknowledgement_of_a_superseded_state_keeps_the_record_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    commit(
        &store,
        &[target("lms")],
        &users(&[("E1", "ana", "ana@x.fr")]),
        "u1.csv",
    );
    let sent = fields("ana", "ana@x.fr");
    let acked = acked_now(&store, "E1");
    // A newer file arrives while the push is under way.
    commit(
        &store,
        &[target("lms")],
        &users(&[("E1", "ana", "ana@y.fr")]),
        "u2.csv",
    );
    store.acknowledge(&key("E1"), &acked, &sent).unwrap();
    assert_eq!(outbox_keys(&store), ["E1"]);
    let lms = target("lms");
    // What the target holds is known, and differs from the desired fields.
    assert_eq!(
        store.acked_fields(&key("E1"), &lms.projector).unwrap(),
        Some(sent.clone())
    );
    assert_eq!(
        store.desired_fields(&key("E1"), &lms.projector).unwrap(),
        Some(fields("ana", "ana@y.fr"))
    );
    // Still so once folded.
    store.commit(&Commit::default(), &[]).unwrap();
    assert_eq!(
        store.acked_fields(&key("E1"), &lms.projector).unwrap(),
        Some(sent)
    );
}

#[test]
fn the_acknowledged_projection_is_kept_apart_only_while_the_target_lags() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lms = target("lms");
    commit(
        &store,
        &[target("lms")],
        &users(&[("E1", "ana", "ana@x.fr")]),
        "u1.csv",
    );
    ack_all(&store, &["E1"]);
    store.commit(&Commit::default(), &[]).unwrap();
    let stored = |store: &Store| store.reader().stored(&key("E1")).unwrap().unwrap();
    assert_eq!(stored(&store).acked_fields, None, "caught up: implicit");
    // The e-mail changes: the target still holds the old one.
    let planned = commit(
        &store,
        &[target("lms")],
        &users(&[("E1", "ana", "ana@y.fr")]),
        "u2.csv",
    );
    assert_eq!(planned.plan.targets["lms"].update, 1);
    assert_eq!(
        planned.plan.targets["lms"].actions[0].changes["email"],
        (Some("ana@x.fr".into()), Some("ana@y.fr".into()))
    );
    assert!(stored(&store).acked_fields.is_some());
    assert_eq!(
        store.acked_fields(&key("E1"), &lms.projector).unwrap(),
        Some(fields("ana", "ana@x.fr"))
    );
    let (_, desired, acked) = store
        .reader()
        .entry_with_fields(&key("E1"), &lms.projector)
        .unwrap()
        .unwrap();
    assert_eq!(desired, fields("ana", "ana@y.fr"));
    assert_eq!(acked, Some(fields("ana", "ana@x.fr")));
    // Confirmed: implicit again.
    ack_all(&store, &["E1"]);
    store.commit(&Commit::default(), &[]).unwrap();
    assert_eq!(stored(&store).acked_fields, None);
    assert!(outbox_keys(&store).is_empty());
}

#[test]
fn acknowledging_releases_a_parked_record_however_many_are_parked() {
    for parked_count in [1, FEW_PARKED + 5] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rows: Vec<(String, String, String)> = (0..parked_count)
            .map(|i| (format!("E{i:05}"), format!("u{i}"), format!("u{i}@x.fr")))
            .collect();
        let rows: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        commit(&store, &[target("lms")], &users(&rows), "u.csv");
        let parked = Parked {
            action: ActionKind::Create,
            reason: "refused".into(),
            at: 1,
            transient: false,
        };
        for (k, _, _) in &rows {
            store.park(&key(k), &parked).unwrap();
        }
        ack_all(&store, &["E00000"]);
        assert!(store.parked_item(&key("E00000")).unwrap().is_none());
        assert_eq!(
            store.parked_keys("lms", RecordKind::Users).unwrap().len(),
            parked_count - 1
        );
    }
}

#[test]
fn only_records_parked_after_transient_failures_are_released_on_the_timer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    commit(
        &store,
        &[target("lms")],
        &users(&[("E1", "a", "a@x.fr"), ("E2", "b", "b@x.fr")]),
        "u.csv",
    );
    for (k, transient) in [("E1", true), ("E2", false)] {
        let parked = Parked {
            action: ActionKind::Create,
            reason: "r".into(),
            at: 1,
            transient,
        };
        store.park(&key(k), &parked).unwrap();
    }
    assert_eq!(store.unpark_transient("lms", i64::MAX).unwrap(), 1);
    assert!(store.parked_item(&key("E1")).unwrap().is_none());
    assert!(store.parked_item(&key("E2")).unwrap().is_some());
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .tree
            .insert(SCHEMA_KEY, &(SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        store.flush().unwrap();
    }
    match Store::open(dir.path()) {
        Err(StoreError::NewerSchema { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected NewerSchema, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn keys_of_one_target_do_not_leak_into_another_with_a_longer_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    commit(
        &store,
        &[target("lms"), target("lms2")],
        &users(&[("E1", "a", "a@x.fr")]),
        "u.csv",
    );
    store.forget_target("lms2").unwrap();
    assert_eq!(store.entries("lms", RecordKind::Users).count(), 1);
    assert_eq!(store.entries("lms2", RecordKind::Users).count(), 0);
    assert_eq!(store.targets_held().unwrap(), ["lms"]);
}

#[test]
fn a_password_is_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let text = "user_extid;user_fname;user_login;user_email;user_password\nE1;Ana;ana;ana@x.fr;S3cr3t-Passw0rd\n";
    let outcome = crate::ingest::ingest(
        text.as_bytes(),
        &crate::ingest::SourceSpec::wbt(RecordKind::Users),
    );
    assert!(outcome.accepted());
    commit(&store, &[target("lms")], &outcome.records, "u.csv");
    for item in store.tree.iter() {
        let (k, v) = item.unwrap();
        for bytes in [&k[..], &v[..]] {
            assert!(
                !bytes.windows(15).any(|w| w == b"S3cr3t-Passw0rd"),
                "the password is stored under {}",
                String::from_utf8_lossy(&k)
            );
        }
    }
    let (record, _) = store
        .snapshot("hr", RecordKind::Users)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(record.get(crate::ingest::record::Field::Login), Some("ana"));
    assert_eq!(record.get(crate::ingest::record::Field::Password), None);
}

#[test]
fn forgetting_a_target_drops_its_entries_parked_records_and_acknowledgements() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    commit(
        &store,
        &[target("lms"), target("crm")],
        &users(&[("E1", "a", "a@x.fr"), ("E2", "b", "b@x.fr")]),
        "u.csv",
    );
    let crm = |k: &str| RecordKey {
        target: "crm".into(),
        kind: RecordKind::Users,
        key: k.into(),
    };
    let parked = Parked {
        action: ActionKind::Create,
        reason: "r".into(),
        at: 1,
        transient: false,
    };
    store.park(&crm("E2"), &parked).unwrap();
    let acked = Acked {
        hash: store.entry(&crm("E1")).unwrap().unwrap().desired.hash,
        active: true,
        target_id: None,
        at: 1,
    };
    store
        .acknowledge(&crm("E1"), &acked, &Fields::new())
        .unwrap();
    let forgotten = store.forget_target("crm").unwrap();
    assert_eq!(
        forgotten,
        Forgotten {
            users: 2,
            orgs: 0,
            parked: 1
        }
    );
    assert_eq!(store.entries("crm", RecordKind::Users).count(), 0);
    assert!(store.parked_item(&crm("E2")).unwrap().is_none());
    assert_eq!(store.source_state("hr").unwrap().unwrap().targets, ["lms"]);
    assert_eq!(store.entries("lms", RecordKind::Users).count(), 2);
}

/// A big commit is written in chunks and groups; every record reads back.
#[test]
fn a_commit_bigger_than_a_chunk_is_grouped_and_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let n = COMMIT_CHUNK + 3_000;
    let rows: Vec<(String, String, String)> = (0..n)
        .map(|i| (format!("E{i:06}"), format!("u{i}"), format!("u{i}@x.fr")))
        .collect();
    let as_refs = |rows: &[(String, String, String)]| -> Vec<Record> {
        let rows: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        users(&rows)
    };
    commit(&store, &[target("lms")], &as_refs(&rows), "u.csv");
    assert!(store.pending_commit().unwrap().is_none());
    let groups = store.tree.scan_prefix(b"t\0").count();
    assert!(
        groups >= n / groups::GROUP && groups <= 2 * n / groups::GROUP + 2,
        "{groups} groups"
    );
    assert_eq!(store.outbox_len("lms"), n);
    // Keys below, among and above the stored ones land in order.
    let mut more = rows.clone();
    more.push(("A0".into(), "first".into(), "first@x.fr".into()));
    more.push(("E010000x".into(), "mid".into(), "mid@x.fr".into()));
    more.push(("Z9".into(), "last".into(), "last@x.fr".into()));
    commit(&store, &[target("lms")], &as_refs(&more), "u2.csv");
    let keys: Vec<String> = store
        .entries("lms", RecordKind::Users)
        .map(|e| e.unwrap().0)
        .collect();
    assert_eq!(keys.len(), n + 3);
    assert!(keys.is_sorted());
    let lms = target("lms");
    let mut reader = store.reader();
    for k in ["A0", "E000000", "E010000x", &format!("E{:06}", n - 1), "Z9"] {
        assert!(
            reader
                .desired_fields(&key(k), &lms.projector)
                .unwrap()
                .is_some(),
            "{k}"
        );
    }
}

/// The schema-1 fixture (`tests/data/store-v1`, written by the v1 code):
/// every entry, waiting record, parked record and projection survives.
#[test]
fn a_schema_1_store_is_migrated_whole() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store-v1");
    for name in ["conf", "db"] {
        std::fs::copy(fixture.join(name), dir.path().join(name)).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), Some(SCHEMA_VERSION));
    let at = |target: &str, kind, k: &str| RecordKey {
        target: target.into(),
        kind,
        key: k.into(),
    };
    let users = RecordKind::Users;
    // The projector is irrelevant: migrated entries keep their projections.
    let any = target("lms").projector;
    let old = |login: &str| fields(login, &format!("{login}@old.example"));
    let entries: Vec<String> = store.entries("lms", users).map(|e| e.unwrap().0).collect();
    assert_eq!(entries, ["E1", "E2", "E3", "E4"]);
    let e1 = store.entry(&at("lms", users, "E1")).unwrap().unwrap();
    assert_eq!(e1.source, "hr");
    assert_eq!(e1.desired.expiration, Some(800_000));
    assert_eq!(e1.acked.as_ref().unwrap().target_id.as_deref(), Some("u-1"));
    assert_eq!(
        store.holder("lms", users, "u-1").unwrap().as_deref(),
        Some("E1")
    );
    assert_eq!(
        store.desired_fields(&at("lms", users, "E1"), &any).unwrap(),
        Some(old("ana"))
    );
    assert_eq!(
        store.acked_fields(&at("lms", users, "E1"), &any).unwrap(),
        Some(old("ana"))
    );
    // E2 waits for an update; the target holds the old e-mail.
    assert_eq!(
        store.desired_fields(&at("lms", users, "E2"), &any).unwrap(),
        Some(fields("ben", "ben@new.example"))
    );
    assert_eq!(
        store.acked_fields(&at("lms", users, "E2"), &any).unwrap(),
        Some(old("ben"))
    );
    let waiting: Vec<(String, ActionKind)> = store
        .outbox("lms", users)
        .map(|item| item.map(|(k, o)| (k, o.action)).unwrap())
        .collect();
    assert_eq!(
        waiting,
        [
            ("E2".into(), ActionKind::Update),
            ("E3".into(), ActionKind::Create),
            ("E4".into(), ActionKind::Create)
        ]
    );
    let parked = store.parked_item(&at("lms", users, "E3")).unwrap().unwrap();
    assert_eq!(
        (parked.reason.as_str(), parked.transient),
        ("login taken", false)
    );
    let parked = store.parked_item(&at("crm", users, "E2")).unwrap().unwrap();
    assert_eq!(
        (parked.reason.as_str(), parked.transient),
        ("timed out", true)
    );
    assert_eq!(store.entries("crm", users).count(), 2);
    assert_eq!(store.outbox_len("crm"), 1);
    let o1 = store
        .entry(&at("lms", RecordKind::Orgs, "O1"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (o1.source.as_str(), o1.acked.unwrap().target_id),
        ("hr-orgs", Some("g-1".into()))
    );
    let state = store.source_state("hr").unwrap().unwrap();
    assert_eq!(
        (state.last_file.as_str(), state.rows, state.at),
        ("users_1.csv", 4, 100)
    );
    assert_eq!(state.targets, ["crm", "lms"]);
    assert_eq!(
        store.file_seen(&[7; 32]).unwrap().unwrap().name,
        "users_1.csv"
    );
    // The old layout is gone; opening again changes nothing.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(
        !store
            .db
            .tree_names()
            .iter()
            .any(|name| name.as_ref() == b"state")
    );
    assert_eq!(store.entries("lms", users).count(), 4);
    // A file for the migrated source replaces the stored projections by the snapshot.
    let planned = commit(
        &store,
        &[target("lms")],
        &crate::testing::users(&[("E1", "ana", "ana@old.example")]),
        "users_2.csv",
    );
    assert_eq!(planned.plan.targets["lms"].update, 0);
    assert_eq!(
        store
            .reader()
            .stored(&at("lms", users, "E1"))
            .unwrap()
            .unwrap()
            .desired_fields,
        None
    );
    let _ = ProjectionHash([0; 16]);
}

/// Acknowledges `k` as held at the target under `id`.
fn ack_with_id(store: &Store, k: &str, id: Option<&str>) {
    let lms = target("lms");
    let desired = store
        .desired_fields(&key(k), &lms.projector)
        .unwrap()
        .unwrap();
    let mut acked = acked_now(store, k);
    acked.target_id = id.map(str::to_string);
    store.acknowledge(&key(k), &acked, &desired).unwrap();
}

#[test]
fn the_record_holding_a_target_id_is_one_read_away_and_follows_its_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let records = users(&[("E1", "ana", "ana@x.fr"), ("E2", "ben", "ben@x.fr")]);
    commit(&store, &[target("lms"), target("crm")], &records, "u1.csv");
    let holder = |target: &str, id: &str| store.holder(target, RecordKind::Users, id).unwrap();
    assert_eq!(holder("lms", "u-7"), None);
    ack_with_id(&store, "E1", Some("u-7"));
    assert_eq!(holder("lms", "u-7").as_deref(), Some("E1"));
    assert_eq!(
        holder("crm", "u-7"),
        None,
        "another target's ids are its own"
    );
    assert_eq!(store.holder("lms", RecordKind::Orgs, "u-7").unwrap(), None);
    // Recreated at the target under another id: the old one is free again,
    // and an id passing to another record in one group goes with it.
    let lms = target("lms");
    let acks: Vec<_> = [("E1", "u-8"), ("E2", "u-7")]
        .iter()
        .map(|(k, id)| {
            let mut acked = acked_now(&store, k);
            acked.target_id = Some(id.to_string());
            let desired = store
                .desired_fields(&key(k), &lms.projector)
                .unwrap()
                .unwrap();
            (key(k), acked, desired)
        })
        .collect();
    store.acknowledge_many(&acks).unwrap();
    assert_eq!(holder("lms", "u-8").as_deref(), Some("E1"));
    assert_eq!(holder("lms", "u-7").as_deref(), Some("E2"));
    // A target that gives no id any more holds none.
    ack_with_id(&store, "E2", None);
    assert_eq!(holder("lms", "u-7"), None);
    // Folded, reopened: the same answers.
    store.fold().unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store
            .holder("lms", RecordKind::Users, "u-8")
            .unwrap()
            .as_deref(),
        Some("E1")
    );
    store.forget_target("lms").unwrap();
    assert_eq!(store.holder("lms", RecordKind::Users, "u-8").unwrap(), None);
    assert_eq!(store.tree.scan_prefix(b"i\0").count(), 0);
}

/// A schema-2 store (no index of the targets' ids) is indexed on open,
/// from its groups and from the acknowledgements not yet folded.
#[test]
fn a_schema_2_store_gets_its_target_ids_indexed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let records = users(&[("E1", "ana", "ana@x.fr"), ("E2", "ben", "ben@x.fr")]);
        commit(&store, &[target("lms")], &records, "u1.csv");
        ack_with_id(&store, "E1", Some("u-1"));
        store.fold().unwrap();
        ack_with_id(&store, "E2", Some("u-2"));
        // As schema 2 left it.
        for line in store.tree.scan_prefix(b"i\0").keys() {
            store.tree.remove(line.unwrap()).unwrap();
        }
        store.tree.insert(SCHEMA_KEY, &2u32.to_be_bytes()).unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), Some(SCHEMA_VERSION));
    let holder = |id: &str| store.holder("lms", RecordKind::Users, id).unwrap();
    assert_eq!(holder("u-1").as_deref(), Some("E1"));
    assert_eq!(holder("u-2").as_deref(), Some("E2"), "from the log");
}

fn candidates() -> Vec<crate::model::Candidate> {
    ["u-7", "u-9"]
        .iter()
        .map(|id| crate::model::Candidate {
            id: id.to_string(),
            login: format!("login-{id}"),
            matched_by: vec!["email".into()],
        })
        .collect()
}

fn parked_now() -> Parked {
    Parked {
        action: ActionKind::Create,
        reason: "ambiguous".into(),
        at: 1,
        transient: false,
    }
}

#[test]
fn an_ambiguous_record_keeps_its_candidates_as_long_as_it_is_parked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let records = users(&[("E1", "ana", "ana@x.fr"), ("E2", "ben", "ben@x.fr")]);
    commit(&store, &[target("lms")], &records, "u1.csv");
    store
        .park_ambiguous(&key("E1"), &parked_now(), &candidates())
        .unwrap();
    store.park(&key("E2"), &parked_now()).unwrap();
    assert_eq!(store.candidates(&key("E1")).unwrap(), candidates());
    assert_eq!(store.candidates(&key("E2")).unwrap(), []);
    assert_eq!(
        store.reader().push_status(&key("E1")).unwrap(),
        Some(crate::model::PushStatus::Parked {
            reason: "ambiguous".into(),
            candidates: candidates()
        })
    );
    let listed: Vec<String> = store
        .ambiguous("lms", RecordKind::Users)
        .map(|item| item.unwrap().0)
        .collect();
    assert_eq!(listed, ["E1"]);
    // `retry` (or the next file) releases it: its candidates go with it.
    assert_eq!(store.unpark_all("lms").unwrap(), 2);
    assert_eq!(store.candidates(&key("E1")).unwrap(), []);
    // So does the acknowledgement of the account adopted later.
    store
        .park_ambiguous(&key("E1"), &parked_now(), &candidates())
        .unwrap();
    ack_with_id(&store, "E1", Some("u-7"));
    assert_eq!(store.candidates(&key("E1")).unwrap(), []);
    assert!(store.parked_item(&key("E1")).unwrap().is_none());
    // Parked again for another reason: no candidates shown with it.
    store
        .park_ambiguous(&key("E1"), &parked_now(), &candidates())
        .unwrap();
    store.park(&key("E1"), &parked_now()).unwrap();
    assert_eq!(store.candidates(&key("E1")).unwrap(), []);
    // And forgetting the target.
    store
        .park_ambiguous(&key("E2"), &parked_now(), &candidates())
        .unwrap();
    store.forget_target("lms").unwrap();
    assert_eq!(store.tree.scan_prefix(b"c\0").count(), 0);
}
