//! Applying a commit: the snapshot's and the targets' changes merged into
//! their groups, in chunks of consecutive keys for a big file.

use super::snapshot::{self, StoredRecord};
use super::{
    COMMIT_CHUNK, Commit, Entry, EntryWrite, OutboxChange, PENDING_KEY, PendingCommit,
    SnapshotWrite, Store, StoreError, StoredEntry, TargetWrites, ambiguous, encode, file_key,
    parked_key, source_key,
};
use crate::field_changes::FieldTally;
use crate::ingest::record::{Record, RecordKind};
use crate::model::ActionKind;

impl Store {
    /// What storing a file's records changes in its source's snapshot:
    /// `by_key` lists indices into `records` in key order; a full file's
    /// absence marks the records it lacks absent. `tally` counts the
    /// source's records and, field by field, those the file changes.
    pub fn snapshot_write(
        &self,
        source: &str,
        kind: RecordKind,
        records: &[Record],
        by_key: &[u32],
        full: bool,
        tally: &mut FieldTally,
    ) -> Result<SnapshotWrite, StoreError> {
        let mut write = SnapshotWrite {
            source: source.to_string(),
            kind,
            records: Vec::new(),
            now_absent: Vec::new(),
        };
        let mut encoder = snapshot::Encoder::default();
        let mut stored = self
            .snapshot_map(source, kind)
            .iter::<StoredRecord>()
            .peekable();
        for &index in by_key {
            let Some(record) = records.get(index as usize) else {
                continue;
            };
            let key = record.key();
            let mut same = false;
            loop {
                match stored.peek() {
                    Some(Ok((stored_key, _))) if stored_key.as_str() < key => {
                        if let Some(Ok((stored_key, old))) = stored.next()
                            && old.present
                        {
                            tally.held_before();
                            if full {
                                write.now_absent.push(stored_key);
                            }
                        }
                    }
                    Some(Ok((stored_key, old))) if stored_key == key => {
                        same = encoder.same(record, old)?;
                        if old.present {
                            tally.held_before();
                            if !same {
                                tally.compare(&self.schemas.record(&self.tree, old)?, record);
                            }
                        }
                        stored.next();
                        break;
                    }
                    Some(Err(_)) => {
                        if let Some(Err(error)) = stored.next() {
                            return Err(error);
                        }
                    }
                    _ => break,
                }
            }
            if !same {
                write.records.push(index);
            }
        }
        // The rest of the snapshot: absent from a full file, kept by a delta one.
        for item in stored {
            let (stored_key, old) = item?;
            if old.present {
                tally.held_before();
                if full {
                    write.now_absent.push(stored_key);
                }
            }
        }
        Ok(write)
    }

