//! The state store: one sled database, reached only through this module so
//! that another engine could replace it here alone.
//!
//! Everything lives in one tree (`state2`), under key prefixes, so that a
//! file's commit is atomic. Its size grows with the people, not with people
//! × targets: a source's records are stored once, and each target keeps a
//! compact summary per record, many records per sled value ([`groups`]).
//!
//! | key | value |
//! |---|---|
//! | `r\0SOURCE\0KIND\0FIRST` | a group of the source's snapshot: [`StoredRecord`]s |
//! | `h\0ID` | a column layout of snapshot records |
//! | `t\0TARGET\0KIND\0FIRST` | a group of a target's [`StoredEntry`]s (desired and acknowledged summaries, what waits) |
//! | `l\0SEQ` | acknowledgements not yet folded into the groups ([`acklog`]) |
//! | `p\0TARGET\0KIND\0KEY` | [`Parked`]: a record the target refused, with the reason |
//! | `c\0TARGET\0KIND\0KEY` | the [`Candidate`](crate::model::Candidate)s of a record parked as ambiguous ([`ambiguous`]) |
//! | `d\0TARGET\0KIND\0KEY` | unix seconds: the target deleted the record's account ([`deleted`]) |
//! | `i\0TARGET\0KIND\0TARGET_ID` | the key of the record whose acknowledged target id it is ([`holders`]) |
//! | `f\0SHA256` | [`FileSeen`]: a processed file |
//! | `s\0SOURCE` | [`SourceState`]: the last accepted file of a source |
//! | `m\0schema_version` | u32, big-endian |
//! | `m\0pending_commit` | [`PendingCommit`]: a chunked commit under way |
//!
//! What waits for a target (its outbox) is not stored apart: it is the
//! entries whose `queued` is set, which a commit sets and an acknowledgement
//! of the desired state clears. Values are postcard-encoded. Names and keys
//! hold no NUL byte (config and ingest refuse them), so the separators are
//! unambiguous.

mod acklog;
mod acknowledge;
mod ambiguous;
mod commit;
mod deleted;
pub mod groups;
mod holders;
mod migrate;
mod reader;
mod snapshot;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ingest::record::{Record, RecordKind};
pub use crate::model::{Acked, ActionKind, Desired, Entry, RecordKey};
use crate::projection::{Fields, Projector};
use acklog::{LoggedAck, Overlay};
use groups::Grouped;
pub use reader::Reader;
pub use snapshot::StoredRecord;

/// Bumped with every change of key or value layout; [`migrate`] moves older stores up.
/// Schema 3 added the index of the targets' ids (`i`).
pub const SCHEMA_VERSION: u32 = 3;

/// The tree of the current layout; older layouts lived in other trees, so
/// that a migration fills this one and switches to it at once.
const TREE: &str = "state2";

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
    #[error("state store: locked by another process")]
    InUse,
    #[error("state store: cannot make its folder owner-only: {0}")]
    Folder(std::io::Error),
    #[error("state store: internal error in a store task: {0}")]
    Task(String),
    #[error(
        "state store has schema {found}, this rostersync knows up to {supported}: it was written by a newer release"
    )]
    NewerSchema { found: u32, supported: u32 },
}

impl StoreError {
    /// The store's disk failed (full, read-only, an IO error): not the data's fault.
    pub fn is_io(&self) -> bool {
        matches!(self, StoreError::Sled(sled::Error::Io(_)))
    }
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
    /// The targets the source's snapshot was planned for: a target of the
    /// source missing here is given the snapshot (see `plan::plan_seed`).
    pub targets: Vec<String>,
}

/// One record at one target, as stored in the target's groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEntry {
    pub entry: Entry,
    /// Set while the target has not confirmed the desired state.
    pub queued: Option<OutboxItem>,
    /// What the target confirmed holding (encoded [`Fields`]), when it is
    /// not the desired projection. `None` while caught up: it *is* the
    /// desired projection.
    pub acked_fields: Option<Vec<u8>>,
    /// The desired projection (encoded), for a record whose snapshot the
    /// store does not have (one migrated from schema 1); `None`: projected
    /// from the source's snapshot.
    pub desired_fields: Option<Vec<u8>>,
}

