//! What a target makes of a file's record before it is diffed: whether its
//! `[target.scope]` holds it, and its projection through the target's
//! `[target.fields]` templates. A record a template or expression fails on
//! is parked at that target alone, with the reason.

use chrono::{Datelike, NaiveDate};

use super::{Step, TargetInfo};
use crate::config::OutOfScope;
use crate::ingest::record::{Field, Record};
use crate::mapping::PARKED_MAPPING;
use crate::model::Desired;
use crate::store::{EntryWrite, OutboxChange, StoredEntry};

/// A file's record as its target sees it.
pub(super) enum Mapped {
    Desired(Desired),
    /// Out of scope, `out_of_scope = "block"`: as if absent from the file.
    OutOfScope,
    /// Out of scope, `out_of_scope = "ignore"`: left alone.
    Ignored,
    /// A template or scope expression failed on it: why.
    Failed(String),
}

pub(super) fn map(target: &TargetInfo, record: &Record) -> Mapped {
    let failed = |what: &str, message: &str| {
        Mapped::Failed(format!(
            "{PARKED_MAPPING}target {:?}, {what}, record {:?}: {message}",
            target.name,
            record.key()
        ))
    };
    if let Some(scope) = &target.scope {
        match scope.holds(record) {
            Ok(true) => {}
            Ok(false) => {
                return match scope.out_of_scope {
                    OutOfScope::Block => Mapped::OutOfScope,
                    OutOfScope::Ignore => Mapped::Ignored,
                };
            }
            Err(message) => return failed("[target.scope]", &message),
        }
    }
    let hash = match target.projector.hash(record) {
        Ok(hash) => hash,
        Err(failure) => {
            return failed(
                &format!("[target.fields] {}", failure.field),
                &failure.message,
            );
        }
    };
    let day = |field| record.date(field).map(|d: NaiveDate| d.num_days_from_ce());
    Mapped::Desired(Desired {
        hash,
        active: true, // decided by the caller, with the dates
        disabled: record.disabled(),
        activation: day(Field::ActivationDate),
        expiration: day(Field::ExpirationDate),
        present: true,
    })
}

/// Nothing is sent for the record: what was waiting to go is taken out
/// (it was planned from what the record no longer is).
pub(super) fn left_alone(
    key: &str,
    stored: Option<StoredEntry>,
    park: Option<String>,
) -> Option<Step> {
    let write = stored
        .filter(|stored| stored.queued.is_some())
        .map(|stored| EntryWrite {
            key: key.to_string(),
            desired: stored.entry.desired,
            outbox: OutboxChange::Remove,
            acked_fields: None,
            in_snapshot: true,
        });
    if write.is_none() && park.is_none() {
        return None;
    }
    Some(Step {
        action: None,
        write,
        park,
    })
}
