//! A plan's detail: the actions in sending order (dependencies first,
//! blocks and deletes last), their counts, and the changed fields of the
//! first of each kind, read from the store as it is before the commit.

use std::collections::BTreeMap;

use super::{
    Found, Ordered, Planned, PlannedAction, SourceInfo, Subject, TargetInfo, TargetPlan, record_key,
};
use crate::diff::{self, Change};
use crate::ingest::record::{Field, Record, RecordKind};
use crate::model::ActionKind;
use crate::projection::Fields;
use crate::store::{Reader, Store, StoreError};

fn reference_fields(kind: RecordKind) -> &'static [Field] {
    match kind {
        RecordKind::Orgs => &[Field::ParentExtId],
        RecordKind::Users => &[Field::ManagerExtId, Field::AltManagerExtId],
    }
}

/// Blocks and deletes send no parent or manager: they go last, in key order.
fn sends_no_references(action: ActionKind) -> bool {
    matches!(action, ActionKind::Block | ActionKind::Delete)
}

/// Orders the actions (dependencies first, blocks last), counts them, and
/// details (changed fields) the first `detail_limit` of each kind.
pub(super) fn detail(
    reader: &mut Reader<'_>,
    source: &SourceInfo,
    target: &TargetInfo,
    mut found: Vec<Found<'_>>,
    detail_limit: usize,
) -> Result<(TargetPlan, Vec<Ordered>), StoreError> {
    // Key order, so that the plan never depends on the order of the file's
    // rows; blocks (which send no references) last.
    found.sort_by(|a, b| {
        (sends_no_references(a.action), &a.key).cmp(&(sends_no_references(b.action), &b.key))
    });
    let sending = found
        .iter()
        .filter(|f| !sends_no_references(f.action))
        .count();
    // The sending part is in key order: a reference is found by its key.
    let sent = &found[..sending];
    let references = diff::References::resolve(
        sent.iter().map(|f| {
            reference_fields(source.kind)
                .iter()
                .filter_map(move |&field| f.record.and_then(|(_, r)| r.get(field)))
        }),
        |key| sent.binary_search_by(|f| f.key.as_str().cmp(key)).ok(),
    );
    let (order, deferred) = diff::order_by_references(&references);
    drop(references);
    let deferred: std::collections::HashSet<usize> =
        deferred.into_iter().map(|i| i as usize).collect();

    let mut plan = TargetPlan::default();
    let mut detailed: BTreeMap<ActionKind, usize> = BTreeMap::new();
    let mut ordered = Vec::with_capacity(found.len());
    let sequence = order
        .into_iter()
        .map(|i| i as usize)
        .chain(sending..found.len());
    for index in sequence {
        let f = &found[index];
        *plan.count_mut(f.action) += 1;
        let is_deferred = deferred.contains(&index);
        let shown = detailed.entry(f.action).or_default();
        if *shown < detail_limit {
            *shown += 1;
            let subject = Subjected {
                key: &f.key,
                action: f.action,
                record: f.record.map(|(_, r)| r),
                deferred: is_deferred,
            };
            plan.actions
                .push(planned_action(reader, source.kind, target, subject, true)?);
        }
        ordered.push(Ordered {
            subject: match f.record {
                Some((index, _)) => Subject::Record(index),
                None => Subject::Absent(f.key.as_str().into()),
            },
            action: f.action,
            deferred: is_deferred,
        });
    }
    Ok((plan, ordered))
}

/// One action with its changed fields (read from the store as it is before
/// the commit) and its deferred references.
/// One action, as [`planned_action`] details it.
struct Subjected<'a> {
    key: &'a str,
    action: ActionKind,
    record: Option<&'a Record>,
    deferred: bool,
}