impl StoredEntry {
    fn caught_up(&self) -> bool {
        self.entry.acked.as_ref().is_some_and(|acked| {
            acked.hash == self.entry.desired.hash && acked.active == self.entry.desired.active
        })
    }

    fn apply_ack(&mut self, ack: &LoggedAck) {
        self.entry.acked = Some(ack.acked.clone());
        self.acked_fields = if ack.acked.hash == self.entry.desired.hash {
            None
        } else {
            ack.fields.clone()
        };
        if self.caught_up() {
            self.queued = None;
        }
    }
}

/// A projection already encoded for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFields(Vec<u8>);

impl EncodedFields {
    pub fn new(fields: &Fields) -> Result<EncodedFields, StoreError> {
        encode(fields).map(EncodedFields)
    }
}

/// One record's change at one target in a commit.
#[derive(Debug, Clone)]
pub struct EntryWrite {
    pub key: String,
    pub desired: Desired,
    pub outbox: OutboxChange,
    /// The projection the target holds, when the desired one moves away
    /// from it (what the record's previous desired projection was).
    pub acked_fields: Option<EncodedFields>,
    /// The record is in this commit's snapshot: its desired projection follows from it.
    pub in_snapshot: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxChange {
    Put(OutboxItem),
    Remove,
    Keep,
}

/// The changes of one target and kind, in key order.
#[derive(Debug, Clone)]
pub struct TargetWrites {
    pub target: String,
    pub kind: RecordKind,
    /// The source the records now come from; `None` keeps each entry's
    /// own (a re-plan of what the store holds). Once here rather than in
    /// each write: a first import has millions.
    pub source: Option<String>,
    pub writes: Vec<EntryWrite>,
}

/// The records a commit stores in a source's snapshot, in key order.
#[derive(Debug, Clone)]
pub struct SnapshotWrite {
    pub source: String,
    pub kind: RecordKind,
    /// Indices into the records given to [`Store::commit`] of the file's
    /// records that are new or changed.
    pub records: Vec<u32>,
    /// Records of the snapshot absent from this (full) file that were present before.
    pub now_absent: Vec<String>,
}

/// Everything one accepted file changes, applied at once.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    pub snapshot: Option<SnapshotWrite>,
    pub targets: Vec<TargetWrites>,
    pub file: Option<([u8; 32], FileSeen)>,
    pub source: Option<(String, SourceState)>,
    /// Records parked while planning (a template failed on them), and
    /// those planning released: applied with the rest.
    pub parked: Vec<(RecordKey, Parked)>,
    pub unparked: Vec<RecordKey>,
}

impl Commit {
    fn len(&self) -> usize {
        let snapshot = self
            .snapshot
            .as_ref()
            .map_or(0, |s| s.records.len() + s.now_absent.len());
        snapshot + self.targets.iter().map(|t| t.writes.len()).sum::<usize>()
    }
}

/// What `forget-target` dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forgotten {
    pub users: usize,
    pub orgs: usize,
    pub parked: usize,
}

pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    /// Serialises commits, acknowledgements and folds: each reads then
    /// writes groups, and sled allows one process, so a lock here is enough
    /// to make that read-then-write safe without sled's (slow) transactions.
    writer: Mutex<()>,
    overlay: Mutex<Overlay>,
    schemas: snapshot::Schemas,
    /// [`acklog::FOLD_AT`]; test only: `ROSTERSYNC_TEST_FOLD_AT=N` folds
    /// far more often (the crash test kills the process during folds).
    fold_at: usize,
}

/// Up to this many parked records of a target and kind, acknowledgements
/// look parked keys up in one scan; beyond it, with a read per record.
const FEW_PARKED: usize = 1_024;

/// Commits of more records than this are written in several batches,
/// bracketed by a marker (see [`Store::commit`]).
pub const COMMIT_CHUNK: usize = 16_384;

const PENDING_KEY: &[u8] = b"m\0pending_commit";

/// A commit that was cut short, found on open: its file must be planned again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCommit {
    pub source: String,
    pub file: String,
    pub sha256: [u8; 32],
}

