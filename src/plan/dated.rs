//! The daily re-plan: what changes for records without a new file, because
//! a day passed. A record whose activation or expiration date took effect
//! gets its new activity; one starting within `prehire` is created,
//! blocked; an account blocked for `delete_after` is deleted, unless more
//! than `max_delete_count` are due at a target, which holds them all.

use chrono::NaiveDate;

use super::{PlanOptions, PlannedAction, SourceRules, TargetInfo, record_key};
use crate::diff;
use crate::ingest::record::RecordKind;
use crate::model::ActionKind;
use crate::projection::Fields;
use crate::safety::{self, Held};
use crate::store::{
    Commit, EntryWrite, OutboxChange, OutboxItem, Store, StoreError, StoredEntry, TargetWrites,
};

/// Records of a target whose activation or expiration date took effect in
/// `(since, today]`: their desired activity changed without a new file.
pub fn date_changes(
    store: &Store,
    target: &str,
    kind: RecordKind,
    since: NaiveDate,
    today: NaiveDate,
) -> Result<Vec<String>, StoreError> {
    let mut changed = Vec::new();
    for item in store.entries(target, kind) {
        let (key, entry) = item?;
        if dates_took_effect(&entry.desired, since, today) {
            changed.push(key);
        }
    }
    Ok(changed)
}

fn dates_took_effect(desired: &crate::model::Desired, since: NaiveDate, today: NaiveDate) -> bool {
    let dated = desired.activation.is_some() || desired.expiration.is_some();
    dated && diff::is_active(desired, since) != diff::is_active(desired, today)
}

/// The daily re-plan's actions, the commit that queues them, and the
/// targets whose deletes it held (`max_delete_count`).
#[derive(Debug, Default)]
pub struct DatedPlan {
    pub actions: Vec<(String, PlannedAction)>,
    pub commit: Commit,
    pub held: Vec<Held>,
}

/// The daily re-plan of every target's records, for the days since the
/// last one. `source_rules` gives, per source name, its `create_disabled`
/// and `prehire`.
pub fn plan_dates(
    store: &Store,
    targets: &[TargetInfo],
    source_rules: impl Fn(&str) -> SourceRules,
    since: NaiveDate,
    options: PlanOptions,
) -> Result<DatedPlan, StoreError> {
    let mut dated = DatedPlan::default();
    for target in targets {
        let mut deletes = Vec::new();
        for kind in [RecordKind::Orgs, RecordKind::Users] {
            let mut actions = Vec::new();
            let mut writes = Vec::new();
            let mut reader = store.reader();
            for item in store.stored_entries(&target.name, kind) {
                let (key, stored) = item?;
                let rules = target.lifecycle(source_rules(&stored.entry.source), kind);
                let Some(step) = replan(store, target, kind, &key, &stored, rules, since, options)?
                else {
                    continue;
                };
                if let Some(action) = step.action {
                    let record_key = record_key(target, kind, &key);
                    let fields = reader
                        .desired_fields(&record_key, &target.projector)?
                        .unwrap_or_default();
                    let old = match action {
                        ActionKind::Create => Fields::new(),
                        _ => reader
                            .acked_fields(&record_key, &target.projector)?
                            .unwrap_or_default(),
                    };
                    let planned = PlannedAction {
                        action,
                        kind,
                        ext_id: key.clone(),
                        changes: diff::changes(&old, &fields),
                        deferred: Vec::new(),
                        status: None,
                        reason: None,
                        candidates: Vec::new(),
                    };
                    if action == ActionKind::Delete {
                        deletes.push((planned, step.write));
                        continue;
                    }
                    actions.push(planned);
                }
                writes.push(step.write);
            }
            if kind == RecordKind::Users {
                let due = (
                    target.name.clone(),
                    deletes.len() as u64,
                    target.max_delete_count,
                );
                let held = safety::too_many_deletes(std::slice::from_ref(&due));
                if held.is_empty() {
                    for (planned, write) in deletes.drain(..) {
                        actions.push(planned);
                        writes.push(write);
                    }
                    writes.sort_by(|a, b| a.key.cmp(&b.key));
                }
                dated.held.extend(held);
            }
            dated
                .actions
                .extend(actions.into_iter().map(|a| (target.name.clone(), a)));
            if !writes.is_empty() {
                dated.commit.targets.push(TargetWrites {
                    target: target.name.clone(),
                    kind,
                    // Each entry keeps the source it came from.
                    source: None,
                    writes,
                });
            }
        }
    }
    Ok(dated)
}

/// One record of the daily re-plan: the action it now takes (if any) and
/// the write that queues it (or takes a queued one back).
struct Replanned {
    action: Option<ActionKind>,
    write: EntryWrite,
}

/// What a day changes for one record, if anything: `None` when it is not
/// one of the records a day can change.
#[allow(clippy::too_many_arguments)]
fn replan(
    store: &Store,
    target: &TargetInfo,
    kind: RecordKind,
    key: &str,
    stored: &StoredEntry,
    rules: diff::Lifecycle,
    since: NaiveDate,
    options: PlanOptions,
) -> Result<Option<Replanned>, StoreError> {
    let entry = &stored.entry;
    let mut desired = entry.desired.clone();
    desired.active = diff::is_active(&desired, options.today);
    let acked = entry.acked.as_ref();
    let queued = stored.queued.as_ref().map(|q| q.action);
    let by_dates = dates_took_effect(&entry.desired, since, options.today);
    // A day can also bring a prehire's window or the end of a delete's delay.
    let may_start =
        acked.is_none() && diff::is_prehire(&desired, rules.prehire_days, options.today);
    let may_delete = rules.delete_after_days.is_some_and(|days| {
        acked.is_some_and(|a| !a.active && diff::blocked_days(a, options.today) >= i64::from(days))
            && !desired.active
    });
    if !by_dates && !may_start && !may_delete {
        return Ok(None);
    }
    let deleted = match acked {
        Some(acked) if !acked.active => store.is_deleted(&record_key(target, kind, key))?,
        _ => false,
    };
    let action = diff::decide_at(&desired, acked, deleted, rules, options.today);
    if !by_dates && (action.is_none() || action == queued) {
        return Ok(None);
    }
    let outbox = match action {
        Some(action) => OutboxChange::Put(OutboxItem {
            action,
            queued_at: options.now,
        }),
        None => OutboxChange::Remove,
    };
    Ok(Some(Replanned {
        action,
        write: EntryWrite {
            key: key.to_string(),
            desired,
            outbox,
            acked_fields: None,
            in_snapshot: false,
        },
    }))
}
