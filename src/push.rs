//! Push: drains a target's outbox through its connector, acknowledging what
//! the target confirmed (in the store, with the outbox entry, at once),
//! retrying transient failures with the retry policy, and parking refusals.
//! Store calls run on the blocking pool, never on the async executor.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::config::{RetryConfig, TargetConfig};
use crate::connectors::adopt::Holders;
use crate::connectors::{AnyConnector, ConnectorError, Outcome, PushItem, PushReply};
use crate::diff;
use crate::ingest::record::{Field, RecordKind};
use crate::metrics::Settled;
pub use crate::model::PushStatus;
use crate::model::{Acked, ActionKind, Candidate, RecordKey};
use crate::projection::Fields;
use crate::projection::Projector;
use crate::retry::{Backoff, Failure};
use crate::store::{Parked, Store, StoreError};

mod control;
mod holders;
mod one;
mod waiting;

use waiting::{WaitingList, load, waiting};

pub use control::DrainControl;
pub use one::{PushedOne, push_one};

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Join(String),
}

/// What draining a target did: counts, not one result per record (a
/// million records' results would outweigh the push itself). Where each
/// record stands is in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drained {
    /// Records the target confirmed.
    pub done: u64,
    /// Records parked in this drain.
    pub parked: u64,
    /// The last record parked, as `kind key: reason`.
    pub last_parked: Option<String>,
    /// Why pushing to the target stopped, if the target showed it must not get more.
    pub stopped: Option<String>,
    /// Stopped with what waits kept waiting (the target refused our
    /// credentials): worth trying again later, unlike a parked stop.
    pub on_hold: bool,
    /// Cut short by its [`DrainControl`], with what waits kept waiting.
    pub interrupted: bool,
    /// Of the parked, those parked as ambiguous.
    pub ambiguous: u64,
    /// The first records parked ([`LISTED_PARKED`]), by kind and key, with
    /// the logins of the accounts an ambiguous one could be: what a
    /// notification names.
    pub parked_records: Vec<ParkedRecord>,
}

/// How many parked records a [`Drained`] names.
pub const LISTED_PARKED: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedRecord {
    pub kind: RecordKind,
    pub key: String,
    /// Empty unless parked as ambiguous.
    pub candidate_logins: Vec<String>,
}

impl Drained {
    /// A record the target confirmed at `at` (Unix seconds).
    fn done(&mut self, key: &RecordKey, action: ActionKind, at: i64) {
        self.done += 1;
        let metrics = crate::metrics::get();
        metrics.actions(&key.target, action, Settled::Done, 1);
        metrics.target_succeeded(&key.target, at as f64);
    }

    fn parked(&mut self, key: &RecordKey, action: ActionKind, reason: &str) {
        self.parked += 1;
        self.last_parked = Some(format!("{} {}: {reason}", key.kind, key.key));
        crate::metrics::get().actions(&key.target, action, Settled::Parked, 1);
        self.list(key, Vec::new());
    }

    fn parked_ambiguous(
        &mut self,
        key: &RecordKey,
        action: ActionKind,
        reason: &str,
        candidates: &[Candidate],
    ) {
        self.parked += 1;
        self.ambiguous += 1;
        self.last_parked = Some(format!("{} {}: {reason}", key.kind, key.key));
        crate::metrics::get().actions(&key.target, action, Settled::Parked, 1);
        self.list(key, candidates.iter().map(|c| c.login.clone()).collect());
    }

    fn list(&mut self, key: &RecordKey, candidate_logins: Vec<String>) {
        if self.parked_records.len() < LISTED_PARKED {
            self.parked_records.push(ParkedRecord {
                kind: key.kind,
                key: key.key.clone(),
                candidate_logins,
            });
        }
    }
}

/// What the push engine needs to know of a target.
pub struct PushTarget {
    pub name: String,
    /// Shared with the tasks that send, one per batch under way.
    pub connector: Arc<AnyConnector>,
    pub retry: RetryConfig,
    /// How many pushes (batches, or single records) may be under way at once.
    pub concurrency: usize,
    /// How the target sees records: its projections are computed when sent.
    projector: Arc<Projector>,
    users: References,
    orgs: References,
}

