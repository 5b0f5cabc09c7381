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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::SystemTime;

use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use crate::config::TargetConfig;
use crate::ingest::record::{Field, RecordKind};
use crate::model::ActionKind;
use crate::projection::{DefaultFields, Fields};
use crate::retry::{self, Failure};

use super::http::{Http, Reply, secret_header};
use super::{Connector, Outcome, Place, PushItem, PushReply, Settings, Verdict};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SCIM_JSON: &str = "application/scim+json";

/// Multi-valued attributes whose values carry a `type` (RFC 7643 §4.1.2).
const TYPED_LISTS: &[&str] = &[
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
const ENTERPRISE_ATTRIBUTES: &[&str] = &[
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

    fn from_config(target: &TargetConfig) -> Result<Scim, String> {
        let token = target
            .token_source()
            .ok_or("a scim target needs a token (token_env, token_file or token_credential)")?
            .load()
            .map_err(|error| error.to_string())?;
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
    async fn check(&self) -> Result<(), String> {
        let reply = self
            .call(Method::GET, "/ServiceProviderConfig", None)
            .await
            .map_err(|failure| failure.reason().to_string())?;
        refused_token(&reply, "GET /ServiceProviderConfig")?;
        let patch = parse_patch_supported(&reply.body)
            .map_err(|reason| format!("GET /ServiceProviderConfig: {reason}"))?;
        let _ = self.patch.set(patch);
        let reply = self
            .call(Method::GET, "/Users?startIndex=1&count=1", None)
            .await
            .map_err(|failure| failure.reason().to_string())?;
        refused_token(&reply, "GET /Users")?;
        parse_list(&reply.body).map_err(|reason| format!("GET /Users: {reason}"))?;
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Done,
    /// 404: the provider holds no resource with that id.
    Gone,
}

fn written(reply: &Reply, what: &str) -> Result<Written, Failure> {
    match reply.status {
        404 => Ok(Written::Gone),
        _ if reply.is_success() => Ok(Written::Done),
        _ => Err(failure(reply, what)),
    }
}

fn refused_token(reply: &Reply, what: &str) -> Result<(), String> {
    match reply.status {
        401 | 403 => Err(format!(
            "{what}: the token was refused (HTTP {}): check the target's token",
            reply.status
        )),
        _ if reply.is_success() => Ok(()),
        _ => Err(format!("{what}: {}", failure(reply, what).reason())),
    }
}

fn external_id(item: &PushItem) -> String {
    item.fields
        .get("externalId")
        .cloned()
        .unwrap_or_else(|| item.key.key.clone())
}

fn permanent(reason: impl Into<String>) -> Failure {
    Failure::Permanent {
        reason: reason.into(),
    }
}

fn transient(reason: impl Into<String>) -> Failure {
    Failure::Transient {
        reason: reason.into(),
        retry_after: None,
    }
}

/// A non-success reply as a failure, with the SCIM error's `detail` when it
/// has one; the reason names the request.
pub fn failure(reply: &Reply, what: &str) -> Failure {
    let text = error_text(&reply.body).unwrap_or_else(|| reply.body.clone());
    match retry::classify_status(
        reply.status,
        reply.retry_after.as_deref(),
        &text,
        SystemTime::now(),
    ) {
        Failure::Transient {
            reason,
            retry_after,
        } => Failure::Transient {
            reason: format!("{what}: {reason}"),
            retry_after,
        },
        Failure::Permanent { reason } => Failure::Permanent {
            reason: format!("{what}: {reason}"),
        },
    }
}

// ---- pure: resources, operations, filters, replies -------------------------

/// Where a projected field goes in a SCIM resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    /// A top-level attribute (`userName`, `title`).
    Simple(String),
    /// A sub-attribute of a complex attribute (`name.givenName`).
    Sub(String, String),
    /// The value of one `type` of a multi-valued attribute (`emails.work`).
    Typed(String, String),
    /// An attribute of an extension schema (`department` → enterprise).
    Extension(String, String),
    /// The enterprise manager: an externalId, sent as the provider's id.
    Manager,
}

impl Slot {
    /// The attribute path of a PATCH operation (RFC 7644 §3.5.2).
    fn path(&self) -> String {
        match self {
            Slot::Simple(name) => name.clone(),
            Slot::Sub(name, sub) => format!("{name}.{sub}"),
            Slot::Typed(name, _) => name.clone(),
            Slot::Extension(urn, name) => format!("{urn}:{name}"),
            Slot::Manager => format!("{ENTERPRISE_SCHEMA}:manager"),
        }
    }
}

pub fn slot(field: &str) -> Slot {
    if field.starts_with("urn:")
        && let Some((urn, name)) = field.rsplit_once(':')
    {
        return match urn {
            USER_SCHEMA | GROUP_SCHEMA => slot(name),
            ENTERPRISE_SCHEMA if name == "manager" => Slot::Manager,
            _ => Slot::Extension(urn.to_string(), name.to_string()),
        };
    }
    if field == "manager" {
        return Slot::Manager;
    }
    if ENTERPRISE_ATTRIBUTES.contains(&field) {
        return Slot::Extension(ENTERPRISE_SCHEMA.into(), field.into());
    }
    match field.split_once('.') {
        Some((name, kind)) if TYPED_LISTS.contains(&name) => Slot::Typed(name.into(), kind.into()),
        Some((name, sub)) => Slot::Sub(name.into(), sub.into()),
        None => Slot::Simple(field.into()),
    }
}

/// The values of one typed multi-valued attribute, `work` first and primary
/// (else the first one).
fn typed_values(fields: &Fields, attribute: &str) -> Vec<Value> {
    let mut values: Vec<(&str, &str)> = fields
        .iter()
        .filter_map(|(field, value)| match slot(field) {
            Slot::Typed(name, _) if name == attribute => {
                Some((field.split_once('.').map_or("", |(_, t)| t), value.as_str()))
            }
            _ => None,
        })
        .collect();
    values.sort_by_key(|(kind, _)| *kind != "work");
    values
        .iter()
        .enumerate()
        .map(|(i, (kind, value))| json!({"value": value, "type": kind, "primary": i == 0}))
        .collect()
}

/// The full user resource for POST and PUT. `manager_id` is the provider's
/// id of the manager (left out when `None`).
pub fn user_resource(fields: &Fields, active: bool, manager_id: Option<&str>) -> Value {
    let mut resource = resource_of(fields, USER_SCHEMA, manager_id);
    resource.insert("active".into(), Value::Bool(active));
    Value::Object(resource)
}

/// The group resource for POST and PUT, with `members` kept as given.
pub fn group_resource(fields: &Fields, members: Option<&Value>) -> Value {
    let mut resource = resource_of(fields, GROUP_SCHEMA, None);
    if let Some(members) = members {
        resource.insert("members".into(), members.clone());
    }
    Value::Object(resource)
}

fn resource_of(fields: &Fields, schema: &str, manager_id: Option<&str>) -> Map<String, Value> {
    let mut resource = Map::new();
    let mut schemas = BTreeSet::new();
    let mut extensions: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for (field, value) in fields {
        match slot(field) {
            Slot::Simple(name) => {
                resource.insert(name, Value::String(value.clone()));
            }
            Slot::Sub(name, sub) => {
                if let Value::Object(complex) = resource
                    .entry(name)
                    .or_insert_with(|| Value::Object(Map::new()))
                {
                    complex.insert(sub, Value::String(value.clone()));
                }
            }
            Slot::Typed(name, _) => {
                let values = typed_values(fields, &name);
                resource.insert(name, Value::Array(values));
            }
            Slot::Extension(urn, name) => {
                extensions
                    .entry(urn)
                    .or_default()
                    .insert(name, Value::String(value.clone()));
            }
            Slot::Manager => {
                if let Some(id) = manager_id {
                    extensions
                        .entry(ENTERPRISE_SCHEMA.into())
                        .or_default()
                        .insert("manager".into(), json!({ "value": id }));
                }
            }
        }
    }
    for (urn, attributes) in extensions {
        schemas.insert(urn.clone());
        resource.insert(urn, Value::Object(attributes));
    }
    let mut all = vec![Value::String(schema.into())];
    all.extend(schemas.into_iter().map(Value::String));
    resource.insert("schemas".into(), Value::Array(all));
    resource
}

/// Whether an update must carry the manager (it changed to a new one).
pub fn manager_changed(desired: &Fields, acked: &Fields) -> bool {
    desired.get("manager").is_some() && desired.get("manager") != acked.get("manager")
}

/// PATCH operations taking a user from `acked` to `desired`: `replace` for
/// what changed, `remove` for what is gone, whole typed lists replaced, and
/// `active` always. `manager_id` is needed when the manager changed.
pub fn user_patch_ops(
    desired: &Fields,
    acked: &Fields,
    active: bool,
    manager_id: Option<&str>,
) -> Vec<Value> {
    let mut ops = Vec::new();
    let changed: BTreeSet<&String> = desired
        .keys()
        .chain(acked.keys())
        .filter(|field| desired.get(*field) != acked.get(*field))
        .collect();
    let mut lists = BTreeSet::new();
    for field in changed {
        let slot = slot(field);
        let value = match (&slot, desired.get(field)) {
            (Slot::Typed(name, _), _) => {
                lists.insert(name.clone());
                continue;
            }
            (_, None) => None,
            (Slot::Manager, Some(_)) => manager_id.map(|id| json!({ "value": id })),
            (_, Some(value)) => Some(Value::String(value.clone())),
        };
        ops.push(operation(&slot.path(), value));
    }
    for name in lists {
        let values = typed_values(desired, &name);
        let value = (!values.is_empty()).then_some(Value::Array(values));
        ops.push(operation(&name, value));
    }
    ops.push(json!({"op": "replace", "path": "active", "value": active}));
    ops
}

/// PATCH operations for a group: every desired attribute replaced (the
/// members untouched), and what the provider confirmed but is gone removed.
pub fn group_patch_ops(desired: &Fields, acked: Option<&Fields>) -> Vec<Value> {
    let mut ops: Vec<Value> = desired
        .iter()
        .map(|(field, value)| operation(&slot(field).path(), Some(Value::String(value.clone()))))
        .collect();
    for field in acked.into_iter().flat_map(|a| a.keys()) {
        if !desired.contains_key(field) {
            ops.push(operation(&slot(field).path(), None));
        }
    }
    ops
}

fn operation(path: &str, value: Option<Value>) -> Value {
    match value {
        Some(value) => json!({"op": "replace", "path": path, "value": value}),
        None => json!({"op": "remove", "path": path}),
    }
}

pub fn patch_body(operations: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": operations})
}

/// `attribute eq "value"`: the value as a JSON string (RFC 7644 §3.4.2.2),
/// so that quotes and backslashes are escaped.
pub fn eq_filter(attribute: &str, value: &str) -> String {
    format!("{attribute} eq {}", Value::String(value.to_string()))
}

/// Percent-encodes a query value or path segment (spaces as `%20`, which
/// every server reads, unlike `+`).
pub fn encode(text: &str) -> String {
    // byte_serialize writes a space as `+` and a `+` as `%2B`.
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn segment(id: &str) -> String {
    encode(id)
}

/// One page of a SCIM ListResponse (RFC 7644 §3.4.2).
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub total: u64,
    pub start: u64,
    pub per_page: u64,
    pub resources: Vec<Value>,
}

pub fn parse_list(body: &str) -> Result<ListPage, String> {
    let value: Value = serde_json::from_str(body)
        .map_err(|error| format!("not a SCIM ListResponse: unreadable reply ({error})"))?;
    let number = |name: &str| {
        value.get(name).and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
    };
    let total =
        number("totalResults").ok_or("not a SCIM ListResponse: the reply has no totalResults")?;
    let resources = match value.get("Resources") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(resources)) => resources.clone(),
        Some(_) => return Err("not a SCIM ListResponse: Resources is not a list".into()),
    };
    Ok(ListPage {
        total,
        start: number("startIndex").unwrap_or(1).max(1),
        per_page: number("itemsPerPage").unwrap_or(resources.len() as u64),
        resources,
    })
}

