//! `maarch`: Maarch Courrier (seed 002). HTTP Basic auth, one record per
//! request sequence (`batch_size() == 1`).
//!
//! Users: `POST /rest/users` creates and answers `{"id":N}`, kept as the
//! target id. A login Maarch holds already answers 400: the user is looked up
//! in `GET /rest/users` (by `user_id`) and updated instead, so a replayed
//! create (a lost reply, a lost acknowledgement) or an account made by hand
//! before the first import is adopted, never duplicated. `PUT /rest/users/{id}`
//! takes the *full* record (Maarch erases an omitted `mail` or `initials`).
//! Group and entity memberships (`groups` and `entities`, `a||b` lists) are
//! sent as differences from what Maarch last confirmed: `POST
//! /rest/users/{id}/groups {"groupId"}`, `DELETE /rest/users/{id}/groups/{g}`,
//! the same with `entities`/`entityId`; a 400 saying the link is already
//! there (or already gone) counts as done, so replays are harmless. Block is
//! `PUT /rest/users/{id}/suspend` (status `SPD`); Maarch answers 403 while the
//! user still holds open mail, which parks that user with the reason. Unblock
//! is the full `PUT` with `"status":"OK"`. An absent user (`ABS`, set by the
//! person) is never forced back to `OK` by an update.
//!
//! Maarch requires `userId`, `firstname`, `lastname` and `mail`: a record
//! lacking one is refused here, before any request. Maarch cannot rename a
//! login through this API: a login change parks the record until someone
//! renames it in Maarch.
//!
//! Organisations are Maarch entities: `POST /rest/entities` and `PUT
//! /rest/entities/{entity_id}` (the entity id is the target id), with
//! `short_label` defaulting to the label and `entity_type` to `Service`
//! (both can be mapped in `[target.fields]`). The vendor documents no way to
//! disable an entity, so blocking one (or creating one disabled) is refused
//! with a reason saying to do it in Maarch's administration.

use std::collections::BTreeSet;
use std::convert::Infallible;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::config::TargetConfig;
use crate::ingest::record::{Field, RecordKind};
use crate::model::ActionKind;
use crate::projection::{DefaultFields, Fields};
use crate::retry::Failure;
use crate::secret::Secret;

use super::http::{Http, Reply, secret_header};
use super::{Connector, Outcome, Place, PushItem, PushReply, Settings, Verdict};

/// Target field names of the user record (Maarch's own).
pub const LOGIN: &str = "userId";
pub const GROUPS: &str = "groups";
pub const ENTITIES: &str = "entities";
/// Target field names of the entity record.
pub const ENTITY_ID: &str = "entity_id";
pub const ENTITY_LABEL: &str = "entity_label";
/// The entity type sent when the projection maps none.
pub const DEFAULT_ENTITY_TYPE: &str = "Service";

pub struct Maarch {
    http: Http,
}

impl Connector for Maarch {
    const KIND: &'static str = "maarch";
    const SETTINGS: Settings = Settings {
        place: Place::Url,
        token: false,
        password: true,
        encodings: &[],
        own_keys: &[],
    };

    fn default_fields() -> DefaultFields {
        use Field::*;
        DefaultFields::known(
            &[
                ("userId", Login),
                ("firstname", FirstName),
                ("lastname", LastName),
                ("mail", Email),
                ("phone", Phone),
                ("groups", Groups),
                ("entities", Entities),
            ],
            &[
                ("entity_id", ExtId),
                ("entity_label", Label),
                ("parent_entity_id", ParentExtId),
            ],
        )
    }

    fn from_config(target: &TargetConfig) -> Result<Maarch, String> {
        let user = target
            .user
            .as_ref()
            .ok_or("a maarch target needs user (a Maarch user of mode rest)")?;
        let password = target
            .password_source()
            .ok_or("a maarch target needs a password (password_env, password_file or password_credential)")?
            .load()
            .map_err(|error| error.to_string())?;
        let credentials = basic_credentials(user.get_ref(), &password);
        let headers = secret_header("authorization", "Basic ", &credentials)?;
        Ok(Maarch {
            http: Http::new(target, headers)?,
        })
    }

    /// Maarch takes one user per request.
    fn batch_size(&self) -> usize {
        1
    }