fn prefix(tag: u8, name: &str, kind: RecordKind) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(name.len() + 10);
    bytes.extend_from_slice(&[tag, 0]);
    bytes.extend_from_slice(name.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(kind_tag(kind));
    bytes.push(0);
    bytes
}

fn kind_tag(kind: RecordKind) -> &'static [u8] {
    match kind {
        RecordKind::Users => b"users",
        RecordKind::Orgs => b"orgs",
    }
}

fn parked_key(key: &RecordKey) -> Vec<u8> {
    let mut bytes = prefix(b'p', &key.target, key.kind);
    bytes.extend_from_slice(key.key.as_bytes());
    bytes
}

impl Store {
    /// Opens (or creates) the store in `dir`, migrating an older schema.
    /// Opens (or creates) the store in `dir`, owner-only: the folder and
    /// every file in it, a store an older release left open included (the
    /// files sled makes later follow the process umask, see `file_modes`).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        crate::file_modes::private_dir(dir).map_err(StoreError::Folder)?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|error| match error {
                // sled 0.34 locks its files, and says so only in words.
                sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock") => {
                    StoreError::InUse
                }
                other => StoreError::Sled(other),
            })?;
        crate::file_modes::close_all(dir).map_err(StoreError::Folder)?;
        Store::init(db)
    }

    /// A store that lives in memory only and is gone when dropped: `plan`
    /// uses one when the state directory does not exist, so it creates nothing.
    pub fn temporary() -> Result<Store, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        Store::init(db)
    }

    fn init(db: sled::Db) -> Result<Store, StoreError> {
        let tree = db.open_tree(TREE)?;
        match read_version(&tree)? {
            Some(found) if found > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(SCHEMA_VERSION) => migrate::drop_older_trees(&db)?,
            found => {
                if found.is_none() {
                    // Not finished: an older layout's data (migrated into
                    // this tree from scratch), or a new store.
                    migrate::from_older_trees(&db, &tree)?;
                }
                // Schema 2 and older kept no index of the targets' ids.
                holders::index_all(&tree)?;
                tree.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
                migrate::drop_older_trees(&db)?;
            }
        }
        let overlay = Overlay::load(&tree)?;
        Ok(Store {
            db,
            tree,
            writer: Mutex::new(()),
            overlay: Mutex::new(overlay),
            schemas: snapshot::Schemas::default(),
            fold_at: std::env::var("ROSTERSYNC_TEST_FOLD_AT")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(acklog::FOLD_AT),
        })
    }

    pub fn schema_version(&self) -> Result<Option<u32>, StoreError> {
        read_version(&self.tree)
    }

    fn entries_map(&self, target: &str, kind: RecordKind) -> Grouped<'_> {
        Grouped::new(&self.tree, prefix(b't', target, kind))
    }

    fn snapshot_map(&self, source: &str, kind: RecordKind) -> Grouped<'_> {
        Grouped::new(&self.tree, prefix(b'r', source, kind))
    }

    /// A reader for many lookups in key order (each group is read once).
    pub fn reader(&self) -> Reader<'_> {
        Reader::new(self)
    }

    pub fn entry(&self, key: &RecordKey) -> Result<Option<Entry>, StoreError> {
        self.reader().entry(key)
    }

    pub fn desired_fields(
        &self,
        key: &RecordKey,
        projector: &Projector,
    ) -> Result<Option<Fields>, StoreError> {
        self.reader().desired_fields(key, projector)
    }

    pub fn acked_fields(
        &self,
        key: &RecordKey,
        projector: &Projector,
    ) -> Result<Option<Fields>, StoreError> {
        self.reader().acked_fields(key, projector)
    }

    pub fn outbox_item(&self, key: &RecordKey) -> Result<Option<OutboxItem>, StoreError> {
        Ok(self.reader().stored(key)?.and_then(|stored| stored.queued))
    }

    /// The acknowledgements of a target and kind not yet folded, by key.
    fn overlay_of(&self, target: &str, kind: RecordKind) -> HashMap<String, LoggedAck> {
        self.lock_overlay()
            .acks
            .iter()
            .filter(|(key, _)| key.target == target && key.kind == kind)
            .map(|(key, ack)| (key.key.clone(), ack.clone()))
            .collect()
    }

    /// Every stored entry of a kind at a target, in key order.
    pub fn stored_entries(
        &self,
        target: &str,
        kind: RecordKind,
    ) -> impl Iterator<Item = Result<(String, StoredEntry), StoreError>> + '_ {
        let overlay = self.overlay_of(target, kind);
        self.entries_map(target, kind)
            .iter::<StoredEntry>()
            .map(move |item| {
                let (key, mut stored) = item?;
                if let Some(ack) = overlay.get(&key) {
                    stored.apply_ack(ack);
                }
                Ok((key, stored))
            })
    }

    /// Every entry of a kind at a target, in key order.
    pub fn entries(
        &self,
        target: &str,
        kind: RecordKind,
    ) -> impl Iterator<Item = Result<(String, Entry), StoreError>> + '_ {
        self.stored_entries(target, kind)
            .map(|item| item.map(|(key, stored)| (key, stored.entry)))
    }

    /// Records still to push to a target, in key order.
    pub fn outbox(
        &self,
        target: &str,
        kind: RecordKind,
    ) -> impl Iterator<Item = Result<(String, OutboxItem), StoreError>> + '_ {
        self.stored_entries(target, kind)
            .filter_map(|item| match item {
                Ok((key, stored)) => stored.queued.map(|queued| Ok((key, queued))),
                Err(error) => Some(Err(error)),
            })
    }

    pub fn outbox_len(&self, target: &str) -> usize {
        [RecordKind::Orgs, RecordKind::Users]
            .into_iter()
            .map(|kind| self.outbox(target, kind).filter(Result::is_ok).count())
            .sum()
    }

    /// The records of a source's snapshot, in key order, with whether each
    /// was in its last file.
    pub fn snapshot(
        &self,
        source: &str,
        kind: RecordKind,
    ) -> impl Iterator<Item = Result<(Record, bool), StoreError>> + '_ {
        self.snapshot_map(source, kind)
            .iter::<StoredRecord>()
            .map(|item| {
                let (_, stored) = item?;
                let record = self.schemas.record(&self.tree, &stored)?;
                Ok((record, stored.present))
            })
    }

    /// The names of the targets that hold entries, from the stored keys.
    pub fn targets_held(&self) -> Result<Vec<String>, StoreError> {
        targets_in(&self.tree)
    }

    pub fn park(&self, key: &RecordKey, parked: &Parked) -> Result<(), StoreError> {
        let parked_at = parked_key(key);
        let mut batch = sled::Batch::default();
        // Parked for another reason now: no candidates of an earlier try.
        batch.remove(ambiguous::beside_parked(&parked_at));
        batch.insert(parked_at, encode(parked)?);
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    pub fn parked_item(&self, key: &RecordKey) -> Result<Option<Parked>, StoreError> {
        self.get(&parked_key(key))
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
        self.keys_up_to(b'p', target, kind, limit)
    }

    /// The record keys under a per-record prefix (`p`, `d`) of a target and
    /// kind, or `None` when there are more than `limit`.
    fn keys_up_to(
        &self,
        tag: u8,
        target: &str,
        kind: RecordKind,
        limit: usize,
    ) -> Result<Option<HashSet<String>>, StoreError> {
        let prefix = prefix(tag, target, kind);
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
        let prefix = prefix(b'p', target, kind);
        let skip = prefix.len();
        self.tree.scan_prefix(prefix).map(move |item| {
            let (key, value) = item?;
            let record_key = String::from_utf8_lossy(&key[skip..]).into_owned();
            Ok((record_key, decode(&key, &value)?))
        })
    }

    /// Releases every record of a target parked at push for another try;
    /// returns how many. Those a template failed on while planning wait for
    /// a file that maps them ([`crate::mapping::PARKED_MAPPING`]).
    pub fn unpark_all(&self, target: &str) -> Result<usize, StoreError> {
        self.unpark(target, |parked| {
            !parked.reason.starts_with(crate::mapping::PARKED_MAPPING)
        })
    }

    /// Releases a target's records parked after transient failures (the
    /// retry budget ran out while the target was down); returns how many.
    /// Records the target refused stay parked.
    /// Releases the records of a target parked after transient failures at
    /// `parked_by` (unix seconds) or earlier: those parked since keep
    /// waiting their turn.
    pub fn unpark_transient(&self, target: &str, parked_by: i64) -> Result<usize, StoreError> {
        self.unpark(target, |parked| parked.transient && parked.at <= parked_by)
    }

    fn unpark(&self, target: &str, release: impl Fn(&Parked) -> bool) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut count = 0;
        for kind in [RecordKind::Orgs, RecordKind::Users] {
            for item in self.tree.scan_prefix(prefix(b'p', target, kind)) {
                let (key, value) = item?;
                let parked: Parked = decode(&key, &value)?;
                if release(&parked) {
                    batch.remove(ambiguous::beside_parked(&key));
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

    /// A commit that a crash cut short, if any.
    pub fn pending_commit(&self) -> Result<Option<PendingCommit>, StoreError> {
        self.get(PENDING_KEY)
    }

    /// Test only: marks a commit of `source` as cut short, as a crash in
    /// the middle of a chunked commit leaves it.
    #[cfg(test)]
    pub fn mark_commit_pending(&self, source: &str) -> Result<(), StoreError> {
        let pending = PendingCommit {
            source: source.to_string(),
            file: "cut-short.csv".into(),
            sha256: [0; 32],
        };
        self.tree.insert(PENDING_KEY, encode(&pending)?)?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere cannot leave it inconsistent.
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_overlay(&self) -> std::sync::MutexGuard<'_, Overlay> {
        // Entries are inserted whole, after their log is written: a panic
        // cannot leave a half-made one.
        self.overlay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops everything a target holds: its entries, parked records, the
    /// index of its ids and logged acknowledgements, and its name from the
    /// sources' states.
    pub fn forget_target(&self, target: &str) -> Result<Forgotten, StoreError> {
        let _writer = self.lock();
        self.fold()?;
        let mut batch = sled::Batch::default();
        let mut forgotten = Forgotten {
            users: self
                .entries_map(target, RecordKind::Users)
                .clear(&mut batch)?,
            orgs: self
                .entries_map(target, RecordKind::Orgs)
                .clear(&mut batch)?,
            parked: 0,
        };
        for kind in [RecordKind::Orgs, RecordKind::Users] {
            for key in self.tree.scan_prefix(prefix(b'p', target, kind)).keys() {
                batch.remove(key?);
                forgotten.parked += 1;
            }
            for tag in [b'c', b'i', b'd'] {
                for key in self.tree.scan_prefix(prefix(tag, target, kind)).keys() {
                    batch.remove(key?);
                }
            }
        }
        for item in self.tree.scan_prefix(b"s\0") {
            let (key, bytes) = item?;
            let mut state: SourceState = decode(&key, &bytes)?;
            if state.targets.iter().any(|name| name == target) {
                state.targets.retain(|name| name != target);
                batch.insert(key, encode(&state)?);
            }
        }
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        Ok(forgotten)
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

/// The names of the targets that hold entries in `tree`, from its keys.
fn targets_in(tree: &sled::Tree) -> Result<Vec<String>, StoreError> {
    let mut names: Vec<String> = Vec::new();
    let mut next = b"t\0".to_vec();
    // Skips from one target to the next: one seek per target.
    while let Some(item) = tree.range(next.clone()..).next() {
        let (key, _) = item?;
        let Some(rest) = key.strip_prefix(b"t\0") else {
            break;
        };
        let name = rest.split(|&b| b == 0).next().unwrap_or_default();
        names.push(String::from_utf8_lossy(name).into_owned());
        next = b"t\0".to_vec();
        next.extend_from_slice(name);
        next.push(1);
    }
    Ok(names)
}

fn read_version(tree: &sled::Tree) -> Result<Option<u32>, StoreError> {
    let Some(bytes) = tree.get(SCHEMA_KEY)? else {
        return Ok(None);
    };
    let array: [u8; 4] = bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
        key: "schema_version".into(),
        reason: format!("{} bytes, expected 4", bytes.len()),
    })?;
    Ok(Some(u32::from_be_bytes(array)))
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

#[cfg(test)]
mod tests;
