//! Safety rules (README, *How changes are worked out*): a plan that would block too many people,
//! comes from a suspiciously small file, or changes one field for most people, is held instead
//! of applied.

use crate::config::SafetyConfig;

/// Which rule held a plan, and by how much.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Held {
    pub rule: String,
    pub value: f64,
    pub limit: f64,
    /// The target the figures are about, for the block rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The field the figures are about, for `max_change_percent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A few of the changes, for `max_change_percent`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample: Vec<ChangeSample>,
}

/// One record's value of a field, before and after the file (`None`: empty).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChangeSample {
    pub ext_id: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

impl std::fmt::Display for ChangeSample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |value: &Option<String>| match value {
            Some(value) => format!("{:?}", crate::escape::text(value)),
            None => "(empty)".to_string(),
        };
        write!(
            f,
            "{}: {} → {}",
            crate::escape::text(&self.ext_id),
            shown(&self.old),
            shown(&self.new)
        )
    }
}

/// How many of a source's records a file changes one field of.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldShare {
    pub field: String,
    pub changed: u64,
    /// The source's records before the file.
    pub records: u64,
    /// The first few changes, in key order.
    pub sample: Vec<ChangeSample>,
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on = self
            .target
            .as_ref()
            .map(|t| format!(" on target {t}"))
            .unwrap_or_default();
        match self.rule.as_str() {
            "min_rows" => write!(
                f,
                "the file has {} rows, min_rows is {}",
                self.value, self.limit
            ),
            "max_shrink_percent" => write!(
                f,
                "the file has {:.1}% fewer rows than the last accepted one, max_shrink_percent is {}",
                self.value, self.limit
            ),
            "max_block_count" => write!(
                f,
                "the plan blocks {} records{on}, max_block_count is {}",
                self.value, self.limit
            ),
            "max_block_percent" => write!(
                f,
                "the plan blocks {:.1}% of the source's active records{on}, max_block_percent is {}",
                self.value, self.limit
            ),
            "max_delete_count" => write!(
                f,
                "the plan deletes {} accounts{on}, max_delete_count is {}",
                self.value, self.limit
            ),
            "max_change_percent" => {
                write!(
                    f,
                    "the file changes {} for {:.1}% of the source's records, max_change_percent is {}",
                    self.field.as_deref().unwrap_or("a field"),
                    self.value,
                    self.limit
                )?;
                for (i, sample) in self.sample.iter().enumerate() {
                    write!(f, "{} {sample}", if i == 0 { "; e.g." } else { ";" })?;
                }
                Ok(())
            }
            other => write!(f, "{other}: {} (limit {})", self.value, self.limit),
        }
    }
}

/// The figures of a plan the rules look at.
#[derive(Debug, Clone, Default)]
pub struct PlanFigures {
    pub rows: u64,
    /// Rows of the source's last accepted file, if any.
    pub previous_rows: Option<u64>,
    /// Per target: blocks planned, and the source's records active there now.
    pub blocks: Vec<(String, u64, u64)>,
    /// Per field the file changes, how many of the source's records.
    pub changes: Vec<FieldShare>,
    /// Per target that deletes: deletes planned, and its `max_delete_count`.
    pub deletes: Vec<(String, u64, u64)>,
}

/// The first rule the plan breaks, if any, and the others it breaks too:
/// an administrator reading a held plan sees every reason at once.
pub fn check_all(rules: &SafetyConfig, figures: &PlanFigures) -> (Option<Held>, Vec<Held>) {
    let mut broken = broken_rules(rules, figures).into_iter();
    (broken.next(), broken.collect())
}

/// The first rule the plan breaks, if any, in this order: min_rows,
/// max_shrink_percent, per target max_block_count and max_block_percent,
/// per target max_delete_count, then per field max_change_percent.
pub fn check(rules: &SafetyConfig, figures: &PlanFigures) -> Option<Held> {
    broken_rules(rules, figures).into_iter().next()
}

/// Every rule the plan breaks, in the order of [`check`].
fn broken_rules(rules: &SafetyConfig, figures: &PlanFigures) -> Vec<Held> {
    let mut broken = Vec::new();
    let held = |rule: &str, value: f64, limit: f64, target: Option<&str>| Held {
        rule: rule.to_string(),
        value,
        limit,
        target: target.map(str::to_string),
        field: None,
        sample: Vec::new(),
    };
    if figures.rows < rules.min_rows {
        broken.push(held(
            "min_rows",
            figures.rows as f64,
            rules.min_rows as f64,
            None,
        ));
    }
    if let Some(previous) = figures.previous_rows.filter(|&p| p > 0) {
        let shrink = previous.saturating_sub(figures.rows) as f64 * 100.0 / previous as f64;
        let limit = *rules.max_shrink_percent.get_ref();
        if shrink > limit {
            broken.push(held("max_shrink_percent", round1(shrink), limit, None));
        }
    }
    for (target, blocks, active) in &figures.blocks {
        if *blocks > rules.max_block_count {
            broken.push(held(
                "max_block_count",
                *blocks as f64,
                rules.max_block_count as f64,
                Some(target),
            ));
        }
        if *blocks > 0 && *active > 0 {
            let percent = *blocks as f64 * 100.0 / *active as f64;
            let limit = *rules.max_block_percent.get_ref();
            if percent > limit {
                broken.push(held(
                    "max_block_percent",
                    round1(percent),
                    limit,
                    Some(target),
                ));
            }
        }
    }
    broken.extend(too_many_deletes(&figures.deletes));
    let limit = *rules.max_change_percent.get_ref();
    if limit > 0.0 {
        for share in figures.changes.iter().filter(|s| s.records > 0) {
            let percent = share.changed as f64 * 100.0 / share.records as f64;
            if percent > limit {
                broken.push(Held {
                    field: Some(share.field.clone()),
                    sample: share.sample.clone(),
                    ..held("max_change_percent", round1(percent), limit, None)
                });
            }
        }
    }
    broken
}

