//! Records parked at plan time (a template or scope expression failed on
//! them), and those a later file releases: both go into the commit, so that
//! they are applied with it, and into the plan like records parked at push.

use std::collections::HashSet;

use super::{Ordered, PlannedAction, Subject, TargetInfo, TargetPlan, record_key};
use crate::ingest::record::RecordKind;
use crate::mapping::PARKED_MAPPING;
use crate::model::{ActionKind, ActionStatus, RecordKey};
use crate::store::{Parked, Store, StoreError};

/// One target's parking while it is planned.
#[derive(Default)]
pub(super) struct Parking {
    /// Records parked at plan time by an earlier file.
    before: HashSet<String>,
    parked: Vec<ParkedNow>,
    released: Vec<String>,
}

struct ParkedNow {
    index: u32,
    key: String,
    action: ActionKind,
    reason: String,
}

impl Parking {
    /// Parked records are few: they are read once per target.
    pub(super) fn load(
        store: &Store,
        target: &str,
        kind: RecordKind,
    ) -> Result<Parking, StoreError> {
        let mut before = HashSet::new();
        for item in store.parked(target, kind) {
            let (key, parked) = item?;
            if parked.reason.starts_with(PARKED_MAPPING) {
                before.insert(key);
            }
        }
        Ok(Parking {
            before,
            ..Parking::default()
        })
    }

    /// A file's record planned: parked now (`park`), or mapped again.
    pub(super) fn note(&mut self, index: u32, key: &str, park: Option<&String>, known: bool) {
        match park {
            Some(reason) => self.parked.push(ParkedNow {
                index,
                key: key.to_string(),
                // What it would have been.
                action: if known {
                    ActionKind::Update
                } else {
                    ActionKind::Create
                },
                reason: reason.clone(),
            }),
            None if self.before.contains(key) => self.released.push(key.to_string()),
            None => {}
        }
    }

    /// A record absent from a full file: whatever it takes (a block) is
    /// not held back by a template that failed on it before.
    pub(super) fn absent(&mut self, key: &str) {
        if self.before.contains(key) {
            self.released.push(key.to_string());
        }
    }

    /// Into the target's plan (counted, the first `detail_limit` listed
    /// with their reason) and its order (a report lists every parked
    /// record); returns what the commit parks and releases.
    pub(super) fn finish(
        self,
        target: &TargetInfo,
        kind: RecordKind,
        plan: &mut TargetPlan,
        order: &mut Vec<Ordered>,
        (now, detail_limit): (i64, usize),
    ) -> (Vec<(RecordKey, Parked)>, Vec<RecordKey>) {
        let mut parked_now = Vec::with_capacity(self.parked.len());
        for (shown, parked) in self.parked.into_iter().enumerate() {
            plan.parked += 1;
            if shown < detail_limit {
                plan.actions.push(PlannedAction {
                    action: parked.action,
                    kind,
                    ext_id: parked.key.clone(),
                    changes: Default::default(),
                    deferred: Vec::new(),
                    status: Some(ActionStatus::Parked),
                    reason: Some(parked.reason.clone()),
                    candidates: Vec::new(),
                });
            }
            order.push(Ordered {
                subject: Subject::Record(parked.index),
                action: parked.action,
                deferred: false,
            });
            parked_now.push((
                record_key(target, kind, &parked.key),
                Parked {
                    action: parked.action,
                    reason: parked.reason,
                    at: now,
                    transient: false,
                },
            ));
        }
        let released = self
            .released
            .iter()
            .map(|key| record_key(target, kind, key))
            .collect();
        (parked_now, released)
    }
}
