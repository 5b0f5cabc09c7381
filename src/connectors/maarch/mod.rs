//! `maarch`: Maarch Courrier (2301). HTTP Basic auth with a user of mode
//! `rest`, one record per request sequence (`batch_size() == 1`).
//!
//! Users: before a user without a target id is created, the target's
//! `match` rules look it up in `GET /rest/users` (read once a drain: it
//! lists every user), by login and by `mail`, both without case: one user
//! found is adopted (it keeps its login if found by address: Maarch cannot
//! rename one), several park the record as ambiguous, another record's is
//! never taken ([`super::adopt`]). `POST /rest/users` creates and answers
//! `{"id":N}`, kept as the target id, always followed by the full `PUT
//! /rest/users/{id}`: a create of a login deleted in Maarch answers 200 too,
//! but restores the old record and ignores what it was sent. A login Maarch
//! holds already (it compares logins whatever their case) answers 400: the
//! user is looked up and updated instead (unless another record holds it),
//! so a replayed create is harmless. A login that answers 400 yet is not
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
use std::sync::Arc;

use serde_json::json;

use crate::config::TargetConfig;
use crate::ingest::record::{Field, RecordKind};
use crate::model::Candidate;
use crate::projection::{DefaultFields, Projector};
use crate::retry::Failure;
use crate::secret::Secret;

use super::adopt::{self, Adoption, Found, Holders, Nobody, Rule};
use super::http::{Http, Reply, secret_header};
use super::{
    CheckError, Connector, Outcome, Place, PushItem, PushReply, Settings, SettingsError, Verdict,
};

mod delete;
mod entity;
mod reply;
mod request;
#[cfg(test)]
mod tests;

pub use reply::*;
pub use request::*;

/// Target field names of the user record (Maarch's own).
pub const LOGIN: &str = "userId";
pub const MAIL: &str = "mail";
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
    /// The target's `match` rules, with which a user Maarch already holds
    /// is found before one is created.
    rules: Vec<Rule>,
    /// The user list as read in a drain: Maarch lists every user at once,
    /// so the lookups before creates read it once a drain, not once per
    /// record.
    listed: tokio::sync::Mutex<Option<Listed>>,
}

/// The user list, and the drain it was read in.
struct Listed {
    drain: u64,
    users: Arc<Vec<ListedUser>>,
}

/// What became of a user.
enum Pushed {
    /// Maarch holds it under this id.
    Held(String),
    /// Maarch holds several users that could be it: none was taken.
    Ambiguous(Vec<Candidate>),
}

/// How a user's Maarch id was found, or why there is none to use.
enum Resolved {
    Known(String, Known),
    Ambiguous(Vec<Candidate>),
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

