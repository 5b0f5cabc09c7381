//! Planning: one accepted file, the store, and the targets in; per target the
//! actions to send and the store commit that queues them out. Nothing is
//! written here: [`Store::commit`] applies a plan that was not held.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::config::SafetyConfig;
use crate::diff::{self, Change};
use crate::ingest::Mode;
use crate::ingest::record::{Field, Record, RecordKind};
use crate::model::{ActionKind, ActionStatus, Desired, Entry, RecordKey};
use crate::projection::{Fields, Projector};
use crate::safety::{self, Held, PlanFigures};
use crate::store::{
    Commit, EncodedFields, EntryWrite, FileSeen, OutboxChange, OutboxItem, SourceState, Store,
    StoreError,
};

/// The source a file came from, as far as planning cares.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub name: String,
    pub kind: RecordKind,
    pub mode: Mode,
    pub create_disabled: bool,
}

impl SourceInfo {
    pub fn from_config(source: &crate::config::SourceConfig) -> SourceInfo {
        SourceInfo {
            name: source.name.get_ref().clone(),
            kind: source.kind,
            mode: source.mode,
            create_disabled: source.create_disabled,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TargetInfo {
    pub name: String,
    pub projector: Projector,
}

impl TargetInfo {
    pub fn from_config(target: &crate::config::TargetConfig) -> TargetInfo {
        TargetInfo {
            name: target.name.get_ref().clone(),
            projector: Projector::new(target.kind.default_fields(), target.fields.get_ref()),
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
    pub held: Option<Held>,
    pub targets: BTreeMap<String, TargetPlan>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetPlan {
    pub create: u64,
    pub update: u64,
    pub block: u64,
    pub unblock: u64,
    pub parked: u64,
    /// In reports: why pushing to this target stopped, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// In sending order: dependencies first, blocks last.
    pub actions: Vec<PlannedAction>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedAction {
    pub action: ActionKind,
    pub kind: RecordKind,
    pub ext_id: String,
    /// Field → [old, new]; empty beyond the plan's detail limit.
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
}

/// A plan and what applying it writes.
#[derive(Debug)]
pub struct Planned {
    pub plan: Plan,
    pub commit: Commit,
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
    let mut by_key: Vec<&Record> = records.iter().collect();
    by_key.sort_unstable_by(|a, b| a.key().cmp(b.key()));
    let keeping: Vec<&TargetInfo> = targets
        .iter()
        .filter(|t| t.projector.keeps(source.kind))
        .collect();
    // Targets are independent: plan them side by side.
    let outcomes: Vec<Result<TargetOutcome, StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = keeping
            .iter()
            .map(|target| {
                let by_key = &by_key;
                scope.spawn(move || plan_target(store, source, target, by_key, options))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(StoreError::Corrupt {
                        key: "(plan)".into(),
                        reason: "a planning thread failed (a bug: please report it)".into(),
                    })
                })
            })
            .collect()
    });

    let previous = store.source_state(&source.name)?;
    let mut figures = PlanFigures {
        rows: file.rows,
        // A delta file's size says nothing about the population: no shrink rule.
        previous_rows: previous
            .filter(|_| source.mode == Mode::Full)
            .map(|p| p.rows),
        blocks: Vec::new(),
    };
    let mut plan = Plan {
        source: source.name.clone(),
        file: file.name.clone(),
        rows: file.rows,
        held: None,
        targets: BTreeMap::new(),
    };
    let mut commit = Commit::default();
    for (target, outcome) in keeping.iter().zip(outcomes) {
        let outcome = outcome?;
        figures.blocks.push((
            target.name.clone(),
            outcome.plan.block,
            outcome.active_before,
        ));
        commit.writes.extend(outcome.writes);
        plan.targets.insert(target.name.clone(), outcome.plan);
    }
    plan.held = safety::check(safety_rules, &figures);
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
        },
    ));
    Ok(Planned { plan, commit })
}

/// One target's part of a plan.
struct TargetOutcome {
    plan: TargetPlan,
    writes: Vec<EntryWrite>,
    /// The source's records active at the target before this file.
    active_before: u64,
}

/// An action found, before ordering and detail.
struct Found<'r> {
    key: String,
    action: ActionKind,
    record: Option<&'r Record>,
}

