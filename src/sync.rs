//! One file through the whole flow: ingest, plan, safety, commit, push,
//! acknowledgement, report. `rostersync sync` runs it once; the daemon runs
//! it for each finished file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use tracing::debug;

use crate::config::{Config, SourceConfig, TargetConfig};
use crate::connectors::ConnectorError;
use crate::ingest::{self, Ingested};
use crate::plan::{FileInfo, Plan, PlanOptions, SourceInfo, TargetInfo, plan_file};
use crate::push::{self, PushError, PushTarget};
use crate::store::{Store, StoreError};

#[derive(Debug)]
pub enum SyncOutcome {
    /// The file was refused by ingest: nothing changed.
    Refused(Ingested),
    /// The same bytes as the source's last accepted file: nothing to do.
    Duplicate,
    /// A safety rule holds the plan: nothing changed.
    Held(Plan),
    /// Applied: the plan, each action with its status.
    Done(Plan),
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot read {file}: {error}")]
    Read { file: String, error: std::io::Error },
    #[error("source {source_name}: {error}")]
    Source {
        source_name: String,
        error: crate::config::SpecError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error(transparent)]
    Push(#[from] PushError),
    #[error("cannot write down the plan before committing it: {0}")]
    BeforeCommit(std::io::Error),
    #[error("cannot write down every action before committing: {0}")]
    Actions(crate::plan_output::OutputError),
    #[error("internal error: {0}")]
    Join(String),
}

impl SyncError {
    /// A write that failed for the state directory's sake (full,
    /// read-only, an IO error), not the file's: `Some(true)` when the
    /// store itself failed, `Some(false)` for another file of the state
    /// directory (the plan written down before a commit).
    pub fn state_disk_failure(&self) -> Option<bool> {
        match self {
            SyncError::Store(error) | SyncError::Push(PushError::Store(error)) => {
                error.is_io().then_some(true)
            }
            SyncError::BeforeCommit(_) => Some(false),
            SyncError::Actions(error) => error.disk_failure(),
            _ => None,
        }
    }
}

pub struct SyncContext<'a> {
    pub config: &'a Config,
    pub store: Arc<Store>,
    pub today: NaiveDate,
    pub now: fn() -> i64,
    /// The file's name in plans and the store, when it is not the path's
    /// own (an approved held file keeps the name it arrived with).
    pub file_name: Option<String>,
}

pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// What accepting a file did (ingest, plan, safety, commit), before any push.
#[derive(Debug)]
pub enum Accepted {
    /// The file was refused by ingest: nothing changed.
    Refused(Ingested),
    /// The same bytes as the source's last accepted file: nothing to do.
    Duplicate,
    /// A safety rule holds the plan: nothing changed.
    Held(Plan),
    /// The plan is committed: its changes wait in the outbox of each target.
    Committed(Plan),
    /// These bytes are a commit already made whose file was never filed
    /// away (see [`AlreadyCommitted`]): not committed again.
    AlreadyCommitted { sha256: [u8; 32] },
}

/// How a held plan may be released (`rostersync approve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// The safety rules apply.
    None,
    /// A person approved a plan that blocked this many records in all; a new
    /// plan that blocks no more is applied despite the safety rules, one that
    /// blocks more stays held with the new figures.
    UpTo { blocks: u64 },
}

/// The targets a source feeds, in config order.
pub fn source_targets<'c>(config: &'c Config, source: &SourceConfig) -> Vec<&'c TargetConfig> {
    config
        .targets
        .iter()
        .filter(|t| {
            source
                .targets
                .get_ref()
                .iter()
                .any(|n| n.get_ref() == t.name.get_ref())
        })
        .collect()
}

/// One file through the whole flow: accept, then push to every target.
pub async fn sync_file(
    context: &SyncContext<'_>,
    source: &SourceConfig,
    file: &Path,
) -> Result<SyncOutcome, SyncError> {
    // Connector settings are checked before anything is committed.
    let connectors = source_targets(context.config, source)
        .into_iter()
        .map(PushTarget::from_config)
        .collect::<Result<Vec<_>, _>>()?;
    match accept(context, source, file, Approval::None).await? {
        Accepted::Refused(ingested) => Ok(SyncOutcome::Refused(ingested)),
        Accepted::Duplicate | Accepted::AlreadyCommitted { .. } => Ok(SyncOutcome::Duplicate),
        Accepted::Held(plan) => Ok(SyncOutcome::Held(plan)),
        Accepted::Committed(mut plan) => {
            push_all(context, connectors, &mut plan).await?;
            Ok(SyncOutcome::Done(plan))
        }
    }
}