    /// Applies a commit and flushes it to disk before returning. `records`
    /// are those the commit's snapshot indices point into.
    ///
    /// Up to [`COMMIT_CHUNK`] records, the commit is one atomic batch: a crash
    /// leaves the store as before or as after. A bigger commit (a first
    /// import) is written in chunks of consecutive keys, each with every
    /// change of those keys (snapshot and every target) so that a record is
    /// always whole, between a `pending` marker and the batch that records
    /// the file. A crash in between leaves [`Store::pending_commit`] set:
    /// planning the same file again completes it, since the records already
    /// written plan as unchanged.
    pub fn commit(&self, commit: &Commit, records: &[Record]) -> Result<(), StoreError> {
        let _writer = self.lock();
        self.fold()?;
        let chunked = commit.len() > COMMIT_CHUNK;
        if chunked && let Some((sha256, seen)) = &commit.file {
            let pending = PendingCommit {
                source: seen.source.clone(),
                file: seen.name.clone(),
                sha256: *sha256,
            };
            self.tree.insert(PENDING_KEY, encode(&pending)?)?;
            self.db.flush()?;
        }
        let mut encoder = snapshot::Encoder::default();
        let snapshot_changes = match &commit.snapshot {
            Some(snapshot) => snapshot_changes(snapshot, records)?,
            None => Vec::new(),
        };
        let mut target_changes: Vec<(&TargetWrites, Vec<(&str, &EntryWrite)>)> = commit
            .targets
            .iter()
            .map(|writes| {
                let mut changes: Vec<(&str, &EntryWrite)> =
                    writes.writes.iter().map(|w| (w.key.as_str(), w)).collect();
                if !changes.is_sorted_by(|a, b| a.0 < b.0) {
                    changes.sort_by(|a, b| a.0.cmp(b.0));
                    changes.dedup_by(|a, b| a.0 == b.0);
                }
                (writes, changes)
            })
            .collect();
        let bounds = chunk_bounds(
            std::iter::once(snapshot_changes.iter().map(|c| c.0).collect::<Vec<_>>())
                .chain(
                    target_changes
                        .iter()
                        .map(|(_, c)| c.iter().map(|c| c.0).collect()),
                )
                .max_by_key(Vec::len)
                .unwrap_or_default(),
        );
        let mut schemas_written = 0;
        let progress = crate::progress::Progress::new(
            match &commit.file {
                Some((_, seen)) => format!("committing {}", seen.name),
                None => "committing".to_string(),
            },
            commit.len() as u64,
        );
        for (index, (low, high)) in bounds.iter().enumerate() {
            let (low, high) = (low.as_deref(), high.as_deref());
            let mut batch = sled::Batch::default();
            if let Some(snapshot) = &commit.snapshot {
                let chunk = range_of(&snapshot_changes, low, high);
                let mut stored = Vec::with_capacity(chunk.len());
                for (key, change) in chunk {
                    let record = match change {
                        SnapshotChange::Record(index) => {
                            let record = records.get(*index as usize).ok_or_else(|| {
                                StoreError::Corrupt {
                                    key: key.to_string(),
                                    reason: "a commit names a record it was not given".into(),
                                }
                            })?;
                            Some(encoder.encode(record, true)?)
                        }
                        SnapshotChange::Absent => None,
                    };
                    stored.push((*key, record));
                }
                for (id, bytes) in &encoder.new_schemas[schemas_written..] {
                    batch.insert(snapshot::schema_key(*id), bytes.as_slice());
                }
                schemas_written = encoder.new_schemas.len();
                self.snapshot_map(&snapshot.source, snapshot.kind).merge(
                    &mut batch,
                    &stored,
                    |_, current: Option<StoredRecord>, new| {
                        Ok(match new {
                            Some(record) => Some(record.clone()),
                            None => current.map(|record| StoredRecord {
                                present: false,
                                ..record
                            }),
                        })
                    },
                )?;
            }
            for (writes, changes) in &mut target_changes {
                let chunk = range_of(changes, low, high);
                let source = writes.source.as_deref();
                self.entries_map(&writes.target, writes.kind).merge(
                    &mut batch,
                    chunk,
                    |_, current, write| Ok(apply_write(current, source, write)),
                )?;
            }
            if !chunked && index + 1 == bounds.len() {
                self.finish_commit(commit, &mut batch)?;
            }
            self.tree.apply_batch(batch)?;
            let written =
                snapshot_changes.len() + target_changes.iter().map(|(_, c)| c.len()).sum::<usize>();
            progress.advance((written / bounds.len().max(1)) as u64);
        }
        progress.finish();
        if chunked {
            let mut last = sled::Batch::default();
            self.finish_commit(commit, &mut last)?;
            self.tree.apply_batch(last)?;
        }
        self.db.flush()?;
        Ok(())
    }

    fn finish_commit(&self, commit: &Commit, batch: &mut sled::Batch) -> Result<(), StoreError> {
        if let Some((sha, seen)) = &commit.file {
            batch.insert(file_key(sha), encode(seen)?);
        }
        if let Some((name, state)) = &commit.source {
            batch.insert(source_key(name), encode(state)?);
        }
        for key in &commit.unparked {
            let parked = parked_key(key);
            batch.remove(ambiguous::beside_parked(&parked));
            batch.remove(parked);
        }
        for (key, parked) in &commit.parked {
            let at = parked_key(key);
            batch.remove(ambiguous::beside_parked(&at));
            batch.insert(at, encode(parked)?);
        }
        batch.remove(PENDING_KEY);
        Ok(())
    }
}

/// A change of one snapshot record.
enum SnapshotChange {
    /// The file's record at this index.
    Record(u32),
    /// Absent from the file: kept, marked absent.
    Absent,
}

