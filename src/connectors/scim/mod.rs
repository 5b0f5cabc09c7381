//! `scim`: any SCIM 2.0 service provider (RFC 7643 resources, RFC 7644
//! protocol), one record per request, authenticated with
//! `Authorization: Bearer TOKEN`, bodies in `application/scim+json`.
//!
//! **Discovery first.** Before the first record, `/ServiceProviderConfig`
//! (PATCH, filters, ETags, page size), `/Schemas` and `/ResourceTypes` are
//! read once ([`schema`]). Strict providers refuse a resource that carries
//! one attribute they do not declare, so only the declared ones are sent:
//! the mapped fields the provider does not take are named once in the log
//! (and by `check --online`) and never sent; `primary` goes on a typed
//! value only where declared; what it requires and rostersync can make is
//! filled in (`name.formatted` and a required `displayName` from the
//! name's parts, `members: []` on groups). A provider without `/Schemas`
//! gets every mapped field.
//!
//! **Users.** The projection's target field names are SCIM attribute paths:
//! `userName`, `externalId`, `title`, `name.givenName` (a sub-attribute),
//! `emails.work` / `phoneNumbers.mobile` (one typed value of a multi-valued
//! attribute), `department` and the other enterprise attributes, or any
//! `urn:…:attribute` of an extension schema. `manager` holds the manager's
//! externalId; the provider wants its own id there, which is looked up
//! once per manager and remembered.
//!
//! - Before a user without a target id is created, the target's `match`
//!   rules look it up (`externalId`, `userName`, then the work address as
//!   `emails.value`, [`lookup`]): one user found is adopted and updated,
//!   several park the record as ambiguous, one another record holds (or
//!   carrying another person's externalId) is never taken ([`super::adopt`]).
//! - Create: `POST /Users`; the provider's `id` becomes the target id. A 409
//!   (a lookup that missed, or `match = []`) looks the user up by
//!   externalId, then by userName, and updates that resource instead:
//!   replaying is harmless. A user found by userName whose externalId names
//!   somebody else, or that another record holds, is not taken over (parked).
//! - Update, block, unblock: rostersync owns the mapped fields, and of a
//!   multi-valued attribute only the values of the types it maps
//!   (`emails[type eq "work"]`): a provider's other values stay. With PATCH
//!   and no ETags, a known user gets a PATCH of the differences between
//!   what the provider last confirmed and what is desired, one request.
//!   Otherwise the user is read first: PATCH of the differences from what
//!   it holds, or (without PATCH) `PUT` of what it holds with our fields
//!   merged in; with `If-Match` where the provider announces ETags, and a
//!   412 reads it again and applies the change again. Block/unblock is
//!   `active` false/true. Without a target id (a lost acknowledgement) the
//!   user is looked up first; a 404 on a known id looks it up again, then
//!   recreates. Blocking a user the provider does not hold at all sends
//!   nothing.
//! - Lookups use `filter=attribute eq "value"`; where the provider says
//!   filters are not supported, one paged scan builds an index that every
//!   lookup reads ([`index`]).
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
//!
//! The token is scrubbed from every failure reason and check message:
//! some providers repeat the request's `Authorization` header in their
//! error bodies.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue, IF_MATCH};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use crate::config::TargetConfig;
use crate::ingest::record::{Field, RecordKind};
use crate::model::{ActionKind, Candidate};
use crate::projection::{DefaultFields, Fields, Projector};
use crate::retry::Failure;
use crate::secret::Secret;

use super::adopt::{self, Adoption, Found, Holders, Nobody, Rule};
use super::http::{Http, Reply, secret_header};
use super::{
    CheckError, Connector, Outcome, Place, PushItem, PushReply, ReplyError, Settings,
    SettingsError, Verdict,
};

mod delete;
mod index;
pub mod lookup;
mod reply;
mod request;
mod schema;
#[cfg(test)]
mod tests;

pub use index::Index;
pub use reply::*;
pub use request::*;
pub use schema::*;

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

/// Writes tried at most when the resource keeps changing between our read
/// and our write (412 on each).
const WRITES: usize = 3;

/// An index older than this is scanned again when a lookup misses where
/// the provider said the resource exists (a 409).
const REINDEX_AFTER: Duration = Duration::from_secs(60);

