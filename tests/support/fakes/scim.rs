//! A fake SCIM 2.0 service provider (RFC 7643 / 7644): the bearer token,
//! `/ServiceProviderConfig` (PATCH, filters and ETags announced or not),
//! `/Schemas` and `/ResourceTypes`, `/Users` and `/Groups` with `eq` filters
//! on an attribute or a sub-attribute path (`emails.value`: any of the
//! values; userName, displayName and addresses compared without case, as
//! the RFC's schemas say; 501 when filters are not announced), paging (`startIndex`, `count`,
//! capped by `max_results`), creation with 409 on a taken userName or
//! displayName, GET/PUT/PATCH/DELETE by id with 404 for unknown ids, PATCH paths
//! with a value filter (`emails[type eq "work"].value`) that touch only the
//! values they select, versions with `If-Match` (412 when stale), SCIM error
//! bodies, and the faults of [`Faults`]. It checks what a strict provider
//! would: the schemas listed for every extension used, a manager that is a
//! user id it holds, and in `strict` mode the attributes its `/Schemas`
//! declare and require ([`schema`]).
// The handlers' errors are the HTTP answers themselves.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::kernel::admit;
use super::{Admitted, Kernel, Refusal, Server, header};

pub mod schema;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

pub struct Provider {
    /// id → resource, as the provider holds them.
    pub users: BTreeMap<String, Map<String, Value>>,
    pub groups: BTreeMap<String, Map<String, Value>>,
    /// What `/ServiceProviderConfig` announces; PATCH answers 501 without it.
    pub patch_supported: bool,
    /// The most resources one page holds.
    pub max_results: usize,
    /// Answer every filtered list with all resources (a provider that
    /// ignores filters: clients must page and check what they get).
    pub ignore_filter: bool,
    /// userNames refused with a 400 (a provider's own policy).
    pub refused_user_names: Vec<String>,
    /// What `/Schemas` serves, and what `strict` holds resources to.
    pub schemas: Vec<Value>,
    /// What `/ResourceTypes` serves: which extensions a User may carry.
    pub resource_types: Vec<Value>,
    /// Refuse the attributes the schemas do not declare, and require what
    /// they mark required (400, as real strict providers answer).
    pub strict: bool,
    /// What `/ServiceProviderConfig` announces for filters; without, a
    /// filtered list answers 501.
    pub filter_supported: bool,
    /// Versions on every resource (`meta.version`, `ETag`), `If-Match`
    /// checked on PUT and PATCH: 412 when it is not the current version.
    pub etag_supported: bool,
    /// The next N writes (PUT, PATCH) of a user find it changed by an
    /// administrator a moment before (`nickName` set, version moved on).
    pub edits_by_hand: u32,
    /// Writes refused with a 412 so far.
    pub stale_writes: u64,
    /// Error bodies repeat the `Authorization` header received, as some
    /// providers' error pages do.
    pub echo_authorization: bool,
    /// `POST /Users` received, and users created, by userName: a replayed
    /// create is looked up and adopted, never posted again.
    pub create_requests: BTreeMap<String, u64>,
    pub created: BTreeMap<String, u64>,
    /// Writes (PUT, PATCH) of a user that changed nothing: replays.
    pub unchanged_writes: u64,
    /// Users written (created, PUT, PATCH), and the externalId of the last.
    pub writes: u64,
    pub last_written: Option<String>,
    /// Requests begun and finished (answered, or dropped with their
    /// connection): the difference is what is in flight.
    pub begun: u64,
    pub finished: u64,
    /// The externalIds of the users deleted (`DELETE /Users/{id}`), in order.
    pub deleted: Vec<String>,
    /// The bearer token requests must present.
    token: String,
    next_id: u64,
    /// The last version given (one counter for every resource, as real
    /// providers do).
    version: u64,
}

impl Provider {
    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{:04}", self.next_id)
    }

    fn next_version(&mut self) -> String {
        self.version += 1;
        format!("W/\"{}\"", self.version)
    }

    /// Holds a strict provider's schemas: a trimmed User (no
    /// `name.honorificPrefix`, no `emails[].primary`, `name.formatted`
    /// required), the enterprise extension without `manager`, Groups that
    /// require `members`.
    pub fn make_strict(&mut self) {
        self.strict = true;
        self.schemas = vec![
            schema::strict_user_schema(),
            schema::enterprise_schema(false),
            schema::group_schema(true),
        ];
        self.resource_types = schema::resource_types(true);
    }
}