/// `max_delete_count`, per target: for a file's plan and for the daily
/// re-plan alike (`deletes`: target, deletes planned, its limit).
pub fn too_many_deletes(deletes: &[(String, u64, u64)]) -> Vec<Held> {
    deletes
        .iter()
        .filter(|(_, planned, limit)| planned > limit)
        .map(|(target, planned, limit)| Held {
            rule: "max_delete_count".to_string(),
            value: *planned as f64,
            limit: *limit as f64,
            target: Some(target.clone()),
            field: None,
            sample: Vec::new(),
        })
        .collect()
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(rows: u64, previous: Option<u64>, blocks: u64, active: u64) -> PlanFigures {
        PlanFigures {
            rows,
            previous_rows: previous,
            blocks: vec![("lms".into(), blocks, active)],
            changes: Vec::new(),
            deletes: Vec::new(),
        }
    }

    #[test]
    fn more_deletes_than_max_delete_count_hold() {
        let rules = SafetyConfig::default();
        let mut deleting = figures(100, Some(100), 0, 100);
        deleting.deletes = vec![("portal".into(), 50, 50)];
        assert_eq!(check(&rules, &deleting), None, "50 of at most 50");
        deleting.deletes = vec![("portal".into(), 51, 50)];
        let held = check(&rules, &deleting).expect("held");
        assert_eq!(
            held.to_string(),
            "the plan deletes 51 accounts on target portal, max_delete_count is 50"
        );
    }

    #[test]
    fn each_rule_holds_with_its_figures() {
        let rules = SafetyConfig::default();
        assert_eq!(check(&rules, &figures(100, Some(100), 0, 100)), None);
        let held = check(&rules, &figures(0, None, 0, 0)).unwrap();
        assert_eq!(
            (held.rule.as_str(), held.value, held.limit),
            ("min_rows", 0.0, 1.0)
        );
        let held = check(&rules, &figures(10, Some(100), 0, 100)).unwrap();
        assert_eq!(
            (held.rule.as_str(), held.value),
            ("max_shrink_percent", 90.0)
        );
        let held = check(&rules, &figures(100, Some(100), 11, 100)).unwrap();
        assert_eq!(
            (held.rule.as_str(), held.value),
            ("max_block_percent", 11.0)
        );
        assert_eq!(held.target.as_deref(), Some("lms"));
        let held = check(&rules, &figures(10_000, None, 501, 10_000)).unwrap();
        assert_eq!((held.rule.as_str(), held.value), ("max_block_count", 501.0));
        // Exactly at the limit passes.
        assert_eq!(check(&rules, &figures(100, Some(100), 10, 100)), None);
        assert_eq!(check(&rules, &figures(70, Some(100), 0, 100)), None);
    }

    #[test]
    fn the_summary_says_which_rule_and_by_how_much() {
        let rules = SafetyConfig::default();
        let held = check(&rules, &figures(100, Some(100), 40, 100)).unwrap();
        assert_eq!(
            held.to_string(),
            "the plan blocks 40.0% of the source's active records on target lms, max_block_percent is 10"
        );
    }

    fn changing(field: &str, changed: u64, records: u64) -> PlanFigures {
        PlanFigures {
            changes: vec![FieldShare {
                field: field.into(),
                changed,
                records,
                sample: vec![ChangeSample {
                    ext_id: "u001".into(),
                    old: Some("Ada".into()),
                    new: None,
                }],
            }],
            ..figures(100, Some(100), 0, 100)
        }
    }

    #[test]
    fn max_change_percent_holds_above_its_share_naming_the_field_with_a_sample() {
        let mut rules = SafetyConfig::default();
        assert_eq!(check(&rules, &changing("email", 50, 100)), None);
        let held = check(&rules, &changing("first_name", 51, 100)).unwrap();
        assert_eq!(
            (held.rule.as_str(), held.value, held.field.as_deref()),
            ("max_change_percent", 51.0, Some("first_name"))
        );
        assert_eq!(
            held.to_string(),
            "the file changes first_name for 51.0% of the source's records, \
             max_change_percent is 50; e.g. u001: \"Ada\" → (empty)"
        );
        rules.max_change_percent = toml::Spanned::new(0..0, 0.0);
        assert_eq!(check(&rules, &changing("first_name", 100, 100)), None);
    }
}
