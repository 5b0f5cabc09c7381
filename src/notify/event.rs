//! What a notification says: the events an operator must act on, as the
//! JSON body of a webhook (README, *Notifications*) and the text of an
//! e-mail. Pure.
//!
//! No personal field goes in: records are named by their external id (and
//! the candidates of an ambiguous record by their login), files by name,
//! sources and targets by their config names. A park reason, which may
//! quote what a target said of a person, stays in `status` and `show`.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::model::RecordKind;

/// How many items a message lists; its counts are exact.
pub const ITEMS_LISTED: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A file held by a safety rule.
    Held,
    /// A file refused.
    Rejected,
    /// Records parked (refused by a target, or still failing).
    Parked,
    /// Records parked because the target holds several accounts that could be theirs.
    Ambiguous,
    /// A target failing with no success for `down_after`.
    TargetDown,
    /// Once a day: where each source and target stands.
    Daily,
}

impl EventKind {
    /// What a `[[notify]]` without `events` takes: all but the daily summary.
    pub const DEFAULT: [EventKind; 5] = [
        EventKind::Held,
        EventKind::Rejected,
        EventKind::Parked,
        EventKind::Ambiguous,
        EventKind::TargetDown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Held => "held",
            EventKind::Rejected => "rejected",
            EventKind::Parked => "parked",
            EventKind::Ambiguous => "ambiguous",
            EventKind::TargetDown => "target_down",
            EventKind::Daily => "daily",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message's body: `{"event", "at", "source"?, "target"?, "file"?,
/// "summary", "counts"?, "items"?}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub event: EventKind,
    /// UTC, RFC 3339: the latest event the message holds.
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The file (the latest, when the message holds several).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub summary: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
    /// Why a file was held or refused, for the summary.
    #[serde(skip)]
    reason: Option<String>,
}

/// A file, a record, or a place in a file: what an event is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The rule that held a file, or why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<RecordKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext_id: Option<String>,
    /// The logins of the accounts an ambiguous record could be.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logins: Vec<String>,
    /// Where in a refused file a problem is (its text stays in `.errors.txt`:
    /// it may quote a value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
}

impl Item {
    fn empty() -> Item {
        Item {
            file: None,
            reason: None,
            kind: None,
            ext_id: None,
            logins: Vec::new(),
            line: None,
            column: None,
        }
    }

    /// A parked record.
    pub fn record(kind: RecordKind, ext_id: &str) -> Item {
        Item {
            kind: Some(kind),
            ext_id: Some(ext_id.to_string()),
            ..Item::empty()
        }
    }

    /// An ambiguous record and the logins of the accounts it could be.
    pub fn ambiguous(kind: RecordKind, ext_id: &str, logins: Vec<String>) -> Item {
        Item {
            logins,
            ..Item::record(kind, ext_id)
        }
    }

    /// A problem of a refused file, by place.
    pub fn place(line: u64, column: u64) -> Item {
        Item {
            line: Some(line),
            column: Some(column),
            ..Item::empty()
        }
    }
}

/// What events coalesce by: their kind and what they are about.
pub type Subject = (EventKind, Option<String>, Option<String>);

impl Event {
    fn new(event: EventKind, at: String) -> Event {
        Event {
            event,
            at,
            source: None,
            target: None,
            file: None,
            summary: String::new(),
            counts: BTreeMap::new(),
            items: Vec::new(),
            reason: None,
        }
    }

    /// A file held by a safety rule (`rule` its words).
    pub fn held(at: String, source: &str, file: &str, rule: &str) -> Event {
        Event::file_event(EventKind::Held, at, source, file, rule, Vec::new())
    }

    /// The deletes due at a target, held by the daily re-plan
    /// (`max_delete_count`): no file to approve, the rule says why.
    pub fn deletes_held(at: String, target: &str, rule: &str) -> Event {
        let mut event = Event::new(EventKind::Held, at);
        event.target = Some(target.to_string());
        event.reason = Some(rule.to_string());
        event.items = vec![Item {
            reason: Some(rule.to_string()),
            ..Item::empty()
        }];
        event.describe();
        event
    }

