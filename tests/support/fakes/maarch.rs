//! A fake Maarch Courrier: users (unique login, numeric ids, a `PUT` that
//! replaces the whole record and so erases an omitted `mail`, `initials` or
//! `phone`), their groups and entities, suspension (refused with 403 for
//! users holding open mail), entities, HTTP Basic auth, and injected faults.
// A fake's handlers: an error is the HTTP answer itself.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::kernel::admit;
use super::{Kernel, Refusal, Server, header};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub login: String,
    pub firstname: String,
    pub lastname: String,
    pub mail: String,
    pub initials: String,
    pub phone: String,
    pub mode: String,
    /// `OK`, `ABS` or `SPD`.
    pub status: String,
    pub groups: BTreeSet<String>,
    pub entities: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entity {
    pub label: String,
    pub short_label: String,
    pub entity_type: String,
    pub parent: String,
}

pub struct Courrier {
    /// By technical id.
    pub users: BTreeMap<u64, User>,
    pub entities: BTreeMap<String, Entity>,
    /// The groups that exist (`usergroups.group_id`).
    pub groups: BTreeSet<String>,
    /// Logins that still hold open mail: suspending them answers 403.
    pub open_mail: BTreeSet<String>,
    pub next_id: u64,
}

impl Default for Courrier {
    fn default() -> Courrier {
        Courrier {
            users: BTreeMap::new(),
            entities: BTreeMap::new(),
            groups: ["AGENT", "RESPONSABLE", "COURRIER", "ADMINISTRATEUR"]
                .into_iter()
                .map(String::from)
                .collect(),
            open_mail: BTreeSet::new(),
            next_id: 10,
        }
    }
}

impl Courrier {
    /// A user made in Maarch by hand; returns its id.
    pub fn add_user(&mut self, user: User) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.users.insert(id, user);
        id
    }

    pub fn id_of(&self, login: &str) -> Option<u64> {
        self.users
            .iter()
            .find(|(_, u)| u.login == login)
            .map(|(id, _)| *id)
    }
}

/// A user as the tests compare it: everything but the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub first: String,
    pub last: String,
    pub mail: String,
    pub phone: String,
    pub initials: String,
    pub status: String,
    pub groups: Vec<String>,
    pub entities: Vec<String>,
}

/// Maarch; its requests are counted per route ("POST /rest/users", ...).
pub type Fake = Server<Courrier>;

type Shared = Arc<Kernel<Courrier>>;

/// How Maarch words the kernel's refusals.
fn refusal(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unauthorised => error(StatusCode::UNAUTHORIZED, "Authentication Failed"),
        Refusal::TooManyRequests => (
            StatusCode::TOO_MANY_REQUESTS,
            "{\"errors\":\"Too many requests\"}",
        )
            .into_response(),
        Refusal::Unavailable => error(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
    }
}

impl Fake {
    pub fn start(user: &str, password: &str) -> Fake {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let kernel = Kernel::new(
            Courrier::default(),
            Some(format!("Basic {credentials}")),
            refusal,
        );
        Server::launch(kernel, |kernel| {
            Router::new()
                .route("/rest/users", get(list_users).post(create_user))
                .route("/rest/users/{id}", put(update_user))
                .route("/rest/users/{id}/suspend", put(suspend_user))
                .route("/rest/users/{id}/groups", post(add_group))
                .route("/rest/users/{id}/groups/{group}", delete(remove_group))
                .route("/rest/users/{id}/entities", post(add_entity))
                .route("/rest/users/{id}/entities/{entity}", delete(remove_entity))
                .route("/rest/entities", post(create_entity))
                .route("/rest/entities/{id}", put(update_entity))
                .with_state(kernel)
        })
    }

    /// login → the user, for exact comparisons.
    pub fn directory(&self) -> BTreeMap<String, Person> {
        self.with(|c| {
            c.users
                .values()
                .map(|u| {
                    (
                        u.login.clone(),
                        Person {
                            first: u.firstname.clone(),
                            last: u.lastname.clone(),
                            mail: u.mail.clone(),
                            phone: u.phone.clone(),
                            initials: u.initials.clone(),
                            status: u.status.clone(),
                            groups: u.groups.iter().cloned().collect(),
                            entities: u.entities.iter().cloned().collect(),
                        },
                    )
                })
                .collect()
        })
    }

    /// entity_id → (label, parent).
    pub fn entities(&self) -> BTreeMap<String, (String, String)> {
        self.with(|c| {
            c.entities
                .iter()
                .map(|(id, e)| (id.clone(), (e.label.clone(), e.parent.clone())))
                .collect()
        })
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "errors": message }))).into_response()
}