/// A user as the tests compare them: the manager by its externalId (from
/// the id the provider holds), `dangling:ID` when no user has that id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub external_id: String,
    pub given: String,
    pub family: String,
    pub email: String,
    pub title: String,
    pub department: String,
    pub manager: String,
    pub active: bool,
}

/// The provider; its requests are counted per "METHOD /Resource" (a read
/// by id as "GET /Resource/id").
pub type Fake = Server<Provider>;

type Shared = Arc<Kernel<Provider>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Users,
    Groups,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Users => "Users",
            Kind::Groups => "Groups",
        }
    }
    fn schema(self) -> &'static str {
        match self {
            Kind::Users => USER_SCHEMA,
            Kind::Groups => GROUP_SCHEMA,
        }
    }
    /// The attribute the provider keeps unique (compared without case).
    fn unique(self) -> &'static str {
        match self {
            Kind::Users => "userName",
            Kind::Groups => "displayName",
        }
    }
    fn store(self, provider: &mut Provider) -> &mut BTreeMap<String, Map<String, Value>> {
        match self {
            Kind::Users => &mut provider.users,
            Kind::Groups => &mut provider.groups,
        }
    }
}

/// How the provider words the kernel's refusals: SCIM error bodies.
fn refusal(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unauthorised => error(StatusCode::UNAUTHORIZED, None, "invalid bearer token"),
        Refusal::TooManyRequests => error(StatusCode::TOO_MANY_REQUESTS, None, "slow down"),
        Refusal::Unavailable => error(StatusCode::SERVICE_UNAVAILABLE, None, "maintenance"),
    }
}

impl Fake {
    /// A lenient provider: every RFC 7643 attribute declared, anything taken.
    pub fn start(token: &str, patch_supported: bool) -> Fake {
        let provider = Provider {
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            patch_supported,
            max_results: 50,
            ignore_filter: false,
            refused_user_names: Vec::new(),
            schemas: vec![
                schema::user_schema(),
                schema::enterprise_schema(true),
                schema::group_schema(false),
            ],
            resource_types: schema::resource_types(true),
            strict: false,
            filter_supported: true,
            etag_supported: false,
            edits_by_hand: 0,
            stale_writes: 0,
            echo_authorization: false,
            create_requests: BTreeMap::new(),
            created: BTreeMap::new(),
            unchanged_writes: 0,
            writes: 0,
            last_written: None,
            begun: 0,
            finished: 0,
            deleted: Vec::new(),
            token: format!("Bearer {token}"),
            next_id: 0,
            version: 0,
        };
        // The token is checked here (`admitted!`), so that a refusal can
        // repeat what was presented when `echo_authorization` says so.
        let kernel = Kernel::new(provider, None, refusal);
        Server::launch(kernel, |kernel| {
            Router::new()
                .route("/ServiceProviderConfig", get(config))
                .route("/Schemas", get(schemas))
                .route("/ResourceTypes", get(resource_types))
                .route("/Users", get(list_users).post(create_user))
                .route(
                    "/Users/{id}",
                    get(get_user)
                        .put(put_user)
                        .patch(patch_user)
                        .delete(delete_user),
                )
                .route("/Groups", get(list_groups).post(create_group))
                .route(
                    "/Groups/{id}",
                    get(get_group).put(put_group).patch(patch_group),
                )
                .layer(axum::middleware::from_fn_with_state(
                    Arc::clone(&kernel),
                    in_flight,
                ))
                .with_state(kernel)
        })
    }

    /// Requests begun and not finished yet.
    pub fn in_flight(&self) -> u64 {
        self.with(|p| p.begun - p.finished)
    }

    /// A provider as strict as real ones ([`Provider::make_strict`]).
    pub fn strict(token: &str, patch_supported: bool) -> Fake {
        let fake = Fake::start(token, patch_supported);
        fake.with(|p| p.make_strict());
        fake
    }

    /// Puts a user in the provider as an administrator would; returns its id.
    pub fn add_user(&self, mut resource: Map<String, Value>) -> String {
        self.with(|p| {
            let id = p.new_id("u");
            stamp(Kind::Users, p, &mut resource, &id);
            p.users.insert(id.clone(), resource);
            id
        })
    }

    /// The user whose userName is `user_name`, as the provider holds it.
    pub fn user(&self, user_name: &str) -> Option<Map<String, Value>> {
        self.with(|p| {
            p.users
                .values()
                .find(|u| text(u.get("userName")).eq_ignore_ascii_case(user_name))
                .cloned()
        })
    }