/// The fields through which records of one kind refer to each other, each
/// under the target's name and as the canonical field it maps.
#[derive(Debug, Clone, Default)]
struct References {
    /// The field holding the record's own external id, when the target maps it.
    own_id: Option<(String, Field)>,
    /// Parent organisation; manager and alternate manager.
    fields: Vec<(String, Field)>,
}

impl PushTarget {
    pub fn from_config(target: &TargetConfig) -> Result<PushTarget, ConnectorError> {
        let projector = Projector::new(target.kind.default_fields(), target.fields.get_ref());
        let references = |kind: RecordKind, fields: &[Field]| References {
            own_id: projector
                .target_field(kind, Field::ExtId)
                .map(|name| (name.to_string(), Field::ExtId)),
            fields: fields
                .iter()
                .filter_map(|field| {
                    projector
                        .target_field(kind, *field)
                        .map(|name| (name.to_string(), *field))
                })
                .collect(),
        };
        Ok(PushTarget {
            name: target.name.get_ref().clone(),
            connector: Arc::new(AnyConnector::from_config(target)?),
            retry: target.retry.clone(),
            concurrency: (*target.concurrency.get_ref()).max(1),
            users: references(
                RecordKind::Users,
                &[Field::ManagerExtId, Field::AltManagerExtId],
            ),
            orgs: references(RecordKind::Orgs, &[Field::ParentExtId]),
            projector: Arc::new(projector),
        })
    }

    fn references(&self, kind: RecordKind) -> &References {
        match kind {
            RecordKind::Users => &self.users,
            RecordKind::Orgs => &self.orgs,
        }
    }
}

/// Sends everything waiting for a target: organisations first, then users;
/// within a kind, by dependency level (parents before children, managers
/// before their reports), each level in batches, `concurrency` at a time.
/// Only keys and references of the waiting records are held in memory at
/// once; their projections are read page by page as they are sent.
/// Returns once the outbox holds only parked records, or the target was stopped.
/// `control` may cut it short between retries (what waits keeps waiting).
pub async fn drain(
    store: &Arc<Store>,
    target: &PushTarget,
    now: fn() -> i64,
    control: &DrainControl,
) -> Result<Drained, PushError> {
    let mut drained = Drained::default();
    let holders: Arc<dyn Holders> = Arc::new(holders::DrainHolders::new(Arc::clone(store)));
    for kind in [RecordKind::Orgs, RecordKind::Users] {
        let mut backoff = Backoff::new(&target.retry);
        loop {
            if control.interrupted() {
                drained.interrupted = true;
                return Ok(drained);
            }
            let references = target.references(kind).clone();
            let name = target.name.clone();
            let records = crate::store::blocking(store, move |store| {
                waiting(store, &name, kind, &references)
            })
            .await?;
            if records.is_empty() {
                break;
            }
            let round =
                push_round(store, target, kind, &records, &mut drained, &holders, now).await?;
            if let Some(Stop::Hold(reason)) = round.stop {
                tracing::error!(target = %target.name, %reason, "pushing to this target stopped; what waits keeps waiting");
                crate::metrics::get().target_failed(&target.name, now());
                drained.stopped = Some(reason);
                drained.on_hold = true;
                return Ok(drained);
            }
            if let Some(Stop::Park(reason)) = round.stop {
                // The target showed it must not get more: everything still
                // waiting is parked with the reason, for a person to look at.
                tracing::error!(target = %target.name, %reason, "pushing to this target stopped");
                crate::metrics::get().target_failed(&target.name, now());
                let references = target.references(kind).clone();
                let name = target.name.clone();
                let left = crate::store::blocking(store, move |store| {
                    waiting(store, &name, kind, &references)
                })
                .await?;
                for index in 0..left.len() {
                    let key = left.record_key(index, target, kind);
                    park(store, &key, left.action(index), &reason, false, now()).await?;
                    drained.parked(&key, left.action(index), &reason);
                }
                drained.stopped = Some(reason);
                return Ok(drained);
            }
            let failing = round.failing;
            if failing.is_empty() {
                continue; // a newer desired state may have been queued meanwhile
            }
            let asked = failing
                .iter()
                .filter_map(|failed| match &failed.failure {
                    Failure::Transient { retry_after, .. } => *retry_after,
                    Failure::Permanent { .. } => None,
                })
                .max();
            match backoff.next_delay(asked) {
                Some(delay) => {
                    let metrics = crate::metrics::get();
                    metrics.retries(&target.name, failing.len() as u64);
                    metrics.target_failed(&target.name, now());
                    let reason = failing[0].failure.reason();
                    tracing::info!(target = %target.name, records = failing.len(), ?delay, %reason, "retrying after a transient failure");
                    let why = format!(
                        "{} record(s) tried again in {delay:.1?} after a transient failure: {reason}",
                        failing.len()
                    );
                    if !control.wait(delay, &why).await {
                        drained.interrupted = true;
                        return Ok(drained);
                    }
                }
                None => {
                    crate::metrics::get().target_failed(&target.name, now());
                    for failed in &failing {
                        let reason = format!(
                            "still failing when the retry budget ran out: {}",
                            failed.failure.reason()
                        );
                        park(store, &failed.key, failed.action, &reason, true, now()).await?;
                        drained.parked(&failed.key, failed.action, &reason);
                    }
                }
            }
        }
    }
    Ok(drained)
}