/// Run off the executor with the plan about to be committed and the file's
/// SHA-256, just before the commit; an error stops the commit. The daemon
/// writes the plan down, so that a crash between the commit and the file's
/// archive loses no report.
pub type BeforeCommit = Box<dyn FnOnce(&Plan, &[u8; 32]) -> std::io::Result<()> + Send>;

/// Ingest, plan, safety and commit: after `Committed`, the file's changes are
/// safe in the store and the file itself may be archived.
pub async fn accept(
    context: &SyncContext<'_>,
    source: &SourceConfig,
    file: &Path,
    approval: Approval,
) -> Result<Accepted, SyncError> {
    accept_with(context, source, file, approval, None).await
}

/// Run off the executor with a file's SHA-256 before it is planned: `true`
/// when those bytes were committed already and their file never filed away
/// (the daemon stopped, or the file could not be moved), so that a file
/// left in the inbox is never committed again over newer files.
pub type AlreadyCommitted = Box<dyn FnOnce(&[u8; 32]) -> bool + Send>;

/// [`accept`], running `before_commit` just before the commit.
pub async fn accept_with(
    context: &SyncContext<'_>,
    source: &SourceConfig,
    file: &Path,
    approval: Approval,
    before_commit: Option<BeforeCommit>,
) -> Result<Accepted, SyncError> {
    // Never more than max_file_size: a bigger file is refused unread.
    let limit = source.max_file_size;
    let read = {
        let file = file.to_path_buf();
        tokio::task::spawn_blocking(move || read_bounded(&file, limit))
            .await
            .map_err(|error| SyncError::Join(error.to_string()))?
    };
    let bytes = match read.map_err(|error| SyncError::Read {
        file: crate::escape::path(file),
        error,
    })? {
        Ok(bytes) => bytes,
        Err(too_big) => return Ok(Accepted::Refused(ingest::refused(too_big))),
    };
    accept_checked(context, source, file, bytes, approval, before_commit, None).await
}

