//! `collaborator`: Collaborator LMS. Users go in batches to
//! `POST /api/v2/users-import/batch` (an upsert keyed by `uid`), blocked and
//! unblocked through `status` (`"1"` dismissed, `"0"` working). The reply's
//! counts are counts of *changes*: a user sent as the portal already holds it
//! counts in no total, a block or an unblock may count only as such, so a
//! total below the batch is normal (a batch sent again after a restart
//! answers 0, 0) and never a refusal. A refused batch (an error reply) is
//! split, down to `POST /api/v2/users-import/single`, to find the record.
//! More blocks than were sent means the portal blocks users missing from a
//! batch (its "don't block missing users" option is off), and a count above
//! the batch means it changed users it was not sent: either way pushing to
//! it stops, loudly.
//! Organisations (inferred from the vendor's other pages) go to
//! `POST /api/v2/orgstructure/import` as `[{"uid","parent_uid","title"}]`.

use std::borrow::Borrow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

use crate::config::TargetConfig;
use crate::ingest::record::{Field, RecordKind};
use crate::model::ActionKind;
use crate::projection::DefaultFields;
use crate::retry::Failure;

use super::http::{Http, Reply, secret_header};
use super::{
    CheckError, Connector, Outcome, Place, PushItem, PushReply, ReplyError, Settings,
    SettingsError, Verdict, bisect,
};

const BATCH_PATH: &str = "/api/v2/users-import/batch";
const SINGLE_PATH: &str = "/api/v2/users-import/single";
const ORGS_PATH: &str = "/api/v2/orgstructure/import";

pub struct Collaborator {
    http: Http,
    batch_size: usize,
    /// The target's name, for the commands its messages tell to run.
    name: String,
}

impl Connector for Collaborator {
    const KIND: &'static str = "collaborator";
    const SETTINGS: Settings = Settings {
        place: Place::Url,
        token: true,
        password: false,
        encodings: &[],
        own_keys: &[],
    };

    fn default_fields() -> DefaultFields {
        use Field::*;
        DefaultFields::known(
            &[
                ("uid", ExtId),
                ("secondname", LastName),
                ("firstname", FirstName),
                ("patronymic", MiddleName),
                ("login", Login),
                ("email", Email),
                ("birth_date", BirthDate),
                ("gender", Gender),
                ("city", City),
                ("department", Department),
                ("position", Position),
                ("phone", Phone),
                ("structure_uid", OrgExtId),
                ("manager_uid", ManagerExtId),
                ("role_id", Roles),
            ],
            &[
                ("uid", ExtId),
                ("parent_uid", ParentExtId),
                ("title", Label),
            ],
        )
    }

    fn from_config(target: &TargetConfig) -> Result<Collaborator, SettingsError> {
        let token = target
            .token_source()
            .ok_or(SettingsError::Missing(
                "a collaborator target needs a token",
            ))?
            .load()?;
        let headers = secret_header("x-cbr-authorization", "Bearer ", &token)?;
        Ok(Collaborator {
            http: Http::new(target, headers)?,
            batch_size: *target.batch_size.get_ref(),
            name: target.name.get_ref().clone(),
        })
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    async fn push(&self, items: &[PushItem]) -> PushReply {
        match items.first().map(|i| i.key.kind) {
            Some(RecordKind::Orgs) => self.push_orgs(items).await,
            Some(RecordKind::Users) => self.push_users(items).await,
            None => PushReply::default(),
        }
    }

    /// Tries the token on the batch endpoint with an empty batch.
    fn refusal(&self) -> Option<super::Refusal> {
        self.http.refusal()
    }

    async fn check(&self) -> Result<(), CheckError> {
        let reply = self
            .http
            .send(
                self.http
                    .client()
                    .post(self.http.url(BATCH_PATH))
                    .json(&json!([])),
            )
            .await?;
        match reply.status {
            401 | 403 => Err(CheckError::Refused(format!(
                "the token was refused (HTTP {})",
                reply.status
            ))),
            _ if reply.is_success() => Ok(()),
            _ => Err(reply.failure().into()),
        }
    }

    type Reply = Reply;

    /// A batch import's reply: see [`batch_verdict`].
    fn verdict(&self, sent: &[&PushItem], reply: &Reply) -> Verdict {
        batch_verdict(sent, reply, &self.name)
    }
}

impl Collaborator {
    /// A batch; a refused one is split in two, and a single record goes to
    /// the single endpoint.
    async fn push_users(&self, items: &[PushItem]) -> PushReply {
        let (outcomes, halt) = bisect(items.len(), move |range| async move {
            let part = &items[range];
            if let [single] = part {
                return self.push_single(single).await;
            }
            let body: Vec<UserJson<'_>> = part.iter().map(UserJson).collect();
            let reply = self
                .http
                .send(
                    self.http
                        .client()
                        .post(self.http.url(BATCH_PATH))
                        .json(&body),
                )
                .await;
            match reply {
                Err(failure) => Verdict::All(Outcome::Failed(failure)),
                Ok(reply) => self.verdict(&part.iter().collect::<Vec<_>>(), &reply),
            }
        })
        .await;
        PushReply { outcomes, halt }
    }

