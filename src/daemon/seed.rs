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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SafetyConfig;
    use crate::store::{Commit, SourceState, Store};
    use crate::testing::{commit, source, target, users};

    fn inputs(targets: &[&str]) -> SeedInputs {
        SeedInputs {
            source: source("hr"),
            targets: targets.iter().map(|name| target(name)).collect(),
            safety: SafetyConfig::default(),
        }
    }

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
    }

    #[test]
    fn a_seed_commits_once_and_a_held_one_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let records = users(&[("E1", "ana", "ana@x.fr"), ("E2", "ben", "ben@x.fr")]);
        commit(&store, &[target("lms")], &records, "u1.csv");

        let mut strict = inputs(&["lms", "crm"]);
        strict.safety.min_rows = 3;
        let held = sync::seed_source(&store, &strict, today(), 1_800_000_001).unwrap();
        assert!(
            matches!(&held, Seeding::Held(plan) if plan.held.as_ref().is_some_and(|h| h.rule == "min_rows")),
            "{held:?}"
        );
        assert_eq!(store.outbox_len("crm"), 0, "nothing committed");
        assert_eq!(store.source_state("hr").unwrap().unwrap().targets, ["lms"]);

        let seeded =
            sync::seed_source(&store, &inputs(&["lms", "crm"]), today(), 1_800_000_002).unwrap();
        let Seeding::Committed(plan) = seeded else {
            panic!("{seeded:?}");
        };
        assert_eq!(plan.targets.keys().collect::<Vec<_>>(), ["crm"]);
        assert_eq!(plan.targets["crm"].create, 2);
        assert_eq!(store.outbox_len("crm"), 2);
        let again =
            sync::seed_source(&store, &inputs(&["lms", "crm"]), today(), 1_800_000_003).unwrap();
        assert!(matches!(again, Seeding::Nothing), "{again:?}");
    }

    #[test]
    fn a_source_without_a_snapshot_seeds_nothing_and_holds_nothing() {
        // What a store migrated from schema 1 holds until the source's next
        // file: its state, no snapshot.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let state = SourceState {
            last_file: "u1.csv".into(),
            last_sha256: [1; 32],
            rows: 2,
            at: 1_800_000_000,
            targets: vec!["lms".into()],
        };
        let migrated = Commit {
            source: Some(("hr".into(), state)),
            ..Commit::default()
        };
        store.commit(&migrated, &[]).unwrap();
        let seeding =
            sync::seed_source(&store, &inputs(&["lms", "crm"]), today(), 1_800_000_001).unwrap();
        assert!(matches!(seeding, Seeding::Nothing), "{seeding:?}");
        assert_eq!(store.source_state("hr").unwrap().unwrap().targets, ["lms"]);
    }
}