/// Admits a request through the kernel, Basic authentication checked.
macro_rules! admitted {
    ($kernel:expr, $headers:expr, $route:expr) => {
        admit!($kernel, $route, header(&$headers, "authorization"))
    };
}

fn object(body: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

fn text(map: &Map<String, Value>, key: &str) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string()
}

async fn list_users(State(kernel): State<Shared>, headers: HeaderMap) -> Response {
    let admitted = admitted!(kernel, headers, "GET /rest/users");
    if admitted.malformed() {
        return (StatusCode::OK, "{\"users\":[").into_response();
    }
    let courrier = kernel.lock();
    let users: Vec<Value> = courrier
        .users
        .iter()
        .map(|(id, u)| {
            json!({
                "id": id, "user_id": u.login, "firstname": u.firstname, "lastname": u.lastname,
                "status": u.status, "mail": u.mail, "mode": u.mode,
            })
        })
        .collect();
    axum::Json(json!({ "users": users })).into_response()
}

async fn create_user(State(kernel): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let admitted = admitted!(kernel, headers, "POST /rest/users");
    let Some(map) = object(&body) else {
        return error(StatusCode::BAD_REQUEST, "Bad Request");
    };
    let (login, first, last, mail) = (
        text(&map, "userId"),
        text(&map, "firstname"),
        text(&map, "lastname"),
        text(&map, "mail"),
    );
    if login.is_empty() || first.is_empty() || last.is_empty() || mail.is_empty() {
        return error(StatusCode::BAD_REQUEST, "Bad Request");
    }
    let id = {
        let mut courrier = kernel.lock();
        if courrier.id_of(&login).is_some() {
            return error(StatusCode::BAD_REQUEST, "User already exists");
        }
        let mode = match text(&map, "mode") {
            mode if mode.is_empty() => "standard".to_string(),
            mode => mode,
        };
        courrier.add_user(User {
            login,
            firstname: first,
            lastname: last,
            mail,
            initials: text(&map, "initials"),
            phone: text(&map, "phone"),
            mode,
            status: "OK".into(),
            ..User::default()
        })
    };
    if admitted.malformed() {
        return (StatusCode::OK, "{\"id\":").into_response();
    }
    axum::Json(json!({ "id": id })).into_response()
}

/// The user of a route's `{id}`, under the lock.
fn with_user<T>(
    kernel: &Kernel<Courrier>,
    id: &str,
    f: impl FnOnce(&mut Courrier, u64) -> T,
) -> Result<T, Response> {
    let mut courrier = kernel.lock();
    match id.parse::<u64>() {
        Ok(id) if courrier.users.contains_key(&id) => Ok(f(&mut courrier, id)),
        _ => Err(error(StatusCode::BAD_REQUEST, "User not found")),
    }
}

async fn update_user(
    State(kernel): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    admitted!(kernel, headers, "PUT /rest/users/{id}");
    let Some(map) = object(&body) else {
        return error(StatusCode::BAD_REQUEST, "Bad Request");
    };
    let (first, last, mail) = (
        text(&map, "firstname"),
        text(&map, "lastname"),
        text(&map, "mail"),
    );
    if first.is_empty() || last.is_empty() || mail.is_empty() {
        return error(StatusCode::BAD_REQUEST, "Bad Request");
    }
    let status = text(&map, "status");
    if !["", "OK", "ABS", "SPD"].contains(&status.as_str()) {
        return error(StatusCode::BAD_REQUEST, "Bad Request: status");
    }
    let result = with_user(&kernel, &id, |courrier, id| {
        let user = courrier.users.get_mut(&id).unwrap();
        // The whole record is replaced: what is omitted is erased.
        user.firstname = first;
        user.lastname = last;
        user.mail = mail;
        user.initials = text(&map, "initials");
        user.phone = text(&map, "phone");
        if let Some(mode) = map.get("mode").and_then(Value::as_str) {
            user.mode = mode.to_string();
        }
        if !status.is_empty() {
            user.status = status;
        }
    });
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(response) => response,
    }
}

async fn suspend_user(
    State(kernel): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    admitted!(kernel, headers, "PUT /rest/users/{id}/suspend");
    let result = with_user(&kernel, &id, |courrier, id| {
        let login = courrier.users[&id].login.clone();
        if courrier.open_mail.contains(&login) {
            return Err(error(
                StatusCode::FORBIDDEN,
                "User still has mail in progress: redirect it before suspending",
            ));
        }
        courrier.users.get_mut(&id).unwrap().status = "SPD".into();
        Ok(())
    });
    match result {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(response)) | Err(response) => response,
    }
}

