//! `rostersync approve HELD_FILE`: plans the held file again against the
//! current state; applied if it blocks no more than the held plan did, else
//! held again with the new figures. In the daemon it runs in the processor
//! (the one task that commits); without a daemon it also pushes, as `sync`
//! does.

use std::path::Path;
use std::sync::Arc;

use crate::file_modes::Access;
use sha2::{Digest, Sha256};
use tracing::warn;

use super::ops::{self, Answer};
use super::{Shared, filing, intake, lifecycle, today};
use crate::cli::exit;
use crate::config::Config;
use crate::plan::Plan;
use crate::push::PushTarget;
use crate::store::{SourceState, Store};
use crate::sync::{self, Accepted, Approval, SyncContext};

/// `rostersync approve HELD_FILE`, in the daemon: plans the held file again;
/// applied if it blocks no more than the held plan did, else held again
/// with the new figures.
pub(super) async fn approve(
    shared: &Arc<Shared>,
    config: &Config,
    file: &Path,
    force_older: bool,
) -> Answer {
    let started = std::time::Instant::now();
    let held = match ops::held_file(config, file) {
        Ok(held) => held,
        Err(error) => return Answer::new(exit::USAGE, format!("{error}\n")),
    };
    if !force_older {
        let source = held.source.name.get_ref().clone();
        match crate::store::blocking(&shared.store, move |s| s.source_state(&source)).await {
            Ok(state) => {
                if let Some(refusal) = newer_accepted(&held, state.as_ref()) {
                    return refusal;
                }
            }
            Err(error) => return Answer::new(exit::FAILURE, format!("{error}\n")),
        }
    }
    // Approved before a restart that came between its commit and its archive?
    let sha256 = match tokio::fs::read(&held.path).await {
        Ok(bytes) => <[u8; 32]>::from(Sha256::digest(&bytes)),
        Err(error) => {
            return Answer::new(
                exit::FAILURE,
                format!("cannot read {}: {error}\n", crate::escape::path(&held.path)),
            );
        }
    };
    let landed = filing::landed_commit(shared, config, held.source, &held.name, Some(sha256)).await;
    let resumed = landed.is_some();
    let accepted = match landed {
        Some(plan) => Accepted::Committed(plan),
        None => {
            let context = intake::context(shared, config, Some(held.name.clone()));
            let approval = Approval::UpTo {
                blocks: held.blocks,
            };
            let before = Some(filing::note_before_commit(config));
            match sync::accept_with(&context, held.source, &held.path, approval, before).await {
                Ok(accepted) => accepted,
                Err(error) => return Answer::new(exit::FAILURE, format!("{error}\n")),
            }
        }
    };
    if let Accepted::Held(plan) = &accepted {
        return still_held(&held, plan).await;
    }
    let disposed = filing::settle_file(
        shared,
        held.source,
        &held.path,
        &held.name,
        accepted,
        resumed,
        started,
    )
    .await;
    remove_plan_files(&held.path).await;
    match disposed {
        Ok(disposed) if disposed.outcome == "archived" => Answer::new(
            exit::OK,
            format!(
                "{}: approved and committed; the targets are being told (see {})\n",
                crate::escape::text(&held.name),
                crate::escape::path(&lifecycle::beside(
                    &disposed.moved_to,
                    lifecycle::REPORT_SUFFIX
                ))
            ),
        ),
        Ok(disposed) => Answer::new(
            exit::FAILURE,
            format!(
                "{}: {} → {}\n",
                crate::escape::text(&held.name),
                disposed.outcome,
                crate::escape::path(&disposed.moved_to)
            ),
        ),
        Err(error) => Answer::new(exit::FAILURE, format!("{error}\n")),
    }
}

/// The refusal to approve a held file when its source accepted a newer
/// file since it was held: applying it would put its older data over the
/// newer file's (blocking whom the newer file keeps, creating whom it
/// disables) without a word.
fn newer_accepted(held: &ops::HeldFile<'_>, state: Option<&SourceState>) -> Option<Answer> {
    let state = state?;
    let held_at = held
        .path
        .file_name()
        .and_then(|name| lifecycle::stamp_of(&name.to_string_lossy()))?;
    if state.at <= held_at.timestamp() {
        return None;
    }
    let accepted_at = chrono::DateTime::from_timestamp(state.at, 0)
        .map_or_else(|| state.at.to_string(), |at| at.to_rfc3339());
    Some(Answer::new(
        exit::USAGE,
        format!(
            "{}: refused: {} of source {} was accepted after it was held ({} > {}); \
             approving the older file would put its data over the newer file's. \
             Remove it from held/ if the newer file supersedes it, or approve it anyway \
             with --force-older\n",
            crate::escape::text(&held.name),
            crate::escape::text(&state.last_file),
            held.source.name.get_ref(),
            accepted_at,
            held_at.to_rfc3339(),
        ),
    ))
}

