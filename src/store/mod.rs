//! The state store: one sled database, reached only through this module so
//! that another engine could replace it here alone.
//!
//! Everything lives in one tree, under key prefixes, so that a file's whole
//! commit is one atomic batch:
//!
//! | key | value |
//! |---|---|
//! | `e\0TARGET\0KIND\0KEY` | [`Entry`]: source, desired and acknowledged summaries |
//! | `d\0TARGET\0KIND\0KEY` | desired projection ([`Fields`]) |
//! | `a\0TARGET\0KIND\0KEY` | acknowledged projection ([`Fields`]) |
//! | `o\0TARGET\0KIND\0KEY` | [`OutboxItem`]: still to push |
//! | `p\0TARGET\0KIND\0KEY` | [`Parked`]: a record the target refused, with the reason |
//! | `f\0SHA256` | [`FileSeen`]: a processed file |
//! | `s\0SOURCE` | [`SourceState`]: the last accepted file of a source |
//! | `m\0schema_version` | u32, big-endian |
//! | `m\0pending_commit` | [`PendingCommit`]: a chunked commit under way |
//!
//! Values are postcard-encoded. Names and keys hold no NUL byte (config and
//! ingest refuse them), so the separators are unambiguous.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ingest::record::RecordKind;
pub use crate::model::{Acked, ActionKind, Desired, Entry, RecordKey};
use crate::projection::Fields;

/// Bumped with every change of key or value layout; [`migrate`] moves older stores up.
pub const SCHEMA_VERSION: u32 = 1;

const SCHEMA_KEY: &[u8] = b"m\0schema_version";

/// sled's page cache; its default (1 GiB) would dwarf the rest of the daemon.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    #[error(
        "state store: value under {key} is unreadable ({reason}); restore the state directory from a backup"
    )]
    Corrupt { key: String, reason: String },
    #[error("state store: internal error in a store task: {0}")]
    Task(String),
    #[error(
        "state store has schema {found}, this rostersync knows up to {supported}: it was written by a newer release"
    )]
    NewerSchema { found: u32, supported: u32 },
}

/// A record still to push to a target. What to push is read from the desired
/// state when the push happens, so a newer file supersedes a waiting change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub action: ActionKind,
    /// Unix seconds when it was queued.
    pub queued_at: i64,
}

/// A record set aside for a target: it stays in the outbox, but is not sent
/// again until the next file of its source or `rostersync retry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    pub action: ActionKind,
    pub reason: String,
    /// Unix seconds.
    pub at: i64,
    /// Still failing transiently when the retry budget ran out (vs refused).
    pub transient: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSeen {
    pub source: String,
    pub name: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceState {
    pub last_file: String,
    pub last_sha256: [u8; 32],
    pub rows: u64,
    pub at: i64,
}

impl RecordKey {
    fn encode(&self, prefix: u8) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.target.len() + self.key.len() + 10);
        bytes.extend_from_slice(&[prefix, 0]);
        bytes.extend_from_slice(self.target.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(kind_tag(self.kind));
        bytes.push(0);
        bytes.extend_from_slice(self.key.as_bytes());
        bytes
    }
}

fn kind_tag(kind: RecordKind) -> &'static [u8] {
    match kind {
        RecordKind::Users => b"users",
        RecordKind::Orgs => b"orgs",
    }
}

fn scan_prefix(prefix: u8, target: &str, kind: RecordKind) -> Vec<u8> {
    let mut bytes = RecordKey {
        target: target.to_string(),
        kind,
        key: String::new(),
    }
    .encode(prefix);
    bytes.shrink_to_fit();
    bytes
}

/// A projection already encoded for the store: a commit of a million new
/// records holds these compact bytes, not a million maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFields(Vec<u8>);

impl EncodedFields {
    pub fn new(fields: &Fields) -> Result<EncodedFields, StoreError> {
        encode(fields).map(EncodedFields)
    }
}

/// One record's change in a commit.
#[derive(Debug, Clone)]
pub struct EntryWrite {
    pub key: RecordKey,
    pub entry: Entry,
    /// `None`: the desired projection did not change.
    pub desired_fields: Option<EncodedFields>,
    pub outbox: OutboxChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxChange {
    Put(OutboxItem),
    Remove,
    Keep,
}

/// Everything one accepted file changes, applied at once.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    pub writes: Vec<EntryWrite>,
    pub file: Option<([u8; 32], FileSeen)>,
    pub source: Option<(String, SourceState)>,
}

pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    /// Serialises commits and acknowledgements: each reads then writes
    /// entries, and sled allows one process, so a lock here is enough to
    /// make that read-then-write safe without sled's (slow) transactions.
    writer: std::sync::Mutex<()>,
}

/// Up to this many parked records of a target and kind, acknowledgements
/// look parked keys up in one scan; beyond it, with a read per record.
const FEW_PARKED: usize = 1_024;

/// Commits of more records than this are written in several batches,
/// bracketed by a marker (see [`Store::commit`]).
pub const COMMIT_CHUNK: usize = 1_000;

const PENDING_KEY: &[u8] = b"m\0pending_commit";

/// A commit that was cut short, found on open: its file must be planned again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCommit {
    pub source: String,
    pub file: String,
    pub sha256: [u8; 32],
}

impl Store {
    /// Opens (or creates) the store in `dir`, migrating an older schema.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        Store::init(db)
    }

    /// A store that lives in memory only and is gone when dropped: `plan`
    /// uses one when the state directory does not exist, so it creates nothing.
    pub fn temporary() -> Result<Store, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        Store::init(db)
    }

    fn init(db: sled::Db) -> Result<Store, StoreError> {
        let tree = db.open_tree("state")?;
        let store = Store {
            db,
            tree,
            writer: std::sync::Mutex::new(()),
        };
        match store.schema_version()? {
            None if store.tree.is_empty() => store.set_schema_version(SCHEMA_VERSION)?,
            None => migrate(&store, 0)?,
            Some(found) if found > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(found) if found < SCHEMA_VERSION => migrate(&store, found)?,
            Some(_) => {}
        }
        Ok(store)
    }

    pub fn schema_version(&self) -> Result<Option<u32>, StoreError> {
        let Some(bytes) = self.tree.get(SCHEMA_KEY)? else {
            return Ok(None);
        };
        let array: [u8; 4] = bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
            key: "schema_version".into(),
            reason: format!("{} bytes, expected 4", bytes.len()),
        })?;
        Ok(Some(u32::from_be_bytes(array)))
    }

    fn set_schema_version(&self, version: u32) -> Result<(), StoreError> {
        self.tree.insert(SCHEMA_KEY, &version.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    pub fn entry(&self, key: &RecordKey) -> Result<Option<Entry>, StoreError> {
        self.get(&key.encode(b'e'))
    }

    pub fn desired_fields(&self, key: &RecordKey) -> Result<Option<Fields>, StoreError> {
        self.get(&key.encode(b'd'))
    }

    /// Looks at a record's desired projection without copying it: `look`
    /// gets the fields borrowed from the stored bytes (what listing the
    /// outbox needs, a few references per record, at a fraction of the cost).
    pub fn look_at_desired<T>(
        &self,
        key: &RecordKey,
        look: impl FnOnce(&BTreeMap<&str, &str>) -> T,
    ) -> Result<Option<T>, StoreError> {
        let desired_key = key.encode(b'd');
        match self.tree.get(&desired_key)? {
            Some(bytes) => {
                let fields: BTreeMap<&str, &str> = decode(&desired_key, &bytes)?;
                Ok(Some(look(&fields)))
            }
            None => Ok(None),
        }
    }

    /// What the target confirmed holding. Kept under its own key only while
    /// it differs from the desired projection; otherwise it *is* the desired
    /// projection (same hash), which halves what acknowledgements write.
    /// A record's entry with its desired and acknowledged projections, each
    /// read once (what a push needs; `acked_fields` alone would read the
    /// entry and the desired projection a second time).
    pub fn entry_with_fields(
        &self,
        key: &RecordKey,
    ) -> Result<Option<(Entry, Fields, Option<Fields>)>, StoreError> {
        let Some(entry) = self.entry(key)? else {
            return Ok(None);
        };
        let desired = self.desired_fields(key)?.unwrap_or_default();
        // The acknowledged projection is stored only while it differs from
        // the desired one (when present, it is always that of `acked.hash`).
        let acked = match &entry.acked {
            None => None,
            Some(acked) if acked.hash == entry.desired.hash => Some(desired.clone()),
            Some(_) => self.get(&key.encode(b'a'))?,
        };
        Ok(Some((entry, desired, acked)))
    }

    pub fn acked_fields(&self, key: &RecordKey) -> Result<Option<Fields>, StoreError> {
        if let Some(fields) = self.get(&key.encode(b'a'))? {
            return Ok(Some(fields));
        }
        match self.entry(key)? {
            Some(Entry {
                desired,
                acked: Some(acked),
                ..
            }) if acked.hash == desired.hash => self.desired_fields(key),
            _ => Ok(None),
        }
    }

    pub fn outbox_item(&self, key: &RecordKey) -> Result<Option<OutboxItem>, StoreError> {
        self.get(&key.encode(b'o'))
    }

    /// Every entry of a kind at a target, in key order.
    pub fn entries(
        &self,
        target: &str,
        kind: RecordKind,
    ) -> impl Iterator<Item = Result<(String, Entry), StoreError>> + '_ {
        self.scan(b'e', target, kind)
    }

    /// Records still to push to a target, in key order.
    pub fn outbox(
        &self,
        target: &str,
        kind: RecordKind,
    ) -> impl Iterator<Item = Result<(String, OutboxItem), StoreError>> + '_ {
        self.scan(b'o', target, kind)
    }

    pub fn outbox_len(&self, target: &str) -> usize {
        [RecordKind::Orgs, RecordKind::Users]
            .into_iter()
            .map(|kind| {
                self.tree
                    .scan_prefix(scan_prefix(b'o', target, kind))
                    .count()
            })
            .sum()
    }

    fn scan<T: DeserializeOwned>(
        &self,
        prefix: u8,
        target: &str,
        kind: RecordKind,
    ) -> impl Iterator<Item = Result<(String, T), StoreError>> + '_ {
        let prefix = scan_prefix(prefix, target, kind);
        let skip = prefix.len();
        self.tree.scan_prefix(prefix).map(move |item| {
            let (key, value) = item?;
            let record_key = String::from_utf8_lossy(&key[skip..]).into_owned();
            let decoded = decode(&key, &value)?;
            Ok((record_key, decoded))
        })
    }

    pub fn park(&self, key: &RecordKey, parked: &Parked) -> Result<(), StoreError> {
        self.tree.insert(key.encode(b'p'), encode(parked)?)?;
        Ok(())
    }

    pub fn parked_item(&self, key: &RecordKey) -> Result<Option<Parked>, StoreError> {
        self.get(&key.encode(b'p'))
    }

    /// The keys of the parked records of a kind at a target.
    pub fn parked_keys(
        &self,
        target: &str,
        kind: RecordKind,
    ) -> Result<HashSet<String>, StoreError> {
        self.parked_keys_up_to(target, kind, usize::MAX)
            .map(Option::unwrap_or_default)
    }

    /// [`Store::parked_keys`], or `None` when there are more than `limit`.
    fn parked_keys_up_to(
        &self,
        target: &str,
        kind: RecordKind,
        limit: usize,
    ) -> Result<Option<HashSet<String>>, StoreError> {
        let prefix = scan_prefix(b'p', target, kind);
        let skip = prefix.len();
        let mut keys = HashSet::new();
        for key in self.tree.scan_prefix(prefix).keys() {
            if keys.len() == limit {
                return Ok(None);
            }
            keys.insert(String::from_utf8_lossy(&key?[skip..]).into_owned());
        }
        Ok(Some(keys))
    }

    /// Parked records of a kind at a target, in key order.
    pub fn parked(
        &self,
        target: &str,
        kind: RecordKind,
    ) -> impl Iterator<Item = Result<(String, Parked), StoreError>> + '_ {
        self.scan(b'p', target, kind)
    }

    /// Releases every parked record of a target for another try; returns how many.
    pub fn unpark_all(&self, target: &str) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut count = 0;
        for kind in [RecordKind::Orgs, RecordKind::Users] {
            for item in self.tree.scan_prefix(scan_prefix(b'p', target, kind)) {
                let (key, _) = item?;
                batch.remove(key);
                count += 1;
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(count)
    }

    /// Releases a target's records parked after transient failures (the
    /// retry budget ran out while the target was down); returns how many.
    /// Records the target refused stay parked.
    pub fn unpark_transient(&self, target: &str) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut count = 0;
        for kind in [RecordKind::Orgs, RecordKind::Users] {
            for item in self.tree.scan_prefix(scan_prefix(b'p', target, kind)) {
                let (key, value) = item?;
                let parked: Parked = decode(&key, &value)?;
                if parked.transient {
                    batch.remove(key);
                    count += 1;
                }
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(count)
    }

    pub fn file_seen(&self, sha256: &[u8; 32]) -> Result<Option<FileSeen>, StoreError> {
        self.get(&file_key(sha256))
    }

    pub fn source_state(&self, source: &str) -> Result<Option<SourceState>, StoreError> {
        self.get(&source_key(source))
    }

    /// Applies a commit and flushes it to disk before returning.
    ///
    /// Up to [`COMMIT_CHUNK`] records, the commit is one atomic batch: a crash
    /// leaves the store as before or as after. A bigger commit (a first import)
    /// would cost sled gigabytes as one batch, so it is written in chunks,
    /// each record whole (entry, projection and outbox together), between a
    /// `pending` marker and the batch that records the file. A crash in
    /// between leaves [`Store::pending_commit`] set: planning the same file
    /// again completes it, since the records already written plan as unchanged.
    pub fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let _writer = self.lock();
        let chunked = commit.writes.len() > COMMIT_CHUNK;
        if chunked {
            if let Some((sha256, seen)) = &commit.file {
                let pending = PendingCommit {
                    source: seen.source.clone(),
                    file: seen.name.clone(),
                    sha256: *sha256,
                };
                self.tree.insert(PENDING_KEY, encode(&pending)?)?;
                self.db.flush()?;
            }
            for chunk in commit.writes.chunks(COMMIT_CHUNK) {
                self.tree.apply_batch(writes_batch(&self.tree, chunk)?)?;
            }
        }
        let mut last = if chunked {
            sled::Batch::default()
        } else {
            writes_batch(&self.tree, &commit.writes)?
        };
        if let Some((sha, seen)) = &commit.file {
            last.insert(file_key(sha), encode(seen)?);
        }
        if let Some((name, state)) = &commit.source {
            last.insert(source_key(name), encode(state)?);
        }
        last.remove(PENDING_KEY);
        self.tree.apply_batch(last)?;
        self.db.flush()?;
        Ok(())
    }

    /// A commit that a crash cut short, if any.
    pub fn pending_commit(&self) -> Result<Option<PendingCommit>, StoreError> {
        self.get(PENDING_KEY)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere cannot leave it inconsistent.
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that the target holds `pushed` (the desired hash that was sent)
    /// and drops the outbox entry, in one atomic batch. If the desired state
    /// moved on meanwhile, the outbox entry stays for the newer change.
    pub fn acknowledge(
        &self,
        key: &RecordKey,
        acked: &Acked,
        fields: &Fields,
    ) -> Result<(), StoreError> {
        self.acknowledge_many(&[(key.clone(), acked.clone(), fields.clone())])
    }

    /// [`Store::acknowledge`] for several records (a batch the target
    /// confirmed), in one atomic batch.
    pub fn acknowledge_many(&self, acks: &[(RecordKey, Acked, Fields)]) -> Result<(), StoreError> {
        let _writer = self.lock();
        let mut batch = sled::Batch::default();
        // Parked keys are looked up once per target and kind when they are
        // few (the usual case: a record is not sent while parked), rather
        // than read for each record.
        let mut few_parked: HashMap<(&str, RecordKind), Option<HashSet<String>>> = HashMap::new();
        for (key, acked, fields) in acks {
            let entry_key = key.encode(b'e');
            let Some(mut entry) = self.get::<Entry>(&entry_key)? else {
                return Err(StoreError::Corrupt {
                    key: String::from_utf8_lossy(&entry_key).replace('\0', "/"),
                    reason: "acknowledged a record that has no entry".into(),
                });
            };
            let caught_up =
                entry.desired.hash == acked.hash && entry.desired.active == acked.active;
            // A stored acknowledged projection is that of the previous
            // `acked.hash`: it can only be stale if that hash changes.
            let previous_hash = entry.acked.as_ref().map(|previous| previous.hash);
            entry.acked = Some(acked.clone());
            batch.insert(entry_key, encode(&entry)?);
            let acked_key = key.encode(b'a');
            if entry.desired.hash != acked.hash {
                batch.insert(acked_key, encode(fields)?);
            } else if previous_hash.is_some_and(|previous| previous != acked.hash)
                // Removes only what is there: a read costs far less than a
                // write in sled.
                && self.tree.contains_key(&acked_key)?
            {
                batch.remove(acked_key); // implicit: the desired projection
            }
            if caught_up {
                batch.remove(key.encode(b'o'));
            }
            let parked = match few_parked.entry((key.target.as_str(), key.kind)) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(unknown) => {
                    unknown.insert(self.parked_keys_up_to(&key.target, key.kind, FEW_PARKED)?)
                }
            };
            let is_parked = match parked {
                Some(keys) => keys.contains(&key.key),
                None => self.tree.contains_key(key.encode(b'p'))?,
            };
            if is_parked {
                batch.remove(key.encode(b'p'));
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Flushes pending writes to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.tree.get(key)? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }
}

/// The entries, projections and outbox items of some records, as one batch.
/// Where the acknowledged projection is implicit (equal to the desired one,
/// see [`Store::acked_fields`]) and the desired one changes, the old desired
/// bytes are kept as the acknowledged ones first.
/// Runs blocking store work on the blocking pool, never on the async
/// executor's threads: the one way async code reaches the store.
pub async fn blocking<T: Send + 'static>(
    store: &std::sync::Arc<Store>,
    work: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = std::sync::Arc::clone(store);
    tokio::task::spawn_blocking(move || work(&store))
        .await
        .map_err(|error| StoreError::Task(error.to_string()))?
}

fn writes_batch(tree: &sled::Tree, writes: &[EntryWrite]) -> Result<sled::Batch, StoreError> {
    let mut batch = sled::Batch::default();
    for write in writes {
        if let Some(fields) = &write.desired_fields {
            let desired_key = write.key.encode(b'd');
            let acked_key = write.key.encode(b'a');
            let entry_key = write.key.encode(b'e');
            let implicit = match tree.get(&entry_key)? {
                Some(bytes) => {
                    let old: Entry = decode(&entry_key, &bytes)?;
                    old.acked.is_some_and(|a| a.hash == old.desired.hash)
                        && !tree.contains_key(&acked_key)?
                }
                None => false,
            };
            if implicit && let Some(old_fields) = tree.get(&desired_key)? {
                batch.insert(acked_key, old_fields);
            }
            batch.insert(desired_key, fields.0.as_slice());
        }
        batch.insert(write.key.encode(b'e'), encode(&write.entry)?);
        match &write.outbox {
            OutboxChange::Put(item) => batch.insert(write.key.encode(b'o'), encode(item)?),
            OutboxChange::Remove => batch.remove(write.key.encode(b'o')),
            OutboxChange::Keep => {}
        }
    }
    Ok(batch)
}

fn file_key(sha256: &[u8; 32]) -> Vec<u8> {
    let mut key = b"f\0".to_vec();
    key.extend_from_slice(sha256);
    key
}

fn source_key(source: &str) -> Vec<u8> {
    let mut key = b"s\0".to_vec();
    key.extend_from_slice(source.as_bytes());
    key
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(value).map_err(|error| StoreError::Corrupt {
        key: "(new value)".into(),
        reason: error.to_string(),
    })
}

fn decode<'b, T: Deserialize<'b>>(key: &[u8], bytes: &'b [u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|error| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        reason: error.to_string(),
    })
}

/// One step per schema version: `MIGRATIONS[n]` takes a store from version
/// `n` to `n + 1`. Add a step (and bump [`SCHEMA_VERSION`]) with every layout change.
type Migration = fn(&Store) -> Result<(), StoreError>;

const MIGRATIONS: [Migration; SCHEMA_VERSION as usize] = [
    // 0 → 1: data without a version key predates versioning; version 1 is
    // that first layout, so there is nothing to rewrite.
    |_| Ok(()),
];

/// Brings a store written with an older schema up to [`SCHEMA_VERSION`].
/// Each step records its version when done, so an interrupted migration
/// resumes where it stopped.
fn migrate(store: &Store, from: u32) -> Result<(), StoreError> {
    for version in from..SCHEMA_VERSION {
        MIGRATIONS[version as usize](store)?;
        store.set_schema_version(version + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