fn plan_target<'r>(
    store: &Store,
    source: &SourceInfo,
    target: &TargetInfo,
    by_key: &[&'r Record],
    options: PlanOptions,
) -> Result<TargetOutcome, StoreError> {
    let mut writes = Vec::new();
    let mut found = Vec::new();
    let mut active_before = 0;
    let mut visit = |record: Option<&'r Record>, key: &str, entry: Option<Entry>| {
        if let Some(entry) = &entry
            && entry.source == source.name
            && entry.acked.as_ref().is_some_and(|a| a.active)
        {
            active_before += 1;
        }
        if let Some(step) = step(source, target, record, key, entry, options)? {
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
            for record in by_key {
                let key = record_key(target, source.kind, record.key());
                visit(Some(record), record.key(), store.entry(&key)?)?;
            }
        }
        Mode::Full => {
            let mut entries = store.entries(&target.name, source.kind).peekable();
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
                let next_record = records.peek().map(|r| r.key());
                match (next_record, next_entry) {
                    (None, None) => break,
                    (Some(r), e) if e.is_none_or(|e| r < e) => {
                        let record = records.next().copied();
                        visit(record, r, None)?;
                    }
                    (r, Some(e)) if r.is_none_or(|r| e < r) => {
                        if let Some(Ok((key, entry))) = entries.next() {
                            // Absent from a full file: blocked, if it is this source's.
                            if entry.source == source.name {
                                visit(None, &key, Some(entry))?;
                            }
                        }
                    }
                    _ => {
                        let record = records.next().copied();
                        if let (Some(record), Some(Ok((_, entry)))) = (record, entries.next()) {
                            visit(Some(record), record.key(), Some(entry))?;
                        }
                    }
                }
            }
        }
    }
    let plan = detail(store, source, target, found, options.detail_limit)?;
    Ok(TargetOutcome {
        plan,
        writes,
        active_before,
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
}

fn step(
    source: &SourceInfo,
    target: &TargetInfo,
    record: Option<&Record>,
    key: &str,
    entry: Option<Entry>,
    options: PlanOptions,
) -> Result<Option<Step>, StoreError> {
    let mut desired = match (record, &entry) {
        (Some(record), _) => desired_of(record, &target.projector),
        (None, Some(entry)) => Desired {
            present: false,
            ..entry.desired.clone()
        },
        (None, None) => return Ok(None),
    };
    desired.active = diff::is_active(&desired, options.today);
    let queued_before = entry
        .as_ref()
        .and_then(|e| diff::decide(&e.desired, e.acked.as_ref(), source.create_disabled));
    let entry_changed = entry
        .as_ref()
        .is_none_or(|e| e.source != source.name || e.desired != desired);
    let fields_changed = entry
        .as_ref()
        .is_none_or(|e| e.desired.hash != desired.hash);
    let acked = entry.and_then(|e| e.acked);
    let action = diff::decide(&desired, acked.as_ref(), source.create_disabled);
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
    let write = if entry_changed || outbox != OutboxChange::Keep {
        let desired_fields = match record.filter(|_| fields_changed) {
            Some(record) => Some(EncodedFields::new(&target.projector.project(record))?),
            None => None,
        };
        Some(EntryWrite {
            key: record_key(target, source.kind, key),
            entry: Entry {
                source: source.name.clone(),
                desired,
                acked,
            },
            desired_fields,
            outbox,
        })
    } else {
        None
    };
    Ok(Some(Step { action, write }))
}

fn desired_of(record: &Record, projector: &Projector) -> Desired {
    let day = |field| record.date(field).map(|d: NaiveDate| d.num_days_from_ce());
    Desired {
        hash: projector.hash(record),
        active: true, // decided by the caller, with the dates
        disabled: record.disabled(),
        activation: day(Field::ActivationDate),
        expiration: day(Field::ExpirationDate),
        present: true,
    }
}

/// Orders the actions (dependencies first, blocks last) and fills in the
/// changed fields of the first `detail_limit` of each kind.
fn detail(
    store: &Store,
    source: &SourceInfo,
    target: &TargetInfo,
    mut found: Vec<Found<'_>>,
    detail_limit: usize,
) -> Result<TargetPlan, StoreError> {
    // Key order, so that the plan never depends on the order of the file's
    // rows; blocks (which send no references) last.
    found.sort_by(|a, b| {
        (a.action == ActionKind::Block, &a.key).cmp(&(b.action == ActionKind::Block, &b.key))
    });
    let sending = found
        .iter()
        .filter(|f| f.action != ActionKind::Block)
        .count();
    let keys: Vec<&str> = found[..sending].iter().map(|f| f.key.as_str()).collect();
    let reference_fields: &[Field] = match source.kind {
        RecordKind::Orgs => &[Field::ParentExtId],
        RecordKind::Users => &[Field::ManagerExtId, Field::AltManagerExtId],
    };
    let references: Vec<Vec<&str>> = found[..sending]
        .iter()
        .map(|f| {
            reference_fields
                .iter()
                .filter_map(|&field| f.record.and_then(|r| r.get(field)))
                .collect()
        })
        .collect();
    let (order, deferred) = diff::dependency_order(&keys, &references);
    let deferred: std::collections::HashSet<usize> = deferred.into_iter().collect();

    let mut plan = TargetPlan::default();
    let mut detailed: BTreeMap<ActionKind, usize> = BTreeMap::new();
    let sequence = order.into_iter().chain(sending..found.len());
    for index in sequence {
        let f = &found[index];
        let name = f.action;
        match f.action {
            ActionKind::Create => plan.create += 1,
            ActionKind::Update => plan.update += 1,
            ActionKind::Block => plan.block += 1,
            ActionKind::Unblock => plan.unblock += 1,
        }
        let shown = detailed.entry(name).or_default();
        let changes = if *shown < detail_limit {
            *shown += 1;
            changes_of(store, source, target, f)?
        } else {
            BTreeMap::new()
        };
        let deferred_fields = if deferred.contains(&index) {
            reference_fields
                .iter()
                .filter(|&&field| f.record.and_then(|r| r.get(field)).is_some())
                .map(|field| field.name().to_string())
                .collect()
        } else {
            Vec::new()
        };
        plan.actions.push(PlannedAction {
            action: name,
            kind: source.kind,
            ext_id: f.key.clone(),
            changes,
            deferred: deferred_fields,
            status: None,
            reason: None,
        });
    }
    Ok(plan)
}

fn changes_of(
    store: &Store,
    source: &SourceInfo,
    target: &TargetInfo,
    found: &Found<'_>,
) -> Result<BTreeMap<String, Change>, StoreError> {
    let key = record_key(target, source.kind, &found.key);
    let new = match found.record {
        Some(record) => target.projector.project(record),
        None => store.desired_fields(&key)?.unwrap_or_default(),
    };
    let old = if found.action == ActionKind::Create {
        Fields::new()
    } else {
        store.acked_fields(&key)?.unwrap_or_default()
    };
    Ok(diff::changes(&old, &new))
}

/// Records of a target whose activation or expiration date took effect in
/// `(since, today]`: their desired activity changed without a new file.
pub fn date_changes(
    store: &Store,
    target: &str,
    kind: RecordKind,
    since: NaiveDate,
    today: NaiveDate,
) -> Result<Vec<String>, StoreError> {
    let mut changed = Vec::new();
    for item in store.entries(target, kind) {
        let (key, entry) = item?;
        let dated = entry.desired.activation.is_some() || entry.desired.expiration.is_some();
        if dated && diff::is_active(&entry.desired, since) != diff::is_active(&entry.desired, today)
        {
            changed.push(key);
        }
    }
    Ok(changed)
}

/// The daily re-plan: for the records of [`date_changes`], the new desired
/// activity and the actions it takes, as a commit. `create_disabled` tells,
/// per source name, whether a new inactive record is created anyway.
pub fn plan_dates(
    store: &Store,
    targets: &[TargetInfo],
    create_disabled: impl Fn(&str) -> bool,
    since: NaiveDate,
    options: PlanOptions,
) -> Result<(Vec<(String, PlannedAction)>, Commit), StoreError> {
    let mut actions = Vec::new();
    let mut commit = Commit::default();
    for target in targets {
        for kind in [RecordKind::Orgs, RecordKind::Users] {
            for key in date_changes(store, &target.name, kind, since, options.today)? {
                let record_key = record_key(target, kind, &key);
                let Some(entry) = store.entry(&record_key)? else {
                    continue;
                };
                let create_disabled = create_disabled(&entry.source);
                let mut desired = entry.desired.clone();
                desired.active = diff::is_active(&desired, options.today);
                let action = diff::decide(&desired, entry.acked.as_ref(), create_disabled);
                let outbox = match action {
                    Some(action) => OutboxChange::Put(OutboxItem {
                        action,
                        queued_at: options.now,
                    }),
                    None => OutboxChange::Remove,
                };
                if let Some(action) = action {
                    let fields = store.desired_fields(&record_key)?.unwrap_or_default();
                    let old = match action {
                        ActionKind::Create => Fields::new(),
                        _ => store.acked_fields(&record_key)?.unwrap_or_default(),
                    };
                    actions.push((
                        target.name.clone(),
                        PlannedAction {
                            action,
                            kind,
                            ext_id: key.clone(),
                            changes: diff::changes(&old, &fields),
                            deferred: Vec::new(),
                            status: None,
                            reason: None,
                        },
                    ));
                }
                commit.writes.push(EntryWrite {
                    key: record_key,
                    entry: Entry { desired, ..entry },
                    desired_fields: None,
                    outbox,
                });
            }
        }
    }
    Ok((actions, commit))
}
