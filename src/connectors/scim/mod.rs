//! `scim`: any SCIM 2.0 service provider (RFC 7643 resources, RFC 7644
//! protocol), one record per request, authenticated with
//! `Authorization: Bearer TOKEN`, bodies in `application/scim+json`.
//!
//! **Users.** The projection's target field names are SCIM attribute paths:
//! `userName`, `externalId`, `title`, `name.givenName` (a sub-attribute),
//! `emails.work` / `phoneNumbers.mobile` (one typed value of a multi-valued
//! attribute), `department` and the other enterprise attributes, or any
//! `urn:…:attribute` of an extension schema. `manager` holds the manager's
//! externalId; the provider wants its own id there, so it is looked up
//! (`GET /Users?filter=externalId eq "M"`).
//!
//! - Create: `POST /Users`; the provider's `id` becomes the target id. A 409
//!   (a lost acknowledgement replayed, or a user created at the provider by
//!   hand) looks the user up by externalId, then by userName, and updates
//!   that resource instead: replaying is harmless. A user found by userName
//!   whose externalId names somebody else is not taken over (parked).
//! - Update, block, unblock: `PATCH /Users/{id}` with the differences
//!   between what the provider last confirmed and what is desired (`replace`
//!   and `remove` operations, and `active`), when `/ServiceProviderConfig`
//!   announces PATCH and those differences are known; otherwise `PUT
//!   /Users/{id}` with the full resource. Block/unblock is `active`
//!   false/true. Without a target id (a lost acknowledgement) the user is
//!   looked up first; a 404 on a known id looks it up again, then recreates.
//!   Blocking a user the provider does not hold at all sends nothing.
//! - A manager not at the provider: the user fails *transiently* the first
//!   time ("not yet at the provider"), so that it is tried again after every
//!   other record of the run, its manager among them (dependency order in
//!   the push engine normally makes this rare). If the manager is still
//!   missing at the next attempt and was not sent in this run, or was
//!   refused, the user is parked with the reason (retried with the next
//!   file). The user is never sent without its manager: the acknowledged
//!   state would claim a manager the provider does not have.
//!
//! **Organisations** are `Groups` (`displayName`, `externalId`), found by
//! externalId, created with `POST /Groups`, updated with `PATCH` (replace) or,
//! without PATCH, with `PUT` carrying the members the group already has (a
//! PUT replaces the whole group, and memberships are the provider's
//! business). SCIM groups have no active state: **blocking an organisation
//! sends nothing and leaves the group in place** (deleting it would drop its
//! memberships); it is acknowledged and logged.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;

use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::config::TargetConfig;
use crate::ingest::record::{Field, RecordKind};
use crate::model::ActionKind;
use crate::projection::DefaultFields;
use crate::retry::Failure;

use super::http::{Http, Reply, secret_header};
use super::{
    CheckError, Connector, Outcome, Place, PushItem, PushReply, ReplyError, Settings,
    SettingsError, Verdict,
};

mod reply;
mod request;
#[cfg(test)]
mod tests;

pub use reply::*;
pub use request::*;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SCIM_JSON: &str = "application/scim+json";

/// Multi-valued attributes whose values carry a `type` (RFC 7643 §4.1.2).
pub(super) const TYPED_LISTS: &[&str] = &[
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "entitlements",
    "roles",
    "x509Certificates",
];

/// Attributes of the enterprise extension (RFC 7643 §4.3).
pub(super) const ENTERPRISE_ATTRIBUTES: &[&str] = &[
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "department",
    "manager",
];

/// Pages read at most when looking a resource up (a filter on externalId or
/// userName matches one resource; more pages mean a provider that ignores
/// the filter).
const MAX_PAGES: usize = 20;

pub struct Scim {
    http: Http,
    /// Whether the provider announces PATCH; read once, when first needed.
    patch: OnceCell<bool>,
    memory: Mutex<Memory>,
}

/// What this connector learned during the run (one sync).
#[derive(Default)]
struct Memory {
    /// externalId → provider id of the users acknowledged in this run.
    ids: HashMap<String, String>,
    /// externalId → how the last push of that user in this run ended.
    last: HashMap<String, Ended>,
    /// externalId of users already told once that their manager is missing.
    waited: HashMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Acked,
    Transient,
    Permanent,
}

