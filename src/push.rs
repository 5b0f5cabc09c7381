//! Push: drains a target's outbox through its connector, acknowledging what
//! the target confirmed (in the store, with the outbox entry, at once),
//! retrying transient failures with the retry policy, and parking refusals.
//! Store calls run on the blocking pool, never on the async executor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::config::{RetryConfig, TargetConfig};
use crate::connectors::{Connector, ConnectorError, Outcome, PushItem, PushReply};
use crate::diff;
use crate::ingest::record::{Field, RecordKind};
use crate::projection::Fields;
use crate::projection::Projector;
use crate::retry::{Backoff, Failure};
use crate::store::{Acked, ActionKind, Parked, RecordKey, Store, StoreError};

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushResult {
    pub key: RecordKey,
    pub action: ActionKind,
    pub status: PushStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushStatus {
    Done,
    Parked { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Join(String),
}

/// What draining a target did.
#[derive(Debug, Clone, Default)]
pub struct Drained {
    pub results: Vec<PushResult>,
    /// Why pushing to the target stopped, if the target showed it must not get more.
    pub stopped: Option<String>,
}

/// What the push engine needs to know of a target.
pub struct PushTarget {
    pub name: String,
    /// Shared with the tasks that send, one per batch under way.
    pub connector: Arc<Connector>,
    pub retry: RetryConfig,
    /// How many pushes (batches, or single records) may be under way at once.
    pub concurrency: usize,
    users: References,
    orgs: References,
}

/// The target fields through which records of one kind refer to each other.
#[derive(Debug, Clone, Default)]
struct References {
    /// The field holding the record's own external id, when the target maps it.
    own_id: Option<String>,
    /// Parent organisation; manager and alternate manager.
    fields: Vec<String>,
}

impl PushTarget {
    pub fn from_config(target: &TargetConfig) -> Result<PushTarget, ConnectorError> {
        let projector = Projector::new(target.kind, target.fields.get_ref());
        let references = |kind: RecordKind, fields: &[Field]| References {
            own_id: projector
                .target_field(kind, Field::ExtId)
                .map(str::to_string),
            fields: fields
                .iter()
                .filter_map(|field| projector.target_field(kind, *field))
                .map(str::to_string)
                .collect(),
        };
        Ok(PushTarget {
            name: target.name.get_ref().clone(),
            connector: Arc::new(Connector::from_config(target)?),
            retry: target.retry.clone(),
            concurrency: (*target.concurrency.get_ref()).max(1),
            users: references(
                RecordKind::Users,
                &[Field::ManagerExtId, Field::AltManagerExtId],
            ),
            orgs: references(RecordKind::Orgs, &[Field::ParentExtId]),
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
/// Returns once the outbox holds only parked records, or the target was stopped.
pub async fn drain(
    store: &Arc<Store>,
    target: &PushTarget,
    now: fn() -> i64,
) -> Result<Drained, PushError> {
    let mut results = Vec::new();
    for kind in [RecordKind::Orgs, RecordKind::Users] {
        let mut backoff = Backoff::new(&target.retry);
        loop {
            let items = blocking(store, {
                let name = target.name.clone();
                move |store| pending(store, &name, kind)
            })
            .await?;
            if items.is_empty() {
                break;
            }
            let round = push_round(store, target, &items, &mut results, now).await?;
            if let Some(reason) = round.halt {
                // The target showed it must not get more: everything still
                // waiting is parked with the reason, for a person to look at.
                tracing::error!(target = %target.name, %reason, "pushing to this target stopped");
                let left = blocking(store, {
                    let name = target.name.clone();
                    move |store| pending(store, &name, kind)
                })
                .await?;
                for item in &left {
                    park(store, item, &reason, false, now()).await?;
                    results.push(parked(item, &reason));
                }
                return Ok(Drained {
                    results,
                    stopped: Some(reason),
                });
            }
            let failing = round.failing;
            if failing.is_empty() {
                continue; // a newer desired state may have been queued meanwhile
            }
            let asked = failing
                .iter()
                .filter_map(|(_, failure)| match failure {
                    Failure::Transient { retry_after, .. } => *retry_after,
                    Failure::Permanent { .. } => None,
                })
                .max();
            match backoff.next_delay(asked) {
                Some(delay) => {
                    tracing::info!(target = %target.name, records = failing.len(), ?delay, reason = %failing[0].1.reason(), "retrying after a transient failure");
                    tokio::time::sleep(delay).await;
                }
                None => {
                    for (item, failure) in &failing {
                        let reason = format!(
                            "still failing when the retry budget ran out: {}",
                            failure.reason()
                        );
                        park(store, item, &reason, true, now()).await?;
                        results.push(parked(item, &reason));
                    }
                }
            }
        }
    }
    Ok(Drained {
        results,
        stopped: None,
    })
}

/// What one pass over the waiting records left to do.
struct Round {
    /// Transient failures, to try again after a delay.
    failing: Vec<(PushItem, Failure)>,
    halt: Option<String>,
}

/// One pass over the waiting records of a kind, level by level. A record
/// whose parent or manager failed in this pass waits for the next one (or is
/// parked with it, when the parent was refused).
async fn push_round(
    store: &Arc<Store>,
    target: &PushTarget,
    items: &[PushItem],
    results: &mut Vec<PushResult>,
    now: fn() -> i64,
) -> Result<Round, PushError> {
    let Some(kind) = items.first().map(|item| item.key.kind) else {
        return Ok(Round {
            failing: Vec::new(),
            halt: None,
        });
    };
    let references = target.references(kind);
    let ids: Vec<Vec<&str>> = items.iter().map(|item| own_ids(item, references)).collect();
    let refs: Vec<Vec<&str>> = items
        .iter()
        .map(|item| referenced(item, references))
        .collect();
    // dependency_levels wants one key per item: the first id stands for it,
    // and references to its other ids are rewritten to that one.
    let alias: HashMap<&str, &str> = ids
        .iter()
        .flat_map(|ids| ids.iter().map(move |id| (*id, ids[0])))
        .collect();
    let keys: Vec<&str> = ids.iter().map(|ids| ids[0]).collect();
    let refs: Vec<Vec<&str>> = refs
        .iter()
        .map(|r| r.iter().map(|id| *alias.get(id).unwrap_or(id)).collect())
        .collect();
    let levels = diff::dependency_levels(&keys, &refs);

    let mut pass = Pass {
        failing: Vec::new(),
        failed: HashMap::new(),
        results,
        acks: Vec::new(),
        acks_since: None,
        writing: None,
    };
    let batch_size = target.connector.batch_size().max(1);
    for level in levels {
        let mut sendable: Vec<PushItem> = Vec::with_capacity(level.len());
        for index in level {
            let item = &items[index];
            let blocked_by = refs[index]
                .iter()
                .find_map(|id| pass.failed.get(*id).map(|reason| (*id, reason.clone())));
            match blocked_by {
                None => sendable.push(item.clone()),
                Some((id, Some(refused))) => {
                    let reason = format!("{id}, which it refers to, is parked: {refused}");
                    park(store, item, &reason, false, now()).await?;
                    pass.results.push(parked(item, &reason));
                    pass.failed.insert(keys[index].to_string(), Some(reason));
                }
                Some((id, None)) => {
                    let failure = Failure::Transient {
                        reason: format!("waiting for {id}, which it refers to"),
                        retry_after: None,
                    };
                    pass.failing.push((item.clone(), failure));
                    pass.failed.insert(keys[index].to_string(), None);
                }
            }
        }
        // Each batch is sent by a task of its own, `concurrency` at a time,
        // so requests go on while earlier replies are acknowledged.
        let mut batches = sendable.chunks(batch_size);
        let mut replies = JoinSet::new();
        loop {
            if replies.len() < target.concurrency
                && let Some(batch) = batches.next()
            {
                let batch = batch.to_vec();
                let connector = Arc::clone(&target.connector);
                replies.spawn(async move {
                    let reply = connector.push(&batch).await;
                    (batch, reply)
                });
                continue;
            }
            let Some(joined) = replies.join_next().await else {
                // The level is done: its records are acknowledged before
                // the next level, which may refer to them, is sent.
                pass.write_acks(store).await?;
                break;
            };
            let (batch, reply) = joined.map_err(|error| PushError::Join(error.to_string()))?;
            if let Some(halt) = pass.settle(store, references, &batch, reply, now).await? {
                replies.abort_all();
                return Ok(Round {
                    failing: pass.failing,
                    halt: Some(halt),
                });
            }
        }
    }
    Ok(Round {
        failing: pass.failing,
        halt: None,
    })
}

/// What one pass has seen so far.
struct Pass<'r> {
    /// Transient failures, to try again after a delay.
    failing: Vec<(PushItem, Failure)>,
    /// Ids of records that failed, with the parking reason when refused.
    failed: HashMap<String, Option<String>>,
    results: &'r mut Vec<PushResult>,
    /// Confirmed records not yet written to the store, and since when.
    acks: Vec<(RecordKey, Acked, Fields)>,
    acks_since: Option<Instant>,
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
    async fn settle(
        &mut self,
        store: &Arc<Store>,
        references: &References,
        batch: &[PushItem],
        reply: PushReply,
        now: fn() -> i64,
    ) -> Result<Option<String>, PushError> {
        for (item, outcome) in batch.iter().zip(reply.outcomes) {
            let id = own_ids(item, references)[0].to_string();
            match outcome {
                Outcome::Acked { target_id } => {
                    let acked = Acked {
                        hash: item.hash,
                        active: item.active,
                        target_id: target_id.or_else(|| item.target_id.clone()),
                        at: now(),
                    };
                    self.acks
                        .push((item.key.clone(), acked, item.fields.clone()));
                    self.acks_since.get_or_insert_with(Instant::now);
                    self.results.push(PushResult {
                        key: item.key.clone(),
                        action: item.action,
                        status: PushStatus::Done,
                    });
                }
                Outcome::Failed(failure @ Failure::Permanent { .. }) => {
                    park(store, item, failure.reason(), false, now()).await?;
                    self.results.push(parked(item, failure.reason()));
                    self.failed.insert(id, Some(failure.reason().to_string()));
                }
                Outcome::Failed(failure) => {
                    self.failing.push((item.clone(), failure));
                    self.failed.insert(id, None);
                }
            }
        }
        let due = self
            .acks_since
            .is_some_and(|since| since.elapsed() >= ACK_DELAY);
        if reply.halt.is_some() {
            self.write_acks(store).await?;
        } else if self.acks.len() >= ACK_GROUP || due {
            self.start_writing_acks(store).await?;
        }
        Ok(reply.halt)
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
        blocking(store, move |store| store.acknowledge_many(&acks)).await
    }
}

/// The ids others may use for a record: its key, and its external id when
/// the target maps it (they differ when a source is keyed by login).
fn own_ids<'a>(item: &'a PushItem, references: &References) -> Vec<&'a str> {
    let mut ids = vec![item.key.key.as_str()];
    if let Some(id) = references
        .own_id
        .as_ref()
        .and_then(|field| item.fields.get(field))
        && id != &item.key.key
    {
        ids.push(id);
    }
    ids
}

/// The ids of the records it refers to (parent, managers).
fn referenced<'a>(item: &'a PushItem, references: &References) -> Vec<&'a str> {
    references
        .fields
        .iter()
        .filter_map(|field| item.fields.get(field))
        .map(String::as_str)
        .filter(|id| !id.is_empty())
        .collect()
}

fn parked(item: &PushItem, reason: &str) -> PushResult {
    PushResult {
        key: item.key.clone(),
        action: item.action,
        status: PushStatus::Parked {
            reason: reason.to_string(),
        },
    }
}

async fn park(
    store: &Arc<Store>,
    item: &PushItem,
    reason: &str,
    transient: bool,
    at: i64,
) -> Result<(), PushError> {
    tracing::warn!(target = %item.key.target, kind = %item.key.kind, key = %item.key.key, %reason, "record parked");
    let key = item.key.clone();
    let parked = Parked {
        action: item.action,
        reason: reason.to_string(),
        at,
        transient,
    };
    blocking(store, move |store| store.park(&key, &parked)).await
}

/// The records of a kind waiting for a target, parked ones aside.
fn pending(store: &Store, target: &str, kind: RecordKind) -> Result<Vec<PushItem>, StoreError> {
    let mut items = Vec::new();
    let keys: Vec<(String, ActionKind)> = store
        .outbox(target, kind)
        .map(|item| item.map(|(key, outbox)| (key, outbox.action)))
        .collect::<Result<_, _>>()?;
    for (key, action) in keys {
        let key = RecordKey {
            target: target.to_string(),
            kind,
            key,
        };
        if store.parked_item(&key)?.is_some() {
            continue;
        }
        let Some(entry) = store.entry(&key)? else {
            continue;
        };
        items.push(PushItem {
            fields: store.desired_fields(&key)?.unwrap_or_default(),
            acked_fields: store.acked_fields(&key)?,
            hash: entry.desired.hash,
            active: entry.desired.active,
            target_id: entry.acked.and_then(|a| a.target_id),
            action,
            key,
        });
    }
    Ok(items)
}

async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    work: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, PushError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || work(&store))
        .await
        .map_err(|error| PushError::Join(error.to_string()))?
        .map_err(PushError::from)
}