/// The `startIndex` of the next page, if there is one; `seen` counts the
/// resources of the pages before this one.
pub fn next_start(page: &ListPage, seen: u64) -> Option<u64> {
    let got = page.resources.len() as u64;
    (got > 0 && seen + got < page.total).then_some(page.start + got)
}

/// Whether a resource's attribute equals `value` (`case_exact` false for
/// userName and displayName, RFC 7643 §4.1.1 and §8.7.1).
pub fn matches(resource: &Value, attribute: &str, value: &str, case_exact: bool) -> bool {
    let Some(found) = resource
        .as_object()
        .and_then(|o| {
            o.iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
        })
        .and_then(|(_, v)| v.as_str())
    else {
        return false;
    };
    if case_exact {
        found == value
    } else {
        found.to_lowercase() == value.to_lowercase()
    }
}

/// The id of the only resource found; none; or a refusal when several match.
fn single(
    found: &[Value],
    what: &str,
    attribute: &str,
    value: &str,
) -> Result<Option<String>, Failure> {
    match found {
        [] => Ok(None),
        [one] => one
            .get("id")
            .and_then(Value::as_str)
            .map(|id| Some(id.to_string()))
            .ok_or_else(|| transient(format!("the provider listed {what} without an id"))),
        many => Err(permanent(format!(
            "{} {what} at the provider have {attribute} {value:?}: merge them there",
            many.len()
        ))),
    }
}