async fn remove_plan_files(held: &Path) {
    let held = held.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || {
        for suffix in [lifecycle::PLAN_TEXT_SUFFIX, lifecycle::PLAN_JSON_SUFFIX] {
            let _ = std::fs::remove_file(lifecycle::beside(&held, suffix));
        }
    })
    .await;
}

/// The new plan blocks more than the approved one: it stays held, with the
/// new figures beside it.
async fn still_held(held: &ops::HeldFile<'_>, plan: &Plan) -> Answer {
    let text = crate::report::plan_table(plan);
    let json = filing::pretty(plan);
    let path = held.path.clone();
    let written = tokio::task::spawn_blocking(move || {
        lifecycle::write_atomic(
            &lifecycle::beside(&path, lifecycle::PLAN_TEXT_SUFFIX),
            text.as_bytes(),
            Access::Shared,
        )?;
        lifecycle::write_atomic(
            &lifecycle::beside(&path, lifecycle::PLAN_JSON_SUFFIX),
            &json,
            Access::Shared,
        )
    })
    .await;
    if let Ok(Err(error)) = written {
        warn!(file = %crate::escape::path(&held.path), %error, "cannot write the new plan beside the held file");
    }
    Answer::new(
        exit::HELD,
        format!(
            "{}: still held: the plan now blocks or deletes {} records, more than the {} approved; the new plan is beside it\n{}",
            crate::escape::text(&held.name),
            sync::total_blocks(plan),
            held.blocks,
            crate::report::plan_table(plan)
        ),
    )
}

/// Why `approve` without a daemon could not go through.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error(transparent)]
    Held(#[from] ops::OpsError),
    #[error("cannot open the state in {}: {error}", path.display())]
    Store {
        path: std::path::PathBuf,
        error: crate::store::StoreError,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Connector(#[from] crate::connectors::ConnectorError),
    #[error(transparent)]
    Sync(#[from] sync::SyncError),
    #[error(transparent)]
    Filing(#[from] filing::FilingError),
}

/// `rostersync approve` when no daemon runs: the same, then the push, as
/// `rostersync sync` does, when the targets' secrets are at hand; without
/// them, the commit alone (the daemon pushes it when it starts).
pub fn approve_direct(
    config: &Config,
    file: &Path,
    force_older: bool,
) -> Result<Answer, ApproveError> {
    let held = ops::held_file(config, file)?;
    let db = config.daemon.state_dir.join("db");
    let store = Store::open(&db).map_err(|error| ApproveError::Store {
        path: db.clone(),
        error,
    })?;
    if !force_older {
        let state = store
            .source_state(held.source.name.get_ref())
            .map_err(|error| ApproveError::Store {
                path: db.clone(),
                error,
            })?;
        if let Some(refusal) = newer_accepted(&held, state.as_ref()) {
            return Ok(refusal);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ApproveError::Runtime)?;
    runtime.block_on(async {
        let context = SyncContext {
            config,
            store: Arc::new(store),
            today: today(),
            now: sync::unix_now,
            file_name: Some(held.name.clone()),
        };
        // Without the targets' secrets (an operator's shell has none) the
        // commit stands alone: the daemon pushes it when it starts.
        let connectors = sync::source_targets(config, held.source)
            .into_iter()
            .map(PushTarget::from_config)
            .collect::<Result<Vec<_>, crate::connectors::ConnectorError>>();
        let mut unpushed = None;
        let accepted = sync::accept(
            &context,
            held.source,
            &held.path,
            Approval::UpTo {
                blocks: held.blocks,
            },
        )
        .await?;
        let accepted = match accepted {
            Accepted::Held(plan) => return Ok(still_held(&held, &plan).await),
            Accepted::Committed(mut plan) => {
                match connectors {
                    Ok(connectors) => sync::push_all(&context, connectors, &mut plan).await?,
                    Err(error) => unpushed = Some(error),
                }
                Accepted::Committed(plan)
            }
            other => other,
        };
        let filed =
            filing::file_away(held.source, &held.path, &held.name, &accepted, false).await?;
        remove_plan_files(&held.path).await;
        let mut output = format!(
            "{}: approved → {}\n",
            crate::escape::text(&held.name),
            crate::escape::path(&filed.disposed.moved_to)
        );
        let code = match &accepted {
            Accepted::Committed(plan) => {
                output.push_str(&crate::report::plan_table(plan));
                if let Some(error) = &unpushed {
                    output.push_str(&format!(
                        "\nnot pushed from here ({error}): the daemon pushes it when it starts, and completes the report\n"
                    ));
                }
                let parked: u64 = plan.targets.values().map(|t| t.parked).sum();
                if parked > 0 { exit::FAILURE } else { exit::OK }
            }
            _ => exit::FAILURE,
        };
        Ok(Answer::new(code, output))
    })
}
