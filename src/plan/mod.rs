//! Planning: one accepted file, the store, and the targets in; per target the
//! actions to send and the store commit that queues them out. Nothing is
//! written here: [`Store::commit`] applies a plan that was not held.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::config::SafetyConfig;
use crate::diff::{self, Change};
use crate::field_changes::FieldTally;
use crate::ingest::Mode;
use crate::ingest::record::{Record, RecordKind};
use crate::model::{ActionKind, ActionStatus, Candidate, PushStatus, RecordKey};
use crate::projection::Projector;
use crate::safety::{self, Held, PlanFigures};
mod dated;
mod detail;
use detail::detail;
mod mapped;
mod parked;
mod seed;
pub use dated::{DatedPlan, date_changes, plan_dates};
pub use seed::plan_seed;

use crate::store::{
    Commit, EncodedFields, EntryWrite, FileSeen, OutboxChange, OutboxItem, Reader, SourceState,
    Store, StoreError, StoredEntry, TargetWrites,
};

/// The source a file came from, as far as planning cares.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub name: String,
    pub kind: RecordKind,
    pub mode: Mode,
    pub create_disabled: bool,
    /// `prehire` in whole days (0: none).
    pub prehire_days: u32,
}

impl SourceInfo {
    pub fn from_config(source: &crate::config::SourceConfig) -> SourceInfo {
        SourceInfo {
            name: source.name.get_ref().clone(),
            kind: source.kind,
            mode: source.mode,
            create_disabled: source.create_disabled,
            prehire_days: source.prehire_days(),
        }
    }

    /// The source's part of the rules of a record's life.
    pub fn rules(&self) -> SourceRules {
        SourceRules {
            create_disabled: self.create_disabled,
            prehire_days: self.prehire_days,
        }
    }
}

/// What a source says of its records' lives, whatever the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceRules {
    pub create_disabled: bool,
    pub prehire_days: u32,
}

#[derive(Debug, Clone)]
pub struct TargetInfo {
    pub name: String,
    pub projector: Projector,
    /// `[target.scope]`, compiled; `None`: every record.
    pub scope: Option<crate::mapping::Scope>,
    /// `delete_after` in whole days; `None`: accounts are never deleted.
    pub delete_after_days: Option<u32>,
    pub max_delete_count: u64,
}

impl TargetInfo {
    pub fn from_config(target: &crate::config::TargetConfig) -> TargetInfo {
        TargetInfo {
            name: target.name.get_ref().clone(),
            projector: Projector::new(target.kind.default_fields(), target.fields.get_ref()),
            // An expression that does not compile (check refuses it) holds no one.
            scope: target
                .scope
                .as_ref()
                .map(|scope| crate::mapping::Scope::compile(scope.get_ref()).0),
            delete_after_days: target.delete_after_days(),
            max_delete_count: *target.max_delete_count.get_ref(),
        }
    }

    /// The rules of the life of a source's records of `kind` here. Only
    /// users are deleted: an organisation goes with its users' accounts.
    pub fn lifecycle(&self, source: SourceRules, kind: RecordKind) -> diff::Lifecycle {
        diff::Lifecycle {
            create_disabled: source.create_disabled,
            delete_after_days: self.delete_after_days.filter(|_| kind == RecordKind::Users),
            prehire_days: source.prehire_days,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FileInfo {
    pub name: String,
    pub sha256: [u8; 32],
    pub rows: u64,
}

/// How much detail the plan keeps: changed fields of the first
/// `detail_limit` actions of each kind per target (counts are always whole).
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    pub today: NaiveDate,
    /// Unix seconds, stamped on outbox items.
    pub now: i64,
    pub detail_limit: usize,
}

/// The plan, in the shape `plan --json` prints and reports share (read
/// back by the daemon from the copy it writes down before a commit).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub source: String,
    pub file: String,
    /// Rows of the file.
    pub rows: u64,
    /// The first safety rule the plan breaks, if any…
    pub held: Option<Held>,
    /// …and the others it breaks too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_also: Vec<Held>,
    /// What ingest found but did not refuse the file for
    /// (`LINE:COLUMN: [warning: ]message`): rows refused under
    /// `max_invalid_rows`, ignored columns, UTF-8 lines in a legacy
    /// encoding, unknown managers; the last says how many more there were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    pub targets: BTreeMap<String, TargetPlan>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetPlan {
    pub create: u64,
    pub update: u64,
    pub block: u64,
    pub unblock: u64,
    /// Accounts removed after `delete_after` (absent from older plans).
    #[serde(default)]
    pub delete: u64,
    pub parked: u64,
    /// Rows of the file the target already holds as they are.
    #[serde(default)]
    pub unchanged: u64,
    /// New rows not created because they are inactive (disabled, or
    /// outside their dates) and the source has no `create_disabled`.
    #[serde(default)]
    pub not_created: u64,
    /// In reports: why pushing to this target stopped, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// In sending order: dependencies first, blocks last.
    pub actions: Vec<PlannedAction>,
}

impl TargetPlan {
    /// How many actions of a kind the plan holds.
    pub fn count(&self, action: ActionKind) -> u64 {
        match action {
            ActionKind::Create => self.create,
            ActionKind::Update => self.update,
            ActionKind::Block => self.block,
            ActionKind::Unblock => self.unblock,
            ActionKind::Delete => self.delete,
        }
    }

