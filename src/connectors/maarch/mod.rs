//! `maarch`: Maarch Courrier (2301). HTTP Basic auth with a user of mode
//! `rest`, one record per request sequence (`batch_size() == 1`).
//!
//! Users: `POST /rest/users` creates and answers `{"id":N}`, kept as the
//! target id, always followed by the full `PUT /rest/users/{id}`: a create
//! of a login deleted in Maarch answers 200 too, but restores the old record
//! and ignores what it was sent. A login Maarch holds already (it compares
//! logins whatever their case) answers 400: the user is looked up in `GET
//! /rest/users` and updated instead, so a replayed create or an account made
//! by hand is adopted, never duplicated. A login that answers 400 yet is not
//! listed is outside the REST user's perimeter (a REST user that is not
//! root sees only the users of its entities' subtrees and users without
//! entity): parked, saying so. `PUT` takes the *full* record (Maarch erases
//! an omitted `mail` or `initials`). Group and entity memberships (`groups`
//! and `entities`, `a||b` lists) are sent as differences from what Maarch
//! last confirmed; an add Maarch answers "already linked" (in French:
//! `déjà lié`, inside JSON-escaped text) is done, and so is the removal of
//! a link to a group or entity that no longer exists. Block is `PUT
//! /rest/users/{id}/suspend`, sent before any other change of the record so
//! that a refused change never keeps a leaver active; its 403 has five
//! causes, each parked with its own reason. Unblock is the full `PUT` with
//! `"status":"OK"`. An absent user (`ABS`) is never forced back to `OK`.
//!
//! Maarch requires `userId`, `firstname`, `lastname` and `mail`, and a login
//! of letters, digits and `_ . @ -`: a record failing that is refused here,
//! before any request. Maarch cannot rename a login through this API: a
//! login change parks the record until someone renames it in Maarch.
//!
//! Organisations are Maarch entities (`entity.rs`). Every park reason says
//! what Maarch answered (with its meaning when it said it in French) and what
//! to do; none holds the credentials in any form, even when Maarch echoes the
//! request's headers.

use std::convert::Infallible;

use serde_json::json;

use crate::config::TargetConfig;
use crate::ingest::record::{Field, RecordKind};
use crate::model::ActionKind;
use crate::projection::DefaultFields;
use crate::retry::Failure;
use crate::secret::Secret;

use super::http::{Http, Reply, secret_header};
use super::{
    CheckError, Connector, Outcome, Place, PushItem, PushReply, Settings, SettingsError, Verdict,
};