pub struct Scim {
    http: Http,
    /// Scrubbed from every reason and log line (providers echo it).
    token: Secret,
    /// The target fields mapped for users and for organisations.
    mapped_users: Vec<String>,
    mapped_groups: Vec<String>,
    /// The target's `match` rules, with which a user the provider already
    /// holds is found before one is created.
    rules: Vec<Rule>,
    /// Boxed: the connector enum keeps every kind small.
    state: Box<State>,
}

/// What the connector learns as it runs.
struct State {
    /// What the provider says of itself; read once, before the first record.
    provider: OnceCell<Provider>,
    memory: Mutex<Memory>,
    /// Lookup indexes by endpoint, where the provider has no filters.
    indexes: tokio::sync::Mutex<HashMap<&'static str, Index>>,
    /// The drain the indexes were scanned in ([`Holders::drain`]): the
    /// next one scans again.
    drain: AtomicU64,
    /// Held while a manager is looked up, so that reports sent side by side
    /// wait for the one lookup of their manager instead of each making it.
    manager_lookup: tokio::sync::Mutex<()>,
}

/// The provider as discovery found it.
#[derive(Debug)]
struct Provider {
    features: Features,
    users: Wire,
    groups: Wire,
    /// The user fields rostersync owns there ([`Wire::owned`]).
    owned: Vec<String>,
}

/// What this connector learned while it runs (one sync, or the daemon's
/// life with this config).
#[derive(Default)]
struct Memory {
    /// externalId → provider id of the users acknowledged, and of the
    /// managers looked up (a manager is looked up once, not per report).
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

/// What became of a user at the provider.
enum Pushed {
    /// It holds it, under this id when it has one.
    Held(Option<String>),
    /// It holds several users that could be it: none was taken.
    Ambiguous(Vec<Candidate>),
}

/// A user as this provider takes it: the record, and its projection and
/// acknowledged fields trimmed to what the provider declares.
struct Want<'a> {
    item: &'a PushItem,
    fields: Fields,
    acked: Option<Fields>,
}