/// The `id` of a created resource.
pub fn parse_id(body: &str) -> Result<String, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|error| format!("unreadable reply ({error})"))?;
    value
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "the reply has no id".into())
}

/// Whether `/ServiceProviderConfig` announces PATCH.
pub fn parse_patch_supported(body: &str) -> Result<bool, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|error| format!("unreadable reply ({error})"))?;
    if !value.is_object() {
        return Err("the reply is not a ServiceProviderConfig".into());
    }
    Ok(value
        .pointer("/patch/supported")
        .and_then(Value::as_bool)
        .unwrap_or(false))
}

/// A SCIM error's `scimType` and `detail` (RFC 7644 §3.12), when the body is one.
pub fn error_text(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let detail = value.get("detail").and_then(Value::as_str);
    let kind = value.get("scimType").and_then(Value::as_str);
    match (kind, detail) {
        (Some(kind), Some(detail)) => Some(format!("{detail} ({kind})")),
        (None, Some(detail)) => Some(detail.to_string()),
        (Some(kind), None) => Some(kind.to_string()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn field_names_are_attribute_paths() {
        assert_eq!(slot("userName"), Slot::Simple("userName".into()));
        assert_eq!(
            slot("name.givenName"),
            Slot::Sub("name".into(), "givenName".into())
        );
        assert_eq!(
            slot("emails.work"),
            Slot::Typed("emails".into(), "work".into())
        );
        assert_eq!(
            slot("department"),
            Slot::Extension(ENTERPRISE_SCHEMA.into(), "department".into())
        );
        assert_eq!(slot("manager"), Slot::Manager);
        assert_eq!(slot(&format!("{ENTERPRISE_SCHEMA}:manager")), Slot::Manager);
        assert_eq!(
            slot(&format!("{USER_SCHEMA}:nickName")),
            Slot::Simple("nickName".into())
        );
        assert_eq!(
            slot("urn:example:params:scim:schemas:extension:acme:2.0:User:badge"),
            Slot::Extension(
                "urn:example:params:scim:schemas:extension:acme:2.0:User".into(),
                "badge".into()
            )
        );
    }

    #[test]
    fn a_user_resource_holds_the_core_and_enterprise_attributes() {
        let user = user_resource(
            &fields(&[
                ("userName", "ana"),
                ("externalId", "E1"),
                ("name.givenName", "Ana"),
                ("name.familyName", "Alves"),
                ("emails.work", "ana@x.fr"),
                ("phoneNumbers.mobile", "+33 6"),
                ("phoneNumbers.work", "+33 1"),
                ("title", "Engineer"),
                ("department", "R&D"),
                ("manager", "E9"),
            ]),
            true,
            Some("id-9"),
        );
        assert_eq!(
            user,
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
                "userName": "ana",
                "externalId": "E1",
                "name": {"givenName": "Ana", "familyName": "Alves"},
                "emails": [{"value": "ana@x.fr", "type": "work", "primary": true}],
                "phoneNumbers": [
                    {"value": "+33 1", "type": "work", "primary": true},
                    {"value": "+33 6", "type": "mobile", "primary": false}
                ],
                "title": "Engineer",
                "active": true,
                ENTERPRISE_SCHEMA: {"department": "R&D", "manager": {"value": "id-9"}}
            })
        );
        // Without a manager id, no manager; the extension stays for department.
        let user = user_resource(
            &fields(&[("userName", "ana"), ("manager", "E9")]),
            false,
            None,
        );
        assert_eq!(
            user,
            json!({"schemas": [USER_SCHEMA], "userName": "ana", "active": false})
        );
    }

    #[test]
    fn patch_operations_carry_only_the_differences_and_active() {
        let acked = fields(&[
            ("userName", "ana"),
            ("name.givenName", "Ana"),
            ("name.middleName", "Maria"),
            ("emails.work", "ana@x.fr"),
            ("department", "Sales"),
            ("manager", "E9"),
        ]);
        let desired = fields(&[
            ("userName", "ana"),
            ("name.givenName", "Anna"),
            ("emails.work", "anna@x.fr"),
            ("phoneNumbers.work", "+33 1"),
            ("department", "R&D"),
            ("manager", "E8"),
        ]);
        assert!(manager_changed(&desired, &acked));
        assert_eq!(
            user_patch_ops(&desired, &acked, true, Some("id-8")),
            vec![
                json!({"op": "replace", "path": format!("{ENTERPRISE_SCHEMA}:department"), "value": "R&D"}),
                json!({"op": "replace", "path": format!("{ENTERPRISE_SCHEMA}:manager"), "value": {"value": "id-8"}}),
                json!({"op": "replace", "path": "name.givenName", "value": "Anna"}),
                json!({"op": "remove", "path": "name.middleName"}),
                json!({"op": "replace", "path": "emails", "value": [{"value": "anna@x.fr", "type": "work", "primary": true}]}),
                json!({"op": "replace", "path": "phoneNumbers", "value": [{"value": "+33 1", "type": "work", "primary": true}]}),
                json!({"op": "replace", "path": "active", "value": true}),
            ]
        );
        // A block of an unchanged user is one operation; a lost e-mail removes the list.
        assert_eq!(
            user_patch_ops(&acked, &acked, false, None),
            vec![json!({"op": "replace", "path": "active", "value": false})]
        );
        let mut without_email = acked.clone();
        without_email.remove("emails.work");
        without_email.remove("manager");
        assert!(!manager_changed(&without_email, &acked));
        assert_eq!(
            user_patch_ops(&without_email, &acked, true, None),
            vec![
                json!({"op": "remove", "path": format!("{ENTERPRISE_SCHEMA}:manager")}),
                json!({"op": "remove", "path": "emails"}),
                json!({"op": "replace", "path": "active", "value": true}),
            ]
        );
        assert_eq!(
            patch_body(vec![]),
            json!({"schemas": [PATCH_SCHEMA], "Operations": []})
        );
    }

    #[test]
    fn groups_are_replaced_whole_and_keep_their_members() {
        let desired = fields(&[("externalId", "O1"), ("displayName", "Sales")]);
        let members = json!([{"value": "u1"}]);
        assert_eq!(
            group_resource(&desired, Some(&members)),
            json!({"schemas": [GROUP_SCHEMA], "externalId": "O1", "displayName": "Sales", "members": [{"value": "u1"}]})
        );
        let acked = fields(&[("externalId", "O1"), ("displayName", "Ventes"), ("x", "y")]);
        assert_eq!(
            group_patch_ops(&desired, Some(&acked)),
            vec![
                json!({"op": "replace", "path": "displayName", "value": "Sales"}),
                json!({"op": "replace", "path": "externalId", "value": "O1"}),
                json!({"op": "remove", "path": "x"}),
            ]
        );
    }

    #[test]
    fn filters_escape_and_encode_their_value() {
        assert_eq!(eq_filter("externalId", "E1"), r#"externalId eq "E1""#);
        assert_eq!(
            eq_filter("userName", r#"o"neil\x"#),
            r#"userName eq "o\"neil\\x""#
        );
        assert_eq!(
            encode(r#"userName eq "a+b é&c""#),
            "userName%20eq%20%22a%2Bb%20%C3%A9%26c%22"
        );
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn list_responses_are_read_and_paged() {
        let page = parse_list(
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults":3,"startIndex":1,"itemsPerPage":2,
                "Resources":[{"id":"a"},{"id":"b"}]}"#,
        )
        .unwrap();
        assert_eq!(page.total, 3);
        assert_eq!(page.per_page, 2);
        assert_eq!(next_start(&page, 0), Some(3));
        let last =
            parse_list(r#"{"totalResults":3,"startIndex":3,"Resources":[{"id":"c"}]}"#).unwrap();
        assert_eq!(next_start(&last, 2), None);
        // No Resources at all when nothing matches.
        let empty = parse_list(r#"{"totalResults":0}"#).unwrap();
        assert!(empty.resources.is_empty());
        assert_eq!(next_start(&empty, 0), None);
        // A page that lies about the total does not loop.
        let short = parse_list(r#"{"totalResults":5,"Resources":[]}"#).unwrap();
        assert_eq!(next_start(&short, 0), None);
        assert!(parse_list("<html>").is_err());
        assert!(parse_list(r#"{"Resources":[]}"#).is_err());
    }

    #[test]
    fn found_resources_are_checked_and_user_names_compared_without_case() {
        let ana = json!({"id": "1", "userName": "Ana", "externalId": "E1"});
        assert!(matches(&ana, "userName", "ana", false));
        assert!(!matches(&ana, "externalId", "e1", true));
        assert!(matches(&ana, "externalid", "E1", true));
        assert_eq!(
            single(std::slice::from_ref(&ana), "users", "externalId", "E1").unwrap(),
            Some("1".into())
        );
        assert_eq!(single(&[], "users", "externalId", "E1").unwrap(), None);
        assert!(matches!(
            single(&[ana.clone(), ana], "users", "externalId", "E1"),
            Err(Failure::Permanent { .. })
        ));
    }

    #[test]
    fn replies_are_read() {
        assert_eq!(parse_id(r#"{"id":"2819c223"}"#).unwrap(), "2819c223");
        assert!(parse_id(r#"{"id":""}"#).is_err());
        assert!(parse_id("{").is_err());
        assert!(parse_patch_supported(r#"{"patch":{"supported":true}}"#).unwrap());
        assert!(!parse_patch_supported(r#"{"patch":{"supported":false}}"#).unwrap());
        assert!(!parse_patch_supported(r#"{"bulk":{}}"#).unwrap());
        assert!(parse_patch_supported("[]").is_err());
        assert_eq!(
            error_text(
                r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"scimType":"uniqueness","detail":"userName taken","status":"409"}"#
            )
            .as_deref(),
            Some("userName taken (uniqueness)")
        );
        assert_eq!(error_text("oops"), None);
        let reply = Reply {
            status: 400,
            body: r#"{"detail":"bad email","status":"400"}"#.into(),
            retry_after: None,
        };
        assert_eq!(
            failure(&reply, "POST /Users"),
            Failure::Permanent {
                reason: "POST /Users: HTTP 400: bad email".into()
            }
        );
        let busy = Reply {
            status: 429,
            body: String::new(),
            retry_after: Some("3".into()),
        };
        assert!(matches!(
            failure(&busy, "GET /Users"),
            Failure::Transient {
                retry_after: Some(d),
                ..
            } if d.as_secs() == 3
        ));
    }
}
