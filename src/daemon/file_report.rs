//! A file's `.report.json`, typed: the plan (the shape `plan --json`
//! prints), each action with its status once known, and whether every target
//! has taken or parked everything (`complete`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{ActionStatus, PushStatus, RecordKind};
use crate::plan::Plan;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileReport {
    /// First, so that a restart finds open reports by reading a few bytes.
    pub complete: bool,
    /// Same bytes as the source's last accepted file: nothing was done.
    pub duplicate: bool,
    /// The plan was committed before a restart, the file archived after it
    /// (the daemon stopped in between); the actions are those committed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub committed_before_restart: bool,
    /// UTC, RFC 3339.
    pub processed_at: String,
    /// Beside the report, every action and where it stands, one JSON object
    /// per line, when there are more than the report lists (`report_actions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions_file: Option<String>,
    #[serde(flatten)]
    pub plan: Plan,
}

/// How a file came to be archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archived {
    /// Its plan was committed just before.
    Committed,
    /// The same bytes as the source's last accepted file.
    Duplicate,
    /// Its plan was committed before a restart.
    CommittedBeforeRestart,
}

impl FileReport {
    /// A report with every action `pending` until its target took it (a
    /// plan's actions keep the statuses they have: `approve` without a
    /// daemon pushes before filing).
    pub fn new(plan: &Plan, how: Archived, at: DateTime<Utc>) -> FileReport {
        let mut plan = plan.clone();
        // For people and scripts that print it: the name escaped as in the log.
        plan.file = crate::escape::text(&plan.file).into_owned();
        for target in plan.targets.values_mut() {
            for action in &mut target.actions {
                action.status.get_or_insert(ActionStatus::Pending);
            }
        }
        let mut report = FileReport {
            complete: false,
            duplicate: how == Archived::Duplicate,
            committed_before_restart: how == Archived::CommittedBeforeRestart,
            processed_at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            actions_file: None,
            plan,
        };
        report.complete = report.all_taken();
        report
    }

    /// No action of any target is still pending.
    pub fn all_taken(&self) -> bool {
        self.plan
            .targets
            .values()
            .flat_map(|target| &target.actions)
            .all(|action| action.status != Some(ActionStatus::Pending))
    }

    /// Some action is parked: a retry may still get it through.
    pub fn has_parked(&self) -> bool {
        self.plan.targets.values().any(|target| target.parked > 0)
    }

    /// The names of the targets this report concerns.
    pub fn targets(&self) -> impl Iterator<Item = &String> {
        self.plan.targets.keys()
    }

    /// Sets the status of `target`'s pending actions from `lookup(kind, key)`
    /// (`None`: still pending), recounts its parked ones and `complete`.
    /// Returns whether anything changed.
    pub fn resolve<E>(
        &mut self,
        target: &str,
        mut lookup: impl FnMut(RecordKind, &str) -> Result<Option<PushStatus>, E>,
    ) -> Result<bool, E> {
        let mut changed = false;
        if let Some(target_report) = self.plan.targets.get_mut(target) {
            let mut parked = 0u64;
            for action in &mut target_report.actions {
                if action.status == Some(ActionStatus::Pending) {
                    changed |= action.settle(lookup(action.kind, &action.ext_id)?);
                } else if action.status == Some(ActionStatus::Parked)
                    && lookup(action.kind, &action.ext_id)? == Some(PushStatus::Done)
                {
                    // A retry (or a later file) got it through.
                    action.settle(Some(PushStatus::Done));
                    action.reason = None;
                    action.candidates = Vec::new();
                    changed = true;
                }
                if action.status == Some(ActionStatus::Parked) {
                    parked += 1;
                }
            }
            target_report.parked = parked;
        }
        if changed {
            self.complete = self.all_taken();
        }
        Ok(changed)
    }
}

