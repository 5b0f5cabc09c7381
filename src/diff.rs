//! Diff: from desired and acknowledged state to an action, and the order in
//! which actions can be sent. Pure functions over plain data.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};

use crate::model::{Acked, ActionKind, Desired};
use crate::projection::Fields;

/// Whether a record should be active on `today`: in its file, not disabled,
/// activated already (the activation day counts) and not expired (the
/// expiration day is its last active day).
pub fn is_active(desired: &Desired, today: NaiveDate) -> bool {
    let day = today.num_days_from_ce();
    desired.present
        && !desired.disabled
        && desired
            .activation
            .is_none_or(|activation| activation <= day)
        && desired
            .expiration
            .is_none_or(|expiration| day <= expiration)
}

/// The rules of a record's life at a target beyond its own state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifecycle {
    /// A new record that is already inactive is created anyway (blocked).
    pub create_disabled: bool,
    /// An account blocked at least this many days is deleted; `None`: never.
    pub delete_after_days: Option<u32>,
    /// A record starting within this many days is created now, blocked
    /// (`prehire`); 0: only once it starts.
    pub prehire_days: u32,
}

/// [`decide`], with what the target did to the account beyond holding it:
/// `deleted` (the store's mark) and the delay after which a blocked
/// account is deleted. A deleted account is created again only for an
/// active record (a rehire): an inactive one is never recreated.
pub fn decide_at(
    desired: &Desired,
    acked: Option<&Acked>,
    deleted: bool,
    rules: Lifecycle,
    today: NaiveDate,
) -> Option<ActionKind> {
    if deleted {
        return desired.active.then_some(ActionKind::Create);
    }
    if let (Some(acked), Some(days)) = (acked, rules.delete_after_days)
        && !acked.active
        && !desired.active
        && blocked_days(acked, today) >= i64::from(days)
    {
        return Some(ActionKind::Delete);
    }
    if acked.is_none() && is_prehire(desired, rules.prehire_days, today) {
        return Some(ActionKind::Create);
    }
    decide(desired, acked, rules.create_disabled)
}

/// Whether a record is inactive only because it starts later, within
/// `days` of `today`: it is created now, blocked, and unblocked on its day.
pub fn is_prehire(desired: &Desired, days: u32, today: NaiveDate) -> bool {
    let Some(activation) = desired.activation else {
        return false;
    };
    let day = today.num_days_from_ce();
    let ahead = i64::from(activation) - i64::from(day);
    days > 0
        && ahead > 0
        && ahead <= i64::from(days)
        && desired.present
        && !desired.disabled
        && desired
            .expiration
            .is_none_or(|expiration| activation <= expiration)
}

/// Whole days since the target confirmed the account blocked, by the local
/// calendar (the day of the block counts as day 0). The confirmation is the
/// last one the target gave while the account was blocked: a change sent
/// to a blocked account starts the delay again, which only delays a delete.
pub fn blocked_days(acked: &Acked, today: NaiveDate) -> i64 {
    blocked_on(acked).map_or(0, |day| (today - day).num_days())
}

/// The local day the target confirmed the account blocked.
fn blocked_on(acked: &Acked) -> Option<NaiveDate> {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_opt(acked.at, 0)
        .single()
        .map(|at| at.date_naive())
}

/// The first day a blocked account is deleted on, `days` after its block.
pub fn delete_due_on(acked: &Acked, days: u32) -> Option<NaiveDate> {
    blocked_on(acked)?.checked_add_days(chrono::Days::new(u64::from(days)))
}

/// What the target must be told, if anything, for it to hold `desired`.
/// A new record that is already inactive is only created with `create_disabled`.
pub fn decide(
    desired: &Desired,
    acked: Option<&Acked>,
    create_disabled: bool,
) -> Option<ActionKind> {
    let Some(acked) = acked else {
        return (desired.active || create_disabled).then_some(ActionKind::Create);
    };
    match (acked.active, desired.active) {
        (true, false) => Some(ActionKind::Block),
        (false, true) => Some(ActionKind::Unblock),
        _ if acked.hash != desired.hash => Some(ActionKind::Update),
        _ => None,
    }
}

/// A field's old and new value (`None`: absent).
pub type Change = (Option<String>, Option<String>);

/// The fields that differ between two projections.
pub fn changes(old: &Fields, new: &Fields) -> BTreeMap<String, Change> {
    let mut changed = BTreeMap::new();
    for (name, value) in new {
        if old.get(name) != Some(value) {
            changed.insert(name.clone(), (old.get(name).cloned(), Some(value.clone())));
        }
    }
    for (name, value) in old {
        if !new.contains_key(name) {
            changed.insert(name.clone(), (Some(value.clone()), None));
        }
    }
    changed
}