mod entity;
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
    /// The REST user's login, for reasons that name it.
    user: String,
    /// Scrubbed from every reason, as is `credentials` (their base64).
    password: Secret,
    credentials: Secret,
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

    const MATCH_FIELDS: &'static [Field] = &[Field::Login, Field::Email];

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
            user: user.get_ref().clone(),
            password,
            credentials,
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
                Err(failure) => Outcome::Failed(failure.map_reason(|r| self.scrub(r))),
            });
        }
        PushReply {
            outcomes,
            halt: None,
        }
    }

    /// Lists the users with the credentials.
    fn credentials_refused(&self) -> Option<String> {
        self.http.credentials_refused()
    }

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
            _ => Err(reply.failure().map_reason(|r| self.scrub(r)).into()),
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

    /// `text` without the password or the credentials, in any form Maarch
    /// could echo them in (as is, JSON-escaped, URL-encoded, base64).
    fn scrub(&self, text: &str) -> String {
        self.credentials.scrub(&self.password.scrub(text))
    }

    /// Sends a request; `Err` only when no reply came.
    async fn send(&self, request: reqwest::RequestBuilder, doing: &str) -> Result<Reply, Failure> {
        self.http
            .send(request)
            .await
            .map_err(|failure| in_context(doing, failure))
    }

    /// A refusal nothing more specific explains.
    fn refusal(&self, doing: &str, reply: &Reply) -> Failure {
        refused(doing, reply, &advice(reply.status, &self.user))
    }

    // ----- users -----

    async fn sync_user(&self, item: &PushItem) -> Result<String, Failure> {
        if let Some(reason) = missing_user_fields(&item.fields) {
            return Err(Failure::Permanent { reason });
        }
        let login = item.fields.get(LOGIN).map_or("", String::as_str);
        if let Some(reason) = login_problem(login) {
            return Err(Failure::Permanent { reason });
        }
        let (id, known) = self.resolve_user(item, login).await?;
        let steps = user_steps(item, &known);
        // First: a refused change of the record or its groups must not
        // keep a leaver active.
        if steps.suspend {
            self.suspend(&id, login).await?;
        }
        if steps.put {
            let body = user_body(&item.fields, false, steps.status_ok);
            let request = self.http.client().put(self.url(&["rest", "users", &id]));
            self.update(request.json(&body), login).await?;
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
        let doing = format!("creating user {login}");
        let request = self
            .http
            .client()
            .post(self.url(&["rest", "users"]))
            .json(&body);
        let reply = self.send(request, &doing).await?;
        if reply.is_success() {
            // Unreadable: the user may exist now; the replay finds it.
            let id = parse_created_id(&reply.body)
                .map_err(|reason| transient(format!("{doing}: {reason}")))?;
            return Ok((id, Known::Created));
        }
        if reply.status != 400 {
            return Err(self.refusal(&doing, &reply));
        }
        // Most likely the login exists (whatever its case): adopt it.
        match self.find_user(login).await? {
            Some(found) => Ok((
                found.id,
                Known::Found {
                    status: found.status,
                },
            )),
            None if Refusal::of(&said(&reply.body)) == Refusal::Exists => Err(refused(
                &doing,
                &reply,
                &format!(
                    "yet Maarch does not list {login} to {}: {}",
                    self.user,
                    out_of_perimeter(login, &self.user)
                ),
            )),
            None => Err(self.refusal(&doing, &reply)),
        }
    }

    async fn find_user(&self, login: &str) -> Result<Option<ListedUser>, Failure> {
        let doing = format!("looking up user {login}");
        let request = self.http.client().get(self.url(&["rest", "users"]));
        let reply = self.send(request, &doing).await?;
        if !reply.is_success() {
            return Err(self.refusal(&doing, &reply));
        }
        let users =
            parse_users(&reply.body).map_err(|reason| transient(format!("{doing}: {reason}")))?;
        Ok(pick_user(users, login))
    }

    /// The full `PUT` of a user.
    async fn update(&self, request: reqwest::RequestBuilder, login: &str) -> Result<(), Failure> {
        let doing = format!("updating user {login}");
        let reply = self.send(request, &doing).await?;
        match Refusal::of(&said(&reply.body)) {
            _ if reply.is_success() => Ok(()),
            Refusal::OutOfPerimeter => Err(refused(
                &doing,
                &reply,
                &out_of_perimeter(login, &self.user),
            )),
            _ => Err(self.refusal(&doing, &reply)),
        }
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
        let client = self.http.client();
        let (request, doing) = if add {
            (
                client
                    .post(self.url(&["rest", "users", id, path]))
                    .json(&json!({ key: value })),
                format!("adding user {login} to {noun} {value}"),
            )
        } else {
            (
                client.delete(self.url(&["rest", "users", id, path, value])),
                format!("removing user {login} from {noun} {value}"),
            )
        };
        let reply = self.send(request, &doing).await?;
        if reply.is_success() || membership_settled(&reply, add) {
            return Ok(());
        }
        let advice = match Refusal::of(&said(&reply.body)) {
            Refusal::OutOfPerimeter => out_of_perimeter(login, &self.user),
            Refusal::NotFound => format!(
                "{noun} {value} does not exist in Maarch: create it there (for an entity: see whether its organisation is parked, `rostersync status`), or correct the target's {path} mapping; then run `rostersync retry`"
            ),
            Refusal::Forbidden => format!(
                "{} may not assign {noun} {value}: give it that right in Maarch, or leave {value} out of the target's {path} mapping; then run `rostersync retry`",
                self.user
            ),
            _ => advice(reply.status, &self.user),
        };
        Err(refused(&doing, &reply, &advice))
    }

    async fn suspend(&self, id: &str, login: &str) -> Result<(), Failure> {
        let doing = format!("suspending user {login}");
        let request = self
            .http
            .client()
            .put(self.url(&["rest", "users", id, "suspend"]));
        let reply = self.send(request, &doing).await?;
        match reply.status {
            _ if reply.is_success() => Ok(()),
            403 => {
                let refusal = Refusal::of(&said(&reply.body));
                let advice = suspension_advice(refusal, login, &self.user);
                Err(refused(&doing, &reply, &advice))
            }
            _ => Err(self.refusal(&doing, &reply)),
        }
    }
}