    async fn push_single(&self, item: &PushItem) -> Verdict {
        let reply = self
            .http
            .send(
                self.http
                    .client()
                    .post(self.http.url(SINGLE_PATH))
                    .json(&UserJson(item)),
            )
            .await;
        match reply {
            Err(failure) => Verdict::All(Outcome::Failed(failure)),
            Ok(reply) => single_verdict(item, &reply, &self.name),
        }
    }

    async fn push_orgs(&self, items: &[PushItem]) -> PushReply {
        // Collaborator keeps no status for organisations: a block cannot be sent.
        let (blocks, sendable): (Vec<usize>, Vec<usize>) =
            (0..items.len()).partition(|&i| items[i].action == ActionKind::Block);
        let mut outcomes = vec![Outcome::Acked { target_id: None }; items.len()];
        for i in blocks {
            outcomes[i] = Outcome::Failed(Failure::Permanent {
                reason: "Collaborator cannot block an organisation: remove it in the portal".into(),
            });
        }
        if !sendable.is_empty() {
            let body = Value::Array(sendable.iter().map(|&i| org_json(&items[i])).collect());
            let reply = self
                .http
                .send(
                    self.http
                        .client()
                        .post(self.http.url(ORGS_PATH))
                        .json(&body),
                )
                .await;
            let outcome = match reply {
                Err(failure) => Some(Outcome::Failed(failure)),
                Ok(reply) if reply.is_success() => None,
                Ok(reply) => Some(Outcome::Failed(reply.failure())),
            };
            if let Some(outcome) = outcome {
                for i in sendable {
                    outcomes[i] = outcome.clone();
                }
            }
        }
        PushReply {
            outcomes,
            halt: None,
        }
    }
}

/// A user as the batch import takes it: the projection (dates as
/// `dd.mm.yyyy`, gender `0`/`1`) and `status` from the active flag.
/// A user as the portal takes it, written straight from the record's fields
/// (no JSON tree in between: a batch holds hundreds of users).
pub struct UserJson<'a>(pub &'a PushItem);

impl Serialize for UserJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let item = self.0;
        let mut user = serializer.serialize_map(None)?;
        for (name, value) in &item.fields {
            match name.as_str() {
                "status" => continue, // the record's state, below
                "birth_date" => user.serialize_entry(name, &iso_to_dotted(value))?,
                "gender" => user.serialize_entry(name, gender_code(value))?,
                _ => user.serialize_entry(name, value)?,
            }
        }
        if !item.fields.contains_key("uid") {
            user.serialize_entry("uid", &item.key.key)?;
        }
        user.serialize_entry("status", if item.active { "0" } else { "1" })?;
        user.end()
    }
}

fn gender_code(value: &str) -> &str {
    match value {
        "M" => "0",
        "F" => "1",
        other => other,
    }
}

pub fn org_json(item: &PushItem) -> Value {
    let field = |name: &str| item.fields.get(name).cloned().unwrap_or_default();
    json!({
        "uid": item.fields.get("uid").cloned().unwrap_or_else(|| item.key.key.clone()),
        "parent_uid": field("parent_uid"),
        "title": field("title"),
    })
}