    async fn push(&self, items: &[PushItem]) -> PushReply {
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            let result = match item.key.kind {
                RecordKind::Users => self.sync_user(item).await,
                RecordKind::Orgs => self.sync_entity(item).await,
            };
            outcomes.push(match result {
                Ok(id) => Outcome::Acked {
                    target_id: Some(id),
                },
                Err(failure) => Outcome::Failed(failure),
            });
        }
        PushReply {
            outcomes,
            halt: None,
        }
    }

    /// Lists the users with the credentials.
    async fn check(&self) -> Result<(), String> {
        let reply = self
            .http
            .send(self.http.client().get(self.url(&["rest", "users"])))
            .await
            .map_err(|failure| failure.reason().to_string())?;
        match reply.status {
            401 | 403 => Err(format!(
                "the credentials were refused (HTTP {}): check user and its password, and that this user may manage users",
                reply.status
            )),
            _ if reply.is_success() => parse_users(&reply.body).map(|_| ()),
            _ => Err(reply.failure().reason().to_string()),
        }
    }

    /// One record per sequence of requests: each reply is read where it is
    /// sent ([`entity_failure`], [`membership_settled`], ...).
    type Reply = Infallible;

    fn verdict(&self, _: &[&PushItem], reply: &Infallible) -> Verdict {
        match *reply {}
    }
}

impl Maarch {
    fn url(&self, segments: &[&str]) -> String {
        path_url(&self.http.url(""), segments)
    }

    // ----- users -----

    async fn sync_user(&self, item: &PushItem) -> Result<String, Failure> {
        if let Some(reason) = missing_user_fields(&item.fields) {
            return Err(Failure::Permanent { reason });
        }
        let login = item.fields.get(LOGIN).map_or("", String::as_str);
        let (id, known) = self.resolve_user(item, login).await?;
        let steps = user_steps(item, &known);
        if steps.put {
            let body = user_body(&item.fields, false, steps.status_ok);
            let request = self.http.client().put(self.url(&["rest", "users", &id]));
            self.expect_success(request.json(&body), &format!("updating user {login}"))
                .await?;
        }
        for (list, change) in [
            (Membership::Group, &steps.groups),
            (Membership::Entity, &steps.entities),
        ] {
            for value in &change.add {
                self.link(&id, login, list, value, true).await?;
            }
            for value in &change.remove {
                self.link(&id, login, list, value, false).await?;
            }
        }
        if steps.suspend {
            self.suspend(&id, login).await?;
        }
        Ok(id)
    }

    /// The user's Maarch id, and how it is known.
    async fn resolve_user(&self, item: &PushItem, login: &str) -> Result<(String, Known), Failure> {
        let old_login = item
            .acked_fields
            .as_ref()
            .and_then(|acked| acked.get(LOGIN))
            .filter(|old| old.as_str() != login);
        match (&item.target_id, old_login) {
            (Some(id), None) => return Ok((id.clone(), Known::Acked)),
            (None, _) if item.action == ActionKind::Create => {
                return self.create_or_adopt(item, login).await;
            }
            _ => {}
        }
        // A lost acknowledgement, or a login changed: find the login.
        if let Some(found) = self.find_user(login).await? {
            return Ok((
                found.id,
                Known::Found {
                    status: found.status,
                },
            ));
        }
        if let Some(old) = old_login {
            return Err(Failure::Permanent {
                reason: format!(
                    "Maarch cannot change a login through its API: rename {old} to {login} in Maarch, the next file applies the rest"
                ),
            });
        }
        self.create_or_adopt(item, login).await
    }

    async fn create_or_adopt(
        &self,
        item: &PushItem,
        login: &str,
    ) -> Result<(String, Known), Failure> {
        let body = user_body(&item.fields, true, false);
        let context = format!("creating user {login}");
        let reply = self
            .http
            .send(
                self.http
                    .client()
                    .post(self.url(&["rest", "users"]))
                    .json(&body),
            )
            .await
            .map_err(|failure| in_context(&context, failure))?;
        if reply.is_success() {
            // Unreadable: the user may exist now; the replay finds it.
            let id = parse_created_id(&reply.body)
                .map_err(|reason| transient(format!("{context}: {reason}")))?;
            return Ok((id, Known::Created));
        }
        if reply.status == 400
            && let Some(found) = self.find_user(login).await?
        {
            return Ok((
                found.id,
                Known::Found {
                    status: found.status,
                },
            ));
        }
        Err(in_context(&context, reply.failure()))
    }

