//! Who holds an account of a target, for the connectors that adopt
//! accounts ([`crate::connectors::adopt`]): the store's index of the ids
//! targets gave, and the accounts claimed in this drain (adopted or created
//! by records whose acknowledgements are not written yet), so that records
//! sent side by side never take the same account.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;

use crate::connectors::adopt::Holders;
use crate::ingest::record::RecordKind;
use crate::model::RecordKey;
use crate::store::Store;

/// Numbers the drains, for [`Holders::drain`].
static DRAINS: AtomicU64 = AtomicU64::new(1);

/// One drain's answers.
pub(super) struct DrainHolders {
    drain: u64,
    store: Arc<Store>,
    /// (target, kind, id) → the key of the record that claimed it.
    claims: Mutex<HashMap<(String, RecordKind, String), String>>,
}

impl DrainHolders {
    pub(super) fn new(store: Arc<Store>) -> DrainHolders {
        DrainHolders {
            drain: DRAINS.fetch_add(1, Ordering::Relaxed),
            store,
            claims: Mutex::new(HashMap::new()),
        }
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<(String, RecordKind, String), String>> {
        // Entries are inserted whole: a panic cannot leave one half made.
        self.claims.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn claimed(&self, key: &RecordKey, id: &str) -> Option<String> {
        self.claims()
            .get(&(key.target.clone(), key.kind, id.to_string()))
            .cloned()
    }

    async fn ask(&self, key: &RecordKey, id: &str) -> Result<Option<String>, String> {
        let holder = match self.claimed(key, id) {
            Some(claimer) => Some(claimer),
            None => {
                let (target, kind, id) = (key.target.clone(), key.kind, id.to_string());
                crate::store::blocking(&self.store, move |store| store.holder(&target, kind, &id))
                    .await
                    .map_err(|error| error.to_string())?
            }
        };
        Ok(holder.filter(|holder| *holder != key.key))
    }
}

impl Holders for DrainHolders {
    fn holder<'a>(
        &'a self,
        key: &'a RecordKey,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(self.ask(key, id))
    }

    fn claim<'a>(
        &'a self,
        key: &'a RecordKey,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            if let Some(other) = self.ask(key, id).await? {
                return Ok(Some(other));
            }
            // Checked again under the lock: another record may have
            // claimed it while the store was asked.
            match self
                .claims()
                .entry((key.target.clone(), key.kind, id.to_string()))
            {
                Entry::Vacant(free) => {
                    free.insert(key.key.clone());
                    Ok(None)
                }
                Entry::Occupied(claimed) if *claimed.get() == key.key => Ok(None),
                Entry::Occupied(claimed) => Ok(Some(claimed.get().clone())),
            }
        })
    }

    fn drain(&self) -> u64 {
        self.drain
    }
}