fn iso_to_dotted(value: &str) -> String {
    match value.split('-').collect::<Vec<_>>().as_slice() {
        [year, month, day] => format!("{day}.{month}.{year}"),
        _ => value.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub blocked: u64,
    pub unblocked: u64,
}

pub fn parse_counts(body: &str) -> Result<Counts, ReplyError> {
    let value: Value =
        serde_json::from_str(body).map_err(|error| ReplyError::unreadable("reply", &error))?;
    let count = |name: &str| {
        value
            .get(name)
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .ok_or_else(|| ReplyError::shape(format!("the reply has no {name}")))
    };
    Ok(Counts {
        created: count("created_count")?,
        updated: count("updated_count")?,
        blocked: count("blocked_count")?,
        unblocked: count("unblocked_count")?,
    })
}

/// What a reply's counts say of the batch, read as counts of changes.
#[derive(Debug, PartialEq, Eq)]
pub enum CountCheck {
    /// No count above what the batch could change (below is normal: a user
    /// sent as the portal holds it counts in no total).
    Consistent,
    /// More users blocked than blocks sent.
    MissingUsersBlocked { blocked: u64, sent: u64 },
    /// More users created, updated or unblocked than the batch holds: what
    /// the portal answered, in words.
    Excess(String),
}

/// What the reply to a batch import says of the users it carried: all
/// imported, whatever its counts (a user already as sent counts nowhere); a
/// split when the batch was refused (to find the record), unless the token
/// was (a split would find none: every part is refused the same); a halt
/// when the portal changed users the batch did not hold.
pub fn batch_verdict(part: &[&PushItem], reply: &Reply, target: &str) -> Verdict {
    if matches!(reply.status, 401 | 403) {
        return Verdict::All(Outcome::Failed(refusal(reply, target)));
    }
    if !reply.is_success() {
        return match reply_failure(reply) {
            // A refused batch: find the record it refuses.
            Failure::Permanent { .. } => Verdict::Split,
            transient => Verdict::All(Outcome::Failed(transient)),
        };
    }
    counts_verdict(part, &reply.body, target)
}

/// What the single import's reply says of its user: imported on a 200 (its
/// counts checked as a batch's), else refused with what the portal said.
pub fn single_verdict(item: &PushItem, reply: &Reply, target: &str) -> Verdict {
    if reply.is_success() {
        return counts_verdict(&[item], &reply.body, target);
    }
    Verdict::All(Outcome::Failed(refusal(reply, target)))
}

/// An error reply as a failure, a refusal with what the portal said and
/// what to do.
fn refusal(reply: &Reply, target: &str) -> Failure {
    match reply_failure(reply) {
        Failure::Permanent { reason } => Failure::Permanent {
            reason: refusal_reason(reply.status, &reason, target),
        },
        transient => transient,
    }
}

/// An error reply as a failure. The portal answers a record it cannot take
/// with a 400 or a 500 and a JSON object saying why: both are refusals. Any
/// other 5xx, or a 500 without that object (a proxy's page), is the portal
/// or the way to it failing, worth another try.
fn reply_failure(reply: &Reply) -> Failure {
    let failure = reply.failure();
    let said_why = serde_json::from_str::<Value>(&reply.body).is_ok_and(|v| v.is_object());
    if reply.status == 500 && said_why {
        return Failure::Permanent {
            reason: failure.reason().to_string(),
        };
    }
    failure
}

/// A park reason for a refused user: what the portal said, and what to do.
fn refusal_reason(status: u16, said: &str, target: &str) -> String {
    match status {
        401 | 403 => format!(
            "the portal refused the token ({said}): check the target's token \
             (`rostersync check --online`), then `rostersync retry --target {target}`"
        ),
        _ => format!(
            "the portal refused this user: {said}. Correct the record in HR's export \
             or in the portal; it is sent again with the next file, or at \
             `rostersync retry --target {target}`"
        ),
    }
}

/// A 200's counts: the part is imported, and pushing stops when the counts
/// show the portal changed more than it was sent.
fn counts_verdict(part: &[&PushItem], body: &str, target: &str) -> Verdict {
    let acked = Outcome::Acked { target_id: None };
    match parse_counts(body) {
        // A 200 without readable counts: the upsert may have happened;
        // sending it again is harmless.
        Err(reason) => Verdict::All(Outcome::Failed(Failure::Transient {
            reason: reason.to_string(),
            retry_after: None,
        })),
        Ok(counts) => match check_counts(part, &counts) {
            CountCheck::Consistent => Verdict::All(acked),
            CountCheck::MissingUsersBlocked { blocked, sent } => Verdict::Halt(
                acked,
                format!(
                    "the portal blocked {blocked} users for {sent} blocks sent: it blocks users missing from a batch. \
                     Turn on its \"don't block missing users\" option, unblock there the users it blocked, \
                     then `rostersync retry --target {target}`; pushing to this target is stopped"
                ),
            ),
            CountCheck::Excess(answered) => Verdict::Halt(
                acked,
                format!(
                    "the portal answered {answered}: it changed users it was not sent, or its counts \
                     cannot be trusted. Check its users and import log, then \
                     `rostersync retry --target {target}`; pushing to this target is stopped"
                ),
            ),
        },
    }
}

/// No more users blocked than were sent inactive, and no more created,
/// updated or unblocked than were sent. Fewer is fine: the portal counts
/// only what changed.
pub fn check_counts<I: Borrow<PushItem>>(items: &[I], counts: &Counts) -> CountCheck {
    let sent = items.len() as u64;
    let inactive = items
        .iter()
        .filter(|item| !Borrow::<PushItem>::borrow(*item).active)
        .count() as u64;
    let active = sent - inactive;
    if counts.blocked > inactive {
        return CountCheck::MissingUsersBlocked {
            blocked: counts.blocked,
            sent: inactive,
        };
    }
    if counts.created.saturating_add(counts.updated) > sent {
        return CountCheck::Excess(format!(
            "created {} and updated {} for {sent} users sent",
            counts.created, counts.updated
        ));
    }
    if counts.unblocked > active {
        return CountCheck::Excess(format!(
            "unblocked {} for {active} users sent active",
            counts.unblocked
        ));
    }
    CountCheck::Consistent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::test_user;

    fn item(fields: &[(&str, &str)], active: bool) -> PushItem {
        test_user("lms", ActionKind::Create, active, fields)
    }

    #[test]
    fn users_are_sent_in_the_portal_s_formats() {
        let user = serde_json::to_value(UserJson(&item(
            &[
                ("uid", "E1"),
                ("birth_date", "1988-10-16"),
                ("gender", "F"),
                ("login", "ana"),
                ("status", "ignored"),
            ],
            false,
        )))
        .unwrap();
        assert_eq!(
            user,
            json!({"uid": "E1", "birth_date": "16.10.1988", "gender": "1", "login": "ana", "status": "1"})
        );
        let keyed = serde_json::to_value(UserJson(&item(&[("login", "bo")], true))).unwrap();
        assert_eq!(keyed, json!({"uid": "E1", "login": "bo", "status": "0"}));
    }

    #[test]
    fn counts_are_read_as_numbers_or_strings() {
        let counts = parse_counts(
            r#"{"created_count":1,"updated_count":"2","blocked_count":0,"unblocked_count":0}"#,
        )
        .unwrap();
        assert_eq!(
            counts,
            Counts {
                created: 1,
                updated: 2,
                blocked: 0,
                unblocked: 0
            }
        );
        assert!(parse_counts("<html>").is_err());
        assert!(parse_counts("{}").is_err());
    }

    fn counts(created: u64, updated: u64, blocked: u64, unblocked: u64) -> Counts {
        Counts {
            created,
            updated,
            blocked,
            unblocked,
        }
    }

    /// Two users sent active, one inactive.
    fn batch() -> [PushItem; 3] {
        [item(&[], true), item(&[], true), item(&[], false)]
    }

    #[test]
    fn counts_below_the_batch_are_consistent() {
        let batch = batch();
        // Sent again as the portal holds them; a block counted only as one.
        for below in [counts(0, 0, 0, 0), counts(0, 0, 1, 0), counts(2, 1, 1, 0)] {
            assert_eq!(check_counts(&batch, &below), CountCheck::Consistent);
        }
    }

    #[test]
    fn more_blocks_than_sent_mean_the_portal_blocked_missing_users() {
        assert_eq!(
            check_counts(&batch(), &counts(0, 3, 40, 0)),
            CountCheck::MissingUsersBlocked {
                blocked: 40,
                sent: 1
            }
        );
    }

    #[test]
    fn counts_above_the_batch_are_an_excess() {
        let batch = batch();
        assert_eq!(
            check_counts(&batch, &counts(2, 2, 0, 0)),
            CountCheck::Excess("created 2 and updated 2 for 3 users sent".into())
        );
        assert_eq!(
            check_counts(&batch, &counts(0, 0, 0, 3)),
            CountCheck::Excess("unblocked 3 for 2 users sent active".into())
        );
        // Numbers from outside: no overflow.
        assert!(matches!(
            check_counts(&batch, &counts(u64::MAX, u64::MAX, 0, 0)),
            CountCheck::Excess(_)
        ));
    }

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.into(),
            retry_after: None,
        }
    }

    const NOTHING_CHANGED: &str =
        r#"{"created_count":0,"updated_count":0,"blocked_count":0,"unblocked_count":0}"#;

    #[test]
    fn a_batch_that_changed_nothing_is_imported() {
        let batch = batch();
        let sent: Vec<&PushItem> = batch.iter().collect();
        assert!(matches!(
            batch_verdict(&sent, &reply(200, NOTHING_CHANGED), "lms"),
            Verdict::All(Outcome::Acked { target_id: None })
        ));
        let ana = item(&[], false);
        assert!(matches!(
            single_verdict(&ana, &reply(200, NOTHING_CHANGED), "lms"),
            Verdict::All(Outcome::Acked { target_id: None })
        ));
    }

    #[test]
    fn a_refused_batch_is_split_and_a_busy_portal_retried() {
        let batch = batch();
        let sent: Vec<&PushItem> = batch.iter().collect();
        assert!(matches!(
            batch_verdict(&sent, &reply(400, r#"{"error":"bad"}"#), "lms"),
            Verdict::Split
        ));
        assert!(matches!(
            batch_verdict(&sent, &reply(500, r#"{"error":"bad"}"#), "lms"),
            Verdict::Split
        ));
        // A refused token is every part's refusal: never split for it.
        for status in [401, 403] {
            let verdict = batch_verdict(&sent, &reply(status, r#"{"error":"invalid token"}"#), "lms");
            let Verdict::All(Outcome::Failed(Failure::Permanent { reason })) = verdict else {
                panic!("HTTP {status}: {verdict:?}");
            };
            assert!(
                reason.starts_with(&format!("the portal refused the token (HTTP {status}")),
                "{reason}"
            );
        }
        for busy in [reply(503, r#"{"error":"maintenance"}"#), reply(500, "<html>")] {
            assert!(matches!(
                batch_verdict(&sent, &busy, "lms"),
                Verdict::All(Outcome::Failed(Failure::Transient { .. }))
            ));
        }
    }

    #[test]
    fn counts_above_the_batch_stop_the_target_with_what_to_do() {
        let batch = batch();
        let sent: Vec<&PushItem> = batch.iter().collect();
        let body = r#"{"created_count":9,"updated_count":0,"blocked_count":0,"unblocked_count":0}"#;
        let Verdict::Halt(Outcome::Acked { .. }, reason) =
            batch_verdict(&sent, &reply(200, body), "lms")
        else {
            panic!("not a halt");
        };
        assert!(
            reason.starts_with("the portal answered created 9 and updated 0 for 3 users sent")
                && reason.contains("rostersync retry --target lms"),
            "{reason}"
        );
    }

    #[test]
    fn a_user_the_single_import_refuses_is_parked_with_what_the_portal_said() {
        let ana = item(&[], true);
        let verdict = single_verdict(&ana, &reply(400, r#"{"error":"login taken"}"#), "lms");
        let Verdict::All(Outcome::Failed(Failure::Permanent { reason })) = verdict else {
            panic!("not refused: {verdict:?}");
        };
        assert!(
            reason.starts_with(r#"the portal refused this user: HTTP 400: {"error":"login taken"}"#)
                && reason.contains("rostersync retry --target lms"),
            "{reason}"
        );
        let verdict = single_verdict(&ana, &reply(401, ""), "lms");
        let Verdict::All(Outcome::Failed(Failure::Permanent { reason })) = verdict else {
            panic!("not refused: {verdict:?}");
        };
        assert!(reason.starts_with("the portal refused the token (HTTP 401)"), "{reason}");
        assert!(matches!(
            single_verdict(&ana, &reply(500, r#"{"error":"bad date"}"#), "lms"),
            Verdict::All(Outcome::Failed(Failure::Permanent { .. }))
        ));
        assert!(matches!(
            single_verdict(&ana, &reply(503, ""), "lms"),
            Verdict::All(Outcome::Failed(Failure::Transient { .. }))
        ));
    }
}