    async fn find_user(&self, login: &str) -> Result<Option<ListedUser>, Failure> {
        let context = format!("looking up user {login}");
        let reply = self
            .http
            .send(self.http.client().get(self.url(&["rest", "users"])))
            .await
            .map_err(|failure| in_context(&context, failure))?;
        if !reply.is_success() {
            return Err(in_context(&context, reply.failure()));
        }
        let users =
            parse_users(&reply.body).map_err(|reason| transient(format!("{context}: {reason}")))?;
        Ok(pick_user(users, login))
    }

    async fn link(
        &self,
        id: &str,
        login: &str,
        list: Membership,
        value: &str,
        add: bool,
    ) -> Result<(), Failure> {
        let (path, key, noun) = list.names();
        let (request, context) = if add {
            (
                self.http
                    .client()
                    .post(self.url(&["rest", "users", id, path]))
                    .json(&json!({ key: value })),
                format!("adding user {login} to {noun} {value}"),
            )
        } else {
            (
                self.http
                    .client()
                    .delete(self.url(&["rest", "users", id, path, value])),
                format!("removing user {login} from {noun} {value}"),
            )
        };
        let reply = self
            .http
            .send(request)
            .await
            .map_err(|failure| in_context(&context, failure))?;
        if reply.is_success() || membership_settled(&reply) {
            Ok(())
        } else {
            Err(in_context(&context, reply.failure()))
        }
    }

    async fn suspend(&self, id: &str, login: &str) -> Result<(), Failure> {
        let context = format!("suspending user {login}");
        let reply = self
            .http
            .send(
                self.http
                    .client()
                    .put(self.url(&["rest", "users", id, "suspend"])),
            )
            .await
            .map_err(|failure| in_context(&context, failure))?;
        match reply.status {
            _ if reply.is_success() => Ok(()),
            403 => Err(Failure::Permanent {
                reason: format!(
                    "Maarch refused to suspend {login} ({}): a user who still holds open mail cannot be suspended; reassign it in Maarch, the next file tries again",
                    reply.failure().reason()
                ),
            }),
            _ => Err(in_context(&context, reply.failure())),
        }
    }

    async fn expect_success(
        &self,
        request: reqwest::RequestBuilder,
        context: &str,
    ) -> Result<Reply, Failure> {
        let reply = self
            .http
            .send(request)
            .await
            .map_err(|failure| in_context(context, failure))?;
        if reply.is_success() {
            Ok(reply)
        } else {
            Err(in_context(context, reply.failure()))
        }
    }

    // ----- entities -----

    async fn sync_entity(&self, item: &PushItem) -> Result<String, Failure> {
        let id = item
            .fields
            .get(ENTITY_ID)
            .cloned()
            .unwrap_or_else(|| item.key.key.clone());
        if !item.active {
            return Err(Failure::Permanent {
                reason: format!(
                    "Maarch cannot disable an entity through its API: disable entity {id} in Maarch's administration"
                ),
            });
        }
        if !item.fields.contains_key(ENTITY_LABEL) {
            return Err(Failure::Permanent {
                reason: "Maarch needs an entity label".into(),
            });
        }
        let body = entity_body(&item.fields, &id);
        // Create when it is new, update otherwise; the other one when the
        // first is refused (an entity made by hand, or deleted by hand).
        let create_first = item.action == ActionKind::Create && item.target_id.is_none();
        let first = self.send_entity(create_first, &id, &body).await;
        match first {
            Ok(()) => Ok(id),
            Err(failure @ Failure::Transient { .. }) => Err(failure),
            Err(refused) => match self.send_entity(!create_first, &id, &body).await {
                Ok(()) => Ok(id),
                Err(failure @ Failure::Transient { .. }) => Err(failure),
                Err(_) => Err(refused),
            },
        }
    }

    async fn send_entity(&self, create: bool, id: &str, body: &Value) -> Result<(), Failure> {
        let client = self.http.client();
        let (request, context) = if create {
            (
                client.post(self.url(&["rest", "entities"])),
                format!("creating entity {id}"),
            )
        } else {
            (
                client.put(self.url(&["rest", "entities", id])),
                format!("updating entity {id}"),
            )
        };
        let reply = self
            .http
            .send(request.json(body))
            .await
            .map_err(|failure| in_context(&context, failure))?;
        if reply.is_success() {
            Ok(())
        } else {
            Err(in_context(&context, entity_failure(&reply)))
        }
    }
}

