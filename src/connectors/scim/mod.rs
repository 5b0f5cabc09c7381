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
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use crate::config::TargetConfig;
use crate::ingest::record::{Field, RecordKind};
use crate::model::Candidate;
use crate::projection::{DefaultFields, Fields, Projector};
use crate::retry::Failure;
use crate::secret::Secret;

use super::adopt::{self, Holders, Nobody, Rule};
use super::http::{Http, Reply, secret_header};
use super::{
    CheckError, Connector, Outcome, Place, PushItem, PushReply, ReplyError, Settings,
    SettingsError, Verdict,
};

mod delete;
mod find;
mod group;
mod index;
pub mod lookup;
mod reply;
mod request;
mod schema;
mod user;
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
