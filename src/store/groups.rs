//! Sorted maps kept as groups of consecutive records, one sled value per
//! group: a million records cost sled about a thousand keys, so committing,
//! scanning and caching them is a thousand operations, not a million.
//!
//! A group's sled key is the map's prefix followed by its first record key. A
//! record lives in the group with the greatest first key not above its own;
//! a key below every group's goes to the first group. Groups are split when
//! they outgrow [`MAX_GROUP`] and are never merged (a map loses records only
//! all at once, see [`Grouped::clear`]).
//!
//! A group is stored as its records' keys, each with its value encoded on
//! its own: finding one record decodes the keys (borrowed, no copy) and
//! that record's value only, not the whole group.

use std::ops::{Bound, Range};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{StoreError, decode, encode};

/// Records per group once split.
pub const GROUP: usize = 1_024;
/// A group is split above this many records.
const MAX_GROUP: usize = 2 * GROUP;

pub type Group<V> = Vec<(String, V)>;

/// One grouped map: the groups under `prefix` in `tree`.
#[derive(Clone)]
pub struct Grouped<'t> {
    tree: &'t sled::Tree,
    prefix: Vec<u8>,
}

/// A group read from the tree, with the range of keys it covers: its bytes
/// and where each record's key and value lie in them.
struct Located {
    key: sled::IVec,
    bytes: sled::IVec,
    index: Vec<Slot>,
    /// The next group's first record key; `None` for the last group.
    next: Option<String>,
}

impl Located {
    fn find(&self, key: &str) -> Option<usize> {
        self.index
            .binary_search_by(|(k, _)| self.bytes[k.clone()].cmp(key.as_bytes()))
            .ok()
    }

    fn value<V: DeserializeOwned>(&self, at: usize) -> Result<V, StoreError> {
        decode(&self.key, &self.bytes[self.index[at].1.clone()])
    }

    fn records<V: DeserializeOwned>(&self) -> Result<Group<V>, StoreError> {
        (0..self.index.len())
            .map(|at| {
                let key =
                    String::from_utf8_lossy(&self.bytes[self.index[at].0.clone()]).into_owned();
                Ok((key, self.value(at)?))
            })
            .collect()
    }
}

/// Where one record's key and value lie in its group's bytes.
type Slot = (Range<usize>, Range<usize>);

/// Where each record's key and value lie in a group's bytes.
fn index_of(group_key: &[u8], bytes: &[u8]) -> Result<Vec<Slot>, StoreError> {
    let view: Vec<(&str, &[u8])> = decode(group_key, bytes)?;
    let base = bytes.as_ptr() as usize;
    let range = |part: &[u8]| {
        let start = part.as_ptr() as usize - base;
        start..start + part.len()
    };
    Ok(view
        .iter()
        .map(|(key, value)| (range(key.as_bytes()), range(value)))
        .collect())
}

fn encode_group<V: Serialize>(records: &[(String, V)]) -> Result<Vec<u8>, StoreError> {
    let values = records
        .iter()
        .map(|(_, value)| encode(value))
        .collect::<Result<Vec<_>, _>>()?;
    let view: Vec<(&str, &[u8])> = records
        .iter()
        .zip(&values)
        .map(|((key, _), value)| (key.as_str(), value.as_slice()))
        .collect();
    encode(&view)
}

impl<'t> Grouped<'t> {
    pub fn new(tree: &'t sled::Tree, prefix: Vec<u8>) -> Grouped<'t> {
        Grouped { tree, prefix }
    }

    fn group_key(&self, first: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + first.len());
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(first.as_bytes());
        key
    }

    fn first_of(&self, group_key: &[u8]) -> String {
        String::from_utf8_lossy(&group_key[self.prefix.len()..]).into_owned()
    }

    /// The group that holds (or would hold) `key`, if the map has any group.
    fn locate(&self, key: &str) -> Result<Option<Located>, StoreError> {
        let probe = self.group_key(key);
        let found = match self
            .tree
            .range::<&[u8], _>((
                Bound::Included(self.prefix.as_slice()),
                Bound::Included(&probe[..]),
            ))
            .next_back()
        {
            Some(found) => Some(found?),
            None => self.tree.scan_prefix(&self.prefix).next().transpose()?,
        };
        let Some((group_key, bytes)) = found else {
            return Ok(None);
        };
        let index = index_of(&group_key, &bytes)?;
        let next = match self
            .tree
            .range::<&[u8], _>((Bound::Excluded(&group_key[..]), Bound::Unbounded))
            .next()
        {
            Some(item) => {
                let (next_key, _) = item?;
                next_key
                    .starts_with(&self.prefix)
                    .then(|| self.first_of(&next_key))
            }
            None => None,
        };
        Ok(Some(Located {
            key: group_key,
            bytes,
            index,
            next,
        }))
    }

    /// One record (prefer a [`Cursor`] for many).
    pub fn get<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>, StoreError> {
        let Some(located) = self.locate(key)? else {
            return Ok(None);
        };
        located.find(key).map(|at| located.value(at)).transpose()
    }