    pub fn count_mut(&mut self, action: ActionKind) -> &mut u64 {
        match action {
            ActionKind::Create => &mut self.create,
            ActionKind::Update => &mut self.update,
            ActionKind::Block => &mut self.block,
            ActionKind::Unblock => &mut self.unblock,
            ActionKind::Delete => &mut self.delete,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedAction {
    pub action: ActionKind,
    pub kind: RecordKind,
    pub ext_id: String,
    /// Field → [old, new]; empty in a report's `.actions.jsonl`.
    #[serde(default)]
    pub changes: BTreeMap<String, Change>,
    /// References (parent, manager) sent in a second pass, because they loop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<String>,
    /// In reports: where the action stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ActionStatus>,
    /// In reports: why a record was parked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// In reports: the accounts the target holds that could each be the
    /// record's, when it is parked as ambiguous.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
}

impl PlannedAction {
    /// Where the action stands, as the store says (`None`: still waiting).
    /// Returns whether it changed.
    pub fn settle(&mut self, status: Option<PushStatus>) -> bool {
        match status {
            None => false,
            Some(PushStatus::Done) => {
                self.status = Some(ActionStatus::Done);
                true
            }
            Some(PushStatus::Parked { reason, candidates }) => {
                self.status = Some(ActionStatus::Parked);
                self.reason = Some(reason);
                self.candidates = candidates;
                true
            }
        }
    }
}

/// A plan and what applying it writes.
#[derive(Debug)]
pub struct Planned {
    /// Counts, and the first `detail_limit` actions of each kind per target.
    pub plan: Plan,
    pub commit: Commit,
    /// Every action per target, in sending order, compactly: what
    /// [`Planned::each_action`] details one at a time.
    orders: Vec<(String, Vec<Ordered>)>,
    kind: RecordKind,
}

impl Planned {
    pub fn held(&self) -> bool {
        self.plan.held.is_some()
    }
}

/// Plans one accepted file against the store, for every target of its source.
pub fn plan_file(
    store: &Store,
    source: &SourceInfo,
    targets: &[TargetInfo],
    records: &[Record],
    file: &FileInfo,
    safety_rules: &SafetyConfig,
    options: PlanOptions,
) -> Result<Planned, StoreError> {
    // Key order is the store's order: the merge with its entries is one pass.
    let mut order: Vec<u32> = (0..records.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| records[a as usize].key().cmp(records[b as usize].key()));
    let by_key: Vec<(u32, &Record)> = order.iter().map(|&i| (i, &records[i as usize])).collect();
    let keeping: Vec<&TargetInfo> = targets
        .iter()
        .filter(|t| t.projector.keeps(source.kind))
        .collect();
    // Targets are independent, and the snapshot's changes another pass:
    // all side by side.
    let (outcomes, snapshot) = std::thread::scope(|scope| {
        let snapshot = scope.spawn(|| {
            let mut tally = FieldTally::default();
            let write = store.snapshot_write(
                &source.name,
                source.kind,
                records,
                &order,
                source.mode == Mode::Full,
                &mut tally,
            );
            write.map(|write| (write, tally))
        });
        let handles: Vec<_> = keeping
            .iter()
            .map(|target| {
                let by_key = &by_key;
                scope.spawn(move || plan_target(store, source, target, by_key, options))
            })
            .collect();
        let outcomes: Vec<Result<TargetOutcome, StoreError>> = handles
            .into_iter()
            .map(|handle| joined(handle.join()))
            .collect();
        (outcomes, joined(snapshot.join()))
    });
    let (snapshot, tally) = snapshot?;
    let previous = store.source_state(&source.name)?;
    let mut figures = PlanFigures {
        rows: file.rows,
        // A delta file's size says nothing about the population: no shrink rule.
        previous_rows: previous
            .filter(|_| source.mode == Mode::Full)
            .map(|p| p.rows),
        blocks: Vec::new(),
        changes: tally.shares(),
        deletes: Vec::new(),
    };
    let mut plan = Plan {
        source: source.name.clone(),
        file: file.name.clone(),
        rows: file.rows,
        held: None,
        problems: Vec::new(),
        held_also: Vec::new(),
        targets: BTreeMap::new(),
    };
    let mut commit = Commit {
        snapshot: Some(snapshot),
        ..Commit::default()
    };
    let orders = gather(
        source,
        &keeping,
        outcomes,
        &mut plan,
        &mut commit,
        &mut figures,
    )?;
    (plan.held, plan.held_also) = safety::check_all(safety_rules, &figures);
    commit.file = Some((
        file.sha256,
        FileSeen {
            source: source.name.clone(),
            name: file.name.clone(),
            at: options.now,
        },
    ));
    commit.source = Some((
        source.name.clone(),
        SourceState {
            last_file: file.name.clone(),
            last_sha256: file.sha256,
            rows: file.rows,
            at: options.now,
            targets: keeping.iter().map(|t| t.name.clone()).collect(),
        },
    ));
    Ok(Planned {
        plan,
        commit,
        orders,
        kind: source.kind,
    })
}

/// Puts each target's outcome in the plan, the commit and the safety
/// figures; returns the targets' action orders.
fn gather(
    source: &SourceInfo,
    targets: &[&TargetInfo],
    outcomes: Vec<Result<TargetOutcome, StoreError>>,
    plan: &mut Plan,
    commit: &mut Commit,
    figures: &mut PlanFigures,
) -> Result<Vec<(String, Vec<Ordered>)>, StoreError> {
    let mut orders = Vec::with_capacity(targets.len());
    for (target, outcome) in targets.iter().zip(outcomes) {
        let outcome = outcome?;
        orders.push((target.name.clone(), outcome.order));
        figures.blocks.push((
            target.name.clone(),
            outcome.plan.block,
            outcome.active_before,
        ));
        if outcome.plan.delete > 0 {
            figures.deletes.push((
                target.name.clone(),
                outcome.plan.delete,
                target.max_delete_count,
            ));
        }
        commit.targets.push(TargetWrites {
            target: target.name.clone(),
            kind: source.kind,
            source: Some(source.name.clone()),
            writes: outcome.writes,
        });
        commit.parked.extend(outcome.parked);
        commit.unparked.extend(outcome.unparked);
        plan.targets.insert(target.name.clone(), outcome.plan);
    }
    Ok(orders)
}

/// A planning thread's result; its panic (a bug) becomes an error.
fn joined<T>(result: std::thread::Result<Result<T, StoreError>>) -> Result<T, StoreError> {
    result.unwrap_or_else(|_| {
        Err(StoreError::Corrupt {
            key: "(plan)".into(),
            reason: "a planning thread failed (a bug: please report it)".into(),
        })
    })
}

/// One target's part of a plan.
struct TargetOutcome {
    plan: TargetPlan,
    order: Vec<Ordered>,
    writes: Vec<EntryWrite>,
    /// The source's records active at the target before this file.
    active_before: u64,
    /// Records parked at plan time, and those a mapping releases.
    parked: Vec<(RecordKey, crate::store::Parked)>,
    unparked: Vec<RecordKey>,
}

/// An action found, before ordering and detail.
struct Found<'r> {
    key: String,
    action: ActionKind,
    /// The file's record, with its index among the records planned.
    record: Option<(u32, &'r Record)>,
}

/// One action of a plan, in sending order, without its detail.
#[derive(Debug, Clone)]
struct Ordered {
    subject: Subject,
    action: ActionKind,
    /// Its references are sent in a second pass (they loop).
    deferred: bool,
}

/// What an action is about.
#[derive(Debug, Clone)]
enum Subject {
    /// A record of the file, by its index among the records planned.
    Record(u32),
    /// A record absent from the file (a block), by its key.
    Absent(Box<str>),
}

fn plan_target<'r>(
    store: &Store,
    source: &SourceInfo,
    target: &TargetInfo,
    by_key: &[(u32, &'r Record)],
    options: PlanOptions,
) -> Result<TargetOutcome, StoreError> {
    // Sized once: a first import writes every record, and growing the
    // vector would hold two copies of it for a moment.
    let mut writes = Vec::with_capacity(by_key.len());
    let mut found = Vec::new();
    let mut active_before = 0;
    let (mut unchanged, mut not_created) = (0u64, 0u64);
    let mut reader = store.reader();
    let mut parking = parked::Parking::load(store, &target.name, source.kind)?;
    let progress = crate::progress::Progress::new(
        format!("planning {} for {}", source.name, target.name),
        by_key.len() as u64,
    );
    let mut visited = 0u64;
    let mut visit = |record: Option<(u32, &'r Record)>,
                     key: &str,
                     stored: Option<StoredEntry>,
                     reader: &mut Reader<'_>| {
        if let Some(stored) = &stored
            && stored.entry.source == source.name
            && stored.entry.acked.as_ref().is_some_and(|a| a.active)
        {
            active_before += 1;
        }
        visited += 1;
        if visited.is_multiple_of(4_096) {
            progress.advance(4_096);
        }
        let file_record = record.map(|(_, record)| record);
        let known_to_target = stored.as_ref().is_some_and(|s| s.entry.acked.is_some());
        let step = step(source, target, file_record, key, stored, options, reader)?;
        match record {
            Some((index, _)) => {
                let park = step.as_ref().and_then(|s| s.park.as_ref());
                parking.note(index, key, park, known_to_target);
            }
            None => parking.absent(key),
        }
        // Every row of the file is accounted for, actions or not.
        let idle = |s: &Step| s.action.is_none() && s.park.is_none();
        if file_record.is_some() && step.as_ref().is_none_or(idle) {
            if known_to_target {
                unchanged += 1;
            } else {
                not_created += 1;
            }
        }
        if let Some(step) = step {
            if let Some(action) = step.action {
                found.push(Found {
                    key: key.to_string(),
                    action,
                    record,
                });
            }
            if let Some(write) = step.write {
                writes.push(write);
            }
        }
        Ok::<(), StoreError>(())
    };
    match source.mode {
        Mode::Delta => {
            for &(index, record) in by_key {
                let key = record_key(target, source.kind, record.key());
                let stored = reader.stored(&key)?;
                visit(Some((index, record)), record.key(), stored, &mut reader)?;
            }
        }
        Mode::Full => {
            let mut entries = store.stored_entries(&target.name, source.kind).peekable();
            let mut records = by_key.iter().peekable();
            loop {
                let next_entry = match entries.peek() {
                    Some(Ok((key, _))) => Some(key.as_str()),
                    Some(Err(_)) => {
                        if let Some(Err(error)) = entries.next() {
                            return Err(error);
                        }
                        continue;
                    }
                    None => None,
                };
                let next_record = records.peek().map(|(_, r)| r.key());
                match (next_record, next_entry) {
                    (None, None) => break,
                    (Some(r), e) if e.is_none_or(|e| r < e) => {
                        let record = records.next().copied();
                        visit(record, r, None, &mut reader)?;
                    }
                    (r, Some(e)) if r.is_none_or(|r| e < r) => {
                        if let Some(Ok((key, stored))) = entries.next() {
                            // Absent from a full file: blocked, if it is this source's.
                            if stored.entry.source == source.name {
                                visit(None, &key, Some(stored), &mut reader)?;
                            }
                        }
                    }
                    _ => {
                        let record = records.next().copied();
                        if let (Some(record), Some(Ok((_, stored)))) = (record, entries.next()) {
                            visit(Some(record), record.1.key(), Some(stored), &mut reader)?;
                        }
                    }
                }
            }
        }
    }
    progress.finish();
    let (mut plan, mut order) = detail(&mut reader, source, target, found, options.detail_limit)?;
    plan.unchanged = unchanged;
    plan.not_created = not_created;
    let (parked, unparked) = parking.finish(
        target,
        source.kind,
        &mut plan,
        &mut order,
        (options.now, options.detail_limit),
    );
    Ok(TargetOutcome {
        plan,
        order,
        writes,
        active_before,
        parked,
        unparked,
    })
}

fn record_key(target: &TargetInfo, kind: RecordKind, key: &str) -> RecordKey {
    RecordKey {
        target: target.name.clone(),
        kind,
        key: key.to_string(),
    }
}

/// What one record means for one target: the action to send and the write.
struct Step {
    action: Option<ActionKind>,
    write: Option<EntryWrite>,
    /// Parked at plan time: why.
    park: Option<String>,
}

fn step(
    source: &SourceInfo,
    target: &TargetInfo,
    record: Option<&Record>,
    key: &str,
    stored: Option<StoredEntry>,
    options: PlanOptions,
    reader: &mut Reader<'_>,
) -> Result<Option<Step>, StoreError> {
    let entry = stored.as_ref().map(|stored| &stored.entry);
    let mapped = record.map(|record| mapped::map(target, record));
    let (mut desired, restraint, park) = match mapped::planned(mapped, entry) {
        mapped::Planned::Step(desired, restraint, park) => (desired, restraint, park),
        mapped::Planned::Nothing(None) => return Ok(None),
        mapped::Planned::Nothing(park) => {
            return Ok(Some(Step {
                action: None,
                write: None,
                park,
            }));
        }
    };
    desired.active = diff::is_active(&desired, options.today);
    let queued_before = stored
        .as_ref()
        .and_then(|s| s.queued.as_ref().map(|q| q.action));
    let entry_changed = entry.is_none_or(|e| e.source != source.name || e.desired != desired);
    let fields_changed = entry.is_none_or(|e| e.desired.hash != desired.hash);
    let acked = entry.and_then(|e| e.acked.as_ref());
    let deleted = match acked {
        Some(acked) if !acked.active => reader.is_deleted(&record_key(target, source.kind, key))?,
        _ => false,
    };
    let rules = target.lifecycle(source.rules(), source.kind);
    let action = diff::decide_at(&desired, acked, deleted, rules, options.today)
        .filter(|&action| restraint.allows(action));
    let outbox = match action {
        Some(action) if entry_changed || queued_before != Some(action) => {
            OutboxChange::Put(OutboxItem {
                action,
                queued_at: options.now,
            })
        }
        Some(_) => OutboxChange::Keep,
        None if queued_before.is_some() => OutboxChange::Remove,
        None => OutboxChange::Keep,
    };
    // The target holds the record's previous desired projection: when the
    // desired one moves away from it, the store keeps it apart.
    let acked_fields = match &stored {
        Some(stored)
            if fields_changed
                && stored.acked_fields.is_none()
                && stored
                    .entry
                    .acked
                    .as_ref()
                    .is_some_and(|a| a.hash == stored.entry.desired.hash) =>
        {
            let key = record_key(target, source.kind, key);
            match reader.desired_fields(&key, &target.projector)? {
                Some(fields) => Some(EncodedFields::new(&fields)?),
                None => None,
            }
        }
        _ => None,
    };
    let in_snapshot = record.is_some();
    let frozen = stored.as_ref().is_some_and(|s| s.desired_fields.is_some());
    let write = if entry_changed || outbox != OutboxChange::Keep || (in_snapshot && frozen) {
        Some(EntryWrite {
            key: key.to_string(),
            desired,
            outbox,
            acked_fields,
            in_snapshot,
        })
    } else {
        None
    };
    Ok(Some(Step {
        action,
        write,
        park,
    }))
}
