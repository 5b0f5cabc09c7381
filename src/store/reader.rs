//! Reading many entries and snapshot records in key order, each group of
//! the store decoded once ([`Reader`]).

use std::collections::HashMap;

use super::groups::Cursor;
use super::{Entry, RecordKey, Store, StoreError, StoredEntry, StoredRecord, decode};
use crate::ingest::record::{Record, RecordKind};
use crate::model::PushStatus;
use crate::projection::{Fields, Projector};

/// Lookups of entries and snapshot records, each map's last group kept
/// decoded: reading records in key order reads each group once.
pub struct Reader<'s> {
    store: &'s Store,
    entries: HashMap<(String, RecordKind), Cursor<'s>>,
    records: HashMap<(String, RecordKind), Cursor<'s>>,
}

impl<'s> Reader<'s> {
    pub(super) fn new(store: &'s Store) -> Reader<'s> {
        Reader {
            store,
            entries: HashMap::new(),
            records: HashMap::new(),
        }
    }

    /// Where a record stands at a target: parked (with the reason), done
    /// (nothing waits), or `None` while it still waits to be sent.
    pub fn push_status(&mut self, key: &RecordKey) -> Result<Option<PushStatus>, StoreError> {
        if let Some(parked) = self.store.parked_item(key)? {
            return Ok(Some(PushStatus::Parked {
                reason: parked.reason,
                candidates: self.store.candidates(key)?,
            }));
        }
        Ok(match self.stored(key)?.and_then(|stored| stored.queued) {
            None => Some(PushStatus::Done),
            Some(_) => None,
        })
    }

    /// Whether the target deleted the record's account ([`Store::is_deleted`]).
    pub fn is_deleted(&self, key: &RecordKey) -> Result<bool, StoreError> {
        self.store.is_deleted(key)
    }

    /// A record's entry at a target, its logged acknowledgement applied.
    pub fn stored(&mut self, key: &RecordKey) -> Result<Option<StoredEntry>, StoreError> {
        let store = self.store;
        let cursor = self
            .entries
            .entry((key.target.clone(), key.kind))
            .or_insert_with(|| Cursor::new(store.entries_map(&key.target, key.kind)));
        let Some(mut stored) = cursor.get::<StoredEntry>(&key.key)? else {
            return Ok(None);
        };
        if let Some(ack) = store.lock_overlay().acks.get(key) {
            stored.apply_ack(ack);
        }
        Ok(Some(stored))
    }

    pub fn entry(&mut self, key: &RecordKey) -> Result<Option<Entry>, StoreError> {
        Ok(self.stored(key)?.map(|stored| stored.entry))
    }

    /// A record of a source's snapshot.
    pub fn record(
        &mut self,
        source: &str,
        kind: RecordKind,
        key: &str,
    ) -> Result<Option<(Record, bool)>, StoreError> {
        let store = self.store;
        let cursor = self
            .records
            .entry((source.to_string(), kind))
            .or_insert_with(|| Cursor::new(store.snapshot_map(source, kind)));
        match cursor.get::<StoredRecord>(key)? {
            Some(stored) => Ok(Some((
                store.schemas.record(&store.tree, &stored)?,
                stored.present,
            ))),
            None => Ok(None),
        }
    }

    fn desired_of(
        &mut self,
        key: &RecordKey,
        stored: &StoredEntry,
        projector: &Projector,
    ) -> Result<Option<Fields>, StoreError> {
        if let Some(bytes) = &stored.desired_fields {
            return decode(key.key.as_bytes(), bytes).map(Some);
        }
        Ok(self
            .record(&stored.entry.source, key.kind, &key.key)?
            .map(|(record, _)| projector.project(&record)))
    }

    /// What the target should hold: the projection of the snapshot record.
    pub fn desired_fields(
        &mut self,
        key: &RecordKey,
        projector: &Projector,
    ) -> Result<Option<Fields>, StoreError> {
        match self.stored(key)? {
            Some(stored) => self.desired_of(key, &stored, projector),
            None => Ok(None),
        }
    }

    /// What the target confirmed holding, when known.
    pub fn acked_fields(
        &mut self,
        key: &RecordKey,
        projector: &Projector,
    ) -> Result<Option<Fields>, StoreError> {
        match self.stored(key)? {
            Some(stored) => self.acked_of(key, &stored, projector),
            None => Ok(None),
        }
    }

    fn acked_of(
        &mut self,
        key: &RecordKey,
        stored: &StoredEntry,
        projector: &Projector,
    ) -> Result<Option<Fields>, StoreError> {
        if let Some(bytes) = &stored.acked_fields {
            return decode(key.key.as_bytes(), bytes).map(Some);
        }
        match &stored.entry.acked {
            Some(acked) if acked.hash == stored.entry.desired.hash => {
                self.desired_of(key, stored, projector)
            }
            _ => Ok(None),
        }
    }

    /// A record's entry with its desired and acknowledged projections (what a push needs).
    pub fn entry_with_fields(
        &mut self,
        key: &RecordKey,
        projector: &Projector,
    ) -> Result<Option<(Entry, Fields, Option<Fields>)>, StoreError> {
        let Some(stored) = self.stored(key)? else {
            return Ok(None);
        };
        let desired = self
            .desired_of(key, &stored, projector)?
            .unwrap_or_default();
        let acked = match (&stored.acked_fields, &stored.entry.acked) {
            (Some(bytes), _) => Some(decode(key.key.as_bytes(), bytes)?),
            (None, Some(acked)) if acked.hash == stored.entry.desired.hash => Some(desired.clone()),
            _ => None,
        };
        Ok(Some((stored.entry, desired, acked)))
    }
}
