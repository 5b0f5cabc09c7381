//! `collaborator`: Collaborator LMS. Users go in batches to
//! `POST /api/v2/users-import/batch` (an upsert keyed by `uid`), blocked and
//! unblocked through `status` (`"1"` dismissed, `"0"` working). The reply's
//! counts are checked against the batch: a mismatch splits it, down to
//! `POST /api/v2/users-import/single`, to find the culprit; more blocks than
//! were sent means the portal blocks users missing from a batch (its "don't
//! block missing users" option is off): pushing to it stops, loudly.
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
        batch_verdict(sent, reply)
    }
}

impl Collaborator {
    /// A batch; one whose counts do not add up is split in two, and a
    /// single record goes to the single endpoint.
    async fn push_users(&self, items: &[PushItem]) -> PushReply {
        let (outcomes, halt) = bisect(items.len(), move |range| async move {
            let part = &items[range];
            if let [single] = part {
                return Verdict::All(self.push_single(single).await);
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

    async fn push_single(&self, item: &PushItem) -> Outcome {
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
            Err(failure) => Outcome::Failed(failure),
            Ok(reply) if !reply.is_success() => Outcome::Failed(reply.failure()),
            Ok(reply) => match parse_counts(&reply.body) {
                Ok(counts) if counts.created + counts.updated == 1 => {
                    Outcome::Acked { target_id: None }
                }
                Ok(counts) => Outcome::Failed(Failure::Permanent {
                    reason: format!(
                        "the portal did not import the user (created {}, updated {})",
                        counts.created, counts.updated
                    ),
                }),
                Err(reason) => Outcome::Failed(Failure::Transient {
                    reason: reason.to_string(),
                    retry_after: None,
                }),
            },
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

#[derive(Debug, PartialEq, Eq)]
pub enum CountCheck {
    Consistent,
    /// Not every user of the batch was created or updated.
    Mismatch(String),
    /// More users blocked than blocks sent.
    MissingUsersBlocked {
        blocked: u64,
        sent: u64,
    },
}

/// What the reply to a batch import says of the users it carried: all
/// imported; a split when its counts do not add up or the batch was refused
/// (to find the record); a halt when the portal blocked users missing from it.
pub fn batch_verdict(part: &[&PushItem], reply: &Reply) -> Verdict {
    if !reply.is_success() {
        return match reply.failure() {
            // A refused batch: find the record it refuses.
            Failure::Permanent { .. } => Verdict::Split,
            transient => Verdict::All(Outcome::Failed(transient)),
        };
    }
    match parse_counts(&reply.body) {
        // A 200 without readable counts: the upsert may have happened;
        // sending it again is harmless.
        Err(reason) => Verdict::All(Outcome::Failed(Failure::Transient {
            reason: reason.to_string(),
            retry_after: None,
        })),
        Ok(counts) => match check_counts(part, &counts) {
            CountCheck::Consistent => Verdict::All(Outcome::Acked { target_id: None }),
            CountCheck::MissingUsersBlocked { blocked, sent } => Verdict::Halt(
                Outcome::Acked { target_id: None },
                format!(
                    "the portal blocked {blocked} users for {sent} blocks sent: it blocks users missing from a batch. \
                     Turn on its \"don't block missing users\" option; pushing to this target is stopped"
                ),
            ),
            CountCheck::Mismatch(_) => Verdict::Split,
        },
    }
}

/// Every user sent is either created or updated; no more users are blocked
/// than were sent inactive (fewer is fine: a replayed block changes nothing).
pub fn check_counts<I: Borrow<PushItem>>(items: &[I], counts: &Counts) -> CountCheck {
    let inactive = items
        .iter()
        .filter(|item| !Borrow::<PushItem>::borrow(*item).active)
        .count() as u64;
    if counts.blocked > inactive {
        return CountCheck::MissingUsersBlocked {
            blocked: counts.blocked,
            sent: inactive,
        };
    }
    let sent = items.len() as u64;
    if counts.created + counts.updated != sent {
        return CountCheck::Mismatch(format!(
            "{sent} users sent, {} created and {} updated",
            counts.created, counts.updated
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
    fn counts_are_read_and_checked() {
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

        let batch = [item(&[], true), item(&[], true), item(&[], false)];
        assert_eq!(
            check_counts(
                &batch,
                &Counts {
                    created: 2,
                    updated: 1,
                    blocked: 1,
                    unblocked: 0
                }
            ),
            CountCheck::Consistent
        );
        assert!(matches!(
            check_counts(
                &batch,
                &Counts {
                    created: 2,
                    updated: 0,
                    blocked: 1,
                    unblocked: 0
                }
            ),
            CountCheck::Mismatch(_)
        ));
        assert_eq!(
            check_counts(
                &batch,
                &Counts {
                    created: 0,
                    updated: 3,
                    blocked: 40,
                    unblocked: 0
                }
            ),
            CountCheck::MissingUsersBlocked {
                blocked: 40,
                sent: 1
            }
        );
    }
}