// ----- pure parts -----

/// `user:password` in base64, the value of a Basic `Authorization` header.
pub fn basic_credentials(user: &str, password: &Secret) -> Secret {
    Secret::new(
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.expose())),
    )
}

/// `base` followed by each segment, percent-encoded (a group id may hold a space or a slash).
pub fn path_url(base: &str, segments: &[&str]) -> String {
    let mut url = base.trim_end_matches('/').to_string();
    for segment in segments {
        url.push('/');
        for byte in segment.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                url.push(byte as char);
            } else {
                url.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    url
}

/// Why Maarch would refuse this user, if it would: its required fields.
pub fn missing_user_fields(fields: &Fields) -> Option<String> {
    let missing: Vec<&str> = [
        (LOGIN, "a login (userId)"),
        ("firstname", "a first name"),
        ("lastname", "a last name"),
        ("mail", "an e-mail address"),
    ]
    .iter()
    .filter(|(name, _)| !fields.contains_key(*name))
    .map(|(_, what)| *what)
    .collect();
    (!missing.is_empty()).then(|| format!("Maarch needs {}", missing.join(" and ")))
}

/// The user record as `POST` (with `userId`) or `PUT` (without) take it: every
/// projected field but the membership lists, as strings; `"status":"OK"` to unblock.
pub fn user_body(fields: &Fields, create: bool, status_ok: bool) -> Value {
    let mut body = Map::new();
    for (name, value) in fields {
        if name == GROUPS || name == ENTITIES || (name == LOGIN && !create) {
            continue;
        }
        body.insert(name.clone(), Value::String(value.clone()));
    }
    if status_ok {
        body.insert("status".into(), Value::String("OK".into()));
    }
    Value::Object(body)
}

/// The entity as `POST /rest/entities` and `PUT /rest/entities/{id}` take it.
pub fn entity_body(fields: &Fields, id: &str) -> Value {
    let mut body: Map<String, Value> = fields
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect();
    body.insert(ENTITY_ID.into(), Value::String(id.to_string()));
    let label = fields.get(ENTITY_LABEL).cloned().unwrap_or_default();
    body.entry("short_label")
        .or_insert_with(|| Value::String(label));
    body.entry("entity_type")
        .or_insert_with(|| Value::String(DEFAULT_ENTITY_TYPE.into()));
    // Sent empty for a top-level entity, so that a move to the top is applied.
    body.entry("parent_entity_id")
        .or_insert_with(|| Value::String(String::new()));
    Value::Object(body)
}

/// Items of an `a||b` list, trimmed, without empty ones.
pub fn split_list(value: Option<&str>) -> BTreeSet<&str> {
    value
        .unwrap_or("")
        .split("||")
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

/// What to add and remove to go from one list to another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListChange {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

pub fn list_change(acked: Option<&str>, desired: Option<&str>) -> ListChange {
    let (old, new) = (split_list(acked), split_list(desired));
    ListChange {
        add: new.difference(&old).map(|s| s.to_string()).collect(),
        remove: old.difference(&new).map(|s| s.to_string()).collect(),
    }
}

/// How the user's Maarch id was learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// From the store: Maarch confirmed it with `acked_fields`.
    Acked,
    /// Just created: no memberships, status `OK`.
    Created,
    /// Found by login in Maarch's list, with its status there.
    Found { status: String },
}

/// The requests a user needs once its id is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSteps {
    /// Send the full record with `PUT`.
    pub put: bool,
    /// With `"status":"OK"`.
    pub status_ok: bool,
    pub groups: ListChange,
    pub entities: ListChange,
    pub suspend: bool,
}

