//! A commit whose file was never filed away, found again by the file's
//! bytes: the daemon stopped between the commit and the archive, or the file
//! could not be moved. Such a file is archived with the plan that was
//! committed as its report and is never committed again (which would push
//! its old values over a newer file's). A file's identity is its SHA-256:
//! the store records, for every commit, which source committed those bytes,
//! under which name and when.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::info;

use super::{Shared, lifecycle};
use crate::config::{Config, SourceConfig};
use crate::escape;
use crate::plan::Plan;
use crate::store::Store;
use crate::sync::AlreadyCommitted;

/// Where to look: the store, the source's inbox and the state folder.
struct Lookup {
    store: Arc<Store>,
    inbox: PathBuf,
    state_dir: PathBuf,
    source: String,
    name: String,
}

impl Lookup {
    fn new(shared: &Shared, config: &Config, source: &SourceConfig, name: &str) -> Lookup {
        Lookup {
            store: Arc::clone(&shared.store),
            inbox: source.inbox.get_ref().clone(),
            state_dir: config.daemon.state_dir.clone(),
            source: source.name.get_ref().clone(),
            name: name.to_string(),
        }
    }

    /// The plan committed for these bytes (the source's last accepted
    /// file's when `None`) if this source committed them under this name
    /// and no file of that name was archived since (blocking IO).
    fn plan(&self, sha256: Option<[u8; 32]>) -> Option<Plan> {
        let committed = committed(&self.store, &self.source, sha256)?;
        let archived = lifecycle::archived_since(&self.inbox, &self.name, committed.at);
        let note = lifecycle::read_commit_note(&self.state_dir, &self.source);
        lifecycle::landed_commit(&self.source, &committed, &self.name, archived, note)
    }
}

/// What the store says of a commit of these bytes.
fn committed(
    store: &Store,
    source: &str,
    sha256: Option<[u8; 32]>,
) -> Option<lifecycle::CommittedFile> {
    let state = store.source_state(source).ok()??;
    let sha256 = sha256.unwrap_or(state.last_sha256);
    if sha256 == state.last_sha256 {
        return Some(lifecycle::CommittedFile {
            source: source.to_string(),
            name: state.last_file,
            sha256,
            rows: state.rows,
            at: state.at,
        });
    }
    // An older commit: its file count is not kept, only its name and time.
    let seen = store.file_seen(&sha256).ok()??;
    Some(lifecycle::CommittedFile {
        source: seen.source,
        name: seen.name,
        sha256,
        rows: 0,
        at: seen.at,
    })
}

/// The plan of `name` if its bytes (`sha256`, or already known to be the
/// source's last accepted file's when `None`) were committed by this source
/// under this name and the file was not archived since.
pub(super) async fn landed_commit(
    shared: &Arc<Shared>,
    config: &Config,
    source: &SourceConfig,
    name: &str,
    sha256: Option<[u8; 32]>,
) -> Option<Plan> {
    let lookup = Lookup::new(shared, config, source, name);
    let plan = tokio::task::spawn_blocking(move || lookup.plan(sha256))
        .await
        .ok()??;
    info!(source = %source.name.get_ref(), file = %escape::text(&plan.file), actions = plan.targets.values().map(|t| t.actions.len()).sum::<usize>(),
        "this file's plan was committed before, the file not archived: archived now with that plan as its report, not committed again");
    Some(plan)
}

/// For [`crate::sync::accept_checked`]: whether a file's bytes are a commit
/// of this source under this name whose file was never archived.
pub(super) fn already_committed(
    shared: &Shared,
    config: &Config,
    source: &SourceConfig,
    path: &Path,
) -> AlreadyCommitted {
    let lookup = Lookup::new(shared, config, source, &super::intake::file_name(path));
    Box::new(move |sha256| lookup.plan(Some(*sha256)).is_some())
}
