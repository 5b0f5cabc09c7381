//! A source's snapshot planned for the targets new to it.

use std::collections::BTreeMap;

use super::{
    Plan, PlanOptions, Planned, SourceInfo, TargetInfo, TargetOutcome, gather, joined, plan_target,
};
use crate::config::SafetyConfig;
use crate::ingest::record::Record;
use crate::safety::{self, PlanFigures};
use crate::store::{Commit, Store, StoreError};

/// The source's last file planned again for the targets that have not had
/// it: targets added to the source since (each gets every record of the
/// snapshot), or one the source had left and lists again. Other targets
/// and the snapshot are left as they are. `None` when every target of the
/// source had it, or the source has no file yet. Returns the records the
/// commit needs beside the plan; the safety rules apply as to a file.
pub fn plan_seed(
    store: &Store,
    source: &SourceInfo,
    targets: &[TargetInfo],
    safety_rules: &SafetyConfig,
    options: PlanOptions,
) -> Result<Option<(Planned, Vec<Record>)>, StoreError> {
    let Some(mut state) = store.source_state(&source.name)? else {
        return Ok(None);
    };
    let seeding: Vec<&TargetInfo> = targets
        .iter()
        .filter(|t| t.projector.keeps(source.kind) && !state.targets.contains(&t.name))
        .collect();
    if seeding.is_empty() {
        return Ok(None);
    }
    // The snapshot is in key order; its records absent from the last file stay out.
    let mut records = Vec::new();
    for item in store.snapshot(&source.name, source.kind) {
        let (record, present) = item?;
        if present {
            records.push(record);
        }
    }
    let by_key: Vec<(u32, &Record)> = (0u32..).zip(records.iter()).collect();
    let outcomes: Vec<Result<TargetOutcome, StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = seeding
            .iter()
            .map(|target| {
                let by_key = &by_key;
                scope.spawn(move || plan_target(store, source, target, by_key, options))
            })
            .collect();
        handles.into_iter().map(|h| joined(h.join())).collect()
    });
    let mut figures = PlanFigures {
        rows: records.len() as u64,
        previous_rows: None,
        blocks: Vec::new(),
        // The source's records are those it holds: nothing changes.
        changes: Vec::new(),
        deletes: Vec::new(),
    };
    let mut plan = Plan {
        source: source.name.clone(),
        file: state.last_file.clone(),
        rows: records.len() as u64,
        held: None,
        problems: Vec::new(),
        held_also: Vec::new(),
        targets: BTreeMap::new(),
    };
    let mut commit = Commit::default();
    let orders = gather(
        source,
        &seeding,
        outcomes,
        &mut plan,
        &mut commit,
        &mut figures,
    )?;
    state.targets.extend(seeding.iter().map(|t| t.name.clone()));
    (plan.held, plan.held_also) = safety::check_all(safety_rules, &figures);
    commit.source = Some((source.name.clone(), state));
    let planned = Planned {
        plan,
        commit,
        orders,
        kind: source.kind,
    };
    Ok(Some((planned, records)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::record::RecordKind;
    use crate::model::RecordKey;
    use crate::testing::{commit, source, target, users};

    #[test]
    fn a_target_added_to_a_source_gets_its_snapshot_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let records = users(&[("E1", "ana", "ana@x.fr"), ("E2", "ben", "ben@x.fr")]);
        commit(&store, &[target("lms")], &records, "u1.csv");
        let options = PlanOptions {
            today: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            now: 1_800_000_001,
            detail_limit: usize::MAX,
        };
        let both = [target("lms"), target("crm")];
        let safety = SafetyConfig::default();
        let (planned, records) = plan_seed(&store, &source("hr"), &both, &safety, options)
            .unwrap()
            .expect("crm has not had the snapshot");
        assert!(planned.plan.held.is_none());
        assert_eq!(planned.plan.targets.keys().collect::<Vec<_>>(), ["crm"]);
        assert_eq!(planned.plan.targets["crm"].create, 2);
        assert_eq!(planned.plan.file, "u1.csv");
        store.commit(&planned.commit, &records).unwrap();
        assert_eq!(store.outbox_len("crm"), 2);
        assert_eq!(store.outbox_len("lms"), 2, "lms is left as it was");
        let crm = RecordKey {
            target: "crm".into(),
            kind: RecordKind::Users,
            key: "E2".into(),
        };
        assert_eq!(
            store
                .desired_fields(&crm, &both[1].projector)
                .unwrap()
                .unwrap()["login"],
            "ben"
        );
        assert_eq!(
            store.source_state("hr").unwrap().unwrap().targets,
            ["lms", "crm"]
        );
        assert!(
            plan_seed(&store, &source("hr"), &both, &safety, options)
                .unwrap()
                .is_none()
        );
    }
}