    /// Every user by userName, with the manager wiring resolved.
    pub fn directory(&self) -> BTreeMap<String, User> {
        self.with(|p| {
            let external_of: HashMap<&str, &str> = p
                .users
                .iter()
                .map(|(id, u)| (id.as_str(), text(u.get("externalId"))))
                .collect();
            p.users
                .values()
                .map(|u| {
                    let name = u.get("name");
                    let enterprise = u.get(ENTERPRISE);
                    let manager = enterprise
                        .and_then(|e| e.get("manager"))
                        .and_then(|m| m.get("value"))
                        .and_then(Value::as_str)
                        .map(|id| match external_of.get(id) {
                            Some(external) => external.to_string(),
                            None => format!("dangling:{id}"),
                        })
                        .unwrap_or_default();
                    // The work address (what rostersync maps), else the
                    // primary one, else the first.
                    let email = u
                        .get("emails")
                        .and_then(Value::as_array)
                        .and_then(|list| {
                            list.iter()
                                .find(|e| e.get("type") == Some(&json!("work")))
                                .or_else(|| {
                                    list.iter().find(|e| e.get("primary") == Some(&json!(true)))
                                })
                                .or(list.first())
                        })
                        .and_then(|e| e.get("value"));
                    (
                        text(u.get("userName")).to_string(),
                        User {
                            external_id: text(u.get("externalId")).into(),
                            given: text(name.and_then(|n| n.get("givenName"))).into(),
                            family: text(name.and_then(|n| n.get("familyName"))).into(),
                            email: text(email).into(),
                            title: text(u.get("title")).into(),
                            department: text(enterprise.and_then(|e| e.get("department"))).into(),
                            manager,
                            active: u.get("active") == Some(&json!(true)),
                        },
                    )
                })
                .collect()
        })
    }

    /// Groups by externalId: (displayName, number of members).
    pub fn group_directory(&self) -> BTreeMap<String, (String, usize)> {
        self.with(|p| {
            p.groups
                .values()
                .map(|g| {
                    let members = g
                        .get("members")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    (
                        text(g.get("externalId")).to_string(),
                        (text(g.get("displayName")).to_string(), members),
                    )
                })
                .collect()
        })
    }
}

/// Counts a request as finished when its handler ends or is dropped (its
/// client gone): what a crash test needs to tell a request in flight.
struct Finishing(Shared);

impl Drop for Finishing {
    fn drop(&mut self) {
        self.0.lock().finished += 1;
    }
}

async fn in_flight(State(kernel): State<Shared>, request: Request, next: Next) -> Response {
    kernel.lock().begun += 1;
    let _finishing = Finishing(Arc::clone(&kernel));
    next.run(request).await
}

fn text(value: Option<&Value>) -> &str {
    value.and_then(Value::as_str).unwrap_or("")
}

fn error(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response {
    let mut body = json!({
        "schemas": [ERROR_SCHEMA],
        "status": status.as_u16().to_string(),
        "detail": detail,
    });
    if let Some(kind) = scim_type {
        body["scimType"] = json!(kind);
    }
    scim(status, body)
}

fn scim(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/scim+json")],
        body.to_string(),
    )
        .into_response()
}

/// Admits a request through the kernel, then checks the bearer token.
macro_rules! admitted {
    ($kernel:expr, $headers:expr, $what:expr) => {{
        let admitted = admit!($kernel, &$what, None);
        if let Err(response) = authorised(&$kernel, &$headers) {
            return response;
        }
        admitted
    }};
}

/// The bearer token's check: 401 in SCIM's words, with what was presented
/// when the provider echoes it.
fn authorised(kernel: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let presented = header(headers, "authorization");
    let (expected, echo) = {
        let provider = kernel.lock();
        (provider.token.clone(), provider.echo_authorization)
    };
    if presented == Some(expected.as_str()) {
        return Ok(());
    }
    let detail = match (echo, presented) {
        (true, Some(presented)) => format!("invalid bearer token (Authorization: {presented})"),
        _ => "invalid bearer token".to_string(),
    };
    Err(error(StatusCode::UNAUTHORIZED, None, &detail))
}

/// A refusal in SCIM's words, repeating the request's `Authorization`
/// header when the provider echoes it.
fn refused(
    kernel: &Shared,
    headers: &HeaderMap,
    status: StatusCode,
    scim_type: Option<&str>,
    detail: &str,
) -> Response {
    if !kernel.lock().echo_authorization {
        return error(status, scim_type, detail);
    }
    let presented = header(headers, "authorization").unwrap_or("");
    error(
        status,
        scim_type,
        &format!("{detail} (request with Authorization: {presented})"),
    )
}

