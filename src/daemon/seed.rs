//! Targets that come and go. A target added to a source (or listed again)
//! is seeded with the source's last file on start and after each reload,
//! by the processor (the one task that commits) before it takes a file
//! with that config; a target that left the config keeps its state, with a
//! warning on start, until `rostersync forget-target NAME`, which also runs
//! in the processor.

use std::sync::Arc;

use tracing::{error, warn};

use super::ops::{self, Answer};
use super::{Shared, lock, today};
use crate::cli::exit;
use crate::config::Config;
use crate::store;
use crate::sync::{self, SeedInputs, Seeding};

/// Every source with an accepted file: the targets it lists but did not
/// have get its snapshot, one commit per source, and their workers are
/// woken. A seed held by a safety rule is logged and tried again at the
/// next start or reload.
pub(super) async fn seed_sources(shared: &Arc<Shared>, config: &Config) {
    let mut seeded = false;
    for source in &config.sources {
        let name = source.name.get_ref().clone();
        let inputs = SeedInputs::new(config, source);
        let (today, now) = (today(), sync::unix_now());
        let seeding = store::blocking(&shared.store, move |store| {
            sync::seed_source(store, &inputs, today, now)
        })
        .await;
        match seeding {
            Ok(Seeding::Committed(plan)) => {
                for target in plan.targets.keys() {
                    shared.wake(target);
                }
                seeded = true;
            }
            Ok(Seeding::Nothing | Seeding::Pending | Seeding::Held(_)) => {}
            Err(error) => {
                error!(source = %name, %error, "cannot seed the targets new to this source; tried again at the next start or reload");
            }
        }
    }
    if seeded {
        shared.touch();
    }
}

/// On start: a warning for each target the store holds that the config no
/// longer has.
pub(super) async fn warn_unconfigured(shared: &Arc<Shared>) {
    let config = shared.config();
    match store::blocking(&shared.store, |store| store.targets_held()).await {
        Ok(held) => {
            for name in held {
                if !config.targets.iter().any(|t| t.name.get_ref() == &name) {
                    warn!(target = %name, "a target no longer in the config keeps its state in the store (its records, what waits, parked records) until `rostersync forget-target {name}`");
                }
            }
        }
        Err(error) => warn!(%error, "cannot list the targets the store holds"),
    }
}

/// `rostersync forget-target NAME` in the daemon, run by the processor:
/// refused while the running config has the target or its worker is still
/// finishing.
pub(super) async fn forget_target(
    shared: &Arc<Shared>,
    config: &Arc<Config>,
    name: String,
) -> Answer {
    if !config.targets.iter().any(|t| t.name.get_ref() == &name)
        && lock(&shared.wakers).contains_key(&name)
    {
        return Answer::new(
            exit::FAILURE,
            format!("target {name:?} is still finishing its last push; try again in a moment\n"),
        );
    }
    let config = Arc::clone(config);
    let answer = store::blocking(&shared.store, move |store| {
        ops::forget_target(&config, store, &name)
    })
    .await
    .unwrap_or_else(|error| Answer::new(exit::FAILURE, format!("{error}\n")));
    shared.touch();
    answer
}