impl Connector for Scim {
    const KIND: &'static str = "scim";
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
                ("userName", Login),
                ("externalId", ExtId),
                ("name.givenName", FirstName),
                ("name.familyName", LastName),
                ("name.middleName", MiddleName),
                // SCIM's `title` is the job title; the canonical `title` is
                // the civility ("Mme", "M."), SCIM's honorific prefix.
                ("name.honorificPrefix", Title),
                ("title", Position),
                ("emails.work", Email),
                ("phoneNumbers.work", Phone),
                ("phoneNumbers.mobile", Mobile),
                ("preferredLanguage", Culture),
                ("department", Department),
                ("manager", ManagerExtId),
            ],
            &[("externalId", ExtId), ("displayName", Label)],
        )
    }

    fn from_config(target: &TargetConfig) -> Result<Scim, SettingsError> {
        let token = target
            .token_source()
            .ok_or(SettingsError::Missing(
                "a scim target needs a token (token_env, token_file or token_credential)",
            ))?
            .load()?;
        let mut headers = secret_header("authorization", "Bearer ", &token)?;
        headers.insert(ACCEPT, HeaderValue::from_static(SCIM_JSON));
        Ok(Scim {
            http: Http::new(target, headers)?,
            patch: OnceCell::new(),
            memory: Mutex::new(Memory::default()),
        })
    }

    /// SCIM takes one resource per request (bulk is optional in RFC 7644).
    fn batch_size(&self) -> usize {
        1
    }

    async fn push(&self, items: &[PushItem]) -> PushReply {
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            let result = match item.key.kind {
                RecordKind::Users => self.user(item).await,
                RecordKind::Orgs => self.group(item).await,
            };
            if item.key.kind == RecordKind::Users {
                self.remember(item, &result);
            }
            outcomes.push(match result {
                Ok(target_id) => Outcome::Acked { target_id },
                Err(failure) => Outcome::Failed(failure),
            });
        }
        PushReply {
            outcomes,
            halt: None,
        }
    }

    /// Reads `/ServiceProviderConfig`, then lists one user with the token.
    async fn check(&self) -> Result<(), CheckError> {
        let unexpected =
            |what: &str, reason: ReplyError| CheckError::Unexpected(format!("{what}: {reason}"));
        let reply = self
            .call(Method::GET, "/ServiceProviderConfig", None)
            .await?;
        refused_token(&reply, "GET /ServiceProviderConfig")?;
        let patch = parse_patch_supported(&reply.body)
            .map_err(|reason| unexpected("GET /ServiceProviderConfig", reason))?;
        let _ = self.patch.set(patch);
        let reply = self
            .call(Method::GET, "/Users?startIndex=1&count=1", None)
            .await?;
        refused_token(&reply, "GET /Users")?;
        parse_list(&reply.body).map_err(|reason| unexpected("GET /Users", reason))?;
        Ok(())
    }

    /// One record per sequence of requests: each reply is read where it is
    /// sent ([`written`], [`failure`], [`parse_list`], ...).
    type Reply = Infallible;

    fn verdict(&self, _: &[&PushItem], reply: &Infallible) -> Verdict {
        match *reply {}
    }
}

impl Scim {
    // ---- users ------------------------------------------------------------

    /// Makes the provider hold the user; its provider id when it has one.
    async fn user(&self, item: &PushItem) -> Result<Option<String>, Failure> {
        if item.action != ActionKind::Block && !item.fields.contains_key("userName") {
            return Err(permanent(
                "the user has no userName (SCIM requires one): map the login, or give it in the file",
            ));
        }
        let known = item.target_id.clone();
        let id = match (&known, item.action) {
            (Some(id), _) => Some(id.clone()),
            (None, ActionKind::Create) => None,
            // An acknowledgement was lost, or the user was made elsewhere.
            (None, _) => self.find_user(item).await?,
        };
        if let Some(id) = id {
            // PATCH only on top of a state the provider confirmed for this id.
            if self.update_user(item, &id, known.is_some()).await? == Written::Done {
                return Ok(Some(id));
            }
            if known.is_some() {
                // 404 on a known id: removed, or recreated under another id.
                if let Some(other) = self.find_user(item).await?.filter(|o| *o != id) {
                    return match self.update_user(item, &other, false).await? {
                        Written::Done => Ok(Some(other)),
                        Written::Gone => Err(transient(format!(
                            "user {other} vanished from the provider while being updated"
                        ))),
                    };
                }
            }
        }
        if item.action == ActionKind::Block {
            tracing::info!(key = %item.key.key, "blocking a user the provider does not hold: nothing to send");
            return Ok(None);
        }
        self.create_user(item).await.map(Some)
    }

