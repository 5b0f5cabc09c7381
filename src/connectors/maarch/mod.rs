//! `maarch`: Maarch Courrier. HTTP Basic auth, one record per
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

use std::convert::Infallible;

use serde_json::{Value, json};

use crate::config::TargetConfig;
use crate::ingest::record::{Field, RecordKind};
use crate::model::ActionKind;
use crate::projection::DefaultFields;
use crate::retry::Failure;

use super::http::{Http, Reply, secret_header};
use super::{
    CheckError, Connector, Outcome, Place, PushItem, PushReply, Settings, SettingsError, Verdict,
};

mod reply;
mod request;
#[cfg(test)]
mod tests;

pub use reply::*;
pub use request::*;

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

    fn from_config(target: &TargetConfig) -> Result<Maarch, SettingsError> {
        let user = target.user.as_ref().ok_or(SettingsError::Missing(
            "a maarch target needs user (a Maarch user of mode rest)",
        ))?;
        let password = target
            .password_source()
            .ok_or(SettingsError::Missing("a maarch target needs a password (password_env, password_file or password_credential)"))?
            .load()?;
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
    async fn check(&self) -> Result<(), CheckError> {
        let reply = self
            .http
            .send(self.http.client().get(self.url(&["rest", "users"])))
            .await?;
        match reply.status {
            401 | 403 => Err(CheckError::Refused(format!(
                "the credentials were refused (HTTP {}): check user and its password, and that this user may manage users",
                reply.status
            ))),
            _ if reply.is_success() => Ok(parse_users(&reply.body).map(|_| ())?),
            _ => Err(reply.failure().into()),
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
