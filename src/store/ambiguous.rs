//! The accounts a target holds that could each be a parked record's
//! (`c\0TARGET\0KIND\0KEY` → the candidates): kept beside the record's
//! [`super::Parked`], whose layout stays as older stores have it, and gone
//! with it (an acknowledgement, `retry`, the next file, `forget-target`).

use super::{Parked, RecordKey, Store, StoreError, decode, encode, parked_key, prefix};
use crate::ingest::record::RecordKind;
use crate::model::Candidate;

const TAG: u8 = b'c';

/// `c\0TARGET\0KIND\0KEY`.
fn candidates_key(key: &RecordKey) -> Vec<u8> {
    let mut bytes = prefix(TAG, &key.target, key.kind);
    bytes.extend_from_slice(key.key.as_bytes());
    bytes
}

/// The candidates' key of the record a parked key (`p\0...`) is for.
pub(super) fn beside_parked(parked: &[u8]) -> Vec<u8> {
    let mut bytes = parked.to_vec();
    if let Some(tag) = bytes.first_mut() {
        *tag = TAG;
    }
    bytes
}

impl Store {
    /// Parks a record the target holds several accounts for, with them.
    pub fn park_ambiguous(
        &self,
        key: &RecordKey,
        parked: &Parked,
        candidates: &[Candidate],
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(parked_key(key), encode(parked)?);
        batch.insert(candidates_key(key), encode(&candidates)?);
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// The accounts that could be a parked record's; empty when it is not
    /// parked as ambiguous.
    pub fn candidates(&self, key: &RecordKey) -> Result<Vec<Candidate>, StoreError> {
        Ok(self
            .get::<Vec<Candidate>>(&candidates_key(key))?
            .unwrap_or_default())
    }

    /// The records of a kind parked as ambiguous at a target, in key order,
    /// with their candidates.
    pub fn ambiguous(
        &self,
        target: &str,
        kind: RecordKind,
    ) -> impl Iterator<Item = Result<(String, Vec<Candidate>), StoreError>> + '_ {
        let prefix = prefix(TAG, target, kind);
        let skip = prefix.len();
        self.tree.scan_prefix(prefix).map(move |item| {
            let (key, value) = item?;
            let record_key = String::from_utf8_lossy(&key[skip..]).into_owned();
            Ok((record_key, decode(&key, &value)?))
        })
    }
}