    /// Every record, in key order, one group decoded at a time.
    pub fn iter<V: DeserializeOwned + 't>(
        &self,
    ) -> impl Iterator<Item = Result<(String, V), StoreError>> + use<'t, V> {
        self.tree.scan_prefix(&self.prefix).flat_map(
            |item| -> Box<dyn Iterator<Item = Result<(String, V), StoreError>>> {
                match item {
                    Ok((key, bytes)) => match decode_group::<V>(&key, &bytes) {
                        Ok(records) => Box::new(records.into_iter().map(Ok)),
                        Err(error) => Box::new(std::iter::once(Err(error))),
                    },
                    Err(error) => Box::new(std::iter::once(Err(error.into()))),
                }
            },
        )
    }

    /// Whether the map holds no group at all.
    pub fn is_empty(&self) -> bool {
        self.tree.scan_prefix(&self.prefix).next().is_none()
    }

    /// Adds to `batch` the groups that `changes` (sorted by key, each key
    /// once) turn the map into: `apply` gets a record's current value, if
    /// any, and returns its new one (`None` removes it). Reads the tree as it
    /// is, so the batch must be applied before the next call for this map.
    pub fn merge<C, V: Serialize + DeserializeOwned>(
        &self,
        batch: &mut sled::Batch,
        changes: &[(&str, C)],
        mut apply: impl FnMut(&str, Option<V>, &C) -> Result<Option<V>, StoreError>,
    ) -> Result<(), StoreError> {
        let mut start = 0;
        while start < changes.len() {
            let (old_key, records, next) = match self.locate(changes[start].0)? {
                Some(located) => {
                    let records = located.records()?;
                    (Some(located.key), records, located.next)
                }
                None => (None, Vec::new(), None),
            };
            let end = start
                + changes[start..]
                    .partition_point(|(key, _)| next.as_deref().is_none_or(|next| *key < next));
            let merged = merge_sorted(records, &changes[start..end], &mut apply)?;
            if let Some(old_key) = old_key {
                batch.remove(old_key);
            }
            for piece in split(merged) {
                batch.insert(self.group_key(&piece[0].0), encode_group(&piece)?);
            }
            start = end;
        }
        Ok(())
    }

    /// Adds the removal of every group of the map to `batch`; returns how many records it held.
    pub fn clear(&self, batch: &mut sled::Batch) -> Result<usize, StoreError> {
        let mut count = 0;
        for item in self.tree.scan_prefix(&self.prefix) {
            let (key, bytes) = item?;
            count += index_of(&key, &bytes)?.len();
            batch.remove(key);
        }
        Ok(count)
    }
}

/// A whole group, every value decoded.
fn decode_group<V: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<Group<V>, StoreError> {
    let view: Vec<(&str, &[u8])> = decode(key, bytes)?;
    view.into_iter()
        .map(|(record, value)| Ok((record.to_string(), decode(key, value)?)))
        .collect()
}

fn merge_sorted<C, V>(
    records: Group<V>,
    changes: &[(&str, C)],
    apply: &mut impl FnMut(&str, Option<V>, &C) -> Result<Option<V>, StoreError>,
) -> Result<Group<V>, StoreError> {
    let mut merged = Vec::with_capacity(records.len() + changes.len());
    let mut records = records.into_iter().peekable();
    for (key, change) in changes {
        while let Some(record) = records.next_if(|(k, _)| k.as_str() < *key) {
            merged.push(record);
        }
        let current = records.next_if(|(k, _)| k.as_str() == *key).map(|(_, v)| v);
        if let Some(value) = apply(key, current, change)? {
            merged.push((key.to_string(), value));
        }
    }
    merged.extend(records);
    Ok(merged)
}

/// Cuts a group that outgrew [`MAX_GROUP`] into pieces of about [`GROUP`].
fn split<V>(records: Group<V>) -> Vec<Group<V>> {
    if records.is_empty() {
        return Vec::new();
    }
    if records.len() <= MAX_GROUP {
        return vec![records];
    }
    let pieces = records.len().div_ceil(GROUP);
    let size = records.len().div_ceil(pieces);
    let mut out = Vec::with_capacity(pieces);
    let mut records = records.into_iter();
    loop {
        let piece: Group<V> = records.by_ref().take(size).collect();
        if piece.is_empty() {
            break;
        }
        out.push(piece);
    }
    out
}

/// Reads records of one map in (mostly) ascending key order, keeping the
/// last group read: a run of neighbouring keys costs one group read.
pub struct Cursor<'t> {
    grouped: Grouped<'t>,
    current: Option<Located>,
}

impl<'t> Cursor<'t> {
    pub fn new(grouped: Grouped<'t>) -> Cursor<'t> {
        Cursor {
            grouped,
            current: None,
        }
    }

    pub fn get<V: DeserializeOwned>(&mut self, key: &str) -> Result<Option<V>, StoreError> {
        let covered = self.current.as_ref().is_some_and(|located| {
            located.key[self.grouped.prefix.len()..] <= *key.as_bytes()
                && located.next.as_deref().is_none_or(|next| key < next)
        });
        if !covered {
            self.current = self.grouped.locate(key)?;
        }
        match &self.current {
            Some(located) => located.find(key).map(|at| located.value(at)).transpose(),
            None => Ok(None),
        }
    }
}