    /// A file refused, and where its first problems are.
    pub fn rejected(
        at: String,
        source: &str,
        file: &str,
        reason: &str,
        places: &[(u64, u64)],
    ) -> Event {
        let items = places
            .iter()
            .map(|&(line, column)| Item::place(line, column));
        Event::file_event(
            EventKind::Rejected,
            at,
            source,
            file,
            reason,
            items.collect(),
        )
    }

    fn file_event(
        kind: EventKind,
        at: String,
        source: &str,
        file: &str,
        reason: &str,
        mut places: Vec<Item>,
    ) -> Event {
        let mut event = Event::new(kind, at);
        event.source = Some(source.to_string());
        event.file = Some(file.to_string());
        event.reason = Some(reason.to_string());
        event.counts.insert("files".into(), 1);
        let mut items = vec![Item {
            file: Some(file.to_string()),
            reason: Some(reason.to_string()),
            ..Item::empty()
        }];
        places.truncate(ITEMS_LISTED - 1);
        items.append(&mut places);
        event.items = items;
        event.describe();
        event
    }

    /// Records parked on a target in one drain: `count` of them, the first listed.
    pub fn parked(at: String, target: &str, count: u64, items: Vec<Item>) -> Event {
        Event::records(EventKind::Parked, at, target, count, items)
    }

    /// Records parked as ambiguous.
    pub fn ambiguous(at: String, target: &str, count: u64, items: Vec<Item>) -> Event {
        Event::records(EventKind::Ambiguous, at, target, count, items)
    }

    fn records(
        kind: EventKind,
        at: String,
        target: &str,
        count: u64,
        mut items: Vec<Item>,
    ) -> Event {
        let mut event = Event::new(kind, at);
        event.target = Some(target.to_string());
        event.counts.insert("records".into(), count);
        items.truncate(ITEMS_LISTED);
        event.items = items;
        event.describe();
        event
    }

    /// A target failing since `since` (RFC 3339) with nothing confirmed
    /// for `down_for` seconds; `waiting` records in its outbox.
    pub fn target_down(
        at: String,
        target: &str,
        since: &str,
        down_for: u64,
        waiting: u64,
    ) -> Event {
        let mut event = Event::new(EventKind::TargetDown, at);
        event.target = Some(target.to_string());
        event.reason = Some(since.to_string());
        event.counts.insert("down_seconds".into(), down_for);
        event.counts.insert("outbox".into(), waiting);
        event.describe();
        event
    }

    /// The daily summary: `counts` as given, `lines` each source's and
    /// target's standing.
    pub fn daily(at: String, counts: BTreeMap<String, u64>, lines: &[String]) -> Event {
        let mut event = Event::new(EventKind::Daily, at);
        event.counts = counts;
        event.reason = Some(lines.join("; "));
        event.describe();
        event
    }

    /// A message that says only that messages arrive (`check --online --notify`).
    pub fn test(at: String) -> Event {
        let mut event = Event::new(EventKind::Daily, at);
        event.summary =
            "rostersync test message (`rostersync check --online --notify`): notifications reach here"
                .into();
        event
    }

    pub fn subject(&self) -> Subject {
        (self.event, self.source.clone(), self.target.clone())
    }

    /// Takes a later event of the same subject in: counts added up (those
    /// that say where things stand now are the later one's), items listed
    /// up to [`ITEMS_LISTED`], the latest file, time and reason.
    pub fn merge(&mut self, later: Event) {
        match self.event {
            EventKind::TargetDown | EventKind::Daily => {
                let items = std::mem::take(&mut self.items);
                *self = later;
                self.items = items;
                return;
            }
            _ => {}
        }
        for (name, count) in later.counts {
            *self.counts.entry(name).or_default() += count;
        }
        let room = ITEMS_LISTED.saturating_sub(self.items.len());
        self.items.extend(later.items.into_iter().take(room));
        self.at = later.at;
        if later.file.is_some() {
            self.file = later.file;
        }
        if later.reason.is_some() {
            self.reason = later.reason;
        }
        self.describe();
    }