/// Which items of a list each item refers to, by index (parent
/// organisation, managers), held flat: a few bytes per item, so that a
/// million records' references cost megabytes, not a string each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Where each item's references end in `targets`.
    ends: Vec<u32>,
    targets: Vec<u32>,
}

impl References {
    /// Adds the next item, referring to `targets` (indices into the list).
    pub fn push(&mut self, targets: impl IntoIterator<Item = u32>) {
        self.targets.extend(targets);
        self.ends.push(self.targets.len() as u32);
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The items that item `i` refers to.
    pub fn of(&self, i: usize) -> &[u32] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.targets[start..self.ends[i] as usize]
    }

    /// From each item's referenced keys, `key_index` saying where a key is
    /// in the list; a key not in the list is left out (nothing to wait for).
    pub fn resolve<'k, R>(
        references: impl IntoIterator<Item = R>,
        key_index: impl Fn(&str) -> Option<usize>,
    ) -> References
    where
        R: IntoIterator<Item = &'k str>,
    {
        let mut resolved = References::default();
        for refs in references {
            resolved.push(refs.into_iter().filter_map(&key_index).map(|j| j as u32));
        }
        resolved
    }

    /// Who refers to each item: the edges turned round.
    fn dependents(&self) -> References {
        let mut counts = vec![0u32; self.len()];
        for &target in &self.targets {
            counts[target as usize] += 1;
        }
        let mut ends = Vec::with_capacity(self.len());
        let mut total = 0u32;
        for count in &counts {
            total += count;
            ends.push(total);
        }
        // Filled back to front, so that each item's dependents keep their order.
        let mut targets = vec![0u32; self.targets.len()];
        let mut next = ends.clone();
        for i in (0..self.len()).rev() {
            for &target in self.of(i).iter().rev() {
                let slot = &mut next[target as usize];
                *slot -= 1;
                targets[*slot as usize] = i as u32;
            }
        }
        References { ends, targets }
    }
}

/// Orders items by depth: first those that refer to nothing in the list,
/// then those that refer only to them, and so on (parent organisations before
/// their children, managers before their reports). Within a depth the given
/// order is kept. Where references loop, the earliest remaining item goes
/// without its references, to be completed in a second pass. Returns the
/// order, as indices, and the deferred indices.
pub fn dependency_order(keys: &[&str], references: &[Vec<&str>]) -> (Vec<usize>, Vec<usize>) {
    let (order, deferred) = order_by_references(&by_position(keys, references));
    let widen = |v: Vec<u32>| v.into_iter().map(|i| i as usize).collect();
    (widen(order), widen(deferred))
}

/// [`dependency_order`] of items whose references are resolved already.
pub fn order_by_references(references: &References) -> (Vec<u32>, Vec<u32>) {
    let count = references.len();
    // An item waits on each distinct other item it refers to.
    let mut waiting_on: Vec<u32> = (0..count)
        .map(|i| {
            references
                .of(i)
                .iter()
                .filter(|&&j| j as usize != i)
                .count() as u32
        })
        .collect();
    let dependents = references.dependents();
    let mut order = Vec::with_capacity(count);
    let mut deferred = Vec::new();
    let mut done = vec![false; count];
    let mut level: Vec<u32> = (0..count as u32)
        .filter(|&i| waiting_on[i as usize] == 0)
        .collect();
    let mut next_unsent = 0;
    while order.len() < count {
        if level.is_empty() {
            // Only loops remain: the earliest goes first, its references later.
            while done[next_unsent] {
                next_unsent += 1;
            }
            deferred.push(next_unsent as u32);
            waiting_on[next_unsent] = 0;
            level.push(next_unsent as u32);
        }
        level.sort_unstable();
        let mut next_level = Vec::new();
        for &item in &level {
            if done[item as usize] {
                continue;
            }
            done[item as usize] = true;
            order.push(item);
            for &dependent in dependents.of(item as usize) {
                if dependent == item {
                    continue;
                }
                let waits = &mut waiting_on[dependent as usize];
                *waits = waits.saturating_sub(1);
                if *waits == 0 && !done[dependent as usize] {
                    next_level.push(dependent);
                }
            }
        }
        level = next_level;
    }
    (order, deferred)
}