/// The reply, or a body cut short when the malformed fault strikes (the
/// work is done either way).
fn reply(admitted: &Admitted, status: StatusCode, body: Value) -> Response {
    if admitted.malformed() {
        return (status, "{\"id\":").into_response();
    }
    let etag = body
        .pointer("/meta/version")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut response = scim(status, body);
    // A resource's version is its ETag too (RFC 7644 §3.14).
    if let Some(etag) = etag.and_then(|e| e.parse().ok()) {
        response.headers_mut().insert("etag", etag);
    }
    response
}

async fn config(State(kernel): State<Shared>, headers: HeaderMap) -> Response {
    let admitted = admitted!(kernel, headers, "GET /ServiceProviderConfig");
    let (patch, max, filter, etag) = {
        let provider = kernel.lock();
        (
            provider.patch_supported,
            provider.max_results,
            provider.filter_supported,
            provider.etag_supported,
        )
    };
    reply(
        &admitted,
        StatusCode::OK,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": patch},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": filter, "maxResults": max},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": etag},
            "authenticationSchemes": [{"type": "oauthbearertoken", "name": "OAuth Bearer Token",
                "description": "Authentication scheme using the OAuth Bearer Token Standard"}],
        }),
    )
}

/// A ListResponse of every item, in one page (discovery endpoints).
fn listed(items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

async fn schemas(State(kernel): State<Shared>, headers: HeaderMap) -> Response {
    let admitted = admitted!(kernel, headers, "GET /Schemas");
    let schemas = kernel.lock().schemas.clone();
    reply(&admitted, StatusCode::OK, listed(schemas))
}

async fn resource_types(State(kernel): State<Shared>, headers: HeaderMap) -> Response {
    let admitted = admitted!(kernel, headers, "GET /ResourceTypes");
    let types = kernel.lock().resource_types.clone();
    reply(&admitted, StatusCode::OK, listed(types))
}

/// The value of an attribute, its name compared without case.
fn attribute<'a>(resource: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    resource
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// `attribute eq "value"`, the only filter this fake reads.
fn parse_filter(filter: &str) -> Option<(String, String)> {
    let mut parts = filter.trim().splitn(3, ' ');
    let name = parts.next()?.to_string();
    if !parts.next()?.eq_ignore_ascii_case("eq") {
        return None;
    }
    let value: String = serde_json::from_str(parts.next()?.trim()).ok()?;
    Some((name, value))
}

fn case_exact(kind: Kind, name: &str) -> bool {
    // RFC 7643: the unique name, and e-mail addresses, compare without case.
    !name.eq_ignore_ascii_case(kind.unique()) && !name.eq_ignore_ascii_case("emails.value")
}

/// The values an attribute path names: `userName`, or `emails.value` (the
/// sub-attribute of every value of a multi-valued attribute).
fn values_at<'a>(resource: &'a Map<String, Value>, name: &str) -> Vec<&'a str> {
    match name.split_once('.') {
        None => attribute(resource, name)
            .and_then(Value::as_str)
            .into_iter()
            .collect(),
        Some((list, sub)) => match attribute(resource, list) {
            Some(Value::Array(values)) => values
                .iter()
                .filter_map(|v| v.as_object().and_then(|o| attribute(o, sub))?.as_str())
                .collect(),
            Some(Value::Object(object)) => attribute(object, sub)
                .and_then(Value::as_str)
                .into_iter()
                .collect(),
            _ => Vec::new(),
        },
    }
}

fn equals(kind: Kind, resource: &Map<String, Value>, name: &str, value: &str) -> bool {
    values_at(resource, name).into_iter().any(|found| {
        if case_exact(kind, name) {
            found == value
        } else if found.is_ascii() && value.is_ascii() {
            // Fast: uniqueness checks compare with every resource.
            found.eq_ignore_ascii_case(value)
        } else {
            found
                .chars()
                .flat_map(char::to_lowercase)
                .eq(value.chars().flat_map(char::to_lowercase))
        }
    })
}

