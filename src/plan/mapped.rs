//! What a target makes of a file's record before it is diffed: whether its
//! `[target.scope]` holds it, and its projection through the target's
//! `[target.fields]` templates. A record a template or expression fails on
//! is parked at that target alone, with the reason.

use chrono::{Datelike, NaiveDate};

use super::TargetInfo;
use crate::config::OutOfScope;
use crate::ingest::record::{Field, Record};
use crate::mapping::PARKED_MAPPING;
use crate::model::{ActionKind, Desired, Entry};
use crate::projection::{self, ProjectionHash};

/// A file's record as its target sees it.
pub(super) enum Mapped {
    Desired(Desired),
    /// Out of scope, `out_of_scope = "block"`: a leaver (not present);
    /// whether its hash is exact (no template failed on it).
    OutOfScope(Desired, bool),
    /// Out of scope, `out_of_scope = "ignore"`: left alone (not present, so
    /// that no date moves it either).
    Ignored(Desired),
    /// A template or scope expression failed on it: why, and the hash of
    /// what could be projected.
    Failed(String, ProjectionHash),
}

/// Which actions a record may take at the target, as it maps.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Restraint {
    Free,
    /// Out of scope: blocked and deleted as a leaver, never created or updated.
    Leaver,
    /// Ignored or parked: nothing goes out.
    Nothing,
}

impl Restraint {
    pub(super) fn allows(self, action: ActionKind) -> bool {
        match self {
            Restraint::Free => true,
            Restraint::Leaver => !matches!(action, ActionKind::Create | ActionKind::Update),
            Restraint::Nothing => false,
        }
    }
}

/// What `step` plans a record from: its desired state and what it may do.
/// The desired hash follows the file's record even where nothing is sent,
/// so that the projection the target holds is kept apart (`acked_fields`)
/// the moment the snapshot moves on without it: when the record comes back,
/// its update is worked out from what the target holds.
pub(super) enum Planned {
    Step(Desired, Restraint, Option<String>),
    /// Nothing to plan, and no entry to write.
    Nothing(Option<String>),
}

pub(super) fn planned(mapped: Option<Mapped>, entry: Option<&Entry>) -> Planned {
    match (mapped, entry) {
        (Some(Mapped::Desired(desired)), _) => Planned::Step(desired, Restraint::Free, None),
        // Never created while out of scope: no entry either.
        (Some(Mapped::OutOfScope(..) | Mapped::Ignored(_)), None) => Planned::Nothing(None),
        (Some(Mapped::OutOfScope(mut desired, exact)), Some(entry)) => {
            if !exact {
                // Its block must not carry a projection a template left short.
                desired.hash = entry.desired.hash;
            }
            Planned::Step(desired, Restraint::Leaver, None)
        }
        (Some(Mapped::Ignored(desired)), Some(_)) => {
            Planned::Step(desired, Restraint::Nothing, None)
        }
        (Some(Mapped::Failed(why, _)), None) => Planned::Nothing(Some(why)),
        (Some(Mapped::Failed(why, hash)), Some(entry)) => {
            let desired = Desired {
                hash,
                ..entry.desired.clone()
            };
            Planned::Step(desired, Restraint::Nothing, Some(why))
        }
        (None, Some(entry)) => {
            let desired = Desired {
                present: false,
                ..entry.desired.clone()
            };
            Planned::Step(desired, Restraint::Free, None)
        }
        (None, None) => Planned::Nothing(None),
    }
}

pub(super) fn map(target: &TargetInfo, record: &Record) -> Mapped {
    let failed = |what: &str, message: &str| {
        format!(
            "{PARKED_MAPPING}target {:?}, {what}, record {:?}: {message}",
            target.name,
            record.key()
        )
    };
    // What could be projected, a failing template's field left out.
    let partial = || projection::hash(&target.projector.project(record));
    let held = match &target.scope {
        None => true,
        Some(scope) => match scope.holds(record) {
            Ok(held) => held,
            Err(message) => return Mapped::Failed(failed("[target.scope]", &message), partial()),
        },
    };
    let hash = target.projector.hash(record);
    if !held {
        let exact = hash.is_ok();
        let desired = Desired {
            present: false,
            ..desired_of(record, hash.unwrap_or_else(|_| partial()))
        };
        return match target.scope.as_ref().map(|scope| scope.out_of_scope) {
            Some(OutOfScope::Ignore) => Mapped::Ignored(desired),
            _ => Mapped::OutOfScope(desired, exact),
        };
    }
    match hash {
        Ok(hash) => Mapped::Desired(desired_of(record, hash)),
        Err(failure) => Mapped::Failed(
            failed(
                &format!("[target.fields] {}", failure.field),
                &failure.message,
            ),
            partial(),
        ),
    }
}

fn desired_of(record: &Record, hash: ProjectionHash) -> Desired {
    let day = |field| record.date(field).map(|d: NaiveDate| d.num_days_from_ce());
    Desired {
        hash,
        active: true, // decided by the caller, with the dates
        disabled: record.disabled(),
        activation: day(Field::ActivationDate),
        expiration: day(Field::ExpirationDate),
        present: true,
    }
}
