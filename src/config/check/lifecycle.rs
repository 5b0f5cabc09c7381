//! The checks of a target's leaver pipeline: `delete_after` only on kinds
//! whose API can delete, and never so short that a block could not be
//! noticed and undone first.

use super::Checker;
use crate::config::TargetConfig;
use crate::connectors::TargetKind;

/// Below a day, a mistaken block would delete before anyone could look.
const SHORTEST_DELETE: std::time::Duration = std::time::Duration::from_secs(86_400);

pub(super) fn check_delete(c: &mut Checker<'_>, target: &TargetConfig) {
    let Some(after) = &target.delete_after else {
        return;
    };
    let kind = target.kind;
    if !kind.deletes() {
        let deleters: Vec<&str> = TargetKind::ALL
            .iter()
            .filter(|other| other.deletes())
            .map(|other| other.name())
            .collect();
        c.at(
            after.span(),
            format!(
                "delete_after: {kind} targets cannot delete accounts (their API only blocks \
                 them), so leavers stay blocked there; delete_after is for {} targets",
                deleters.join(", ")
            ),
        );
        return;
    }
    // The delay itself, not the days it rounds up to: "12h" is no day.
    if after.get_ref().0 < SHORTEST_DELETE {
        c.at(
            after.span(),
            "delete_after: at least 1 day (\"1d\"), so that a mistaken block can be undone before the account goes",
        );
    }
}