async fn list(
    kind: Kind,
    kernel: Shared,
    headers: HeaderMap,
    query: HashMap<String, String>,
) -> Response {
    let admitted = admitted!(kernel, headers, format!("GET /{}", kind.name()));
    let mut filter = match query.get("filter") {
        None => None,
        Some(text) => match parse_filter(text) {
            Some(filter) => Some(filter),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    Some("invalidFilter"),
                    &format!("cannot read the filter {text:?}"),
                );
            }
        },
    };
    if filter.is_some() && !kernel.lock().filter_supported {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            None,
            "Filtering is not supported",
        );
    }
    let number = |name: &str| query.get(name).and_then(|v| v.parse::<i64>().ok());
    let start = number("startIndex").unwrap_or(1).max(1) as usize;
    let mut provider = kernel.lock();
    let max = provider.max_results;
    if provider.ignore_filter {
        filter = None;
    }
    let count = number("count").map_or(max, |c| (c.max(0) as usize).min(max));
    let found: Vec<Value> = kind
        .store(&mut provider)
        .values()
        .filter(|r| match &filter {
            None => true,
            Some((name, value)) => equals(kind, r, name, value),
        })
        .map(|r| Value::Object(r.clone()))
        .collect();
    let page: Vec<Value> = found.iter().skip(start - 1).take(count).cloned().collect();
    reply(
        &admitted,
        StatusCode::OK,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": found.len(),
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    )
}

async fn list_users(
    State(kernel): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    list(Kind::Users, kernel, headers, query).await
}

async fn list_groups(
    State(kernel): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    list(Kind::Groups, kernel, headers, query).await
}

/// A refusal: status, scimType, detail.
type Refused = (StatusCode, Option<&'static str>, String);

/// What a strict provider checks of a resource about to be stored.
fn validate(
    kind: Kind,
    provider: &Provider,
    resource: &Map<String, Value>,
    own_id: Option<&str>,
) -> Result<(), Refused> {
    let schemas: Vec<&str> = resource
        .get("schemas")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !schemas.contains(&kind.schema()) {
        return Err((
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            format!("schemas must list {}", kind.schema()),
        ));
    }
    if provider.strict
        && let Err((scim_type, detail)) = schema::conform(
            resource,
            kind.schema(),
            &provider.schemas,
            &provider.resource_types,
        )
    {
        return Err((StatusCode::BAD_REQUEST, Some(scim_type), detail));
    }
    for key in resource.keys().filter(|k| k.starts_with("urn:")) {
        if !schemas.contains(&key.as_str()) {
            return Err((
                StatusCode::BAD_REQUEST,
                Some("invalidSyntax"),
                format!("the extension {key} is not listed in schemas"),
            ));
        }
    }
    let unique = kind.unique();
    let Some(value) = resource
        .get(unique)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
    else {
        return Err((
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
            format!("{unique} is required"),
        ));
    };
    if kind == Kind::Users
        && provider
            .refused_user_names
            .iter()
            .any(|r| r.eq_ignore_ascii_case(value))
    {
        return Err((
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
            format!("userName {value} is reserved by policy"),
        ));
    }
    let others = match kind {
        Kind::Users => &provider.users,
        Kind::Groups => &provider.groups,
    };
    if others
        .iter()
        .any(|(id, other)| Some(id.as_str()) != own_id && equals(kind, other, unique, value))
    {
        return Err((
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("{unique} {value} is already taken"),
        ));
    }
    if kind == Kind::Users
        && let Some(manager) = resource.get(ENTERPRISE).and_then(|e| e.get("manager"))
    {
        let known = manager
            .get("value")
            .and_then(Value::as_str)
            .is_some_and(|id| provider.users.contains_key(id));
        if !known {
            return Err((
                StatusCode::BAD_REQUEST,
                Some("invalidValue"),
                format!("manager {manager} is not a user of this provider"),
            ));
        }
    }
    Ok(())
}

/// Gives a resource being stored its id and `meta` (a new version when the
/// provider keeps them).
fn stamp(kind: Kind, provider: &mut Provider, resource: &mut Map<String, Value>, id: &str) {
    resource.insert("id".into(), json!(id));
    let mut meta = json!({
        "resourceType": if kind == Kind::Users { "User" } else { "Group" },
        "location": format!("/{}/{id}", kind.name()),
    });
    if provider.etag_supported {
        meta["version"] = json!(provider.next_version());
    }
    resource.insert("meta".into(), meta);
}

fn version(resource: &Map<String, Value>) -> Option<&str> {
    resource
        .get("meta")
        .and_then(|m| m.get("version"))
        .and_then(Value::as_str)
}

/// Bodies must come as `application/scim+json` (RFC 7644 §3.1; this fake
/// is stricter than most and refuses plain JSON).
fn scim_content(headers: &HeaderMap) -> Result<(), Response> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/scim+json") {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            &format!("expected application/scim+json, got {content_type:?}"),
        ))
    }
}