    async fn create_user(&self, item: &PushItem) -> Result<String, Failure> {
        let manager = self.manager_id(item, true).await?;
        let body = user_resource(&item.fields, item.active, manager.as_deref());
        let reply = self.call(Method::POST, "/Users", Some(&body)).await?;
        if reply.is_success() {
            return parse_id(&reply.body).map_err(|reason| {
                // Created, but without a readable id: a replay gets a 409 and adopts it.
                transient(format!("POST /Users: {reason}"))
            });
        }
        if reply.status != 409 {
            return Err(failure(&reply, "POST /Users"));
        }
        // The user exists: a replayed create, or one made at the provider.
        let Some(id) = self.find_user(item).await? else {
            return Err(permanent(format!(
                "the provider refuses the user as a duplicate ({}) but holds no user with its externalId or userName",
                error_text(&reply.body).unwrap_or_else(|| "HTTP 409".into())
            )));
        };
        tracing::info!(key = %item.key.key, %id, "the user exists at the provider: updating it");
        match self.update_user(item, &id, false).await? {
            Written::Done => Ok(id),
            Written::Gone => Err(transient(format!(
                "user {id} vanished from the provider while being taken over"
            ))),
        }
    }

    /// PATCH (when `may_patch`, the provider announces it and the confirmed
    /// state is known) or PUT the user at `id`.
    async fn update_user(
        &self,
        item: &PushItem,
        id: &str,
        may_patch: bool,
    ) -> Result<Written, Failure> {
        let acked = match &item.acked_fields {
            Some(acked) if may_patch && self.patch_supported().await? => Some(acked),
            _ => None,
        };
        let path = format!("/Users/{}", segment(id));
        let reply = match acked {
            Some(acked) => {
                let needed = manager_changed(&item.fields, acked);
                let manager = self.manager_id(item, needed).await?;
                let body = patch_body(user_patch_ops(
                    &item.fields,
                    acked,
                    item.active,
                    manager.as_deref(),
                ));
                let reply = self.call(Method::PATCH, &path, Some(&body)).await?;
                (reply, "PATCH")
            }
            None => {
                let manager = self.manager_id(item, true).await?;
                let body = user_resource(&item.fields, item.active, manager.as_deref());
                (self.call(Method::PUT, &path, Some(&body)).await?, "PUT")
            }
        };
        written(&reply.0, &format!("{} /Users/{id}", reply.1))
    }

    /// The provider's id of the user: by externalId, else by userName (when
    /// the resource found has no externalId of another person).
    async fn find_user(&self, item: &PushItem) -> Result<Option<String>, Failure> {
        if let Some(external_id) = item.fields.get("externalId") {
            let found = self.find("/Users", "externalId", external_id).await?;
            if let Some(id) = single(&found, "users", "externalId", external_id)? {
                return Ok(Some(id));
            }
        }
        let Some(user_name) = item.fields.get("userName") else {
            return Ok(None);
        };
        let found = self.find("/Users", "userName", user_name).await?;
        let Some(id) = single(&found, "users", "userName", user_name)? else {
            return Ok(None);
        };
        let holder = found
            .first()
            .and_then(|r| r.get("externalId"))
            .and_then(Value::as_str)
            .unwrap_or("");
        match item.fields.get("externalId") {
            Some(mine) if !holder.is_empty() && holder != mine => Err(permanent(format!(
                "userName {user_name:?} is held at the provider by another person (externalId {holder:?}): \
                 free it there or fix the login"
            ))),
            _ => Ok(Some(id)),
        }
    }

