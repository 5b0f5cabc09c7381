//! Push: drains a target's outbox through its connector, acknowledging what
//! the target confirmed (in the store, with the outbox entry, at once),
//! retrying transient failures with the retry policy, and parking refusals.
//! Store calls run on the blocking pool, never on the async executor.

use std::sync::Arc;

use crate::config::RetryConfig;
use crate::connectors::{Connector, Outcome, PushItem};
use crate::ingest::record::RecordKind;
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

/// Sends everything waiting for `target`: organisations first, then users.
/// Returns once the outbox holds only parked records, or the target was stopped.
pub async fn drain(
    store: &Arc<Store>,
    target: &str,
    connector: &Connector,
    retry: &RetryConfig,
    now: fn() -> i64,
) -> Result<Drained, PushError> {
    let mut results = Vec::new();
    for kind in [RecordKind::Orgs, RecordKind::Users] {
        let mut backoff = Backoff::new(retry);
        loop {
            let items = blocking(store, {
                let target = target.to_string();
                move |store| pending(store, &target, kind)
            })
            .await?;
            if items.is_empty() {
                break;
            }
            let mut failing: Vec<(PushItem, Failure)> = Vec::new();
            let mut halt = None;
            for batch in items.chunks(connector.batch_size().max(1)) {
                let reply = connector.push(batch).await;
                halt = reply.halt;
                let outcomes = reply.outcomes;
                let mut acks = Vec::new();
                for (item, outcome) in batch.iter().zip(outcomes) {
                    match outcome {
                        Outcome::Acked { target_id } => {
                            let acked = Acked {
                                hash: item.hash,
                                active: item.active,
                                target_id: target_id.or_else(|| item.target_id.clone()),
                                at: now(),
                            };
                            acks.push((item.key.clone(), acked, item.fields.clone()));
                            results.push(PushResult {
                                key: item.key.clone(),
                                action: item.action,
                                status: PushStatus::Done,
                            });
                        }
                        Outcome::Failed(failure @ Failure::Permanent { .. }) => {
                            park(store, item, failure.reason(), false, now()).await?;
                            results.push(parked(item, failure.reason()));
                        }
                        Outcome::Failed(failure) => failing.push((item.clone(), failure)),
                    }
                }
                blocking(store, move |store| store.acknowledge_many(&acks)).await?;
                if halt.is_some() {
                    break;
                }
            }
            if let Some(reason) = halt {
                // The target showed it must not get more: everything still
                // waiting is parked with the reason, for a person to look at.
                tracing::error!(target = %target, %reason, "pushing to this target stopped");
                let left = blocking(store, {
                    let target = target.to_string();
                    move |store| pending(store, &target, kind)
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
                    tracing::info!(target = %target, records = failing.len(), ?delay, reason = %failing[0].1.reason(), "retrying after a transient failure");
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