/// [`accept_with`] for `file`'s bytes read by the caller (the daemon reads
/// a drop its own way), asking `already_committed` first.
pub async fn accept_checked(
    context: &SyncContext<'_>,
    source: &SourceConfig,
    file: &Path,
    bytes: Vec<u8>,
    approval: Approval,
    before_commit: Option<BeforeCommit>,
    already_committed: Option<AlreadyCommitted>,
) -> Result<Accepted, SyncError> {
    let shown = crate::escape::path(file);
    let sha256: [u8; 32] = Sha256::digest(&bytes).into();
    let name = source.name.get_ref().clone();
    debug!(source = %name, file = %shown, bytes = bytes.len(), sha256 = %hex_start(&sha256), "file read");
    let store = Arc::clone(&context.store);
    let previous = crate::store::blocking(&store, {
        let name = name.clone();
        move |store| store.source_state(&name)
    })
    .await?;
    if approval == Approval::None && previous.is_some_and(|p| p.last_sha256 == sha256) {
        debug!(source = %name, file = %shown, "the same bytes as the source's last accepted file");
        return Ok(Accepted::Duplicate);
    }
    if let Some(check) = already_committed {
        let seen = tokio::task::spawn_blocking(move || check(&sha256))
            .await
            .map_err(|error| SyncError::Join(error.to_string()))?;
        if seen {
            return Ok(Accepted::AlreadyCommitted { sha256 });
        }
    }
    let spec = source.spec().map_err(|error| SyncError::Source {
        source_name: name.clone(),
        error,
    })?;
    let outcome = tokio::task::spawn_blocking(move || ingest::ingest(&bytes, &spec))
        .await
        .map_err(|error| SyncError::Join(error.to_string()))?;
    debug!(
        source = %name, file = %shown, rows = outcome.rows, problems = outcome.problems.len(),
        accepted = outcome.accepted(), "file ingested"
    );
    if !outcome.accepted() {
        return Ok(Accepted::Refused(outcome));
    }

    let targets = source_targets(context.config, source);
    let infos: Vec<TargetInfo> = targets.iter().map(|t| TargetInfo::from_config(t)).collect();
    let infos_for_note = infos.clone();
    let source_info = SourceInfo::from_config(source);
    let file_info = FileInfo {
        name: context.file_name.clone().unwrap_or_else(|| {
            file.file_name()
                .map_or_else(|| shown.clone(), |n| n.to_string_lossy().into_owned())
        }),
        sha256,
        rows: outcome.rows as u64,
    };
    let options = PlanOptions {
        today: context.today,
        now: (context.now)(),
        detail_limit: context.config.daemon.report_actions,
    };
    let safety = context.config.safety.clone();
    let problems = problems_let_through(&outcome);
    let records = outcome.records;
    let (mut planned, records) = crate::store::blocking(&store, move |store| {
        plan_file(
            store,
            &source_info,
            &infos,
            &records,
            &file_info,
            &safety,
            options,
        )
        .map(|planned| (planned, records))
    })
    .await?;
    planned.plan.problems = problems;
    for (target, counts) in &planned.plan.targets {
        debug!(
            source = %name, file = %shown, %target, create = counts.create, update = counts.update,
            block = counts.block, unblock = counts.unblock, unchanged = counts.unchanged,
            not_created = counts.not_created, held = planned.held(), "file planned"
        );
    }
    if planned.held() {
        let approved = match approval {
            Approval::None => false,
            Approval::UpTo { blocks } => total_blocks(&planned.plan) <= blocks,
        };
        if !approved {
            return Ok(Accepted::Held(planned.plan));
        }
    }
    // More actions than a report lists: every one is written down now,
    // while the store still holds what they change from.
    let report_actions = context.config.daemon.report_actions;
    let note = actions_note_path(&context.config.daemon.state_dir, &name);
    let spill = planned
        .plan
        .targets
        .keys()
        .any(|target| planned.action_count(target) > report_actions);
    let (planned, records) = {
        let store = Arc::clone(&store);
        tokio::task::spawn_blocking(move || {
            let written = if spill {
                write_actions_note(&store, &planned, &records, &infos_for_note, &note)
            } else {
                remove_actions_note(&note)
            };
            written.map(|()| (planned, records))
        })
        .await
        .map_err(|error| SyncError::Join(error.to_string()))?
        .map_err(SyncError::Actions)?
    };
    let mut plan = planned.plan;
    plan.held = None;
    plan.held_also.clear();
    if let Some(before_commit) = before_commit {
        plan = tokio::task::spawn_blocking(move || before_commit(&plan, &sha256).map(|()| plan))
            .await
            .map_err(|error| SyncError::Join(error.to_string()))?
            .map_err(SyncError::BeforeCommit)?;
    }
    let commit = planned.commit;
    let target_names: Vec<String> = targets.iter().map(|t| t.name.get_ref().clone()).collect();
    crate::store::blocking(&store, move |store| {
        store.commit(&commit, &records)?;
        // A new file of the source is the moment to try parked records again.
        for target in &target_names {
            store.unpark_all(target)?;
        }
        Ok(())
    })
    .await?;
    debug!(source = %name, file = %shown, "file committed: its changes wait in the targets' outboxes");
    Ok(Accepted::Committed(plan))
}

/// The first bytes of a digest in hex, enough to tell files apart in a log.
fn hex_start(digest: &[u8; 32]) -> String {
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// A file's bytes, or why it is refused on its size alone: never more than
/// `limit` bytes are read, whatever the file grows to meanwhile.
fn read_bounded(
    path: &Path,
    limit: crate::config::size::ByteSize,
) -> std::io::Result<Result<Vec<u8>, String>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if let Some(reason) = crate::config::size::too_big(size, limit) {
        return Ok(Err(reason));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit.0.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok(
        match crate::config::size::too_big(bytes.len() as u64, limit) {
            Some(reason) => Err(reason),
            None => Ok(bytes),
        },
    )
}

/// An accepted file's problems, as its plan and report list them (escaped:
/// they quote the file's values).
pub fn problems_let_through(outcome: &Ingested) -> Vec<String> {
    let mut listed: Vec<String> = outcome
        .problems
        .iter()
        .map(|problem| crate::escape::text(&problem.to_string()).into_owned())
        .collect();
    if outcome.problems_not_listed > 0 {
        listed.push(format!("and {} more", outcome.problems_not_listed));
    }
    listed
}

/// Where every action of a source's plan is written down before its
/// commit when there are more than a report lists; moved beside the
/// report as `<...>.actions.jsonl` once the file is archived.
pub fn actions_note_path(state_dir: &Path, source: &str) -> PathBuf {
    state_dir
        .join("commits")
        .join(format!("{source}.actions.jsonl"))
}

fn write_actions_note(
    store: &Store,
    planned: &crate::plan::Planned,
    records: &[crate::ingest::record::Record],
    targets: &[TargetInfo],
    path: &Path,
) -> Result<(), crate::plan_output::OutputError> {
    if let Some(folder) = path.parent() {
        crate::file_modes::private_dir(folder)?;
    }
    let partial = path.with_extension("jsonl.part");
    let written = (|| {
        let mut out = std::io::BufWriter::new(crate::file_modes::create_file(
            &partial,
            crate::file_modes::Access::Private,
        )?);
        crate::plan_output::write_jsonl(planned, store, records, targets, &mut out)?;
        out.into_inner()
            .map_err(|error| error.into_error())?
            .sync_all()?;
        std::fs::rename(&partial, path)?;
        Ok(())
    })();
    if written.is_err() {
        // A full disk must not stay full of the half-written note.
        let _ = std::fs::remove_file(&partial);
    }
    written
}

fn remove_actions_note(path: &Path) -> Result<(), crate::plan_output::OutputError> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
        _ => Ok(()),
    }
}