fn parse_object(body: &str) -> Result<Map<String, Value>, Response> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            "the body is not a JSON object",
        )),
    }
}

async fn create(kind: Kind, kernel: Shared, headers: HeaderMap, body: String) -> Response {
    let admitted = admitted!(kernel, headers, format!("POST /{}", kind.name()));
    let mut resource = match scim_content(&headers).and_then(|()| parse_object(&body)) {
        Ok(resource) => resource,
        Err(response) => return response,
    };
    resource.remove("id");
    resource.remove("meta");
    let mut provider = kernel.lock();
    let user_name = text(resource.get("userName")).to_string();
    if kind == Kind::Users {
        *provider
            .create_requests
            .entry(user_name.clone())
            .or_default() += 1;
    }
    if let Err((status, scim_type, detail)) = validate(kind, &provider, &resource, None) {
        drop(provider);
        return refused(&kernel, &headers, status, scim_type, &detail);
    }
    let id = provider.new_id(if kind == Kind::Users { "u" } else { "g" });
    stamp(kind, &mut provider, &mut resource, &id);
    kind.store(&mut provider).insert(id, resource.clone());
    if kind == Kind::Users {
        *provider.created.entry(user_name).or_default() += 1;
        provider.writes += 1;
        provider.last_written = Some(text(resource.get("externalId")).to_string());
    }
    reply(&admitted, StatusCode::CREATED, Value::Object(resource))
}

async fn create_user(State(kernel): State<Shared>, headers: HeaderMap, body: String) -> Response {
    create(Kind::Users, kernel, headers, body).await
}

async fn create_group(State(kernel): State<Shared>, headers: HeaderMap, body: String) -> Response {
    create(Kind::Groups, kernel, headers, body).await
}

/// GET, PUT and PATCH of one resource.
async fn one(
    kind: Kind,
    method: Method,
    kernel: Shared,
    headers: HeaderMap,
    id: String,
    body: String,
) -> Response {
    // Reads by id counted apart from lists ("GET /Users/id").
    let route = match method {
        Method::GET => format!("GET /{}/id", kind.name()),
        _ => format!("{method} /{}", kind.name()),
    };
    let admitted = admitted!(kernel, headers, route);
    if method != Method::GET
        && let Err(response) = scim_content(&headers)
    {
        return response;
    }
    let mut provider = kernel.lock();
    if method == Method::PATCH && !provider.patch_supported {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            None,
            "PATCH is not supported by this provider",
        );
    }
    if method != Method::GET && kind == Kind::Users && provider.edits_by_hand > 0 {
        provider.edits_by_hand -= 1;
        edit_by_hand(&mut provider, &id);
    }
    let Some(current) = kind.store(&mut provider).get(&id).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            None,
            &format!("Resource {id} not found"),
        );
    };
    if method == Method::GET {
        return reply(&admitted, StatusCode::OK, Value::Object(current));
    }
    if let Some(expected) = header(&headers, "if-match")
        && provider.etag_supported
        && expected != "*"
        && Some(expected) != version(&current)
    {
        provider.stale_writes += 1;
        return error(
            StatusCode::PRECONDITION_FAILED,
            None,
            "Failed to update. Resource has changed on the server",
        );
    }
    let mut before = current.clone();
    before.remove("meta");
    before.remove("id");
    let mut updated = match method {
        Method::PUT => match parse_object(&body) {
            Ok(resource) => resource,
            Err(response) => return response,
        },
        _ => match patched(current, &body) {
            Ok(resource) => resource,
            Err(response) => return response,
        },
    };
    updated.remove("meta");
    if let Err((status, scim_type, detail)) = validate(kind, &provider, &updated, Some(&id)) {
        drop(provider);
        return refused(&kernel, &headers, status, scim_type, &detail);
    }
    if kind == Kind::Users {
        let mut after = updated.clone();
        after.remove("id");
        if before == after {
            provider.unchanged_writes += 1;
        }
        provider.writes += 1;
        provider.last_written = Some(text(updated.get("externalId")).to_string());
    }
    stamp(kind, &mut provider, &mut updated, &id);
    kind.store(&mut provider).insert(id, updated.clone());
    reply(&admitted, StatusCode::OK, Value::Object(updated))
}

