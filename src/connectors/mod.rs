//! Connectors: one per target kind, behind one interface. Each connector file
//! reads top to bottom as its settings, the pure request building and reply
//! parsing, then the thin part that sends.

pub mod collaborator;
pub mod gestimum;
pub mod http;
pub mod maarch;
pub mod pleasanter;
pub mod scim;
pub mod wbt_file;

use crate::config::{TargetConfig, TargetKind};
use crate::projection::{Fields, ProjectionHash};
use crate::retry::Failure;
use crate::store::{ActionKind, RecordKey};

/// One record to send, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushItem {
    pub key: RecordKey,
    pub action: ActionKind,
    /// Whether the record must be active at the target once this is applied.
    pub active: bool,
    /// The desired projection: what the target must hold, and its hash.
    pub fields: Fields,
    pub hash: ProjectionHash,
    /// What the target last confirmed holding, if anything (for APIs that
    /// take differences, such as group memberships).
    pub acked_fields: Option<Fields>,
    /// The target's own id for the record, when it gave one.
    pub target_id: Option<String>,
}

/// What a push returned: one outcome per item, in order, and a reason to stop
/// pushing to this target at all, if the target showed it must not get more.
#[derive(Debug, Clone, Default)]
pub struct PushReply {
    pub outcomes: Vec<Outcome>,
    pub halt: Option<String>,
}

/// What became of one record of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The target holds it; with the target's own id when it has one.
    Acked {
        target_id: Option<String>,
    },
    Failed(Failure),
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("target {target}: {message}")]
    Settings { target: String, message: String },
}

/// A target's connector.
pub enum Connector {
    WbtFile(wbt_file::WbtFile),
    Collaborator(collaborator::Collaborator),
    Maarch(maarch::Maarch),
    Gestimum(gestimum::Gestimum),
    Pleasanter(pleasanter::Pleasanter),
    Scim(scim::Scim),
}

impl Connector {
    pub fn from_config(target: &TargetConfig) -> Result<Connector, ConnectorError> {
        let settings = |message: String| ConnectorError::Settings {
            target: target.name.get_ref().clone(),
            message,
        };
        match target.kind {
            TargetKind::WbtFile => wbt_file::WbtFile::from_config(target).map(Connector::WbtFile),
            TargetKind::Collaborator => {
                collaborator::Collaborator::from_config(target).map(Connector::Collaborator)
            }
            TargetKind::Maarch => maarch::Maarch::from_config(target).map(Connector::Maarch),
            TargetKind::Gestimum => {
                gestimum::Gestimum::from_config(target).map(Connector::Gestimum)
            }
            TargetKind::Pleasanter => {
                pleasanter::Pleasanter::from_config(target).map(Connector::Pleasanter)
            }
            TargetKind::Scim => scim::Scim::from_config(target).map(Connector::Scim),
        }
        .map_err(settings)
    }

    /// How many records one request (or file) carries at most.
    pub fn batch_size(&self) -> usize {
        match self {
            Connector::WbtFile(c) => c.batch_size(),
            Connector::Collaborator(c) => c.batch_size(),
            Connector::Maarch(c) => c.batch_size(),
            Connector::Gestimum(c) => c.batch_size(),
            Connector::Pleasanter(c) => c.batch_size(),
            Connector::Scim(c) => c.batch_size(),
        }
    }

    /// Sends records; one outcome per item, in the same order.
    pub async fn push(&self, items: &[PushItem]) -> PushReply {
        match self {
            Connector::WbtFile(c) => PushReply {
                outcomes: c.push(items).await,
                halt: None,
            },
            Connector::Collaborator(c) => c.push(items).await,
            Connector::Maarch(c) => c.push(items).await,
            Connector::Gestimum(c) => c.push(items).await,
            Connector::Pleasanter(c) => c.push(items).await,
            Connector::Scim(c) => c.push(items).await,
        }
    }

    /// Reaches the target and tries its credentials (`check --online`).
    pub async fn check(&self) -> Result<(), String> {
        match self {
            Connector::WbtFile(c) => c.check().await,
            Connector::Collaborator(c) => c.check().await,
            Connector::Maarch(c) => c.check().await,
            Connector::Gestimum(c) => c.check().await,
            Connector::Pleasanter(c) => c.check().await,
            Connector::Scim(c) => c.check().await,
        }
    }
}