    /// The provider's id of the user's manager, when the user has one and
    /// `needed` (the request carries it).
    async fn manager_id(&self, item: &PushItem, needed: bool) -> Result<Option<String>, Failure> {
        let Some(manager) = item.fields.get("manager").filter(|_| needed) else {
            return Ok(None);
        };
        if let Some(id) = self.lock().ids.get(manager) {
            return Ok(Some(id.clone()));
        }
        let found = self.find("/Users", "externalId", manager).await?;
        if let Some(id) = single(&found, "users", "externalId", manager)? {
            return Ok(Some(id));
        }
        let me = external_id(item);
        let mut memory = self.lock();
        let reason = match memory.last.get(manager) {
            Some(Ended::Permanent) => {
                return Err(permanent(format!(
                    "manager {manager:?} is not at the provider: its own record was refused"
                )));
            }
            Some(Ended::Acked) => {
                return Err(permanent(format!(
                    "manager {manager:?} is not at the provider (blocked while absent from it)"
                )));
            }
            Some(Ended::Transient) => {
                format!("manager {manager:?} is not at the provider yet (being sent)")
            }
            None if memory.waited.get(&me).is_some_and(|m| m == manager) => {
                memory.waited.remove(&me);
                return Err(permanent(format!(
                    "manager {manager:?} is neither at the provider nor among the records sent: \
                     create it there or fix the file"
                )));
            }
            None => {
                memory.waited.insert(me, manager.clone());
                format!(
                    "manager {manager:?} is not at the provider yet: tried again after the other records"
                )
            }
        };
        Err(transient(reason))
    }

