//! Helpers shared by the crate's unit tests: real records from real ingest,
//! planned and committed by the real planner.

use std::collections::BTreeMap;

use crate::config::SafetyConfig;
use crate::ingest::record::{Field, Record, RecordKind};
use crate::ingest::{Mode, SourceSpec, ingest};
use crate::plan::{FileInfo, PlanOptions, Planned, SourceInfo, TargetInfo, plan_file};
use crate::projection::{DefaultFields, Projector};
use crate::store::Store;

/// Users from `(ext_id, login, email)` rows, through the WBT preset.
pub fn users(rows: &[(&str, &str, &str)]) -> Vec<Record> {
    let mut text = String::from("user_extid;user_fname;user_login;user_email\n");
    for (ext_id, login, email) in rows {
        text.push_str(&format!("{ext_id};First;{login};{email}\n"));
    }
    let outcome = ingest(text.as_bytes(), &SourceSpec::wbt(RecordKind::Users));
    assert!(outcome.accepted(), "{:?}", outcome.problems);
    outcome.records
}

/// A target that keeps the login and e-mail of users.
pub fn target(name: &str) -> TargetInfo {
    TargetInfo {
        name: name.into(),
        projector: Projector::new(
            DefaultFields::known(&[("login", Field::Login), ("email", Field::Email)], &[]),
            &BTreeMap::new(),
        ),
        scope: None,
        delete_after_days: None,
        max_delete_count: 50,
    }
}

pub fn source(name: &str) -> SourceInfo {
    SourceInfo {
        name: name.into(),
        kind: RecordKind::Users,
        mode: Mode::Full,
        create_disabled: false,
        prehire_days: 0,
    }
}

/// Plans `records` as the full file `name` of source `hr` for `targets`, and commits it.
pub fn commit(store: &Store, targets: &[TargetInfo], records: &[Record], name: &str) -> Planned {
    let planned = plan_file(
        store,
        &source("hr"),
        targets,
        records,
        &FileInfo {
            name: name.into(),
            sha256: sha(name),
            rows: records.len() as u64,
        },
        // Held or not, the helper commits: safety is tested elsewhere.
        &SafetyConfig::default(),
        PlanOptions {
            today: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            now: 1_800_000_000,
            detail_limit: usize::MAX,
        },
    )
    .unwrap();
    store.commit(&planned.commit, records).unwrap();
    planned
}

fn sha(name: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(name.as_bytes()).into()
}