/// A record that failed transiently in a pass.
struct Failed {
    key: RecordKey,
    action: ActionKind,
    failure: Failure,
}

/// What one pass over the waiting records left to do.
struct Round {
    /// Transient failures, to try again after a delay.
    failing: Vec<Failed>,
    stop: Option<Stop>,
}

/// Why a pass stopped sending to the target.
enum Stop {
    /// The target showed it must not get more (it did something it was not
    /// asked to): what still waits is parked, for a person to look at.
    Park(String),
    /// The target refused rostersync's credentials: nothing more is sent
    /// until they are fixed, and what waits keeps waiting (one alarm for
    /// the target, not one parked record per person).
    Hold(String),
}

/// How many records' projections are read from the store at a time.
/// One round of batches: the first requests go out soon, and each later
/// page is read while the previous round's requests are under way.
fn page_size(target: &PushTarget) -> usize {
    (target.connector.batch_size().max(1) * target.concurrency).clamp(256, 20_000)
}

/// One pass over the waiting records of a kind, level by level. A record
/// whose parent or manager failed in this pass waits for the next one (or is
/// parked with it, when the parent was refused). A reply that asks to wait
/// (`Retry-After`) ends the pass: nothing more is sent, the requests under
/// way are settled, and what was not sent waits for the next pass, after
/// the delay the target asked for.
async fn push_round(
    store: &Arc<Store>,
    target: &PushTarget,
    kind: RecordKind,
    records: &WaitingList,
    drained: &mut Drained,
    holders: &Arc<dyn Holders>,
    now: fn() -> i64,
) -> Result<Round, PushError> {
    let progress = crate::progress::Progress::new(
        format!("pushing {kind} to {}", target.name),
        records.len() as u64,
    );
    let levels = diff::levels_by_references(&records.references);

    let mut pass = Pass {
        failing: Vec::new(),
        asked_to_wait: false,
        failed: HashMap::new(),
        drained,
        progress: &progress,
        connector: &target.connector,
        acks: Vec::new(),
        acks_since: None,
        writing: None,
    };
    let batch_size = target.connector.batch_size().max(1);
    for level in levels {
        let mut sendable: Vec<usize> = Vec::with_capacity(level.len());
        for index in level {
            let index = index as usize;
            let action = records.action(index);
            // A block, unblock or delete goes whatever became of the records
            // it names: a leaver must not stay active behind a parked manager.
            let waits_on_references = !matches!(
                action,
                ActionKind::Block | ActionKind::Unblock | ActionKind::Delete
            );
            let references = if waits_on_references {
                records.references.of(index)
            } else {
                &[]
            };
            let blocked_by = references.iter().find_map(|&j| {
                let id = records.key(j as usize);
                pass.failed.get(id).map(|reason| (id, reason.clone()))
            });
            let key = || records.record_key(index, target, kind);
            match blocked_by {
                None => sendable.push(index),
                Some((id, Some(refused))) => {
                    let reason = format!("{id}, which it refers to, is parked: {refused}");
                    park(store, &key(), action, &reason, false, now()).await?;
                    pass.drained.parked(&key(), action, &reason);
                    pass.failed
                        .insert(records.key(index).to_string(), Some(reason));
                }
                Some((id, None)) => {
                    let reason = format!("waiting for {id}, which it refers to");
                    pass.failing.push(Failed {
                        key: key(),
                        action,
                        failure: Failure::Transient {
                            reason,
                            retry_after: None,
                        },
                    });
                    pass.failed.insert(records.key(index).to_string(), None);
                }
            }
        }
        // Each batch is sent by a task of its own, `concurrency` at a time,
        // so requests go on while earlier replies are acknowledged. The next
        // page of projections is read meanwhile, on the blocking pool.
        let mut pages = sendable.chunks(page_size(target)).map(|page| {
            page.iter()
                .map(|&i| (records.key(i).to_string(), records.action(i)))
                .collect::<Vec<_>>()
        });
        let read = |page: Vec<(String, ActionKind)>| {
            let store = Arc::clone(store);
            let name = target.name.clone();
            let projector = Arc::clone(&target.projector);
            tokio::task::spawn_blocking(move || load(&store, &name, &projector, kind, &page))
        };
        let mut reading = pages.next().map(read);
        let mut batches: VecDeque<Vec<PushItem>> = VecDeque::new();
        let mut replies = JoinSet::new();
        loop {
            if replies.len() < target.concurrency && !pass.asked_to_wait {
                if let Some(batch) = batches.pop_front() {
                    let connector = Arc::clone(&target.connector);
                    let holders = Arc::clone(holders);
                    replies.spawn(async move {
                        let reply = connector.push_with(&batch, holders.as_ref()).await;
                        (batch, reply)
                    });
                    continue;
                }
                if let Some(page) = reading.take() {
                    let items = page
                        .await
                        .map_err(|error| PushError::Join(error.to_string()))??;
                    reading = pages.next().map(read);
                    let mut items = items.into_iter().peekable();
                    while items.peek().is_some() {
                        batches.push_back(items.by_ref().take(batch_size).collect());
                    }
                    continue;
                }
            }
            let Some(joined) = replies.join_next().await else {
                // The level is done: its records are acknowledged before
                // the next level, which may refer to them, is sent.
                pass.write_acks(store).await?;
                if pass.asked_to_wait {
                    return Ok(Round {
                        failing: pass.failing,
                        stop: None,
                    });
                }
                break;
            };
            let (batch, reply) = joined.map_err(|error| PushError::Join(error.to_string()))?;
            if let Some(stop) = pass.settle(store, batch, reply, now).await? {
                replies.abort_all();
                pass.write_acks(store).await?;
                return Ok(Round {
                    failing: pass.failing,
                    stop: Some(stop),
                });
            }
        }
    }
    progress.finish();
    Ok(Round {
        failing: pass.failing,
        stop: None,
    })
}

