//! Plans for people: the table `rostersync plan` prints.

use std::fmt::Write;

use crate::model::ActionKind;
use crate::plan::{Plan, PlannedAction};

/// How many actions of each kind the table shows per target.
pub const SHOWN_PER_ACTION: usize = 10;

/// `lms: 3 create, 1 update, 0 block, 0 unblock, 2 unchanged, 1 not created;
/// wbt: ...`: each target's own counts (summed, they would count a person
/// once per target); the last two only when not zero.
pub fn counts_per_target(plan: &Plan) -> String {
    plan.targets
        .iter()
        .map(|(name, t)| {
            let mut counts = format!(
                "{name}: {} create, {} update, {} block, {} unblock",
                t.create, t.update, t.block, t.unblock
            );
            if t.delete > 0 {
                let _ = write!(counts, ", {} delete", t.delete);
            }
            // Rows that cause no action, so that the counts add up to the rows.
            if t.unchanged > 0 {
                let _ = write!(counts, ", {} unchanged", t.unchanged);
            }
            if t.not_created > 0 {
                let _ = write!(counts, ", {} not created", t.not_created);
            }
            counts
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn plan_table(plan: &Plan) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "plan for {} (source {}, {} rows)",
        crate::escape::text(&plan.file),
        plan.source,
        plan.rows
    );
    if let Some(held) = &plan.held {
        let _ = writeln!(out, "HELD by safety rule {}: {held}", held.rule);
    }
    for also in &plan.held_also {
        let _ = writeln!(out, "  and by safety rule {}: {also}", also.rule);
    }
    if !plan.problems.is_empty() {
        let _ = writeln!(out, "the file goes on despite:");
        for problem in &plan.problems {
            let _ = writeln!(out, "  {problem}");
        }
    }
    if plan.targets.is_empty() {
        let _ = writeln!(out, "no target of this source keeps this kind of record");
    }
    for (name, target) in &plan.targets {
        let _ = write!(
            out,
            "\ntarget {name}: {} create, {} update, {} block, {} unblock",
            target.create, target.update, target.block, target.unblock
        );
        if target.delete > 0 {
            let _ = write!(out, ", {} delete", target.delete);
        }
        if target.parked > 0 {
            let _ = write!(out, ", {} parked", target.parked);
        }
        if target.unchanged > 0 {
            let _ = write!(out, "; {} unchanged", target.unchanged);
        }
        out.push('\n');
        if target.not_created > 0 {
            let _ = writeln!(
                out,
                "  {} new row(s) not created: inactive (disabled, or outside their dates), and the source has no create_disabled",
                target.not_created
            );
        }
        if let Some(reason) = &target.stopped {
            let _ = writeln!(out, "  STOPPED: {reason}");
        }
        for action_name in ActionKind::ALL {
            let of_kind: Vec<_> = target
                .actions
                .iter()
                .filter(|a| a.action == action_name)
                .collect();
            for action in of_kind.iter().take(SHOWN_PER_ACTION) {
                action_line(&mut out, action);
            }
            // The plan keeps only the first actions of each kind: the count says how many.
            let count = target.count(action_name) as usize;
            let shown = of_kind.len().min(SHOWN_PER_ACTION);
            if count > shown {
                let _ = writeln!(out, "  … and {} more {action_name}", count - shown);
            }
        }
    }
    out
}

/// One action as the table shows it: `  update   E2  email: "a" → "b"`.
fn action_line(out: &mut String, action: &PlannedAction) {
    let changes: Vec<String> = action
        .changes
        .iter()
        .map(|(field, (old, new))| {
            format!(
                "{field}: {} → {}",
                old.as_deref().map_or("∅".to_string(), |v| format!("{v:?}")),
                new.as_deref().map_or("∅".to_string(), |v| format!("{v:?}"))
            )
        })
        .collect();
    let _ = write!(out, "  {:<8} {}", action.action.to_string(), action.ext_id);
    if !changes.is_empty() {
        let _ = write!(out, "  {}", changes.join(", "));
    }
    if !action.deferred.is_empty() {
        let _ = write!(
            out,
            "  ({} sent in a second pass)",
            action.deferred.join(", ")
        );
    }
    match (&action.status, &action.reason) {
        (Some(status), Some(reason)) => {
            let _ = write!(out, "  [{status}: {reason}]");
        }
        (Some(status), None) => {
            let _ = write!(out, "  [{status}]");
        }
        _ => {}
    }
    out.push('\n');
}

/// `plan FILE --person EXT_ID`: the file's verdict, then per target only
/// that record's actions (or that there are none).
pub fn person_table(plan: &Plan, person: &str, actions: &[(String, Vec<PlannedAction>)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan for {} (source {}, {} rows), {} only",
        crate::escape::text(&plan.file),
        plan.source,
        plan.rows,
        crate::escape::text(person)
    );
    if let Some(held) = &plan.held {
        let _ = writeln!(out, "HELD by safety rule {}: {held}", held.rule);
    }
    for also in &plan.held_also {
        let _ = writeln!(out, "  and by safety rule {}: {also}", also.rule);
    }
    if actions.is_empty() {
        let _ = writeln!(out, "no target of this source keeps this kind of record");
    }
    for (name, of_person) in actions {
        let _ = writeln!(out, "\ntarget {name}:");
        if of_person.is_empty() {
            let _ = writeln!(out, "  nothing to do");
        }
        for action in of_person {
            action_line(&mut out, action);
        }
    }
    out
}

/// The one-line verdict on a file: valid, accepted with invalid rows, or refused.
pub fn verdict_line(
    file: &str,
    outcome: &crate::ingest::Ingested,
    spec: &crate::ingest::SourceSpec,
) -> String {
    let warnings = outcome.problems.iter().filter(|p| !p.is_error()).count();
    match &outcome.verdict {
        crate::ingest::Verdict::Accepted if outcome.invalid_rows > 0 => format!(
            "{file}: accepted: {} of {} {} rows go on, {} invalid (max_invalid_rows = {}), {warnings} warning(s)",
            outcome.records.len(),
            outcome.rows,
            spec.kind,
            outcome.invalid_rows,
            spec.max_invalid_rows
        ),
        crate::ingest::Verdict::Accepted => format!(
            "{file}: valid: {} {} rows, {warnings} warning(s)",
            outcome.rows, spec.kind
        ),
        crate::ingest::Verdict::Refused { reason } => format!("{file}: refused: {reason}"),
    }
}
