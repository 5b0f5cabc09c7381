//! Targets new to a source (added to it, or listed again) are seeded with
//! the source's last file on start and after each reload, by the processor
//! (the one task that commits) before it takes a file with that config.

use std::sync::Arc;

use tracing::error;

use super::{Shared, today};
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