/// An administrator's change to a user, as it lands between a client's
/// read and its write: `nickName` set, a new version.
fn edit_by_hand(provider: &mut Provider, id: &str) {
    let Some(mut user) = provider.users.get(id).cloned() else {
        return;
    };
    user.insert("nickName".into(), json!("set by hand"));
    stamp(Kind::Users, provider, &mut user, id);
    provider.users.insert(id.to_string(), user);
}

/// Applies a PatchOp body (RFC 7644 §3.5.2) to a copy of the resource.
fn patched(mut resource: Map<String, Value>, body: &str) -> Result<Map<String, Value>, Response> {
    let request = parse_object(body)?;
    let listed = request
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|v| v == PATCH_SCHEMA));
    let operations = request.get("Operations").and_then(Value::as_array);
    let (true, Some(operations)) = (listed, operations) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            "a PatchOp with Operations is expected",
        ));
    };
    for operation in operations {
        let op = text(operation.get("op")).to_ascii_lowercase();
        let path = operation.get("path").and_then(Value::as_str);
        let value = operation.get("value");
        apply(&mut resource, &op, path, value)?;
    }
    Ok(resource)
}

fn invalid_path(path: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        Some("invalidPath"),
        &format!("cannot use the path {path:?}"),
    )
}

/// The key of an attribute in an object, matched without case.
fn key_of(object: &Map<String, Value>, name: &str) -> String {
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

fn list_schema(resource: &mut Map<String, Value>, urn: &str) {
    if let Some(Value::Array(schemas)) = resource.get_mut("schemas")
        && !schemas.iter().any(|s| s == urn)
    {
        schemas.push(json!(urn));
    }
}

fn unlist_schema(resource: &mut Map<String, Value>, urn: &str) {
    if let Some(Value::Array(schemas)) = resource.get_mut("schemas") {
        schemas.retain(|s| s != urn);
    }
}

fn apply(
    resource: &mut Map<String, Value>,
    op: &str,
    path: Option<&str>,
    value: Option<&Value>,
) -> Result<(), Response> {
    let Some(path) = path else {
        // No path: the value is a set of attributes to add or replace.
        let (Some(Value::Object(attributes)), "add" | "replace") = (value, op) else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                Some("noTarget"),
                "an operation without path needs add/replace and an object value",
            ));
        };
        for (name, value) in attributes {
            if name.starts_with("urn:")
                && let Value::Object(inner) = value
            {
                for (sub, v) in inner {
                    apply(resource, op, Some(&format!("{name}:{sub}")), Some(v))?;
                }
            } else {
                apply(resource, op, Some(name), Some(value))?;
            }
        }
        return Ok(());
    };
    if let Some((name, rest)) = path.split_once('[') {
        return apply_selected(resource, op, name, rest, value, path);
    }
    let (extension, rest) = match path.rsplit_once(':') {
        Some((urn, rest)) if path.starts_with("urn:") => {
            if urn.eq_ignore_ascii_case(USER_SCHEMA) || urn.eq_ignore_ascii_case(GROUP_SCHEMA) {
                (None, rest)
            } else {
                (Some(urn.to_string()), rest)
            }
        }
        _ => (None, path),
    };
    let (name, sub) = match rest.split_once('.') {
        Some((name, sub)) => (name, Some(sub)),
        None => (rest, None),
    };
    if name.is_empty() || sub.is_some_and(str::is_empty) {
        return Err(invalid_path(path));
    }
    if let Some(urn) = &extension
        && op != "remove"
    {
        list_schema(resource, urn);
        resource
            .entry(urn.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let container = match &extension {
        None => &mut *resource,
        Some(urn) => match resource.get_mut(urn) {
            Some(Value::Object(inner)) => inner,
            // Removing from an extension the resource does not have.
            _ => return Ok(()),
        },
    };
    let key = key_of(container, name);
    match (op, sub, value) {
        ("add" | "replace", None, Some(value)) => match (op, container.get_mut(&key), value) {
            ("add", Some(Value::Array(existing)), Value::Array(more)) => {
                existing.extend(more.iter().cloned())
            }
            _ => {
                container.insert(key, value.clone());
            }
        },
        ("add" | "replace", Some(sub), Some(value)) => {
            let entry = container
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(complex) = entry else {
                return Err(invalid_path(path));
            };
            let sub_key = key_of(complex, sub);
            complex.insert(sub_key, value.clone());
        }
        ("remove", None, _) => {
            container.remove(&key);
        }
        ("remove", Some(sub), _) => {
            if let Some(Value::Object(complex)) = container.get_mut(&key) {
                let sub_key = key_of(complex, sub);
                complex.remove(&sub_key);
                if complex.is_empty() {
                    container.remove(&key);
                }
            }
        }
        _ => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                Some("invalidSyntax"),
                &format!("cannot apply op {op:?} to {path:?}"),
            ));
        }
    }
    if let Some(urn) = &extension
        && resource
            .get(urn)
            .is_some_and(|e| e.as_object().is_some_and(Map::is_empty))
    {
        resource.remove(urn);
        unlist_schema(resource, urn);
    }
    Ok(())
}

