//! Which record holds an account of a target: the targets' own ids,
//! indexed (`i\0TARGET\0KIND\0TARGET_ID` → the record's key), so that a
//! connector about to adopt an account can ask who holds it with one read,
//! instead of a scan of the target's records for every candidate.
//!
//! The index is written with the acknowledgements that give or change a
//! target id (in the same batch), rebuilt from the entries by the migration
//! from schema 2, and every answer is checked against the record's entry:
//! a stale line can only ever say "nobody".

use std::collections::HashMap;

use super::acklog::Overlay;
use super::groups::Grouped;
use super::{COMMIT_CHUNK, RecordKey, Store, StoreError, StoredEntry, prefix};
use crate::ingest::record::RecordKind;

/// `i\0TARGET\0KIND\0TARGET_ID`.
pub(super) fn holder_key(target: &str, kind: RecordKind, target_id: &str) -> Vec<u8> {
    let mut bytes = prefix(b'i', target, kind);
    bytes.extend_from_slice(target_id.as_bytes());
    bytes
}

/// The index lines a group of acknowledgements changes: the ids records
/// lost, then the ids they were given (in that order in a batch, so that an
/// id passing from one record to another in the same group ends up indexed).
#[derive(Default)]
pub(super) struct HolderChanges {
    removed: Vec<Vec<u8>>,
    added: Vec<(Vec<u8>, Vec<u8>)>,
    /// The target id each record of the group holds once its earlier
    /// acknowledgements in the group are counted.
    latest: HashMap<RecordKey, Option<String>>,
}

impl HolderChanges {
    /// The target id `key` held before this acknowledgement, given what the
    /// store says (`stored`) when the group has not changed it already.
    pub(super) fn before(&self, key: &RecordKey, stored: Option<String>) -> Option<String> {
        self.latest.get(key).cloned().unwrap_or(stored)
    }

    /// `key` goes from `before` to `after`.
    pub(super) fn note(
        &mut self,
        store: &Store,
        key: &RecordKey,
        before: Option<String>,
        after: Option<&String>,
    ) -> Result<(), StoreError> {
        if before.as_ref() == after {
            return Ok(());
        }
        if let Some(old) = &before {
            let line = holder_key(&key.target, key.kind, old);
            // Only its own line: another record may hold that id since.
            if store.tree.get(&line)?.as_deref() == Some(key.key.as_bytes()) {
                self.removed.push(line);
            }
        }
        if let Some(new) = after {
            self.added.push((
                holder_key(&key.target, key.kind, new),
                key.key.as_bytes().to_vec(),
            ));
        }
        self.latest.insert(key.clone(), after.cloned());
        Ok(())
    }

    pub(super) fn write(self, batch: &mut sled::Batch) {
        for line in self.removed {
            batch.remove(line);
        }
        for (line, key) in self.added {
            batch.insert(line, key);
        }
    }
}

impl Store {
    /// The key of the record of `kind` whose acknowledged target id at
    /// `target` is `target_id`, if one holds it.
    pub fn holder(
        &self,
        target: &str,
        kind: RecordKind,
        target_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some(bytes) = self.tree.get(holder_key(target, kind, target_id))? else {
            return Ok(None);
        };
        let key = RecordKey {
            target: target.to_string(),
            kind,
            key: String::from_utf8_lossy(&bytes).into_owned(),
        };
        let holds = self
            .entry(&key)?
            .and_then(|entry| entry.acked)
            .and_then(|acked| acked.target_id)
            .is_some_and(|id| id == target_id);
        Ok(holds.then_some(key.key))
    }
}

/// Fills the index from every entry (and from the acknowledgements logged
/// and not yet folded, which are the later word), in batches. Done again
/// from the start when cut short: each line is the same every time.
pub(super) fn index_all(tree: &sled::Tree) -> Result<(), StoreError> {
    let overlay = Overlay::load(tree)?;
    let mut batch = sled::Batch::default();
    let mut lines = 0;
    for target in super::targets_in(tree)? {
        for kind in [RecordKind::Orgs, RecordKind::Users] {
            let entries = Grouped::new(tree, prefix(b't', &target, kind));
            for item in entries.iter::<StoredEntry>() {
                let (key, mut stored) = item?;
                let record = RecordKey {
                    target: target.clone(),
                    kind,
                    key,
                };
                if let Some(ack) = overlay.acks.get(&record) {
                    stored.apply_ack(ack);
                }
                let Some(id) = stored.entry.acked.and_then(|acked| acked.target_id) else {
                    continue;
                };
                batch.insert(
                    holder_key(&target, kind, &id),
                    record.key.as_bytes().to_vec(),
                );
                lines += 1;
                if lines % COMMIT_CHUNK == 0 {
                    tree.apply_batch(std::mem::take(&mut batch))?;
                }
            }
        }
    }
    tree.apply_batch(batch)?;
    Ok(())
}
