//! Writing what targets confirmed: each group of acknowledgements is one
//! log value ([`acklog`](super::acklog)), with the index of the targets'
//! ids, the parked records it releases and the deleted marks it writes or
//! drops in the same batch; folding the log into the targets' groups.

use std::collections::{HashMap, HashSet};

use super::acklog::{self, LoggedAck};
use super::groups::Cursor;
use super::{
    Acked, FEW_PARKED, RecordKey, Store, StoreError, StoredEntry, ambiguous, deleted, encode,
    holders, parked_key,
};
use crate::ingest::record::RecordKind;
use crate::projection::Fields;

/// What an acknowledgement says the target did with the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Confirmed {
    /// It holds the record as sent.
    Holds,
    /// It deleted it.
    Deleted,
}

impl Store {
    /// Records that the target holds `pushed` (the desired hash that was sent);
    /// the record stops waiting unless the desired state moved on meanwhile.
    pub fn acknowledge(
        &self,
        key: &RecordKey,
        acked: &Acked,
        fields: &Fields,
    ) -> Result<(), StoreError> {
        self.acknowledge_many(&[(key.clone(), acked.clone(), fields.clone())])
    }

    /// [`Store::acknowledge`] for several records (a batch the target
    /// confirmed): one log value, written atomically.
    pub fn acknowledge_many(&self, acks: &[(RecordKey, Acked, Fields)]) -> Result<(), StoreError> {
        self.log_acks(acks, Confirmed::Holds)
    }

    /// Records that the target deleted these accounts (`delete_after`):
    /// acknowledged as blocked, with no target id, and marked deleted in
    /// the same batch ([`deleted`]).
    pub fn acknowledge_deleted(
        &self,
        acks: &[(RecordKey, Acked, Fields)],
    ) -> Result<(), StoreError> {
        self.log_acks(acks, Confirmed::Deleted)
    }

    fn log_acks(
        &self,
        acks: &[(RecordKey, Acked, Fields)],
        confirmed: Confirmed,
    ) -> Result<(), StoreError> {
        if acks.is_empty() {
            return Ok(());
        }
        let _writer = self.lock();
        let mut batch = sled::Batch::default();
        let mut logged = Vec::with_capacity(acks.len());
        let mut cursors: HashMap<(&str, RecordKind), Cursor<'_>> = HashMap::new();
        // Parked keys are looked up once per target and kind when they are
        // few (the usual case: a record is not sent while parked), rather
        // than read for each record.
        let mut few_parked: HashMap<(&str, RecordKind), Option<HashSet<String>>> = HashMap::new();
        let mut marks = deleted::MarkChanges::default();
        let mut holders = holders::HolderChanges::default();
        // Looked up in key order (each group once); logged in that order too,
        // a record confirmed twice keeping its later confirmation last.
        let mut sorted: Vec<&(RecordKey, Acked, Fields)> = acks.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, acked, fields) in sorted {
            let cursor = cursors
                .entry((key.target.as_str(), key.kind))
                .or_insert_with(|| Cursor::new(self.entries_map(&key.target, key.kind)));
            let Some(stored) = cursor.get::<StoredEntry>(&key.key)? else {
                return Err(StoreError::Corrupt {
                    key: format!("{}/{}/{}", key.target, key.kind, key.key),
                    reason: "acknowledged a record that has no entry".into(),
                });
            };
            let fields = if acked.hash == stored.entry.desired.hash {
                None
            } else {
                Some(encode(fields)?)
            };
            let held = match self.lock_overlay().acks.get(key) {
                Some(logged) => logged.acked.target_id.clone(),
                None => stored.entry.acked.and_then(|acked| acked.target_id),
            };
            let before = holders.before(key, held);
            holders.note(self, key, before, acked.target_id.as_ref())?;
            logged.push(LoggedAck {
                target: key.target.clone(),
                kind: key.kind,
                key: key.key.clone(),
                acked: acked.clone(),
                fields,
            });
            let parked = match few_parked.entry((key.target.as_str(), key.kind)) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(unknown) => {
                    unknown.insert(self.parked_keys_up_to(&key.target, key.kind, FEW_PARKED)?)
                }
            };
            let is_parked = match parked {
                Some(keys) => keys.contains(&key.key),
                None => self.tree.contains_key(parked_key(key))?,
            };
            if is_parked {
                let parked = parked_key(key);
                batch.remove(ambiguous::beside_parked(&parked));
                batch.remove(parked);
            }
            marks.note(
                self,
                key,
                acked.at,
                confirmed == Confirmed::Deleted,
                &mut batch,
            )?;
        }
        holders.write(&mut batch);
        let mut overlay = self.lock_overlay();
        batch.insert(overlay.log_key(), encode(&logged)?);
        self.tree.apply_batch(batch)?;
        for ack in logged {
            overlay.acks.insert(ack.record_key(), ack);
        }
        let fold = overlay.acks.len() >= self.fold_at;
        drop(overlay);
        if fold {
            self.fold()?;
        }
        Ok(())
    }

    /// Writes the logged acknowledgements into the targets' groups and
    /// drops the log, in one batch. The caller holds the writer lock.
    pub(super) fn fold(&self) -> Result<(), StoreError> {
        let mut overlay = self.lock_overlay();
        if overlay.acks.is_empty() {
            return Ok(());
        }
        let mut by_map: HashMap<(&str, RecordKind), Vec<(&str, &LoggedAck)>> = HashMap::new();
        for (key, ack) in &overlay.acks {
            by_map
                .entry((key.target.as_str(), key.kind))
                .or_default()
                .push((key.key.as_str(), ack));
        }
        let mut batch = sled::Batch::default();
        for ((target, kind), mut acks) in by_map {
            acks.sort_unstable_by(|a, b| a.0.cmp(b.0));
            self.entries_map(target, kind).merge(
                &mut batch,
                &acks,
                |_, current: Option<StoredEntry>, ack| {
                    Ok(current.map(|mut stored| {
                        stored.apply_ack(ack);
                        stored
                    }))
                },
            )?;
        }
        for key in self.tree.scan_prefix(acklog::LOG_PREFIX).keys() {
            batch.remove(key?);
        }
        self.tree.apply_batch(batch)?;
        overlay.acks.clear();
        Ok(())
    }
}