    const DELETES: bool = true;

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
        let projector = Projector::new(Self::default_fields(), target.fields.get_ref());
        Ok(Maarch {
            http: Http::new(target, headers)?,
            user: user.get_ref().clone(),
            password,
            credentials,
            rules: adopt::rules(target, &projector, Self::MATCH_FIELDS),
            listed: tokio::sync::Mutex::new(None),
        })
    }

    /// Maarch takes one user per request.
    fn batch_size(&self) -> usize {
        1
    }

    async fn push(&self, items: &[PushItem]) -> PushReply {
        self.push_with(items, &Nobody).await
    }

    async fn push_with(&self, items: &[PushItem], holders: &dyn Holders) -> PushReply {
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            let result = match item.key.kind {
                RecordKind::Users => self.sync_user(item, holders).await,
                RecordKind::Orgs => self.sync_entity(item).await.map(Pushed::Held),
            };
            outcomes.push(match result {
                Ok(Pushed::Held(id)) => Outcome::Acked {
                    target_id: Some(id),
                },
                Ok(Pushed::Ambiguous(candidates)) => Outcome::Ambiguous(candidates),
                Err(failure) => Outcome::Failed(failure.map_reason(|r| self.scrub(r))),
            });
        }
        PushReply {
            outcomes,
            halt: None,
        }
    }

    /// Lists the users with the credentials.
    fn refusal(&self) -> Option<crate::connectors::Refusal> {
        self.http.refusal()
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

    async fn sync_user(&self, item: &PushItem, holders: &dyn Holders) -> Result<Pushed, Failure> {
        if item.action == crate::model::ActionKind::Delete {
            return self.delete_user(item).await;
        }
        if let Some(reason) = missing_user_fields(&item.fields) {
            return Err(Failure::Permanent { reason });
        }
        let login = item.fields.get(LOGIN).map_or("", String::as_str);
        if let Some(reason) = login_problem(login) {
            return Err(Failure::Permanent { reason });
        }
        let (id, known) = match self.resolve_user(item, login, holders).await? {
            Resolved::Known(id, known) => (id, known),
            Resolved::Ambiguous(candidates) => return Ok(Pushed::Ambiguous(candidates)),
        };
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
        Ok(Pushed::Held(id))
    }

    /// The user's Maarch id, and how it is known: the one Maarch gave, the
    /// user the `match` rules find (adopted), or a new one.
    async fn resolve_user(
        &self,
        item: &PushItem,
        login: &str,
        holders: &dyn Holders,
    ) -> Result<Resolved, Failure> {
        let old_login = item
            .acked_fields
            .as_ref()
            .and_then(|acked| acked.get(LOGIN))
            .filter(|old| old.as_str() != login);
        let Some(id) = &item.target_id else {
            return self.adopt_or_create(item, login, holders).await;
        };
        let Some(old) = old_login else {
            return Ok(Resolved::Known(id.clone(), Known::Acked));
        };
        // A login changed: Maarch may have been renamed by hand already.
        if let Some(found) = self.find_user(login).await? {
            return Ok(Resolved::Known(
                found.id,
                Known::Found {
                    status: found.status,
                },
            ));
        }
        Err(Failure::Permanent {
            reason: format!(
                "Maarch cannot change a login through its API: rename {old} to {login} in Maarch, the next file applies the rest"
            ),
        })
    }

    /// A user without a Maarch id: the one the rules find, else a new one.
    async fn adopt_or_create(
        &self,
        item: &PushItem,
        login: &str,
        holders: &dyn Holders,
    ) -> Result<Resolved, Failure> {
        let users = self.listed(holders.drain(), false).await?;
        let adoption = self.adoption(item, &users, holders).await?;
        match adoption {
            Adoption::Adopt(account) => {
                let status = users
                    .iter()
                    .find(|user| user.id == account.id)
                    .map_or_else(|| "OK".to_string(), |user| user.status.clone());
                if !account.login.eq_ignore_ascii_case(login) {
                    tracing::warn!(key = %item.key.key, id = %account.id, login = %account.login,
                        wanted = %login, "adopted a Maarch user found by another rule: Maarch cannot rename it, it keeps its login");
                }
                Ok(Resolved::Known(account.id, Known::Found { status }))
            }
            Adoption::Ambiguous(candidates) => Ok(Resolved::Ambiguous(candidates)),
            Adoption::Refused(reason) => Err(Failure::Permanent { reason }),
            Adoption::Create => {
                let (id, known) = self.create_or_adopt(item, login, holders).await?;
                Ok(Resolved::Known(id, known))
            }
        }
    }

    /// What the rules find in `users` for the record.
    async fn adoption(
        &self,
        item: &PushItem,
        users: &[ListedUser],
        holders: &dyn Holders,
    ) -> Result<Adoption, Failure> {
        let mut found = Found::default();
        for rule in &self.rules {
            if let Some(value) = item.fields.get(&rule.target_field).filter(|v| !v.is_empty()) {
                found.add(rule.field, holding(users, &rule.target_field, value));
            }
        }
        if found.is_empty() {
            return Ok(Adoption::Create);
        }
        adopt::decide(&item.key, None, found, holders).await
    }

    async fn create_or_adopt(
        &self,
        item: &PushItem,
        login: &str,
        holders: &dyn Holders,
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
            // Made for this record: no other record of the drain takes it.
            if let Ok(Some(other)) = holders.claim(&item.key, &id).await {
                tracing::warn!(key = %item.key.key, %id, %other, "Maarch gave a new user the id of another record's");
            }
            return Ok((id, Known::Created));
        }
        if reply.status != 400 {
            return Err(self.refusal(&doing, &reply));
        }
        // Most likely the login exists (whatever its case): adopt it,
        // unless another record holds it.
        match self.find_user(login).await? {
            Some(found) => match holders.claim(&item.key, &found.id).await.map_err(transient)? {
                None => Ok((
                    found.id,
                    Known::Found {
                        status: found.status,
                    },
                )),
                Some(other) => Err(refused(
                    &doing,
                    &reply,
                    &format!(
                        "Maarch's user {login} (id {}) is {other}'s: free the login in Maarch or correct it in the file, then run `rostersync retry`",
                        found.id
                    ),
                )),
            },
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

    /// The user of this login, in a list read now.
    async fn find_user(&self, login: &str) -> Result<Option<ListedUser>, Failure> {
        let drain = self.listed.lock().await.as_ref().map_or(0, |l| l.drain);
        let users = self.listed(drain, true).await?;
        Ok(pick_user(users.as_ref().clone(), login))
    }

    /// Every user Maarch lists to the REST user: as read in this drain,
    /// unless `fresh`.
    async fn listed(&self, drain: u64, fresh: bool) -> Result<Arc<Vec<ListedUser>>, Failure> {
        let mut listed = self.listed.lock().await;
        if let Some(list) = listed.as_ref().filter(|l| !fresh && l.drain == drain) {
            return Ok(Arc::clone(&list.users));
        }
        let doing = "listing the users";
        let request = self.http.client().get(self.url(&["rest", "users"]));
        let reply = self.send(request, doing).await?;
        if !reply.is_success() {
            return Err(self.refusal(doing, &reply));
        }
        let users =
            parse_users(&reply.body).map_err(|reason| transient(format!("{doing}: {reason}")))?;
        let users = Arc::new(users);
        *listed = Some(Listed {
            drain,
            users: Arc::clone(&users),
        });
        Ok(users)
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