/// What one pass has seen so far.
struct Pass<'r> {
    /// Transient failures, to try again after a delay.
    failing: Vec<Failed>,
    /// A reply asked to wait before the next request (`Retry-After`).
    asked_to_wait: bool,
    /// Keys of records that failed, with the parking reason when refused.
    failed: HashMap<String, Option<String>>,
    drained: &'r mut Drained,
    progress: &'r crate::progress::Progress,
    connector: &'r AnyConnector,
    /// Confirmed records not yet written to the store, and since when.
    acks: Vec<(RecordKey, Acked, Fields)>,
    acks_since: Option<tokio::time::Instant>,
    /// The group being written meanwhile, if any: sending goes on during it.
    writing: Option<tokio::task::JoinHandle<Result<(), StoreError>>>,
}

/// Acknowledgements are written in groups: one store batch per record would
/// cost more than the requests. Holding them a moment risks nothing: an
/// acknowledgement lost in a crash only means the record is sent again, and
/// every connector makes that harmless.
const ACK_GROUP: usize = 256;
const ACK_DELAY: Duration = Duration::from_millis(20);

impl Pass<'_> {
    /// Takes in the reply to one batch: acknowledges what the target
    /// confirmed, parks what it refused, keeps transient failures for the
    /// next round. Returns the target's reason to stop, if it gave one.
    ///
    /// A reply carries one outcome per record sent, in order. The records a
    /// short reply says nothing of may or may not have been applied: they
    /// fail transiently, as a timeout would. So they are neither
    /// acknowledged nor sent again at once (a target that always answers
    /// short would make that a loop without a pause), but retried with the
    /// backoff, and parked as still failing when the retry budget runs out,
    /// for an administrator to look at. Outcomes beyond the batch are ignored.
    async fn settle(
        &mut self,
        store: &Arc<Store>,
        batch: Vec<PushItem>,
        reply: PushReply,
        now: fn() -> i64,
    ) -> Result<Option<Stop>, PushError> {
        // Refused credentials (or an untrusted certificate) say nothing of
        // the records: none is parked.
        let refused = self.connector.refusal();
        let mut said = None;
        let answered = reply.outcomes.len();
        if answered != batch.len() {
            tracing::warn!(target = %batch.first().map_or("", |item| item.key.target.as_str()),
                sent = batch.len(), answered, "the target's reply does not have one outcome per record sent");
        }
        let unanswered = (answered..batch.len()).map(|_| {
            Outcome::Failed(Failure::Transient {
                reason: "the target's reply said nothing of this record".into(),
                retry_after: None,
            })
        });
        let outcomes = reply
            .outcomes
            .into_iter()
            .take(batch.len())
            .chain(unanswered);
        self.progress.advance(batch.len() as u64);
        for (item, outcome) in batch.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Acked { .. } if item.action == ActionKind::Delete => {
                    // The account is gone: no id of the target's is held any more.
                    let acked = Acked {
                        hash: item.hash,
                        active: false,
                        target_id: None,
                        at: now(),
                    };
                    self.drained.done(&item.key, item.action, acked.at);
                    let deleted = vec![(item.key, acked, item.fields)];
                    crate::store::blocking(store, move |store| store.acknowledge_deleted(&deleted))
                        .await?;
                }
                Outcome::Acked { target_id } => {
                    let acked = Acked {
                        hash: item.hash,
                        active: item.active,
                        target_id: target_id.or_else(|| item.target_id.clone()),
                        at: now(),
                    };
                    self.drained.done(&item.key, item.action, acked.at);
                    self.acks.push((item.key, acked, item.fields));
                    self.acks_since
                        .get_or_insert_with(tokio::time::Instant::now);
                }
                Outcome::Ambiguous(candidates) => {
                    let reason = ambiguous_reason(&candidates);
                    self.drained
                        .parked_ambiguous(&item.key, item.action, &reason, &candidates);
                    park_ambiguous(store, &item.key, item.action, &reason, candidates, now())
                        .await?;
                    self.failed.insert(item.key.key.clone(), Some(reason));
                }
                Outcome::Failed(failure) if refused.is_some() => {
                    said.get_or_insert_with(|| failure.reason().to_string());
                }
                Outcome::Failed(failure @ Failure::Permanent { .. }) => {
                    park(
                        store,
                        &item.key,
                        item.action,
                        failure.reason(),
                        false,
                        now(),
                    )
                    .await?;
                    self.drained
                        .parked(&item.key, item.action, failure.reason());
                    self.failed
                        .insert(item.key.key.clone(), Some(failure.reason().to_string()));
                }
                Outcome::Failed(failure) => {
                    if let Failure::Transient {
                        retry_after: Some(_),
                        ..
                    } = &failure
                    {
                        self.asked_to_wait = true;
                    }
                    self.failed.insert(item.key.key.clone(), None);
                    self.failing.push(Failed {
                        key: item.key.clone(),
                        action: item.action,
                        failure,
                    });
                }
            }
        }
        let due = self
            .acks_since
            .is_some_and(|since| since.elapsed() >= ACK_DELAY);
        if let Some(refusal) = refused {
            // The connector's own words for it, when a record failed with them.
            return Ok(Some(Stop::Hold(refusal.stop_reason(said))));
        }
        if let Some(reason) = reply.halt {
            return Ok(Some(Stop::Park(reason)));
        }
        if self.acks.len() >= ACK_GROUP || due {
            self.start_writing_acks(store).await?;
        }
        Ok(None)
    }

    /// Starts writing the waiting acknowledgements in the background, unless
    /// a group is still being written (they then go with the next one).
    async fn start_writing_acks(&mut self, store: &Arc<Store>) -> Result<(), PushError> {
        if let Some(writing) = &self.writing {
            if !writing.is_finished() {
                return Ok(());
            }
            self.finish_writing().await?;
        }
        self.acks_since = None;
        let acks = std::mem::take(&mut self.acks);
        let store = Arc::clone(store);
        self.writing = Some(tokio::task::spawn_blocking(move || {
            store.acknowledge_many(&acks)
        }));
        Ok(())
    }

    async fn finish_writing(&mut self) -> Result<(), PushError> {
        if let Some(writing) = self.writing.take() {
            writing
                .await
                .map_err(|error| PushError::Join(error.to_string()))??;
        }
        Ok(())
    }

    /// Writes every acknowledgement still held, and waits for it.
    async fn write_acks(&mut self, store: &Arc<Store>) -> Result<(), PushError> {
        self.finish_writing().await?;
        self.acks_since = None;
        if self.acks.is_empty() {
            return Ok(());
        }
        let acks = std::mem::take(&mut self.acks);
        Ok(crate::store::blocking(store, move |store| store.acknowledge_many(&acks)).await?)
    }
}

