//! Older layouts, moved into the current one.
//!
//! Schema 1 (and 0: the same layout before it carried a version) lived in
//! the tree `state`, one key per record and target for each of: the entry
//! (`e`), the desired projection (`d`), the acknowledged projection while it
//! differed (`a`), the outbox item (`o`) and a parked record (`p`), under
//! `PREFIX\0TARGET\0KIND\0KEY`. It kept no source snapshot (projections
//! were stored per target instead), so migrated entries keep their desired
//! projection until their source's next file puts the record in the snapshot.
//!
//! The migration fills the current tree from scratch and marks it done with
//! its schema version, written last; the old tree is dropped only then. A
//! crash at any point leaves the old layout whole, or the new one whole.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::groups::Grouped;
use super::{
    COMMIT_CHUNK, Entry, OutboxItem, SCHEMA_VERSION, SourceState, StoreError, StoredEntry, decode,
    encode, read_version,
};
use crate::ingest::record::RecordKind;

const V1_TREE: &str = "state";

/// Schema 1's source state.
#[derive(Deserialize, Serialize)]
struct SourceStateV1 {
    last_file: String,
    last_sha256: [u8; 32],
    rows: u64,
    at: i64,
}

fn has_tree(db: &sled::Db, name: &str) -> bool {
    db.tree_names()
        .iter()
        .any(|tree| tree.as_ref() == name.as_bytes())
}

/// Moves an older layout's data into `tree` (empty, or half-filled by a
/// migration that was cut short), if there is any.
pub fn from_older_trees(db: &sled::Db, tree: &sled::Tree) -> Result<(), StoreError> {
    if !has_tree(db, V1_TREE) {
        return Ok(());
    }
    let old = db.open_tree(V1_TREE)?;
    if old.is_empty() {
        return Ok(());
    }
    if let Some(found) = read_version(&old)?
        && found > 1
    {
        return Err(StoreError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    tree.clear()?;
    from_v1(&old, tree)
}

/// Drops the trees of older layouts once the current one is complete.
pub fn drop_older_trees(db: &sled::Db) -> Result<(), StoreError> {
    if has_tree(db, V1_TREE) {
        db.drop_tree(V1_TREE)?;
    }
    Ok(())
}

/// Where one map's entries are gathered before being written in groups.
struct Pending {
    target: String,
    kind: RecordKind,
    entries: Vec<(String, StoredEntry)>,
}

fn from_v1(old: &sled::Tree, tree: &sled::Tree) -> Result<(), StoreError> {
    let mut sources: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut pending: Option<Pending> = None;
    for item in old.scan_prefix(b"e\0") {
        let (key, bytes) = item?;
        let Some((target, kind, record)) = split_key(&key) else {
            return Err(StoreError::Corrupt {
                key: String::from_utf8_lossy(&key).replace('\0', "/"),
                reason: "not a schema-1 entry key".into(),
            });
        };
        let entry: Entry = decode(&key, &bytes)?;
        sources
            .entry(entry.source.clone())
            .or_default()
            .insert(target.to_string());
        let other = |tag: u8| {
            let mut other = key.to_vec();
            other[0] = tag;
            other
        };
        let queued: Option<OutboxItem> = match old.get(other(b'o'))? {
            Some(bytes) => Some(decode(&other(b'o'), &bytes)?),
            None => None,
        };
        let stored = StoredEntry {
            entry,
            queued,
            acked_fields: old.get(other(b'a'))?.map(|bytes| bytes.to_vec()),
            desired_fields: old.get(other(b'd'))?.map(|bytes| bytes.to_vec()),
        };
        let same_map = pending
            .as_ref()
            .is_some_and(|p| p.target == target && p.kind == kind);
        if !same_map
            || pending
                .as_ref()
                .is_some_and(|p| p.entries.len() >= COMMIT_CHUNK)
        {
            if let Some(done) = pending.take() {
                write_entries(tree, &done)?;
            }
            pending = Some(Pending {
                target: target.to_string(),
                kind,
                entries: Vec::new(),
            });
        }
        if let Some(pending) = &mut pending {
            pending.entries.push((record.to_string(), stored));
        }
    }
    if let Some(done) = pending.take() {
        write_entries(tree, &done)?;
    }

    let mut batch = sled::Batch::default();
    for prefix in [&b"p\0"[..], b"f\0", b"m\0pending_commit"] {
        for item in old.scan_prefix(prefix) {
            let (key, value) = item?;
            batch.insert(key, value);
        }
    }
    for item in old.scan_prefix(b"s\0") {
        let (key, bytes) = item?;
        let v1: SourceStateV1 = decode(&key, &bytes)?;
        let name = String::from_utf8_lossy(&key[2..]).into_owned();
        let state = SourceState {
            last_file: v1.last_file,
            last_sha256: v1.last_sha256,
            rows: v1.rows,
            at: v1.at,
            targets: sources
                .get(&name)
                .map(|targets| targets.iter().cloned().collect())
                .unwrap_or_default(),
        };
        batch.insert(key, encode(&state)?);
    }
    tree.apply_batch(batch)?;
    Ok(())
}

fn write_entries(tree: &sled::Tree, pending: &Pending) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    let changes: Vec<(&str, &StoredEntry)> = pending
        .entries
        .iter()
        .map(|(key, stored)| (key.as_str(), stored))
        .collect();
    Grouped::new(tree, super::prefix(b't', &pending.target, pending.kind)).merge(
        &mut batch,
        &changes,
        |_, _: Option<StoredEntry>, stored| Ok(Some((*stored).clone())),
    )?;
    tree.apply_batch(batch)?;
    Ok(())
}

/// `e\0TARGET\0KIND\0KEY` → its parts.
fn split_key(key: &[u8]) -> Option<(&str, RecordKind, &str)> {
    let rest = key.strip_prefix(b"e\0")?;
    let mut parts = rest.splitn(3, |&b| b == 0);
    let target = std::str::from_utf8(parts.next()?).ok()?;
    let kind = match parts.next()? {
        b"users" => RecordKind::Users,
        b"orgs" => RecordKind::Orgs,
        _ => return None,
    };
    let record = std::str::from_utf8(parts.next()?).ok()?;
    Some((target, kind, record))
}