    fn remember(&self, item: &PushItem, result: &Result<Option<String>, Failure>) {
        let me = external_id(item);
        let mut memory = self.lock();
        let ended = match result {
            Ok(id) => {
                if let Some(id) = id {
                    memory.ids.insert(me.clone(), id.clone());
                }
                Ended::Acked
            }
            Err(Failure::Transient { .. }) => Ended::Transient,
            Err(Failure::Permanent { .. }) => Ended::Permanent,
        };
        if ended != Ended::Transient {
            memory.waited.remove(&me);
        }
        memory.last.insert(me, ended);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        // The memory holds no invariant a panic could break halfway.
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    // ---- groups -----------------------------------------------------------

    async fn group(&self, item: &PushItem) -> Result<Option<String>, Failure> {
        if item.action == ActionKind::Block {
            // SCIM groups have no active state; deleting would drop memberships.
            tracing::info!(key = %item.key.key, "SCIM groups cannot be blocked: the group is left in place at the provider");
            return Ok(item.target_id.clone());
        }
        if !item.fields.contains_key("displayName") {
            return Err(permanent(
                "the organisation has no displayName (SCIM requires one): map its label",
            ));
        }
        let known = item.target_id.clone();
        let id = match (&known, item.action) {
            (Some(id), _) => Some(id.clone()),
            (None, ActionKind::Create) => None,
            (None, _) => self.find_group(item).await?,
        };
        if let Some(id) = id {
            if self.update_group(item, &id).await? == Written::Done {
                return Ok(Some(id));
            }
            if known.is_some()
                && let Some(other) = self.find_group(item).await?.filter(|o| *o != id)
            {
                return match self.update_group(item, &other).await? {
                    Written::Done => Ok(Some(other)),
                    Written::Gone => Err(transient(format!(
                        "group {other} vanished from the provider while being updated"
                    ))),
                };
            }
        }
        let body = group_resource(&item.fields, None);
        let reply = self.call(Method::POST, "/Groups", Some(&body)).await?;
        if reply.is_success() {
            return parse_id(&reply.body)
                .map(Some)
                .map_err(|reason| transient(format!("POST /Groups: {reason}")));
        }
        if reply.status != 409 {
            return Err(failure(&reply, "POST /Groups"));
        }
        let found = match self.find_group(item).await? {
            Some(id) => Some(id),
            // A provider that keeps displayName unique: the group of that name is ours.
            None => match item.fields.get("displayName") {
                Some(name) => {
                    let found = self.find("/Groups", "displayName", name).await?;
                    single(&found, "groups", "displayName", name)?
                }
                None => None,
            },
        };
        let Some(id) = found else {
            return Err(permanent(format!(
                "the provider refuses the group as a duplicate ({}) but holds none with its externalId or displayName",
                error_text(&reply.body).unwrap_or_else(|| "HTTP 409".into())
            )));
        };
        match self.update_group(item, &id).await? {
            Written::Done => Ok(Some(id)),
            Written::Gone => Err(transient(format!(
                "group {id} vanished from the provider while being taken over"
            ))),
        }
    }

    async fn find_group(&self, item: &PushItem) -> Result<Option<String>, Failure> {
        let Some(external_id) = item.fields.get("externalId") else {
            return Ok(None);
        };
        let found = self.find("/Groups", "externalId", external_id).await?;
        single(&found, "groups", "externalId", external_id)
    }

    async fn update_group(&self, item: &PushItem, id: &str) -> Result<Written, Failure> {
        let path = format!("/Groups/{}", segment(id));
        let what = format!("/Groups/{id}");
        if self.patch_supported().await? {
            let ops = group_patch_ops(&item.fields, item.acked_fields.as_ref());
            let reply = self
                .call(Method::PATCH, &path, Some(&patch_body(ops)))
                .await?;
            return written(&reply, &format!("PATCH {what}"));
        }
        // A PUT replaces the whole group: keep the members it has.
        let current = self.call(Method::GET, &path, None).await?;
        if current.status == 404 {
            return Ok(Written::Gone);
        }
        if !current.is_success() {
            return Err(failure(&current, &format!("GET {what}")));
        }
        let existing: Value = serde_json::from_str(&current.body)
            .map_err(|error| transient(format!("GET {what}: unreadable reply ({error})")))?;
        let body = group_resource(&item.fields, existing.get("members"));
        let reply = self.call(Method::PUT, &path, Some(&body)).await?;
        written(&reply, &format!("PUT {what}"))
    }

    // ---- shared -----------------------------------------------------------

    async fn patch_supported(&self) -> Result<bool, Failure> {
        self.patch
            .get_or_try_init(|| async {
                let reply = self
                    .call(Method::GET, "/ServiceProviderConfig", None)
                    .await?;
                if reply.is_success() {
                    // A garbled reply is read again on the next attempt.
                    return parse_patch_supported(&reply.body).map_err(|reason| {
                        transient(format!("GET /ServiceProviderConfig: {reason}"))
                    });
                }
                match failure(&reply, "GET /ServiceProviderConfig") {
                    refused @ Failure::Permanent { .. } if !matches!(reply.status, 401 | 403) => {
                        // A provider without the endpoint: PUT works everywhere.
                        tracing::warn!(reason = %refused.reason(), "cannot read /ServiceProviderConfig: updating with PUT");
                        Ok(false)
                    }
                    failed => Err(failed),
                }
            })
            .await
            .copied()
    }

    /// Every resource of `endpoint` whose `attribute` equals `value`,
    /// following the pages of the ListResponse.
    async fn find(
        &self,
        endpoint: &str,
        attribute: &str,
        value: &str,
    ) -> Result<Vec<Value>, Failure> {
        let filter = encode(&eq_filter(attribute, value));
        let mut resources = Vec::new();
        let mut start = 1;
        for _ in 0..MAX_PAGES {
            let path = format!("{endpoint}?filter={filter}&startIndex={start}");
            let reply = self.call(Method::GET, &path, None).await?;
            if !reply.is_success() {
                return Err(failure(
                    &reply,
                    &format!("GET {endpoint} (filter {attribute})"),
                ));
            }
            let page = parse_list(&reply.body).map_err(|reason| {
                transient(format!("GET {endpoint} (filter {attribute}): {reason}"))
            })?;
            let next = next_start(&page, resources.len() as u64);
            resources.extend(page.resources);
            match next {
                Some(next) => start = next,
                None => break,
            }
        }
        // A provider that ignores the filter must not make us take another
        // resource. userName and a group's displayName are caseExact false
        // in RFC 7643's schemas.
        let case_exact = !matches!(attribute, "userName" | "displayName");
        resources.retain(|r| matches(r, attribute, value, case_exact));
        Ok(resources)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        tracing::trace!(%method, %path, "scim request");
        let mut request = self.http.client().request(method, self.http.url(path));
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, SCIM_JSON)
                .body(body.to_string());
        }
        self.http.send(request).await
    }
}
