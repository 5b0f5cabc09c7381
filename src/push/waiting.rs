//! What a drain sends: the records of a kind waiting for a target, held
//! flat (keys back to back, references as indices), and their push items
//! read from the store page by page.

use std::collections::BTreeMap;

use crate::connectors::PushItem;
use crate::diff;
use crate::ingest::record::{Field, RecordKind};
use crate::model::{ActionKind, RecordKey};
use crate::projection::Projector;
use crate::store::{Store, StoreError};

use super::{PushTarget, References};

/// The records of a kind waiting for a target, in key order, with what
/// ordering needs and no more: keys back to back, references as indices
/// into the list (a million waiting records take tens of megabytes).
#[derive(Default)]
pub(super) struct WaitingList {
    pub(super) keys: Strings,
    pub(super) actions: Vec<ActionKind>,
    pub(super) references: diff::References,
}

/// Strings back to back, one allocation for all.
#[derive(Default)]
pub(super) struct Strings {
    text: String,
    ends: Vec<u32>,
}

impl Strings {
    pub(super) fn push(&mut self, value: &str) {
        self.text.push_str(value);
        self.ends.push(self.text.len() as u32);
    }

    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(super) fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }
}

impl WaitingList {
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.keys.len() == 0
    }

    pub(super) fn key(&self, i: usize) -> &str {
        self.keys.get(i)
    }

    pub(super) fn action(&self, i: usize) -> ActionKind {
        self.actions[i]
    }

    /// Where a key is in the list (keys are in order).
    pub(super) fn index_of(&self, key: &str) -> Option<usize> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = (low + high) / 2;
            match self.key(middle).cmp(key) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Some(middle),
            }
        }
        None
    }

    pub(super) fn record_key(&self, i: usize, target: &PushTarget, kind: RecordKind) -> RecordKey {
        RecordKey {
            target: target.name.clone(),
            kind,
            key: self.key(i).to_string(),
        }
    }
}

/// The ids a waiting record refers to, as read, and the other external
/// id it goes by (when the target maps one that differs from its key).
pub(super) fn note_references<'v>(
    key: &str,
    value: impl Fn(&(String, Field)) -> Option<&'v str>,
    references: &References,
    ids: &mut Strings,
    other_id: &mut Option<String>,
) {
    *other_id = references
        .own_id
        .as_ref()
        .and_then(&value)
        .filter(|id| *id != key)
        .map(str::to_string);
    for id in references.fields.iter().filter_map(&value) {
        if !id.is_empty() {
            ids.push(id);
        }
    }
}

/// The records of a kind waiting for a target, parked ones aside (and its
/// deletes, unless `deletes`): keys and references only (the record is
/// read only where references are mapped).
pub(super) fn waiting(
    store: &Store,
    target: &str,
    kind: RecordKind,
    references: &References,
    deletes: bool,
) -> Result<WaitingList, StoreError> {
    let parked = store.parked_keys(target, kind)?;
    // A commit cut short left part of its file's records in the outbox:
    // they wait until the file is taken again and the commit is whole.
    let cut_short = store.pending_commit()?.map(|pending| pending.source);
    let mut held_back = 0u64;
    let mut deletes_held = 0u64;
    let mut list = WaitingList::default();
    // The ids each record refers to, resolved to indices once every key is known.
    let mut ids = Strings::default();
    let mut ids_end: Vec<u32> = Vec::new();
    let mut aliases: Vec<(String, u32)> = Vec::new();
    let mut reader = store.reader();
    let mapped = !(references.fields.is_empty() && references.own_id.is_none());
    for item in store.stored_entries(target, kind) {
        let (key, stored) = item?;
        let Some(queued) = stored.queued else {
            continue;
        };
        if parked.contains(&key) {
            continue;
        }
        if queued.action == ActionKind::Delete && !deletes {
            deletes_held += 1;
            continue;
        }
        if cut_short.as_deref() == Some(stored.entry.source.as_str()) {
            held_back += 1;
            continue;
        }
        let mut other_id = None;
        if !mapped {
            // Nothing to order by.
        } else if let Some(bytes) = &stored.desired_fields {
            // Migrated from schema 1: the projection itself is stored.
            let fields: BTreeMap<&str, &str> =
                postcard::from_bytes(bytes).map_err(|error| StoreError::Corrupt {
                    key: format!("{target}/{kind}/{key}"),
                    reason: error.to_string(),
                })?;
            let value = |(name, _): &(String, Field)| fields.get(name.as_str()).copied();
            note_references(&key, value, references, &mut ids, &mut other_id);
        } else if let Some((record, _)) = reader.record(&stored.entry.source, kind, &key)? {
            let value = |(_, field): &(String, Field)| record.get(*field);
            note_references(&key, value, references, &mut ids, &mut other_id);
        }
        if let Some(id) = other_id {
            aliases.push((id, list.len() as u32));
        }
        ids_end.push(ids.len() as u32);
        list.keys.push(&key);
        list.actions.push(queued.action);
    }
    // A reference names a record by its key, or by the other id it goes by.
    aliases.sort_unstable();
    let index_of = |id: &str| {
        aliases
            .binary_search_by(|(alias, _)| alias.as_str().cmp(id))
            .ok()
            .map(|at| aliases[at].1 as usize)
            .or_else(|| list.index_of(id))
    };
    let per_record = (0..ids_end.len()).map(|i| {
        let start = if i == 0 { 0 } else { ids_end[i - 1] as usize };
        (start..ids_end[i] as usize).map(|at| ids.get(at))
    });
    list.references = diff::References::resolve(per_record, index_of);
    if deletes_held > 0 {
        tracing::warn!(target, %kind, records = deletes_held,
            "deletes wait unsent: the target no longer has delete_after; the next plan (a file, or the daily re-plan) takes them back");
    }
    if held_back > 0 {
        tracing::info!(target, %kind, records = held_back, source = cut_short.as_deref().unwrap_or(""),
            "records of a commit cut short wait until its file is taken again");
    }
    Ok(list)
}

/// The push items of some waiting records, read from the store.
pub(super) fn load(
    store: &Store,
    target: &str,
    projector: &Projector,
    kind: RecordKind,
    page: &[(String, ActionKind)],
) -> Result<Vec<PushItem>, StoreError> {
    // Read in key order (each group of the store once), sent in the page's order.
    let mut by_key: Vec<usize> = (0..page.len()).collect();
    by_key.sort_by(|&a, &b| page[a].0.cmp(&page[b].0));
    let mut items: Vec<Option<PushItem>> = (0..page.len()).map(|_| None).collect();
    let mut reader = store.reader();
    for index in by_key {
        let (key, action) = &page[index];
        let key = RecordKey {
            target: target.to_string(),
            kind,
            key: key.clone(),
        };
        let Some((entry, fields, acked_fields)) = reader.entry_with_fields(&key, projector)? else {
            continue; // gone since it was listed
        };
        items[index] = Some(PushItem {
            fields,
            acked_fields,
            hash: entry.desired.hash,
            active: entry.desired.active,
            target_id: entry.acked.and_then(|a| a.target_id),
            action: *action,
            key,
        });
    }
    Ok(items.into_iter().flatten().collect())
}
