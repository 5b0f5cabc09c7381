//! The accounts a target deleted (`delete_after`):
//! `d\0TARGET\0KIND\0KEY` → unix seconds of the delete.
//!
//! The record's entry stays, acknowledged as blocked with no target id, so
//! that its history and its desired state go on as before. The mark is what
//! tells planning that the account is gone: an inactive record is then
//! never created again (`create_disabled` would), and a rehire is a create,
//! not an unblock. It is written in the batch of the delete's
//! acknowledgement and dropped in the batch of the record's next one (its
//! account created again).

use std::collections::{HashMap, HashSet};

use super::{RecordKey, Store, StoreError, prefix};
use crate::ingest::record::RecordKind;

/// Marks looked up once per target and kind when there are at most this
/// many, rather than read for each acknowledgement.
const FEW_DELETED: usize = 4_096;

fn deleted_key(key: &RecordKey) -> Vec<u8> {
    let mut bytes = prefix(b'd', &key.target, key.kind);
    bytes.extend_from_slice(key.key.as_bytes());
    bytes
}

impl Store {
    /// Whether the target deleted the record's account.
    pub fn is_deleted(&self, key: &RecordKey) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(deleted_key(key))?)
    }

    /// How many accounts of a kind the target deleted.
    pub fn deleted_count(&self, target: &str, kind: RecordKind) -> usize {
        self.tree.scan_prefix(prefix(b'd', target, kind)).count()
    }
}

/// The marks a group of acknowledgements writes and drops.
#[derive(Default)]
pub(super) struct MarkChanges {
    few: HashMap<(String, RecordKind), Option<HashSet<String>>>,
}

impl MarkChanges {
    /// `key` was acknowledged at `at`: deleted, or held again.
    pub(super) fn note(
        &mut self,
        store: &Store,
        key: &RecordKey,
        at: i64,
        deleted: bool,
        batch: &mut sled::Batch,
    ) -> Result<(), StoreError> {
        let mark = deleted_key(key);
        if deleted {
            batch.insert(mark, at.to_be_bytes().to_vec());
            return Ok(());
        }
        let few = match self.few.entry((key.target.clone(), key.kind)) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(unknown) => {
                unknown.insert(store.keys_up_to(b'd', &key.target, key.kind, FEW_DELETED)?)
            }
        };
        let marked = match few {
            Some(keys) => keys.contains(&key.key),
            None => store.tree.contains_key(&mark)?,
        };
        if marked {
            batch.remove(mark);
        }
        Ok(())
    }
}
