//! The domain types that planning, the store, the push engine and the
//! connectors share. Plain data: no IO, no storage concerns, so that pure
//! modules (diff, projection, connectors) need not import the store.

use serde::{Deserialize, Serialize};

pub use crate::ingest::record::RecordKind;
pub use crate::projection::{Fields, ProjectionHash};

/// Where a record stands for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The source the record last came from.
    pub source: String,
    pub desired: Desired,
    pub acked: Option<Acked>,
}

/// What we want the target to hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    pub hash: ProjectionHash,
    /// Active once `disabled`, the dates and the file's presence are taken into account.
    pub active: bool,
    pub disabled: bool,
    /// Days since 0001-01-01 (chrono's `num_days_from_ce`).
    pub activation: Option<i32>,
    pub expiration: Option<i32>,
    /// In the last file of a full source, or in any file of a delta source,
    /// and in the target's `[target.scope]` (out of it, it is absent there).
    pub present: bool,
}

/// What the target confirmed holding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acked {
    pub hash: ProjectionHash,
    pub active: bool,
    /// The target's own id for the record, when it has one.
    pub target_id: Option<String>,
    /// Unix seconds.
    pub at: i64,
}

/// What a change does at a target. Stored by variant index (postcard), shown
/// in plans and reports by its lowercase name; ordered as declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Create,
    Update,
    Block,
    Unblock,
    /// The account is removed from the target (`delete_after`): last, so
    /// that stores written before it decode unchanged.
    Delete,
}

impl ActionKind {
    pub const ALL: [ActionKind; 5] = [
        ActionKind::Create,
        ActionKind::Update,
        ActionKind::Block,
        ActionKind::Unblock,
        ActionKind::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::Update => "update",
            ActionKind::Block => "block",
            ActionKind::Unblock => "unblock",
            ActionKind::Delete => "delete",
        }
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies a record at a target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey {
    pub target: String,
    pub kind: RecordKind,
    pub key: String,
}

/// What became of a record at a target once its push settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushStatus {
    /// The target confirmed it.
    Done,
    /// Set aside, with the reason; with the accounts that could be the
    /// record's when the target holds several (ambiguous).
    Parked {
        reason: String,
        candidates: Vec<Candidate>,
    },
}

/// An account a target already holds that could be a record's (when there
/// are several, none is taken: the record is parked as ambiguous).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The target's id for the account.
    pub id: String,
    /// Its login there.
    pub login: String,
    /// The `match` rules that found it (canonical field names).
    pub matched_by: Vec<String>,
}

/// Where one planned action stands, in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionStatus {
    /// Committed, not yet confirmed by the target.
    Pending,
    /// The target confirmed it.
    Done,
    /// Set aside with a reason (refused, or still failing when the retry budget ran out).
    Parked,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Pending => "pending",
            ActionStatus::Done => "done",
            ActionStatus::Parked => "parked",
        }
    }
}

impl std::fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