async fn park(
    store: &Arc<Store>,
    key: &RecordKey,
    action: ActionKind,
    reason: &str,
    transient: bool,
    at: i64,
) -> Result<(), PushError> {
    tracing::warn!(target = %key.target, kind = %key.kind, key = %key.key, %reason, "record parked");
    let key = key.clone();
    let parked = Parked {
        action,
        reason: reason.to_string(),
        at,
        transient,
    };
    Ok(crate::store::blocking(store, move |store| store.park(&key, &parked)).await?)
}

/// Parks a record the target holds several accounts for, with them.
async fn park_ambiguous(
    store: &Arc<Store>,
    key: &RecordKey,
    action: ActionKind,
    reason: &str,
    candidates: Vec<Candidate>,
    at: i64,
) -> Result<(), PushError> {
    tracing::warn!(target = %key.target, kind = %key.kind, key = %key.key, %reason, "record parked");
    let key = key.clone();
    let parked = Parked {
        action,
        reason: reason.to_string(),
        at,
        transient: false,
    };
    Ok(crate::store::blocking(store, move |store| {
        store.park_ambiguous(&key, &parked, &candidates)
    })
    .await?)
}

/// Why a record is parked as ambiguous: the accounts, and what to do.
fn ambiguous_reason(candidates: &[Candidate]) -> String {
    let accounts: Vec<String> = candidates
        .iter()
        .map(|c| {
            format!(
                "{} (login {:?}, by {})",
                c.id,
                c.login,
                c.matched_by.join(" and ")
            )
        })
        .collect();
    format!(
        "ambiguous: {} accounts at the target could be this person's: {}; none was taken and \
         nothing was created: remove or merge the extra accounts there (or correct the file), \
         then run `rostersync retry`",
        candidates.len(),
        accounts.join(", ")
    )
}

#[cfg(test)]
mod tests;