/// What an update is computed from.
enum Base<'a> {
    /// What the provider confirmed holding (a PATCH of the differences).
    Acked(&'a Fields),
    /// The resource as just read.
    Read(Map<String, Value>),
    /// Nothing yet: read it first.
    Unread,
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

    const MATCH_FIELDS: &'static [Field] = &[Field::ExtId, Field::Login, Field::Email];

    const DELETES: bool = true;

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
        let projector = Projector::new(Self::default_fields(), target.fields.get_ref());
        let mapped = |kind| projector.target_fields(kind).map(str::to_string).collect();
        Ok(Scim {
            http: Http::new(target, headers)?,
            token,
            mapped_users: mapped(RecordKind::Users),
            mapped_groups: mapped(RecordKind::Orgs),
            rules: adopt::rules(target, &projector, Self::MATCH_FIELDS),
            state: Box::new(State {
                provider: OnceCell::new(),
                memory: Mutex::new(Memory::default()),
                indexes: tokio::sync::Mutex::new(HashMap::new()),
                drain: AtomicU64::new(0),
                manager_lookup: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// SCIM takes one resource per request (bulk is optional in RFC 7644).
    fn batch_size(&self) -> usize {
        1
    }

    async fn push(&self, items: &[PushItem]) -> PushReply {
        self.push_with(items, &Nobody).await
    }

    async fn push_with(&self, items: &[PushItem], holders: &dyn Holders) -> PushReply {
        let drain = holders.drain();
        if self.state.drain.swap(drain, Ordering::SeqCst) != drain {
            // Accounts may have been made or removed by hand since.
            self.state.indexes.lock().await.clear();
        }
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            let pushed = match item.key.kind {
                RecordKind::Users => {
                    let pushed = self.user(item, holders).await;
                    self.remember(item, &pushed);
                    pushed
                }
                RecordKind::Orgs => self.group(item).await.map(Pushed::Held),
            };
            outcomes.push(match pushed {
                Ok(Pushed::Held(target_id)) => Outcome::Acked { target_id },
                Ok(Pushed::Ambiguous(candidates)) => Outcome::Ambiguous(candidates),
                Err(failure) => Outcome::Failed(self.scrub_failure(failure)),
            });
        }
        PushReply {
            outcomes,
            halt: None,
        }
    }

    /// Reads `/ServiceProviderConfig`, lists one user with the token, reads
    /// the schemas, and names the mapped fields the provider does not
    /// declare (never sent) and what it requires that nothing fills.
    fn refusal(&self) -> Option<crate::connectors::Refusal> {
        self.http.refusal()
    }

    async fn check(&self) -> Result<(), CheckError> {
        let scrub = |error: CheckError| match error {
            CheckError::Failed(reason) => CheckError::Failed(self.token.scrub(&reason)),
            CheckError::Refused(reason) => CheckError::Refused(self.token.scrub(&reason)),
            CheckError::Unexpected(reason) => CheckError::Unexpected(self.token.scrub(&reason)),
        };
        self.check_unscrubbed().await.map_err(scrub)
    }

    /// One record per sequence of requests: each reply is read where it is
    /// sent ([`written`], [`failure`], [`parse_list`], ...).
    type Reply = Infallible;

    fn verdict(&self, _: &[&PushItem], reply: &Infallible) -> Verdict {
        match *reply {}
    }
}

impl Scim {
    // ---- discovery --------------------------------------------------------

    async fn check_unscrubbed(&self) -> Result<(), CheckError> {
        let unexpected =
            |what: &str, reason: ReplyError| CheckError::Unexpected(format!("{what}: {reason}"));
        let reply = self
            .call(Method::GET, "/ServiceProviderConfig", None)
            .await?;
        refused_token(&reply, "GET /ServiceProviderConfig")?;
        let features = parse_features(&reply.body)
            .map_err(|reason| unexpected("GET /ServiceProviderConfig", reason))?;
        let reply = self
            .call(Method::GET, "/Users?startIndex=1&count=1", None)
            .await?;
        refused_token(&reply, "GET /Users")?;
        parse_list(&reply.body).map_err(|reason| unexpected("GET /Users", reason))?;
        let provider = self
            .state
            .provider
            .get_or_try_init(|| self.discover(Some(features)))
            .await?;
        let problems = discovery_problems(provider);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CheckError::Failed(problems.join("; ")))
        }
    }

    async fn provider(&self) -> Result<&Provider, Failure> {
        self.state
            .provider
            .get_or_try_init(|| self.discover(None))
            .await
    }

    /// Reads what the provider says of itself (`features` when already
    /// read), and says once what of the mapping it does not take.
    async fn discover(&self, features: Option<Features>) -> Result<Provider, Failure> {
        let features = match features {
            Some(features) => features,
            None => match self.read_discovery("/ServiceProviderConfig").await? {
                Some(body) => parse_features(&body).map_err(|reason| {
                    // A garbled reply is read again on the next attempt.
                    transient(format!("GET /ServiceProviderConfig: {reason}"))
                })?,
                None => Features::default(),
            },
        };
        let resources = |path: &'static str, body: String| {
            parse_resources(&body).map_err(|reason| transient(format!("GET {path}: {reason}")))
        };
        let schemas = match self.read_discovery("/Schemas").await? {
            Some(body) => Some(resources("/Schemas", body)?),
            None => None,
        };
        let types = match self.read_discovery("/ResourceTypes").await? {
            Some(body) => Some(resources("/ResourceTypes", body)?),
            None => None,
        };
        let wire = |core: &str, mapped: &[String]| {
            schemas
                .as_deref()
                .and_then(|s| ResourceSchema::of(s, types.as_deref(), core))
                .map(|schema| schema.wire(mapped))
                .unwrap_or_default()
        };
        let users = wire(USER_SCHEMA, &self.mapped_users);
        let provider = Provider {
            features,
            owned: users.owned(&self.mapped_users),
            users,
            groups: wire(GROUP_SCHEMA, &self.mapped_groups),
        };
        tracing::info!(
            patch = features.patch,
            filter = features.filter,
            etag = features.etag,
            schemas = schemas.is_some(),
            "SCIM provider discovered"
        );
        for problem in discovery_problems(&provider) {
            tracing::warn!("{problem}");
        }
        Ok(provider)
    }

    /// The body of a discovery endpoint; `None` when the provider has none
    /// (a refusal other than of the token: everything is then sent as
    /// mapped, with PUT and filters).
    async fn read_discovery(&self, path: &str) -> Result<Option<String>, Failure> {
        let reply = self.call(Method::GET, path, None).await?;
        if reply.is_success() {
            return Ok(Some(reply.body));
        }
        match failure(&reply, &format!("GET {path}")) {
            refused @ Failure::Permanent { .. } if !matches!(reply.status, 401 | 403) => {
                let reason = self.token.scrub(refused.reason());
                tracing::warn!(%reason, "the provider does not describe itself there: assuming the RFC's defaults");
                Ok(None)
            }
            failed => Err(failed),
        }
    }

    fn scrub_failure(&self, failure: Failure) -> Failure {
        failure.map_reason(|reason| self.token.scrub(reason))
    }

    // ---- users ------------------------------------------------------------

    /// Makes the provider hold the user (its provider id when it has one),
    /// adopting the one it holds already when the `match` rules find it.
    async fn user(&self, item: &PushItem, holders: &dyn Holders) -> Result<Pushed, Failure> {
        if item.action == ActionKind::Delete {
            return self.delete_user(item).await;
        }
        if item.action != ActionKind::Block && !item.fields.contains_key("userName") {
            return Err(permanent(
                "the user has no userName (SCIM requires one): map the login, or give it in the file",
            ));
        }
        let provider = self.provider().await?;
        if provider.users.no_active && !item.active {
            return Err(permanent(
                "the provider's User schema has no `active`: it cannot hold a blocked user; block it there by hand",
            ));
        }
        let want = Want {
            item,
            fields: provider.users.shape(&item.fields),
            acked: item.acked_fields.as_ref().map(|a| provider.users.shape(a)),
        };
        if let Some(id) = &item.target_id {
            if self.update_user(&want, id, true).await? == Written::Done {
                return Ok(Pushed::Held(Some(id.clone())));
            }
            // 404 on a known id: removed, or recreated under another id,
            // found again as a record without an id is.
            self.forget("/Users", id).await;
        }
        // A new record, a lost acknowledgement, or a user made at the provider.
        match self.adopt(item, holders).await? {
            Adoption::Adopt(account) => {
                tracing::info!(key = %item.key.key, id = %account.id, "the provider holds the user already: adopting it");
                match self.update_user(&want, &account.id, false).await? {
                    Written::Done => Ok(Pushed::Held(Some(account.id))),
                    Written::Gone => Err(transient(format!(
                        "user {} vanished from the provider while being adopted",
                        account.id
                    ))),
                }
            }
            Adoption::Ambiguous(candidates) => Ok(Pushed::Ambiguous(candidates)),
            Adoption::Refused(reason) => Err(permanent(reason)),
            Adoption::Create if item.action == ActionKind::Block => {
                tracing::info!(key = %item.key.key, "blocking a user the provider does not hold: nothing to send");
                Ok(Pushed::Held(None))
            }
            Adoption::Create => self
                .create_user(&want, holders)
                .await
                .map(|id| Pushed::Held(Some(id))),
        }
    }

    /// What the target's `match` rules find at the provider for the user.
    async fn adopt(&self, item: &PushItem, holders: &dyn Holders) -> Result<Adoption, Failure> {
        let mut found = Found::default();
        for rule in &self.rules {
            let Some(value) = item.fields.get(&rule.target_field).filter(|v| !v.is_empty()) else {
                continue;
            };
            let Some(attribute) = lookup::filter_attribute(&rule.target_field) else {
                continue;
            };
            let listed = self.find("/Users", &attribute, value, false).await?;
            found.add(
                rule.field,
                listed
                    .iter()
                    .filter(|resource| lookup::answers(resource, &rule.target_field, value))
                    .filter_map(lookup::account),
            );
        }
        if found.is_empty() {
            return Ok(Adoption::Create);
        }
        let mine = item.fields.get("externalId").map(String::as_str);
        adopt::decide(&item.key, mine, found, holders).await
    }

    async fn create_user(&self, want: &Want<'_>, holders: &dyn Holders) -> Result<String, Failure> {
        let item = want.item;
        let wire = &self.provider().await?.users;
        let manager = self.manager_id(item, true).await?;
        let body = user_resource(&want.fields, item.active, manager.as_deref(), wire);
        let reply = self.call(Method::POST, "/Users", Some(&body)).await?;
        if reply.is_success() {
            let id = parse_id(&reply.body).map_err(|reason| {
                // Created, but without a readable id: a replay gets a 409 and adopts it.
                transient(format!("POST /Users: {reason}"))
            })?;
            self.index_created("/Users", &id, &want.fields).await;
            // Made for this record: no other record of the drain takes it.
            if let Ok(Some(other)) = holders.claim(&item.key, &id).await {
                tracing::warn!(key = %item.key.key, %id, %other, "the provider gave a new user the id of another record's");
            }
            return Ok(id);
        }
        if reply.status != 409 {
            return Err(failure(&reply, "POST /Users"));
        }
        // The user exists: a replayed create, or one made at the provider.
        let said = || error_text(&reply.body).unwrap_or_else(|| "HTTP 409".into());
        let Some(id) = self.find_user(item, true).await? else {
            return Err(permanent(format!(
                "the provider refuses the user as a duplicate ({}) but holds no user with its externalId or userName",
                said()
            )));
        };
        let held = holders.claim(&item.key, &id).await;
        if let Some(other) = held.map_err(transient)? {
            return Err(permanent(format!(
                "the provider refuses the user as a duplicate ({}): its user {id} with that \
                 externalId or userName is {other}'s: free the login there or correct it in the \
                 file, then run `rostersync retry`",
                said()
            )));
        }
        tracing::info!(key = %item.key.key, %id, "the user exists at the provider: updating it");
        match self.update_user(want, &id, false).await? {
            Written::Done => Ok(id),
            Written::Gone => Err(transient(format!(
                "user {id} vanished from the provider while being taken over"
            ))),
        }
    }

    /// Brings the user at `id` to the desired state. With `known` (the id
    /// the provider confirmed) and PATCH without ETags: a PATCH of the
    /// differences from what was confirmed, one request. Otherwise the user
    /// is read first, and the write (PATCH of the differences from what it
    /// holds, else PUT of it with our fields merged in) carries `If-Match`
    /// where the provider announces ETags. A 412 (changed since read) reads
    /// it again; a PATCH whose value filter finds nothing (`noTarget`: the
    /// provider lost a value we set) is computed again from a read.
    async fn update_user(&self, want: &Want<'_>, id: &str, known: bool) -> Result<Written, Failure> {
        let provider = self.provider().await?;
        let features = provider.features;
        let wire = &provider.users;
        let item = want.item;
        let path = format!("/Users/{}", segment(id));
        let mut base = match &want.acked {
            Some(acked) if known && features.patch && !features.etag => Base::Acked(acked),
            _ => Base::Unread,
        };
        for _ in 0..WRITES {
            if matches!(base, Base::Unread) {
                match self.read(&path, "user").await? {
                    Some(current) => base = Base::Read(current),
                    None => return Ok(Written::Gone),
                }
            }
            let (method, body, if_match) = match &base {
                Base::Acked(acked) => {
                    let needed = manager_changed(&want.fields, acked);
                    let manager = self.manager_id(item, needed).await?;
                    let ops = user_patch_ops(&want.fields, acked, item.active, manager.as_deref(), wire);
                    (Method::PATCH, patch_body(ops), None)
                }
                Base::Read(current) => {
                    let manager = self.manager_id(item, true).await?;
                    let if_match = version(current).filter(|_| features.etag);
                    let body = if features.patch {
                        let mut desired = want.fields.clone();
                        if let Some(id) = &manager {
                            // The provider holds the manager's id: compare ids.
                            desired.insert("manager".into(), id.clone());
                        }
                        let held = view(current, &provider.owned);
                        patch_body(user_patch_ops(&desired, &held, item.active, manager.as_deref(), wire))
                    } else {
                        merged_user(current, &want.fields, &provider.owned, item.active, manager.as_deref(), wire)
                    };
                    let method = if features.patch { Method::PATCH } else { Method::PUT };
                    (method, body, if_match)
                }
                Base::Unread => continue,
            };
            let what = format!("{method} /Users/{id}");
            let reply = self.call_if(method, &path, Some(&body), if_match.as_deref()).await?;
            match reply.status {
                412 => {
                    tracing::info!(key = %item.key.key, %id, "the user changed at the provider since it was read: reading it again");
                    base = Base::Unread;
                }
                400 if matches!(base, Base::Acked(_)) && no_target(&reply.body) => {
                    tracing::info!(key = %item.key.key, %id, "the provider lost a value rostersync set: reading the user");
                    base = Base::Unread;
                }
                _ => return written(&reply, &what),
            }
        }
        Err(transient(format!(
            "/Users/{id}: the user changed at the provider between each of {WRITES} reads and writes"
        )))
    }

    /// The resource at `path` as the provider holds it; `None` on a 404.
    async fn read(&self, path: &str, what: &str) -> Result<Option<Map<String, Value>>, Failure> {
        let reply = self.call(Method::GET, path, None).await?;
        if reply.status == 404 {
            return Ok(None);
        }
        if !reply.is_success() {
            return Err(failure(&reply, &format!("GET {path}")));
        }
        match serde_json::from_str(&reply.body) {
            Ok(Value::Object(resource)) => Ok(Some(resource)),
            _ => Err(transient(format!("GET {path}: the reply is not a {what}"))),
        }
    }

    /// The provider's id of the user: by externalId, else by userName (when
    /// the resource found has no externalId of another person). `fresh`:
    /// the provider said it holds the user (a 409).
    async fn find_user(&self, item: &PushItem, fresh: bool) -> Result<Option<String>, Failure> {
        if let Some(external_id) = item.fields.get("externalId") {
            let found = self.find("/Users", "externalId", external_id, false).await?;
            if let Some(id) = single(&found, "users", "externalId", external_id)? {
                return Ok(Some(id));
            }
        }
        let Some(user_name) = item.fields.get("userName") else {
            return Ok(None);
        };
        let found = self.find("/Users", "userName", user_name, fresh).await?;
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

    /// The provider's id of the user's manager, when the user has one, the
    /// provider takes it and `needed` (the request carries it). Found once,
    /// then remembered.
    async fn manager_id(&self, item: &PushItem, needed: bool) -> Result<Option<String>, Failure> {
        if !self.provider().await?.users.shape(&item.fields).contains_key("manager") {
            return Ok(None);
        }
        let Some(manager) = item.fields.get("manager").filter(|_| needed) else {
            return Ok(None);
        };
        let known = || self.lock().ids.get(manager).cloned();
        if let Some(id) = known() {
            return Ok(Some(id));
        }
        let _one_at_a_time = self.state.manager_lookup.lock().await;
        if let Some(id) = known() {
            return Ok(Some(id));
        }
        let found = self.find("/Users", "externalId", manager, false).await?;
        if let Some(id) = single(&found, "users", "externalId", manager)? {
            self.lock().ids.insert(manager.clone(), id.clone());
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

    fn remember(&self, item: &PushItem, result: &Result<Pushed, Failure>) {
        let me = external_id(item);
        let mut memory = self.lock();
        let ended = match result {
            Ok(Pushed::Held(id)) => {
                match id {
                    Some(id) => memory.ids.insert(me.clone(), id.clone()),
                    None => memory.ids.remove(&me),
                };
                Ended::Acked
            }
            // Not at the provider, and waiting for a person: as refused.
            Ok(Pushed::Ambiguous(_)) => Ended::Permanent,
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
        self.state
            .memory
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
        let wire = &self.provider().await?.groups;
        let fields = wire.shape(&item.fields);
        let acked = item.acked_fields.as_ref().map(|a| wire.shape(a));
        let known = item.target_id.clone();
        let id = match (&known, item.action) {
            (Some(id), _) => Some(id.clone()),
            (None, ActionKind::Create) => None,
            (None, _) => self.find_group(item).await?,
        };
        if let Some(id) = id {
            if self.update_group(&fields, acked.as_ref(), &id).await? == Written::Done {
                return Ok(Some(id));
            }
            self.forget("/Groups", &id).await;
            if known.is_some()
                && let Some(other) = self.find_group(item).await?.filter(|o| *o != id)
            {
                return match self.update_group(&fields, acked.as_ref(), &other).await? {
                    Written::Done => Ok(Some(other)),
                    Written::Gone => Err(transient(format!(
                        "group {other} vanished from the provider while being updated"
                    ))),
                };
            }
        }
        // A provider that requires members takes a group with none.
        let members = wire.members.then(|| json!([]));
        let body = group_resource(&fields, members.as_ref(), wire);
        let reply = self.call(Method::POST, "/Groups", Some(&body)).await?;
        if reply.is_success() {
            let id = parse_id(&reply.body)
                .map_err(|reason| transient(format!("POST /Groups: {reason}")))?;
            self.index_created("/Groups", &id, &fields).await;
            return Ok(Some(id));
        }
        if reply.status != 409 {
            return Err(failure(&reply, "POST /Groups"));
        }
        let found = match self.find_group(item).await? {
            Some(id) => Some(id),
            // A provider that keeps displayName unique: the group of that name is ours.
            None => match item.fields.get("displayName") {
                Some(name) => {
                    let found = self.find("/Groups", "displayName", name, true).await?;
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
        match self.update_group(&fields, acked.as_ref(), &id).await? {
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
        let found = self.find("/Groups", "externalId", external_id, false).await?;
        single(&found, "groups", "externalId", external_id)
    }

    /// PATCH (replace) of the group's attributes, its members untouched; or
    /// a PUT of it with the members it has. Read first where ETags are
    /// announced, and again on a 412.
    async fn update_group(
        &self,
        fields: &Fields,
        acked: Option<&Fields>,
        id: &str,
    ) -> Result<Written, Failure> {
        let provider = self.provider().await?;
        let features = provider.features;
        let path = format!("/Groups/{}", segment(id));
        let patch = || patch_body(group_patch_ops(fields, acked));
        if features.patch && !features.etag {
            let reply = self.call(Method::PATCH, &path, Some(&patch())).await?;
            return written(&reply, &format!("PATCH /Groups/{id}"));
        }
        for _ in 0..WRITES {
            let Some(current) = self.read(&path, "group").await? else {
                return Ok(Written::Gone);
            };
            let if_match = version(&current).filter(|_| features.etag);
            let (method, body) = if features.patch {
                (Method::PATCH, patch())
            } else {
                // A PUT replaces the whole group: keep the members it has.
                let members = current.get("members").cloned();
                let members = members.or_else(|| provider.groups.members.then(|| json!([])));
                (Method::PUT, group_resource(fields, members.as_ref(), &provider.groups))
            };
            let what = format!("{method} /Groups/{id}");
            let reply = self.call_if(method, &path, Some(&body), if_match.as_deref()).await?;
            if reply.status != 412 {
                return written(&reply, &what);
            }
        }
        Err(transient(format!(
            "/Groups/{id}: the group changed at the provider between each of {WRITES} reads and writes"
        )))
    }

    // ---- lookups ----------------------------------------------------------

    /// Every resource of `endpoint` whose `attribute` equals `value`: with
    /// a filter, or from the index where the provider has no filters
    /// (`fresh`: a miss there is checked against a new scan, when the index
    /// is older than [`REINDEX_AFTER`]).
    async fn find(
        &self,
        endpoint: &'static str,
        attribute: &str,
        value: &str,
        fresh: bool,
    ) -> Result<Vec<Value>, Failure> {
        let features = self.provider().await?.features;
        if features.filter {
            return self.find_filtered(endpoint, attribute, value).await;
        }
        let mut indexes = self.state.indexes.lock().await;
        if !indexes.contains_key(endpoint) {
            indexes.insert(endpoint, self.scan(endpoint, features.max_results).await?);
        }
        let found = indexes.get(endpoint).map(|i| i.find(attribute, value));
        let old = indexes
            .get(endpoint)
            .is_some_and(|i| i.built.elapsed() > REINDEX_AFTER);
        match found {
            Some(found) if found.is_empty() && fresh && old => {
                let index = self.scan(endpoint, features.max_results).await?;
                let found = index.find(attribute, value);
                indexes.insert(endpoint, index);
                Ok(found)
            }
            found => Ok(found.unwrap_or_default()),
        }
    }

    /// One paged scan of `endpoint` into an index (pages as large as the
    /// provider's `maxResults`).
    async fn scan(&self, endpoint: &str, max_results: Option<u64>) -> Result<Index, Failure> {
        let name = if endpoint == "/Groups" { "displayName" } else { "userName" };
        let mut index = Index::new(name);
        let count = max_results.map(|n| format!("&count={n}")).unwrap_or_default();
        let (mut start, mut pages) = (1, 0);
        loop {
            // Users with their addresses: adoption looks accounts up by them.
            let emails = if endpoint == "/Users" { ",emails" } else { "" };
            let path = format!(
                "{endpoint}?startIndex={start}{count}&attributes=externalId,{name}{emails}"
            );
            let reply = self.call(Method::GET, &path, None).await?;
            if !reply.is_success() {
                return Err(failure(&reply, &format!("GET {endpoint} (scan)")));
            }
            let page = parse_list(&reply.body)
                .map_err(|reason| transient(format!("GET {endpoint} (scan): {reason}")))?;
            pages += 1;
            let next = scan_next(&page, start, index.len() as u64, pages)
                .map_err(|reason| permanent(format!("GET {endpoint} (scan): {reason}")))?;
            for resource in &page.resources {
                index.add(resource);
            }
            match next {
                Some(next) => start = next,
                None => break,
            }
        }
        tracing::info!(endpoint, resources = index.len(), pages, "the provider has no filters: lookups read one scan of it");
        Ok(index)
    }

    /// A resource just created goes into the index, if there is one.
    async fn index_created(&self, endpoint: &'static str, id: &str, fields: &Fields) {
        if let Some(index) = self.state.indexes.lock().await.get_mut(endpoint) {
            let mut resource = json!({"id": id});
            for name in ["externalId", "userName", "displayName"] {
                if let Some(value) = fields.get(name) {
                    resource[name] = json!(value);
                }
            }
            let emails: Vec<Value> = fields
                .iter()
                .filter_map(|(name, value)| match slot(name) {
                    Slot::Typed(list, kind) if list == "emails" => {
                        Some(json!({"value": value, "type": kind}))
                    }
                    _ => None,
                })
                .collect();
            if !emails.is_empty() {
                resource["emails"] = json!(emails);
            }
            index.add(&resource);
        }
    }

    /// A resource the provider no longer holds leaves the index.
    async fn forget(&self, endpoint: &'static str, id: &str) {
        if let Some(index) = self.state.indexes.lock().await.get_mut(endpoint) {
            index.forget(id);
        }
    }

    /// Every resource of `endpoint` whose `attribute` equals `value`,
    /// following the pages of the filtered ListResponse.
    async fn find_filtered(
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
        let case_exact = lookup::case_exact(attribute);
        resources.retain(|r| matches(r, attribute, value, case_exact));
        Ok(resources)
    }

    // ---- shared -----------------------------------------------------------

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        self.call_if(method, path, body, None).await
    }

    /// A request, with `If-Match` when a version is given.
    async fn call_if(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, Failure> {
        tracing::trace!(%method, %path, "scim request");
        let mut request = self.http.client().request(method, self.http.url(path));
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, SCIM_JSON)
                .body(body.to_string());
        }
        if let Some(version) = if_match {
            request = request.header(IF_MATCH, version);
        }
        self.http.send(request).await
    }
}

/// What of the mapping the provider does not take, one sentence each: the
/// start's warnings and `check --online`'s findings.
fn discovery_problems(provider: &Provider) -> Vec<String> {
    let mut problems = Vec::new();
    for (kind, wire) in [("user", &provider.users), ("organisation", &provider.groups)] {
        if !wire.dropped.is_empty() {
            let fields: Vec<&str> = wire.dropped.iter().map(String::as_str).collect();
            problems.push(format!(
                "the provider does not declare the mapped {kind} fields {}: they are not sent \
                 (say so in [target.fields] with `{} = \"\"`, or have the provider declare them)",
                fields.join(", "),
                fields[0]
            ));
        }
        if !wire.unmet.is_empty() {
            problems.push(format!(
                "the provider requires {} on every {kind}, which the mapping does not give: \
                 it refuses them until [target.fields] maps it",
                wire.unmet.join(", ")
            ));
        }
    }
    if provider.users.no_active {
        problems.push(
            "the provider's User schema has no `active`: blocks cannot be sent there".to_string(),
        );
    }
    problems
}

/// A resource's version (`meta.version`, its ETag).
fn version(resource: &Map<String, Value>) -> Option<String> {
    resource
        .get("meta")
        .and_then(|m| m.get("version"))
        .and_then(Value::as_str)
        .map(str::to_string)
}