    /// The summary, from the counts.
    fn describe(&mut self) {
        let count = |name: &str| self.counts.get(name).copied().unwrap_or(0);
        let name = |value: &Option<String>| value.clone().unwrap_or_default();
        let (source, target, file) = (name(&self.source), name(&self.target), name(&self.file));
        let reason = name(&self.reason);
        self.summary = match self.event {
            EventKind::Held if count("files") > 1 => format!(
                "{} files from source {source} are held by safety rules; the last, {file}: {reason}; see each .plan.txt in held/, release with `rostersync approve`",
                count("files")
            ),
            EventKind::Held if self.file.is_none() => format!(
                "the daily re-plan holds the deletes due on target {target}: {reason}; none is deleted until max_delete_count allows them (`rostersync status`)"
            ),
            EventKind::Held => format!(
                "{file} from source {source} is held: {reason}; see its .plan.txt in held/, release it with `rostersync approve`"
            ),
            EventKind::Rejected if count("files") > 1 => format!(
                "{} files from source {source} were refused; the last, {file}: {reason}; every problem is in the .errors.txt beside each in rejected/",
                count("files")
            ),
            EventKind::Rejected => format!(
                "{file} from source {source} was refused: {reason}; every problem is in its .errors.txt in rejected/"
            ),
            EventKind::Parked => format!(
                "{} record(s) parked on target {target}: `rostersync status` and `rostersync show EXT_ID` say why; `rostersync retry --target {target}` once fixed",
                count("records")
            ),
            EventKind::Ambiguous => format!(
                "{} record(s) parked as ambiguous on target {target}: it holds several accounts that could be theirs; sort them out there, then `rostersync retry --target {target}`",
                count("records")
            ),
            EventKind::TargetDown => format!(
                "target {target} has confirmed nothing for {} and is failing since {reason}; {} record(s) wait in its outbox (`rostersync status`)",
                humantime::format_duration(std::time::Duration::from_secs(count("down_seconds"))),
                count("outbox")
            ),
            EventKind::Daily => format!("daily summary: {reason}"),
        };
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// An e-mail's subject line.
    pub fn mail_subject(&self) -> String {
        let about = [&self.file, &self.source, &self.target]
            .into_iter()
            .flatten()
            .next()
            .map(|name| format!(": {name}"))
            .unwrap_or_default();
        format!("[rostersync] {}{about}", self.event)
    }

    /// An e-mail's text: the summary, the counts, the items.
    pub fn mail_text(&self) -> String {
        let mut text = format!("{}\n\nat: {}\n", self.summary, self.at);
        for (key, value) in [
            ("source", &self.source),
            ("target", &self.target),
            ("file", &self.file),
        ] {
            if let Some(value) = value {
                let _ = writeln!(text, "{key}: {value}");
            }
        }
        for (name, count) in &self.counts {
            let _ = writeln!(text, "{name}: {count}");
        }
        if !self.items.is_empty() {
            text.push('\n');
        }
        for item in &self.items {
            let mut parts = Vec::new();
            if let Some(file) = &item.file {
                parts.push(file.clone());
            }
            if let (Some(kind), Some(ext_id)) = (item.kind, &item.ext_id) {
                parts.push(format!("{kind} {ext_id}"));
            }
            if !item.logins.is_empty() {
                parts.push(format!("could be login {}", item.logins.join(" or ")));
            }
            if let (Some(line), Some(column)) = (item.line, item.column) {
                parts.push(format!("line {line}, column {column}"));
            }
            if let Some(reason) = &item.reason {
                parts.push(reason.clone());
            }
            let _ = writeln!(text, "- {}", parts.join(": "));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_records_merge_into_one_message_with_exact_counts() {
        let items = |from: usize, n: usize| -> Vec<Item> {
            (from..from + n)
                .map(|i| Item::record(RecordKind::Users, &format!("E{i}")))
                .collect()
        };
        let mut event = Event::parked("t1".into(), "lms", 80, items(1, 80));
        event.merge(Event::parked("t2".into(), "lms", 420, items(81, 420)));
        assert_eq!(event.counts["records"], 500);
        assert_eq!(event.items.len(), ITEMS_LISTED);
        assert_eq!(event.items[99].ext_id.as_deref(), Some("E100"));
        assert_eq!(event.at, "t2");
        assert!(
            event
                .summary
                .starts_with("500 record(s) parked on target lms"),
            "{}",
            event.summary
        );
        let body: serde_json::Value = serde_json::from_slice(&event.body()).unwrap();
        assert_eq!(body["event"], "parked");
        assert_eq!(body["target"], "lms");
        assert_eq!(body["counts"]["records"], 500);
        assert_eq!(
            body["items"][0],
            serde_json::json!({"kind": "users", "ext_id": "E1"})
        );
        assert!(
            body.get("source").is_none() && body.get("file").is_none(),
            "{body}"
        );
    }

    #[test]
    fn deletes_held_by_the_daily_re_plan_name_the_target_and_the_rule() {
        let rule = "the plan deletes 73 accounts on target idp, max_delete_count is 20";
        let event = Event::deletes_held("t1".into(), "idp", rule);
        assert_eq!(
            event.summary,
            format!(
                "the daily re-plan holds the deletes due on target idp: {rule}; none is deleted \
                 until max_delete_count allows them (`rostersync status`)"
            )
        );
        assert_eq!(event.mail_subject(), "[rostersync] held: idp");
        let body: serde_json::Value = serde_json::from_slice(&event.body()).unwrap();
        assert_eq!(body["event"], "held");
        assert_eq!(body["target"], "idp");
        assert!(body.get("file").is_none(), "{body}");
    }

    #[test]
    fn held_files_say_which_rule_and_how_many() {
        let mut event = Event::held(
            "t1".into(),
            "users",
            "a.csv",
            "would block 60% of users on lms",
        );
        assert_eq!(
            event.summary,
            "a.csv from source users is held: would block 60% of users on lms; see its .plan.txt in held/, release it with `rostersync approve`"
        );
        event.merge(Event::held(
            "t2".into(),
            "users",
            "b.csv",
            "fewer rows than min_rows",
        ));
        assert_eq!(event.counts["files"], 2);
        assert_eq!(event.file.as_deref(), Some("b.csv"));
        assert!(
            event
                .summary
                .starts_with("2 files from source users are held"),
            "{}",
            event.summary
        );
        assert_eq!(event.items.len(), 2);
        assert!(
            event
                .mail_text()
                .contains("- b.csv: fewer rows than min_rows"),
            "{}",
            event.mail_text()
        );
        assert_eq!(event.mail_subject(), "[rostersync] held: b.csv");
    }

    #[test]
    fn a_refused_file_lists_places_not_values() {
        let event = Event::rejected(
            "t".into(),
            "users",
            "bad.csv",
            "1 invalid row(s), max_invalid_rows allows 0",
            &[(3, 5)],
        );
        let body: serde_json::Value = serde_json::from_slice(&event.body()).unwrap();
        assert_eq!(
            body["items"][1],
            serde_json::json!({"line": 3, "column": 5})
        );
        assert_eq!(body["counts"]["files"], 1);
    }

    #[test]
    fn a_target_down_says_for_how_long_and_what_waits() {
        let mut event = Event::target_down("t1".into(), "lms", "2026-12-01T10:00:00Z", 900, 12);
        event.merge(Event::target_down(
            "t2".into(),
            "lms",
            "2026-12-01T10:00:00Z",
            1800,
            14,
        ));
        assert_eq!(event.counts["outbox"], 14, "where things stand now");
        assert!(
            event
                .summary
                .starts_with("target lms has confirmed nothing for 30m"),
            "{}",
            event.summary
        );
    }
}