pub fn user_steps(item: &PushItem, known: &Known) -> UserSteps {
    let acked = match known {
        Known::Created => None,
        Known::Acked | Known::Found { .. } => item.acked_fields.as_ref(),
    };
    let record = |fields: &'_ Fields| {
        fields
            .iter()
            .filter(|(name, _)| name.as_str() != GROUPS && name.as_str() != ENTITIES)
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect::<Fields>()
    };
    let record_unchanged = acked.is_some_and(|acked| record(acked) == record(&item.fields));
    let (put, status_ok, suspend) = match known {
        Known::Created => (false, false, !item.active),
        Known::Acked => (
            item.action == ActionKind::Unblock || !record_unchanged,
            item.active && item.action == ActionKind::Unblock,
            !item.active && item.action == ActionKind::Block,
        ),
        // What Maarch holds is unknown: send everything.
        Known::Found { status } => (
            true,
            item.active && status == "SPD",
            !item.active && status != "SPD",
        ),
    };
    let list = |name: &str| {
        list_change(
            acked.and_then(|a| a.get(name)).map(String::as_str),
            item.fields.get(name).map(String::as_str),
        )
    };
    UserSteps {
        put,
        status_ok,
        groups: list(GROUPS),
        entities: list(ENTITIES),
        suspend,
    }
}

/// The id of `{"id":N}` (a number, or a string of digits).
pub fn parse_created_id(body: &str) -> Result<String, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|error| format!("unreadable reply ({error})"))?;
    value
        .get("id")
        .and_then(id_text)
        .ok_or_else(|| "the reply has no id".to_string())
}

fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        _ => None,
    }
}

/// A user of `GET /rest/users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUser {
    pub id: String,
    pub login: String,
    pub status: String,
}

pub fn parse_users(body: &str) -> Result<Vec<ListedUser>, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|error| format!("unreadable user list ({error})"))?;
    let users = value
        .get("users")
        .and_then(Value::as_array)
        .ok_or("the user list has no users array")?;
    Ok(users
        .iter()
        .filter_map(|user| {
            Some(ListedUser {
                id: user.get("id").and_then(id_text)?,
                login: user.get("user_id")?.as_str()?.to_string(),
                status: user
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("OK")
                    .to_string(),
            })
        })
        .collect())
}

/// The user with this login: the exact one, else the only one that differs in case.
pub fn pick_user(users: Vec<ListedUser>, login: &str) -> Option<ListedUser> {
    let mut folded: Vec<ListedUser> = Vec::new();
    for user in users {
        if user.login == login {
            return Some(user);
        }
        if user.login.eq_ignore_ascii_case(login) {
            folded.push(user);
        }
    }
    (folded.len() == 1).then(|| folded.remove(0))
}

/// A refused entity. Its parent missing is worth another try: the parent may
/// be on its way (failed transiently just before, in the same push); the
/// retry budget bounds the wait.
pub fn entity_failure(reply: &Reply) -> Failure {
    let body = reply.body.to_lowercase();
    let parent_missing = reply.status == 400
        && body.contains("parent")
        && ["not found", "does not exist", "n'existe pas", "introuvable"]
            .iter()
            .any(|words| body.contains(words));
    match reply.failure() {
        Failure::Permanent { reason } if parent_missing => {
            transient(format!("the parent entity is not in Maarch yet ({reason})"))
        }
        failure => failure,
    }
}

/// A 400 saying a membership is already there (or already gone): the replay of a change that went through.
pub fn membership_settled(reply: &Reply) -> bool {
    let body = reply.body.to_lowercase();
    reply.status == 400
        && ["already", "déjà", "not linked", "n'est pas lié"]
            .iter()
            .any(|words| body.contains(words))
}

#[derive(Debug, Clone, Copy)]
enum Membership {
    Group,
    Entity,
}

impl Membership {
    /// Path segment, body key, and the word for messages.
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Membership::Group => ("groups", "groupId", "group"),
            Membership::Entity => ("entities", "entityId", "entity"),
        }
    }
}

fn transient(reason: String) -> Failure {
    Failure::Transient {
        reason,
        retry_after: None,
    }
}