/// The same order as [`dependency_order`], cut into levels: every item of a
/// level refers only to items of earlier levels (or to nothing in the list),
/// so the items of one level can be sent at the same time. A reference that
/// loops back (deferred) does not count.
pub fn dependency_levels(keys: &[&str], references: &[Vec<&str>]) -> Vec<Vec<usize>> {
    levels_by_references(&by_position(keys, references))
        .into_iter()
        .map(|level| level.into_iter().map(|i| i as usize).collect())
        .collect()
}

/// [`dependency_levels`] of items whose references are resolved already.
pub fn levels_by_references(references: &References) -> Vec<Vec<u32>> {
    let (order, _) = order_by_references(references);
    let mut rank = vec![0u32; references.len()];
    for (place, &item) in order.iter().enumerate() {
        rank[item as usize] = place as u32;
    }
    let mut depth = vec![0usize; references.len()];
    let mut levels: Vec<Vec<u32>> = Vec::new();
    for &item in &order {
        let item = item as usize;
        depth[item] = references
            .of(item)
            .iter()
            .map(|&j| j as usize)
            .filter(|&j| j != item && rank[j] < rank[item])
            .map(|j| depth[j] + 1)
            .max()
            .unwrap_or(0);
        if levels.len() <= depth[item] {
            levels.resize_with(depth[item] + 1, Vec::new);
        }
        levels[depth[item]].push(item as u32);
    }
    levels
}

