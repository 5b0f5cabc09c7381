//! A plan written out whole, one action at a time: `plan --json` and a
//! report's `.actions.jsonl` hold every action of a big file without the
//! plan ever holding them all in memory ([`Planned::each_action`]).

use std::io::Write;

use crate::ingest::record::Record;
use crate::plan::{Planned, PlannedAction, TargetInfo};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the plan: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot write the plan as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl OutputError {
    /// Where a write failed for its disk's sake: `Some(true)` in the store.
    pub fn disk_failure(&self) -> Option<bool> {
        match self {
            OutputError::Store(error) => error.is_io().then_some(true),
            OutputError::Write(_) => Some(false),
            OutputError::Json(error) => error.is_io().then_some(false),
        }
    }
}

/// The plan in the shape of `plan --json` (that of `.report.json`, with
/// every action): `{"source", "file", "rows", "held", "problems" (when
/// there are), "targets": {NAME:
/// {"create", ..., "actions": [...]}}}`. The store must be as it was when
/// planning.
pub fn write_json(
    planned: &Planned,
    store: &Store,
    records: &[Record],
    targets: &[TargetInfo],
    out: &mut (impl Write + ?Sized),
) -> Result<(), OutputError> {
    let plan = &planned.plan;
    write!(out, "{{\n  \"source\": ")?;
    serde_json::to_writer(&mut *out, &plan.source)?;
    write!(out, ",\n  \"file\": ")?;
    serde_json::to_writer(&mut *out, &plan.file)?;
    write!(out, ",\n  \"rows\": {},\n  \"held\": ", plan.rows)?;
    serde_json::to_writer(&mut *out, &plan.held)?;
    if !plan.held_also.is_empty() {
        write!(out, ",\n  \"held_also\": ")?;
        serde_json::to_writer(&mut *out, &plan.held_also)?;
    }
    if !plan.problems.is_empty() {
        write!(out, ",\n  \"problems\": ")?;
        serde_json::to_writer(&mut *out, &plan.problems)?;
    }
    write!(out, ",\n  \"targets\": {{")?;
    for (n, (name, target_plan)) in plan.targets.iter().enumerate() {
        let separator = if n == 0 { "" } else { "," };
        write!(out, "{separator}\n    ")?;
        serde_json::to_writer(&mut *out, name)?;
        write!(
            out,
            ": {{\n      \"create\": {},\n      \"update\": {},\n      \"block\": {},\n      \"unblock\": {},\n      \"parked\": {},\n      \"unchanged\": {},\n      \"not_created\": {},\n      \"actions\": [",
            target_plan.create,
            target_plan.update,
            target_plan.block,
            target_plan.unblock,
            target_plan.parked,
            target_plan.unchanged,
            target_plan.not_created
        )?;
        let mut first = true;
        if let Some(target) = targets.iter().find(|t| &t.name == name) {
            planned.each_action(store, records, target, true, |action| {
                write!(out, "{}\n        ", if first { "" } else { "," })?;
                first = false;
                serde_json::to_writer(&mut *out, &action)?;
                Ok::<(), OutputError>(())
            })?;
        }
        write!(out, "{}]\n    }}", if first { "" } else { "\n      " })?;
    }
    writeln!(out, "\n  }}\n}}")?;
    out.flush()?;
    Ok(())
}

/// One line of a `.actions.jsonl`: an action of one target.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ActionLine {
    pub target: String,
    #[serde(flatten)]
    pub action: PlannedAction,
}

/// Every action of every target, one JSON object per line: what it is and
/// (once the reporter fills it in) where it stands. Without the changed
/// fields, which the report shows for its first actions: they would cost a
/// first import's file several times its own size.
pub fn write_jsonl(
    planned: &Planned,
    store: &Store,
    records: &[Record],
    targets: &[TargetInfo],
    out: &mut (impl Write + ?Sized),
) -> Result<(), OutputError> {
    for target in targets {
        planned.each_action(store, records, target, false, |action| {
            let line = ActionLine {
                target: target.name.clone(),
                action,
            };
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")?;
            Ok::<(), OutputError>(())
        })?;
    }
    out.flush()?;
    Ok(())
}