#[derive(Clone, Copy)]
enum List {
    Groups,
    Entities,
}

fn link(kernel: &Kernel<Courrier>, id: &str, list: List, value: &str, add: bool) -> Response {
    let result = with_user(kernel, id, |courrier, id| {
        let exists = match list {
            List::Groups => courrier.groups.contains(value),
            List::Entities => courrier.entities.contains_key(value),
        };
        let user = courrier.users.get_mut(&id).unwrap();
        let set = match list {
            List::Groups => &mut user.groups,
            List::Entities => &mut user.entities,
        };
        let noun = match list {
            List::Groups => "group",
            List::Entities => "entity",
        };
        if !add {
            set.remove(value);
            return Ok(set.iter().cloned().collect::<Vec<_>>());
        }
        if value.is_empty() {
            return Err(error(StatusCode::BAD_REQUEST, "Bad Request"));
        }
        if !exists {
            return Err(error(
                StatusCode::BAD_REQUEST,
                &format!("{} not found", capitalised(noun)),
            ));
        }
        if !set.insert(value.to_string()) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                &format!("User is already linked to this {noun}"),
            ));
        }
        Ok(set.iter().cloned().collect::<Vec<_>>())
    });
    match result {
        Ok(Ok(members)) => axum::Json(json!({ "list": members })).into_response(),
        Ok(Err(response)) | Err(response) => response,
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

async fn add_group(
    State(kernel): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    admitted!(kernel, headers, "POST /rest/users/{id}/groups");
    let group = object(&body)
        .map(|m| text(&m, "groupId"))
        .unwrap_or_default();
    link(&kernel, &id, List::Groups, &group, true)
}

async fn remove_group(
    State(kernel): State<Shared>,
    Path((id, group)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    admitted!(kernel, headers, "DELETE /rest/users/{id}/groups/{group}");
    link(&kernel, &id, List::Groups, &group, false)
}

async fn add_entity(
    State(kernel): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    admitted!(kernel, headers, "POST /rest/users/{id}/entities");
    let entity = object(&body)
        .map(|m| text(&m, "entityId"))
        .unwrap_or_default();
    link(&kernel, &id, List::Entities, &entity, true)
}

async fn remove_entity(
    State(kernel): State<Shared>,
    Path((id, entity)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    admitted!(kernel, headers, "DELETE /rest/users/{id}/entities/{entity}");
    link(&kernel, &id, List::Entities, &entity, false)
}

fn read_entity(
    courrier: &Courrier,
    id: &str,
    map: &Map<String, Value>,
) -> Result<Entity, Response> {
    let entity = Entity {
        label: text(map, "entity_label"),
        short_label: text(map, "short_label"),
        entity_type: text(map, "entity_type"),
        parent: text(map, "parent_entity_id"),
    };
    if entity.label.is_empty() || entity.short_label.is_empty() || entity.entity_type.is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "Bad Request"));
    }
    if !entity.parent.is_empty() {
        if entity.parent == id {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "An entity cannot be its own parent",
            ));
        }
        if !courrier.entities.contains_key(&entity.parent) {
            return Err(error(StatusCode::BAD_REQUEST, "Parent entity not found"));
        }
    }
    Ok(entity)
}

async fn create_entity(State(kernel): State<Shared>, headers: HeaderMap, body: String) -> Response {
    admitted!(kernel, headers, "POST /rest/entities");
    let Some(map) = object(&body) else {
        return error(StatusCode::BAD_REQUEST, "Bad Request");
    };
    let id = text(&map, "entity_id");
    if id.is_empty() || id.len() > 32 {
        return error(StatusCode::BAD_REQUEST, "Bad Request: entity_id");
    }
    let mut courrier = kernel.lock();
    if courrier.entities.contains_key(&id) {
        return error(StatusCode::BAD_REQUEST, "Entity already exists");
    }
    match read_entity(&courrier, &id, &map) {
        Ok(entity) => {
            courrier.entities.insert(id, entity);
            let ids: Vec<&String> = courrier.entities.keys().collect();
            axum::Json(json!({ "entities": ids })).into_response()
        }
        Err(response) => response,
    }
}

async fn update_entity(
    State(kernel): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    admitted!(kernel, headers, "PUT /rest/entities/{id}");
    let Some(map) = object(&body) else {
        return error(StatusCode::BAD_REQUEST, "Bad Request");
    };
    let mut courrier = kernel.lock();
    if !courrier.entities.contains_key(&id) {
        return error(StatusCode::BAD_REQUEST, "Entity not found");
    }
    match read_entity(&courrier, &id, &map) {
        Ok(entity) => {
            courrier.entities.insert(id, entity);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(response) => response,
    }
}