fn planned_action(
    reader: &mut Reader<'_>,
    kind: RecordKind,
    target: &TargetInfo,
    subject: Subjected<'_>,
    with_changes: bool,
) -> Result<PlannedAction, StoreError> {
    let Subjected {
        key,
        action,
        record,
        deferred,
    } = subject;
    let deferred = if deferred {
        reference_fields(kind)
            .iter()
            .filter(|&&field| record.and_then(|r| r.get(field)).is_some())
            .map(|field| field.name().to_string())
            .collect()
    } else {
        Vec::new()
    };
    Ok(PlannedAction {
        action,
        kind,
        ext_id: key.to_string(),
        changes: if with_changes {
            changes_of(reader, kind, target, key, action, record)?
        } else {
            BTreeMap::new()
        },
        deferred,
        status: None,
        reason: None,
        candidates: Vec::new(),
    })
}

impl Planned {
    /// Every action planned for `target`, in sending order, with its changed
    /// fields when `with_changes` (reading the store for the old values),
    /// given to `each` one at a time (the plan itself keeps only the first
    /// of each kind). `records` are those the plan was made of; the store
    /// must be as it was when planning (before the commit).
    pub fn each_action<E: From<StoreError>>(
        &self,
        store: &Store,
        records: &[Record],
        target: &TargetInfo,
        with_changes: bool,
        mut each: impl FnMut(PlannedAction) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some((_, order)) = self.orders.iter().find(|(name, _)| *name == target.name) else {
            return Ok(());
        };
        let mut reader = store.reader();
        for ordered in order {
            let (key, record) = match &ordered.subject {
                Subject::Record(index) => {
                    let record =
                        records
                            .get(*index as usize)
                            .ok_or_else(|| StoreError::Corrupt {
                                key: format!("record {index}"),
                                reason: "a plan names a record it was not given".into(),
                            })?;
                    (record.key(), Some(record))
                }
                Subject::Absent(key) => (&**key, None),
            };
            let subject = Subjected {
                key,
                action: ordered.action,
                record,
                deferred: ordered.deferred,
            };
            let action = planned_action(&mut reader, self.kind, target, subject, with_changes)?;
            each(action)?;
        }
        Ok(())
    }

    /// The actions planned for one record (by its key) at `target`, with
    /// their changed fields: `plan --person`. Same conditions as
    /// [`Planned::each_action`]; only that record's changes are read.
    pub fn actions_of(
        &self,
        store: &Store,
        records: &[Record],
        target: &TargetInfo,
        wanted: &str,
    ) -> Result<Vec<PlannedAction>, StoreError> {
        let Some((_, order)) = self.orders.iter().find(|(name, _)| *name == target.name) else {
            return Ok(Vec::new());
        };
        let mut reader = store.reader();
        let mut actions = Vec::new();
        for ordered in order {
            let (key, record) = match &ordered.subject {
                Subject::Record(index) => match records.get(*index as usize) {
                    Some(record) => (record.key(), Some(record)),
                    None => continue,
                },
                Subject::Absent(key) => (&**key, None),
            };
            if key != wanted {
                continue;
            }
            let subject = Subjected {
                key,
                action: ordered.action,
                record,
                deferred: ordered.deferred,
            };
            actions.push(planned_action(
                &mut reader,
                self.kind,
                target,
                subject,
                true,
            )?);
        }
        Ok(actions)
    }

    /// How many actions of any kind the plan holds for a target.
    pub fn action_count(&self, target: &str) -> usize {
        self.orders
            .iter()
            .find(|(name, _)| name == target)
            .map_or(0, |(_, order)| order.len())
    }
}

fn changes_of(
    reader: &mut Reader<'_>,
    kind: RecordKind,
    target: &TargetInfo,
    key: &str,
    action: ActionKind,
    record: Option<&Record>,
) -> Result<BTreeMap<String, Change>, StoreError> {
    let key = record_key(target, kind, key);
    let new = match record {
        Some(record) => target.projector.project(record),
        None => reader
            .desired_fields(&key, &target.projector)?
            .unwrap_or_default(),
    };
    let old = if action == ActionKind::Create {
        Fields::new()
    } else {
        reader
            .acked_fields(&key, &target.projector)?
            .unwrap_or_default()
    };
    Ok(diff::changes(&old, &new))
}
