//! One record pushed now, ahead of whatever else waits for its target
//! (`rostersync push EXT_ID`, for an urgent leaver): the same round as a
//! drain's, over a list of one. A drain running meanwhile may send it again
//! later in its round; every connector makes that harmless.

use std::sync::Arc;

use super::{Drained, PushError, PushTarget, Round, Stop, WaitingList, holders, push_round};
use crate::connectors::adopt::Holders;
use crate::diff;
use crate::model::{ActionKind, RecordKey};
use crate::store::Store;

/// What pushing one record now came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushedOne {
    /// The target confirmed the action.
    Done(ActionKind),
    /// Nothing waits for it: the target holds its desired state.
    NothingWaits,
    /// It was parked before, and stays so (`retry` sends it again).
    AlreadyParked(String),
    /// Its source's last commit was cut short: it waits for that file.
    CutShort,
    /// The target refused it now: parked with the reason.
    Parked(String),
    /// A transient failure, or the target stopped: it stays queued for
    /// the target's next push.
    Failed(String),
}

/// Sends `key`'s queued action to its target now.
pub async fn push_one(
    store: &Arc<Store>,
    target: &PushTarget,
    key: &RecordKey,
    now: fn() -> i64,
) -> Result<PushedOne, PushError> {
    let looked_up = {
        let key = key.clone();
        crate::store::blocking(store, move |store| {
            let queued = store.outbox_item(&key)?;
            let parked = store.parked_item(&key)?;
            let entry = store.entry(&key)?;
            let cut_short = store.pending_commit()?.map(|pending| pending.source);
            Ok::<_, crate::store::StoreError>((queued, parked, entry, cut_short))
        })
        .await?
    };
    let (queued, parked, entry, cut_short) = looked_up;
    let Some(queued) = queued else {
        return Ok(PushedOne::NothingWaits);
    };
    if let Some(parked) = parked {
        return Ok(PushedOne::AlreadyParked(parked.reason));
    }
    if entry.is_some_and(|entry| cut_short.as_deref() == Some(entry.source.as_str())) {
        return Ok(PushedOne::CutShort);
    }
    if queued.action == ActionKind::Delete && !target.deletes {
        return Ok(PushedOne::Failed(
            "a delete waits, but the target no longer has delete_after: the next plan takes it back"
                .into(),
        ));
    }
    let mut list = WaitingList::default();
    list.keys.push(&key.key);
    list.actions.push(queued.action);
    // Alone in its list: its references are not waited for (a block, the
    // urgent case, sends none).
    list.references = diff::References::resolve([std::iter::empty::<&str>()], |_| None);
    let holders: Arc<dyn Holders> = Arc::new(holders::DrainHolders::new(Arc::clone(store)));
    let mut drained = Drained::default();
    let round = push_round(store, target, key.kind, &list, &mut drained, &holders, now).await?;
    Ok(outcome(queued.action, round, &drained))
}

fn outcome(action: ActionKind, round: Round, drained: &Drained) -> PushedOne {
    if drained.done > 0 {
        return PushedOne::Done(action);
    }
    if let Some(reason) = &drained.last_parked {
        return PushedOne::Parked(reason.clone());
    }
    if let Some(Stop::Hold(reason) | Stop::Park(reason)) = round.stop {
        return PushedOne::Failed(reason);
    }
    match round.failing.first() {
        Some(failed) => PushedOne::Failed(failed.failure.reason().to_string()),
        None => PushedOne::Failed("the target's reply said nothing of it".into()),
    }
}