#[cfg(test)]
pub(crate) fn test_plan() -> Plan {
    let mut plan = Plan {
        source: "hr".into(),
        file: "u.csv".into(),
        rows: 2,
        held: None,
        problems: Vec::new(),
        held_also: Vec::new(),
        targets: Default::default(),
    };
    let action = |key: &str| crate::plan::PlannedAction {
        action: crate::model::ActionKind::Create,
        kind: crate::ingest::record::RecordKind::Users,
        ext_id: key.into(),
        changes: Default::default(),
        deferred: Vec::new(),
        status: None,
        reason: None,
        candidates: Vec::new(),
    };
    for target in ["a", "b"] {
        plan.targets.insert(
            target.into(),
            crate::plan::TargetPlan {
                create: 2,
                actions: vec![action("E1"), action("E2")],
                ..Default::default()
            },
        );
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn json(report: &FileReport) -> Value {
        serde_json::to_value(report).unwrap()
    }

    #[test]
    fn a_report_completes_as_each_target_takes_or_parks_its_records() {
        let mut report = FileReport::new(&test_plan(), Archived::Committed, Utc::now());
        let text = serde_json::to_string_pretty(&report).unwrap();
        assert!(text.starts_with("{\n  \"complete\": false"), "{text}");
        assert_eq!(
            json(&report)["targets"]["a"]["actions"][0]["status"],
            "pending"
        );

        let changed = report
            .resolve::<()>("a", |kind, key| {
                assert_eq!(kind, RecordKind::Users);
                Ok(match key {
                    "E1" => Some(PushStatus::Done),
                    _ => Some(PushStatus::Parked {
                        reason: "refused".into(),
                        candidates: Vec::new(),
                    }),
                })
            })
            .unwrap();
        assert!(changed);
        let value = json(&report);
        assert_eq!(value["targets"]["a"]["actions"][1]["status"], "parked");
        assert_eq!(value["targets"]["a"]["actions"][1]["reason"], "refused");
        assert_eq!(value["targets"]["a"]["parked"], 1);
        assert_eq!(value["complete"], false, "target b has not taken anything");

        // A target that is down leaves its records pending.
        assert!(!report.resolve::<()>("b", |_, _| Ok(None)).unwrap());
        assert!(
            report
                .resolve::<()>("b", |_, _| Ok(Some(PushStatus::Done)))
                .unwrap()
        );
        assert_eq!(json(&report)["complete"], true);
    }

    #[test]
    fn an_ambiguous_record_is_parked_in_the_report_with_its_candidates() {
        let mut report = FileReport::new(&test_plan(), Archived::Committed, Utc::now());
        let candidate = crate::model::Candidate {
            id: "17".into(),
            login: "jdoe".into(),
            matched_by: vec!["login".into()],
        };
        let candidates = vec![candidate.clone(), candidate];
        report
            .resolve::<()>("a", |_, key| {
                Ok(Some(match key {
                    "E1" => PushStatus::Parked {
                        reason: "ambiguous: 2 accounts".into(),
                        candidates: candidates.clone(),
                    },
                    _ => PushStatus::Done,
                }))
            })
            .unwrap();
        let value = json(&report);
        let actions = &value["targets"]["a"]["actions"];
        assert_eq!(actions[0]["status"], "parked");
        assert_eq!(
            actions[0]["candidates"],
            serde_json::json!([
                {"id": "17", "login": "jdoe", "matched_by": ["login"]},
                {"id": "17", "login": "jdoe", "matched_by": ["login"]}
            ])
        );
        assert!(actions[1].get("candidates").is_none(), "{}", actions[1]);
        assert_eq!(value["targets"]["a"]["parked"], 1);
        // A report written before candidates existed reads as it was.
        let mut old = json(&FileReport::new(
            &test_plan(),
            Archived::Committed,
            Utc::now(),
        ));
        old["targets"]["a"]["actions"][0]["status"] = "parked".into();
        let read: FileReport = serde_json::from_value(old).unwrap();
        assert!(read.plan.targets["a"].actions[0].candidates.is_empty());
    }

    #[test]
    fn a_report_reads_back_as_written() {
        let mut report =
            FileReport::new(&test_plan(), Archived::CommittedBeforeRestart, Utc::now());
        report
            .resolve::<()>("a", |_, _| Ok(Some(PushStatus::Done)))
            .unwrap();
        let bytes = serde_json::to_vec_pretty(&report).unwrap();
        let read: FileReport = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(serde_json::to_vec_pretty(&read).unwrap(), bytes);
    }

    #[test]
    fn a_report_says_when_its_plan_was_committed_before_a_restart() {
        let report = json(&FileReport::new(
            &test_plan(),
            Archived::CommittedBeforeRestart,
            Utc::now(),
        ));
        assert_eq!(report["committed_before_restart"], true);
        assert_eq!(report["duplicate"], false);
        assert_eq!(report["targets"]["a"]["actions"][0]["status"], "pending");
        let report = json(&FileReport::new(
            &test_plan(),
            Archived::Committed,
            Utc::now(),
        ));
        assert!(report.get("committed_before_restart").is_none());
    }
}