/// The failure, its reason prefixed with what was being done.
fn in_context(context: &str, failure: Failure) -> Failure {
    match failure {
        Failure::Transient {
            reason,
            retry_after,
        } => Failure::Transient {
            reason: format!("{context}: {reason}"),
            retry_after,
        },
        Failure::Permanent { reason } => Failure::Permanent {
            reason: format!("{context}: {reason}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::test_user;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const ANA: &[(&str, &str)] = &[
        ("userId", "ana"),
        ("firstname", "Ana"),
        ("lastname", "Alves"),
        ("mail", "ana@x.fr"),
        ("groups", "AGENT||RESP"),
        ("entities", "DSI"),
    ];

    fn item(
        action: ActionKind,
        active: bool,
        desired: &[(&str, &str)],
        acked: Option<&[(&str, &str)]>,
    ) -> PushItem {
        PushItem {
            acked_fields: acked.map(fields),
            target_id: acked.map(|_| "21".into()),
            ..test_user("courrier", action, active, desired)
        }
    }

    #[test]
    fn basic_credentials_are_base64_of_user_colon_password() {
        // RFC 7617's example.
        let secret = basic_credentials("Aladdin", &Secret::new("open sesame"));
        assert_eq!(secret.expose(), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(format!("{secret:?}"), "***");
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(
            path_url(
                "https://m.example/",
                &["rest", "users", "21", "groups", "A B/C"]
            ),
            "https://m.example/rest/users/21/groups/A%20B%2FC"
        );
    }

    #[test]
    fn required_fields_are_checked_before_any_request() {
        assert_eq!(missing_user_fields(&fields(ANA)), None);
        let mut no_name = fields(ANA);
        no_name.remove("lastname");
        assert_eq!(
            missing_user_fields(&no_name).as_deref(),
            Some("Maarch needs a last name")
        );
        no_name.remove("mail");
        assert_eq!(
            missing_user_fields(&no_name).as_deref(),
            Some("Maarch needs a last name and an e-mail address")
        );
    }

    #[test]
    fn bodies_carry_the_full_record_without_the_lists() {
        let ana = fields(ANA);
        assert_eq!(
            user_body(&ana, true, false),
            json!({"userId": "ana", "firstname": "Ana", "lastname": "Alves", "mail": "ana@x.fr"})
        );
        assert_eq!(
            user_body(&ana, false, true),
            json!({"firstname": "Ana", "lastname": "Alves", "mail": "ana@x.fr", "status": "OK"})
        );
        assert_eq!(
            entity_body(
                &fields(&[("entity_id", "DSI"), ("entity_label", "IT")]),
                "DSI"
            ),
            json!({"entity_id": "DSI", "entity_label": "IT", "short_label": "IT", "entity_type": "Service", "parent_entity_id": ""})
        );
        assert_eq!(
            entity_body(
                &fields(&[
                    ("entity_label", "IT"),
                    ("parent_entity_id", "DG"),
                    ("entity_type", "Direction")
                ]),
                "DSI"
            ),
            json!({"entity_id": "DSI", "entity_label": "IT", "short_label": "IT", "entity_type": "Direction", "parent_entity_id": "DG"})
        );
    }

    #[test]
    fn list_differences() {
        assert_eq!(
            list_change(Some("A||B"), Some("B || C")),
            ListChange {
                add: vec!["C".into()],
                remove: vec!["A".into()]
            }
        );
        assert_eq!(list_change(Some("A"), Some("A")), ListChange::default());
        assert_eq!(
            list_change(None, Some("A||B")),
            ListChange {
                add: vec!["A".into(), "B".into()],
                remove: vec![]
            }
        );
        assert_eq!(
            list_change(Some("A"), None),
            ListChange {
                add: vec![],
                remove: vec!["A".into()]
            }
        );
    }

    #[test]
    fn steps_follow_the_action_and_what_maarch_holds() {
        // A group change alone: no PUT, one add, one removal.
        let mut moved = ANA.to_vec();
        moved[4] = ("groups", "AGENT||CHEF");
        let steps = user_steps(
            &item(ActionKind::Update, true, &moved, Some(ANA)),
            &Known::Acked,
        );
        assert!(!steps.put && !steps.suspend && !steps.status_ok);
        assert_eq!(steps.groups.add, ["CHEF"]);
        assert_eq!(steps.groups.remove, ["RESP"]);
        assert_eq!(steps.entities, ListChange::default());

        // A block of an unchanged record: only the suspension.
        let steps = user_steps(
            &item(ActionKind::Block, false, ANA, Some(ANA)),
            &Known::Acked,
        );
        assert!(!steps.put && steps.suspend);

        // A block with a changed e-mail: the PUT too, without status.
        let mut changed = ANA.to_vec();
        changed[3] = ("mail", "ana@y.fr");
        let steps = user_steps(
            &item(ActionKind::Block, false, &changed, Some(ANA)),
            &Known::Acked,
        );
        assert!(steps.put && steps.suspend && !steps.status_ok);

        // An update of a blocked user keeps it blocked.
        let steps = user_steps(
            &item(ActionKind::Update, false, &changed, Some(ANA)),
            &Known::Acked,
        );
        assert!(steps.put && !steps.suspend && !steps.status_ok);

        // Unblock: the PUT with status OK, even if nothing else changed.
        let steps = user_steps(
            &item(ActionKind::Unblock, true, ANA, Some(ANA)),
            &Known::Acked,
        );
        assert!(steps.put && steps.status_ok && !steps.suspend);

        // Just created: memberships all added, nothing else.
        let steps = user_steps(&item(ActionKind::Create, true, ANA, None), &Known::Created);
        assert!(!steps.put && !steps.suspend);
        assert_eq!(steps.groups.add, ["AGENT", "RESP"]);
        assert_eq!(steps.entities.add, ["DSI"]);
        // Created disabled: suspended right away.
        assert!(user_steps(&item(ActionKind::Create, false, ANA, None), &Known::Created).suspend);

        // Found by login: the full record, status OK if it was suspended.
        let found = |status: &str| Known::Found {
            status: status.into(),
        };
        let steps = user_steps(&item(ActionKind::Create, true, ANA, None), &found("SPD"));
        assert!(steps.put && steps.status_ok && !steps.suspend);
        assert_eq!(steps.groups.add, ["AGENT", "RESP"]);
        // An absent user stays absent.
        let steps = user_steps(&item(ActionKind::Update, true, ANA, None), &found("ABS"));
        assert!(steps.put && !steps.status_ok);
        // A block found already suspended is not sent again.
        assert!(!user_steps(&item(ActionKind::Block, false, ANA, None), &found("SPD")).suspend);
        assert!(user_steps(&item(ActionKind::Block, false, ANA, None), &found("OK")).suspend);
    }

    #[test]
    fn replies_are_read() {
        assert_eq!(parse_created_id(r#"{"id":21}"#), Ok("21".into()));
        assert_eq!(parse_created_id(r#"{"id":"21"}"#), Ok("21".into()));
        assert!(parse_created_id(r#"{"id":"x"}"#).is_err());
        assert!(parse_created_id("<html>").is_err());

        let users = parse_users(
            r#"{"users":[{"id":9,"user_id":"bboule","firstname":"Bruno","lastname":"BOULE","status":"OK","mail":"b@m.org","mode":"standard"},
                         {"id":"10","user_id":"Ana","status":"SPD"},
                         {"user_id":"noid"}]}"#,
        )
        .unwrap();
        assert_eq!(
            users,
            [
                ListedUser {
                    id: "9".into(),
                    login: "bboule".into(),
                    status: "OK".into()
                },
                ListedUser {
                    id: "10".into(),
                    login: "Ana".into(),
                    status: "SPD".into()
                },
            ]
        );
        assert!(parse_users("{}").is_err());
        assert!(parse_users("[").is_err());

        assert_eq!(
            pick_user(users.clone(), "bboule").map(|u| u.id),
            Some("9".into())
        );
        assert_eq!(
            pick_user(users.clone(), "ana").map(|u| u.id),
            Some("10".into())
        );
        assert_eq!(pick_user(users, "zoe"), None);
    }

    #[test]
    fn a_missing_parent_entity_is_worth_another_try() {
        let reply = |status, body: &str| Reply {
            status,
            body: body.into(),
            retry_after: None,
        };
        assert!(matches!(
            entity_failure(&reply(400, r#"{"errors":"Parent entity not found"}"#)),
            Failure::Transient { .. }
        ));
        assert!(matches!(
            entity_failure(&reply(400, r#"{"errors":"Bad Request"}"#)),
            Failure::Permanent { .. }
        ));
        assert!(matches!(
            entity_failure(&reply(403, r#"{"errors":"Parent entity not found"}"#)),
            Failure::Permanent { .. }
        ));
    }

    #[test]
    fn settled_memberships_are_told_from_refusals() {
        let reply = |status, body: &str| Reply {
            status,
            body: body.into(),
            retry_after: None,
        };
        assert!(membership_settled(&reply(
            400,
            r#"{"errors":"User is already linked to this group"}"#
        )));
        assert!(membership_settled(&reply(
            400,
            r#"{"errors":"L'utilisateur est déjà lié à ce groupe"}"#
        )));
        assert!(!membership_settled(&reply(
            400,
            r#"{"errors":"Group not found"}"#
        )));
        assert!(!membership_settled(&reply(403, r#"{"errors":"already"}"#)));
    }
}