/// An operation on the values of a multi-valued attribute that a filter
/// selects (`emails[type eq "work"]`, with `.value` for one of their
/// sub-attributes): the values it does not select are left as they are.
/// Replacing what selects nothing is a 400 `noTarget`; removing it, nothing.
fn apply_selected(
    resource: &mut Map<String, Value>,
    op: &str,
    name: &str,
    rest: &str,
    value: Option<&Value>,
    path: &str,
) -> Result<(), Response> {
    let Some((filter, after)) = rest.split_once(']') else {
        return Err(invalid_path(path));
    };
    let sub = match after {
        "" => None,
        after => Some(after.strip_prefix('.').ok_or_else(|| invalid_path(path))?),
    };
    let Some((attribute_name, wanted)) = parse_filter(filter) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            Some("invalidFilter"),
            &format!("cannot read the filter of {path:?}"),
        ));
    };
    let selects = |v: &Value| {
        v.as_object()
            .and_then(|o| attribute(o, &attribute_name))
            .and_then(Value::as_str)
            .is_some_and(|found| found.eq_ignore_ascii_case(&wanted))
    };
    let key = key_of(resource, name);
    let no_target = || {
        error(
            StatusCode::BAD_REQUEST,
            Some("noTarget"),
            &format!("no value of '{name}' matches the path filter"),
        )
    };
    let Some(Value::Array(values)) = resource.get_mut(&key) else {
        return if op == "remove" {
            Ok(())
        } else {
            Err(no_target())
        };
    };
    match (op, sub, value) {
        ("remove", None, _) => values.retain(|v| !selects(v)),
        ("remove", Some(sub), _) => {
            for object in values
                .iter_mut()
                .filter(|v| selects(v))
                .filter_map(Value::as_object_mut)
            {
                let sub_key = key_of(object, sub);
                object.remove(&sub_key);
            }
        }
        ("add" | "replace", sub, Some(value)) => {
            let mut hit = false;
            for selected in values.iter_mut().filter(|v| selects(v)) {
                hit = true;
                match (sub, selected.as_object_mut()) {
                    (Some(sub), Some(object)) => {
                        let sub_key = key_of(object, sub);
                        object.insert(sub_key, value.clone());
                    }
                    _ => *selected = value.clone(),
                }
            }
            if !hit {
                return Err(no_target());
            }
        }
        _ => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                Some("invalidSyntax"),
                &format!("cannot apply op {op:?} to {path:?}"),
            ));
        }
    }
    if values.is_empty() {
        resource.remove(&key);
    }
    Ok(())
}

/// `DELETE /Users/{id}` (RFC 7644 §3.6): 204, or 404 for an id it does
/// not hold (a user deleted already).
async fn delete_user(
    State(kernel): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let _admitted = admitted!(kernel, headers, "DELETE /Users");
    let mut provider = kernel.lock();
    match provider.users.remove(&id) {
        Some(user) => {
            let external = text(user.get("externalId")).to_string();
            provider.deleted.push(external);
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            None,
            &format!("Resource {id} not found"),
        ),
    }
}

macro_rules! one_handler {
    ($name:ident, $kind:expr, $method:expr) => {
        async fn $name(
            State(kernel): State<Shared>,
            headers: HeaderMap,
            Path(id): Path<String>,
            body: String,
        ) -> Response {
            one($kind, $method, kernel, headers, id, body).await
        }
    };
}

one_handler!(get_user, Kind::Users, Method::GET);
one_handler!(put_user, Kind::Users, Method::PUT);
one_handler!(patch_user, Kind::Users, Method::PATCH);
one_handler!(get_group, Kind::Groups, Method::GET);
one_handler!(put_group, Kind::Groups, Method::PUT);
one_handler!(patch_group, Kind::Groups, Method::PATCH);