/// Blocks and deletes of a plan, all targets together: what an approval
/// bounds (a plan that blocks or deletes more than the one a person
/// approved stays held).
pub fn total_blocks(plan: &Plan) -> u64 {
    plan.targets.values().map(|t| t.block + t.delete).sum()
}

/// Drains each target's outbox (side by side: a slow or failing target does
/// not hold the others), then marks the plan's listed actions done or
/// parked as the store has them, and counts each target's parked records.
pub async fn push_all(
    context: &SyncContext<'_>,
    connectors: Vec<PushTarget>,
    plan: &mut Plan,
) -> Result<(), SyncError> {
    let store = Arc::clone(&context.store);
    let mut tasks = tokio::task::JoinSet::new();
    for pusher in connectors {
        let store = Arc::clone(&store);
        let now = context.now;
        tasks.spawn(async move {
            let drained =
                push::drain(&store, &pusher, now, &push::DrainControl::unattended()).await;
            (pusher.name, drained)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (name, drained) = joined.map_err(|error| SyncError::Join(error.to_string()))?;
        let drained = drained?;
        if let Some(target) = plan.targets.get_mut(&name) {
            target.stopped = drained.stopped;
            // Beside those parked while planning (a template failed on them).
            target.parked += drained.parked;
        }
    }
    let mut listed = std::mem::take(&mut plan.targets);
    listed = crate::store::blocking(&store, move |store| {
        apply_statuses(store, &mut listed).map(|()| listed)
    })
    .await?;
    plan.targets = listed;
    Ok(())
}

/// Marks each listed action done or parked, as the store has it.
fn apply_statuses(
    store: &Store,
    targets: &mut std::collections::BTreeMap<String, crate::plan::TargetPlan>,
) -> Result<(), StoreError> {
    let mut reader = store.reader();
    for (name, target) in targets.iter_mut() {
        for action in &mut target.actions {
            let key = crate::model::RecordKey {
                target: name.clone(),
                kind: action.kind,
                key: action.ext_id.clone(),
            };
            action.settle(reader.push_status(&key)?);
        }
    }
    Ok(())
}

/// What seeding a source's new targets did ([`seed_source`]).
#[derive(Debug)]
pub enum Seeding {
    /// Every target of the source had its snapshot, or it has no file yet.
    Nothing,
    /// A commit of this source was cut short by a crash: its snapshot is
    /// half new, so the seed waits until that file is planned again.
    Pending,
    /// A safety rule holds the seed's plan: nothing was committed.
    Held(Plan),
    /// Committed: each target of the plan has its records in its outbox.
    Committed(Plan),
}

/// What [`seed_source`] needs of the config, owned (it runs on the blocking pool).
#[derive(Debug, Clone)]
pub struct SeedInputs {
    pub source: SourceInfo,
    /// Every target of the source, in config order.
    pub targets: Vec<TargetInfo>,
    pub safety: crate::config::SafetyConfig,
}

impl SeedInputs {
    pub fn new(config: &Config, source: &SourceConfig) -> SeedInputs {
        SeedInputs {
            source: SourceInfo::from_config(source),
            targets: source_targets(config, source)
                .into_iter()
                .map(TargetInfo::from_config)
                .collect(),
            safety: config.safety.clone(),
        }
    }
}

/// A target added to a source since its last file (or listed again) is
/// given every record of the source's snapshot, as a commit of its own
/// (the safety rules apply as to a file); other targets are left as they
/// are. Logs one line per seeded target, or an error per target when the
/// seed is held. Blocking: call it on the blocking pool.
pub fn seed_source(
    store: &Store,
    inputs: &SeedInputs,
    today: NaiveDate,
    now: i64,
) -> Result<Seeding, StoreError> {
    let name = &inputs.source.name;
    if store.pending_commit()?.is_some_and(|p| &p.source == name) {
        tracing::info!(source = %name, "a commit of this source was cut short: its new targets are seeded once that file is taken again");
        return Ok(Seeding::Pending);
    }
    let options = PlanOptions {
        today,
        now,
        // Counts are whole; no one reads the changed fields of a seed.
        detail_limit: 0,
    };
    let seeded = crate::plan::plan_seed(
        store,
        &inputs.source,
        &inputs.targets,
        &inputs.safety,
        options,
    )?;
    let Some((planned, records)) = seeded else {
        return Ok(Seeding::Nothing);
    };
    if records.is_empty() {
        // A store migrated from schema 1 has no snapshot until the source's
        // next file: nothing to give (and not a file of 0 rows to hold).
        tracing::info!(source = %name, "the source's last file is not in the store (migrated from an older layout): its new targets get their records with its next file");
        return Ok(Seeding::Nothing);
    }
    if let Some(held) = &planned.plan.held {
        for target in planned.plan.targets.keys() {
            tracing::error!(
                source = %name,
                target = %target,
                rule = %held.rule,
                value = held.value,
                limit = held.limit,
                "the seed of a target new to the source is held by a safety rule ({held}): nothing committed, tried again at the next start or reload (or planned with the source's next file)"
            );
        }
        return Ok(Seeding::Held(planned.plan));
    }
    store.commit(&planned.commit, &records)?;
    for (target, plan) in &planned.plan.targets {
        tracing::info!(
            source = %name,
            target = %target,
            file = %crate::escape::text(&planned.plan.file),
            records = plan.create + plan.update + plan.block + plan.unblock,
            "target seeded with the source's last file: its records are queued"
        );
    }
    Ok(Seeding::Committed(planned.plan))
}

/// What pushing its seed did to one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedPushed {
    pub done: u64,
    pub parked: u64,
    /// Why pushing to the target stopped, when it did.
    pub stopped: Option<String>,
}

impl SeedPushed {
    /// Some record was parked, or the target stopped.
    pub fn failed(&self) -> bool {
        self.parked > 0 || self.stopped.is_some()
    }
}

/// `rostersync sync`'s first step, as the daemon's start: [`seed_source`],
/// then each seeded target's outbox drained (side by side), logged per
/// target. Returns what each seeded target took; empty when nothing was
/// seeded.
pub async fn seed_and_push(
    context: &SyncContext<'_>,
    source: &SourceConfig,
) -> Result<std::collections::BTreeMap<String, SeedPushed>, SyncError> {
    // Connector settings are checked before anything is committed.
    let connectors = source_targets(context.config, source)
        .into_iter()
        .map(PushTarget::from_config)
        .collect::<Result<Vec<_>, _>>()?;
    let inputs = SeedInputs::new(context.config, source);
    let (today, now) = (context.today, (context.now)());
    let seeding = crate::store::blocking(&context.store, move |store| {
        seed_source(store, &inputs, today, now)
    })
    .await?;
    let mut pushed = std::collections::BTreeMap::new();
    let Seeding::Committed(plan) = seeding else {
        return Ok(pushed);
    };
    let mut tasks = tokio::task::JoinSet::new();
    for pusher in connectors {
        if !plan.targets.contains_key(&pusher.name) {
            continue;
        }
        let store = Arc::clone(&context.store);
        let now = context.now;
        tasks.spawn(async move {
            let drained =
                push::drain(&store, &pusher, now, &push::DrainControl::unattended()).await;
            (pusher.name, drained)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (target, drained) = joined.map_err(|error| SyncError::Join(error.to_string()))?;
        let drained = drained?;
        let done = drained.done;
        let seeded = SeedPushed {
            done,
            parked: drained.parked,
            stopped: drained.stopped,
        };
        match &seeded.stopped {
            Some(reason) => {
                tracing::warn!(target = %target, done, parked = seeded.parked, %reason, "seeded records pushed, until the target stopped")
            }
            None => {
                tracing::info!(target = %target, done, parked = seeded.parked, "seeded records pushed")
            }
        }
        pushed.insert(target, seeded);
    }
    Ok(pushed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_bounds_blocks_and_deletes_together() {
        let mut plan = Plan {
            source: "hr".into(),
            file: "u.csv".into(),
            rows: 10,
            held: None,
            held_also: Vec::new(),
            problems: Vec::new(),
            targets: Default::default(),
        };
        for (name, block, delete) in [("idp", 2, 3), ("lms", 1, 0)] {
            plan.targets.insert(
                name.into(),
                crate::plan::TargetPlan {
                    block,
                    delete,
                    ..Default::default()
                },
            );
        }
        assert_eq!(total_blocks(&plan), 6);
    }
}