fn snapshot_changes<'r>(
    snapshot: &'r SnapshotWrite,
    records: &'r [Record],
) -> Result<Vec<(&'r str, SnapshotChange)>, StoreError> {
    let mut changes = Vec::with_capacity(snapshot.records.len() + snapshot.now_absent.len());
    for &index in &snapshot.records {
        let record = records
            .get(index as usize)
            .ok_or_else(|| StoreError::Corrupt {
                key: format!("record {index}"),
                reason: "a commit names a record it was not given".into(),
            })?;
        changes.push((record.key(), SnapshotChange::Record(index)));
    }
    changes.extend(
        snapshot
            .now_absent
            .iter()
            .map(|key| (key.as_str(), SnapshotChange::Absent)),
    );
    changes.sort_by(|a, b| a.0.cmp(b.0));
    changes.dedup_by(|a, b| a.0 == b.0);
    Ok(changes)
}

/// Key ranges of about [`COMMIT_CHUNK`] keys of the longest list of
/// changes; `None` is open-ended. One range, unbounded, when it is short.
fn chunk_bounds(keys: Vec<&str>) -> Vec<(Option<String>, Option<String>)> {
    let cuts: Vec<String> = keys
        .iter()
        .skip(COMMIT_CHUNK)
        .step_by(COMMIT_CHUNK)
        .map(|key| key.to_string())
        .collect();
    let mut bounds = Vec::with_capacity(cuts.len() + 1);
    let mut low = None;
    for cut in cuts {
        bounds.push((low.take(), Some(cut.clone())));
        low = Some(cut);
    }
    bounds.push((low, None));
    bounds
}

/// The part of sorted `changes` whose keys are in `[low, high)`.
fn range_of<'c, T>(
    changes: &'c [(&'c str, T)],
    low: Option<&str>,
    high: Option<&str>,
) -> &'c [(&'c str, T)] {
    let start = changes.partition_point(|(key, _)| low.is_some_and(|low| *key < low));
    let end = changes.partition_point(|(key, _)| high.is_none_or(|high| *key < high));
    &changes[start..end.max(start)]
}

/// An entry after a commit's change: the acknowledged state is the store's
/// (an acknowledgement may have come since the plan read it). `source`
/// `None` keeps the entry's own; such a change of an entry gone since
/// (forgotten meanwhile) writes nothing.
fn apply_write(
    current: Option<StoredEntry>,
    source: Option<&str>,
    write: &EntryWrite,
) -> Option<StoredEntry> {
    let mut stored = match current {
        Some(current) => current,
        None => StoredEntry {
            entry: Entry {
                source: source?.to_string(),
                desired: write.desired.clone(),
                acked: None,
            },
            queued: None,
            acked_fields: None,
            desired_fields: None,
        },
    };
    let previous_hash = stored.entry.desired.hash;
    let implicit = stored.acked_fields.is_none()
        && stored
            .entry
            .acked
            .as_ref()
            .is_some_and(|acked| acked.hash == previous_hash);
    if implicit && write.desired.hash != previous_hash {
        // The target holds the previous desired projection: keep it apart.
        stored.acked_fields = write.acked_fields.as_ref().map(|fields| fields.0.clone());
    }
    if write.in_snapshot {
        stored.desired_fields = None;
    }
    if let Some(source) = source
        && stored.entry.source != source
    {
        stored.entry.source = source.to_string();
    }
    stored.entry.desired = write.desired.clone();
    match &write.outbox {
        OutboxChange::Put(item) => stored.queued = Some(item.clone()),
        OutboxChange::Remove => stored.queued = None,
        OutboxChange::Keep => {}
    }
    if stored
        .entry
        .acked
        .as_ref()
        .is_some_and(|acked| acked.hash == stored.entry.desired.hash)
    {
        stored.acked_fields = None;
    }
    // A delete waits on an account the target holds as desired (blocked):
    // only its own acknowledgement clears it.
    let deleting = stored
        .queued
        .as_ref()
        .is_some_and(|queued| queued.action == ActionKind::Delete);
    if stored.caught_up() && !deleting {
        stored.queued = None;
    }
    Some(stored)
}