/// References by key resolved to positions in `keys` (a key given twice
/// stands for its last position).
fn by_position(keys: &[&str], references: &[Vec<&str>]) -> References {
    let position: HashMap<&str, usize> = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    References::resolve(references.iter().map(|refs| refs.iter().copied()), |key| {
        position.get(key).copied()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::ProjectionHash;
    use chrono::TimeZone;

    fn desired(hash: u8, active: bool) -> Desired {
        Desired {
            hash: ProjectionHash([hash; 16]),
            active,
            disabled: !active,
            activation: None,
            expiration: None,
            present: true,
        }
    }

    fn acked(hash: u8, active: bool) -> Acked {
        Acked {
            hash: ProjectionHash([hash; 16]),
            active,
            target_id: None,
            at: 0,
        }
    }

    #[test]
    fn every_transition() {
        use ActionKind::*;
        assert_eq!(decide(&desired(1, true), None, false), Some(Create));
        assert_eq!(decide(&desired(1, false), None, false), None);
        assert_eq!(decide(&desired(1, false), None, true), Some(Create));
        assert_eq!(
            decide(&desired(1, true), Some(&acked(1, true)), false),
            None
        );
        assert_eq!(
            decide(&desired(2, true), Some(&acked(1, true)), false),
            Some(Update)
        );
        assert_eq!(
            decide(&desired(1, false), Some(&acked(1, true)), false),
            Some(Block)
        );
        assert_eq!(
            decide(&desired(2, true), Some(&acked(1, false)), false),
            Some(Unblock)
        );
        // A blocked record whose fields change stays blocked and is updated.
        assert_eq!(
            decide(&desired(2, false), Some(&acked(1, false)), false),
            Some(Update)
        );
    }

    #[test]
    fn deletes_after_the_delay_and_never_recreates_inactive_records() {
        use ActionKind::*;
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        let blocked_on_first = Acked {
            at: chrono::Local
                .with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
                .unwrap()
                .timestamp(),
            ..acked(1, false)
        };
        let rules = Lifecycle {
            create_disabled: true,
            delete_after_days: Some(10),
            prehire_days: 0,
        };
        let leaver = desired(1, false);
        let at = |today| decide_at(&leaver, Some(&blocked_on_first), false, rules, today);
        assert_eq!(at(day(10)), None, "day 9 of the block");
        assert_eq!(at(day(11)), Some(Delete), "day 10 of the block");
        assert_eq!(
            decide_at(&leaver, Some(&blocked_on_first), true, rules, day(20)),
            None,
            "deleted: never created again while inactive, create_disabled or not"
        );
        assert_eq!(
            decide_at(
                &desired(1, true),
                Some(&blocked_on_first),
                true,
                rules,
                day(20)
            ),
            Some(Create),
            "a rehire after the delete is a new account"
        );
        assert_eq!(
            decide_at(
                &desired(1, true),
                Some(&blocked_on_first),
                false,
                rules,
                day(5)
            ),
            Some(Unblock),
            "a rehire inside the delay is an unblock"
        );
        let never = Lifecycle {
            delete_after_days: None,
            ..rules
        };
        assert_eq!(
            decide_at(&leaver, Some(&blocked_on_first), false, never, day(30)),
            None
        );
        let active_account = Acked {
            active: true,
            ..blocked_on_first.clone()
        };
        assert_eq!(
            decide_at(&leaver, Some(&active_account), false, rules, day(30)),
            Some(Block),
            "blocked first, deleted only after the delay"
        );
    }

    #[test]
    fn prehires_are_created_blocked_within_the_window() {
        use ActionKind::*;
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        let starts_on_15 = Desired {
            activation: Some(day(15).num_days_from_ce()),
            active: false,
            disabled: false,
            ..desired(1, false)
        };
        let rules = Lifecycle {
            prehire_days: 14,
            ..Lifecycle::default()
        };
        let at = |today| decide_at(&starts_on_15, None, false, rules, today);
        assert_eq!(at(day(1)), Some(Create), "14 days ahead");
        assert_eq!(
            decide_at(
                &starts_on_15,
                None,
                false,
                rules,
                day(1).pred_opt().unwrap()
            ),
            None,
            "15 days ahead: it waits"
        );
        assert_eq!(
            decide_at(&starts_on_15, None, false, Lifecycle::default(), day(10)),
            None,
            "no prehire: created on its day"
        );
        let disabled = Desired {
            disabled: true,
            ..starts_on_15.clone()
        };
        assert_eq!(decide_at(&disabled, None, false, rules, day(10)), None);
    }

    #[test]
    fn dates_decide_activity() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let mut d = desired(1, true);
        d.activation = Some(day(2026, 12, 1).num_days_from_ce());
        d.expiration = Some(day(2027, 6, 30).num_days_from_ce());
        assert!(!is_active(&d, day(2026, 11, 30)));
        assert!(is_active(&d, day(2026, 12, 1)));
        assert!(is_active(&d, day(2027, 6, 30)));
        assert!(!is_active(&d, day(2027, 7, 1)));
        d.present = false;
        assert!(!is_active(&d, day(2027, 1, 1)));
    }

    #[test]
    fn changes_list_old_and_new() {
        let old = Fields::from([("a".into(), "1".into()), ("b".into(), "2".into())]);
        let new = Fields::from([("a".into(), "1".into()), ("c".into(), "3".into())]);
        let changed = changes(&old, &new);
        assert_eq!(changed.len(), 2);
        assert_eq!(changed["b"], (Some("2".into()), None));
        assert_eq!(changed["c"], (None, Some("3".into())));
    }

    #[test]
    fn parents_before_children_and_loops_deferred() {
        // d → c → b → a (child → parent), given children first.
        let keys = ["d", "c", "b", "a"];
        let refs = vec![vec!["c"], vec!["b"], vec!["a"], vec![]];
        let (order, deferred) = dependency_order(&keys, &refs);
        assert_eq!(order, [3, 2, 1, 0]);
        assert!(deferred.is_empty());

        // x and y manage each other; z reports to x.
        let keys = ["x", "y", "z"];
        let refs = vec![vec!["y"], vec!["x"], vec!["x"]];
        let (order, deferred) = dependency_order(&keys, &refs);
        assert_eq!(order, [0, 1, 2]);
        assert_eq!(deferred, [0]);
    }

    #[test]
    fn levels_hold_items_that_can_go_together() {
        // a ← b ← d, a ← c, e alone; f refers to something not in the list.
        let keys = ["d", "c", "b", "a", "e", "f"];
        let refs = vec![vec!["b"], vec!["a"], vec!["a"], vec![], vec![], vec!["zz"]];
        assert_eq!(
            dependency_levels(&keys, &refs),
            vec![vec![3, 4, 5], vec![1, 2], vec![0]]
        );
        // A loop: x first, y after it, z (reports to x) beside y.
        let keys = ["x", "y", "z"];
        let refs = vec![vec!["y"], vec!["x"], vec!["x"]];
        assert_eq!(dependency_levels(&keys, &refs), vec![vec![0], vec![1, 2]]);
        assert!(dependency_levels(&[], &[]).is_empty());
    }

    #[test]
    fn a_manager_named_twice_or_a_record_naming_itself_waits_on_nothing_more() {
        // b names a as manager and alternate manager; c names itself.
        let keys = ["b", "a", "c"];
        let refs = vec![vec!["a", "a"], vec![], vec!["c"]];
        assert_eq!(dependency_order(&keys, &refs), (vec![1, 2, 0], vec![]));
        assert_eq!(dependency_levels(&keys, &refs), vec![vec![1, 2], vec![0]]);
    }
}
