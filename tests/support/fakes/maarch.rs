//! A fake Maarch Courrier 2301, behaving as a running instance does:
//! - errors are `{"errors":"TEXT"}`, many texts in French, and every JSON
//!   answer is written as PHP writes it (non-ASCII as `\u00e9`, `/` as `\/`);
//! - logins are unique whatever their case;
//! - the REST user rostersync logs in as sees and changes only the users of
//!   its entities' subtrees and users without entity, unless it is root
//!   ([`RestUser`]); outside that perimeter a user is not listed, a create of
//!   its login answers 400 and any change 403 `UserId out of perimeter`;
//! - a create of a deleted (`DEL`) login answers 200 and restores the old
//!   record as it was, ignoring the body; every create queues an activation
//!   e-mail;
//! - `PUT /rest/users/{id}` replaces the whole record (an omitted `mail`,
//!   `initials`, and `phone` when the REST user manages personal data, are
//!   erased) and applies only `"status":"OK"`;
//! - group and entity links: "already linked" is a 400, a removal of a link
//!   that is not there a 200;
//! - suspension is refused with 403 for five reasons, each in its own words;
//! - entities: an unknown parent is accepted, `PUT` erases the fields it is
//!   not sent, `/status` disables or enables an entity and everything below.
// A fake's handlers: an error is the HTTP answer itself.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::kernel::admit;
use super::{Kernel, Refusal, Server, header};

/// Maarch's own words, as a French instance answers.
pub const USER_EXISTS: &str = "L'identifiant utilisateur existe déjà";
pub const ALREADY_IN_GROUP: &str = "L'utilisateur est déjà lié à ce groupe";
pub const ALREADY_IN_ENTITY: &str = "L'utilisateur est déjà lié à cette entité";
pub const ENTITY_EXISTS: &str = "L'identifiant de l'entité existe déjà";
pub const MOVE_INTO_CHILD: &str =
    "Impossible de déplacer une entité dans une de ses entités filles";
pub const OUT_OF_PERIMETER: &str = "UserId out of perimeter";
pub const OPEN_MAIL: &str = "User is still present in listInstances";
pub const DIFFUSION_LIST: &str = "User is still present in listTemplates";
pub const YOURSELF: &str = "Can not delete yourself";
pub const FORBIDDEN: &str = "Service forbidden";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub login: String,
    pub firstname: String,
    pub lastname: String,
    pub mail: String,
    pub initials: String,
    pub phone: String,
    /// `standard`, `rest`, `root_visible` or `root_invisible`.
    pub mode: String,
    /// `OK`, `ABS`, `SPD`, or `DEL` (deleted: not listed, restored by a
    /// create of its login).
    pub status: String,
    pub groups: BTreeSet<String>,
    pub entities: BTreeSet<String>,
}

/// The fields `PUT /rest/entities/{id}` sets, under the API's names: each
/// one the body omits is erased.
pub const ENTITY_FIELDS: &[&str] = &[
    "entity_label",
    "short_label",
    "entity_full_name",
    "entity_type",
    "parent_entity_id",
    "email",
    "business_id",
    "addressNumber",
    "addressStreet",
    "addressAdditional1",
    "addressAdditional2",
    "addressPostcode",
    "addressTown",
    "addressCountry",
    "producerService",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entity {
    /// Non-empty values of [`ENTITY_FIELDS`].
    pub fields: BTreeMap<String, String>,
    /// `N` in Maarch: set by `/status`, for the entity and those below it.
    pub disabled: bool,
    /// Maarch's serial id (the API's paths take the `entity_id`).
    pub serial: u64,
}

impl Entity {
    /// An entity made in Maarch by hand: a label, a parent, type `Service`.
    pub fn new(label: &str, parent: &str) -> Entity {
        let mut fields = BTreeMap::new();
        for (name, value) in [
            ("entity_label", label),
            ("short_label", label),
            ("entity_type", "Service"),
            ("parent_entity_id", parent),
        ] {
            if !value.is_empty() {
                fields.insert(name.to_string(), value.to_string());
            }
        }
        Entity {
            fields,
            ..Entity::default()
        }
    }

    pub fn get(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }

    pub fn parent(&self) -> &str {
        self.get("parent_entity_id")
    }
}

/// The Maarch user rostersync logs in as (mode `rest`).
#[derive(Debug, Clone)]
pub struct RestUser {
    pub login: String,
    /// A root user sees and changes every user. Otherwise only the users of
    /// its entities and their sub-entities, and the users with no entity.
    pub root: bool,
    pub entities: BTreeSet<String>,
    /// May manage personal data: a create keeps its phone, and an update
    /// sets it (erases it when omitted). Otherwise phone is left alone.
    pub personal_data: bool,
    /// Groups it may not assign: adding a user to one answers 403.
    pub unassignable: BTreeSet<String>,
}

pub struct Courrier {
    /// By technical id.
    pub users: BTreeMap<u64, User>,
    /// By `entity_id`.
    pub entities: BTreeMap<String, Entity>,
    /// The groups that exist (`usergroups.group_id`).
    pub groups: BTreeSet<String>,
    pub rest: RestUser,
    /// Logins still recipients of open mail: suspending them answers 403.
    pub open_mail: BTreeSet<String>,
    /// Logins still in an entity's diffusion list: suspending them answers 403.
    pub diffusion_lists: BTreeSet<String>,
    /// The activation e-mails queued, by login: one per create, restores included.
    pub activation_mails: Vec<String>,
    /// Refuse every create with a 400 whose body shows the request's
    /// headers, as a misconfigured server's error page can.
    pub echo_headers: bool,
    pub next_id: u64,
    pub next_serial: u64,
}

impl Courrier {
    fn new(rest_login: &str) -> Courrier {
        Courrier {
            users: BTreeMap::new(),
            entities: BTreeMap::new(),
            groups: ["AGENT", "RESPONSABLE", "COURRIER", "ADMINISTRATEUR"]
                .into_iter()
                .map(String::from)
                .collect(),
            rest: RestUser {
                login: rest_login.to_string(),
                root: true,
                entities: BTreeSet::new(),
                personal_data: true,
                unassignable: BTreeSet::new(),
            },
            open_mail: BTreeSet::new(),
            diffusion_lists: BTreeSet::new(),
            activation_mails: Vec::new(),
            echo_headers: false,
            next_id: 10,
            next_serial: 1,
        }
    }

    /// A user made in Maarch by hand; returns its id.
    pub fn add_user(&mut self, user: User) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.users.insert(id, user);
        id
    }

    /// An entity made in Maarch by hand.
    pub fn add_entity(&mut self, id: &str, mut entity: Entity) {
        entity.serial = self.next_serial;
        self.next_serial += 1;
        self.entities.insert(id.to_string(), entity);
    }

    /// The user of this login, whatever its case (Maarch compares logins in lowercase).
    pub fn id_of(&self, login: &str) -> Option<u64> {
        self.users
            .iter()
            .find(|(_, u)| u.login.to_lowercase() == login.to_lowercase())
            .map(|(id, _)| *id)
    }

    /// Deletes a user as Maarch's administration does: status `DEL`, its
    /// groups and entities removed, the rest of the record kept.
    pub fn delete_user(&mut self, login: &str) {
        if let Some(user) = self.id_of(login).and_then(|id| self.users.get_mut(&id)) {
            user.status = "DEL".into();
            user.groups.clear();
            user.entities.clear();
        }
    }

    /// These entities and every one below them.
    pub fn subtree(&self, roots: &BTreeSet<String>) -> BTreeSet<String> {
        let mut found: BTreeSet<String> = roots.clone();
        loop {
            let before = found.len();
            for (id, entity) in &self.entities {
                if found.contains(entity.parent()) {
                    found.insert(id.clone());
                }
            }
            if found.len() == before {
                return found;
            }
        }
    }

    /// Whether the REST user may see and change this user.
    pub fn in_perimeter(&self, user: &User) -> bool {
        self.rest.root
            || user.entities.is_empty()
            || !user
                .entities
                .is_disjoint(&self.subtree(&self.rest.entities))
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
        Refusal::TooManyRequests => error(StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
        Refusal::Unavailable => error(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
    }
}

impl Fake {
    /// Maarch with `user` as its REST user (root), and `password`.
    pub fn start(user: &str, password: &str) -> Fake {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let kernel = Kernel::new(
            Courrier::new(user),
            Some(format!("Basic {credentials}")),
            refusal,
        );
        Server::launch(kernel, |kernel| {
            Router::new()
                .route("/rest/users", get(list_users).post(create_user))
                .route("/rest/users/{id}", put(update_user).delete(delete_user))
                .route("/rest/users/{id}/suspend", put(suspend_user))
                .route("/rest/users/{id}/groups", post(add_group))
                .route("/rest/users/{id}/groups/{group}", delete(remove_group))
                .route("/rest/users/{id}/entities", post(add_entity))
                .route("/rest/users/{id}/entities/{entity}", delete(remove_entity))
                .route("/rest/entities", post(create_entity))
                .route("/rest/entities/{id}", put(update_entity))
                .route("/rest/entities/{id}/details", get(entity_details))
                .route("/rest/entities/{id}/status", put(entity_status))
                .with_state(kernel)
        })
    }

    /// login → the user, for exact comparisons; deleted users left out.
    pub fn directory(&self) -> BTreeMap<String, Person> {
        self.with(|c| {
            c.users
                .values()
                .filter(|u| u.status != "DEL")
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
                .map(|(id, e)| {
                    (
                        id.clone(),
                        (e.get("entity_label").to_string(), e.parent().to_string()),
                    )
                })
                .collect()
        })
    }

    /// One entity as Maarch holds it.
    pub fn entity(&self, id: &str) -> Option<Entity> {
        self.with(|c| c.entities.get(id).cloned())
    }
}

/// A JSON answer, written as PHP's `json_encode` writes it.
fn answer(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        php_json(value),
    )
        .into_response()
}

fn ok(value: Value) -> Response {
    answer(StatusCode::OK, &value)
}

fn error(status: StatusCode, text: &str) -> Response {
    answer(status, &json!({ "errors": text }))
}

fn bad_request(text: &str) -> Response {
    error(StatusCode::BAD_REQUEST, text)
}

fn forbidden(text: &str) -> Response {
    error(StatusCode::FORBIDDEN, text)
}

/// JSON with every non-ASCII character as `\uXXXX` (UTF-16) and `/` as `\/`.
pub fn php_json(value: &Value) -> String {
    let plain = value.to_string();
    let mut out = String::with_capacity(plain.len());
    for c in plain.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

/// Admits a request through the kernel, Basic authentication checked.
macro_rules! admitted {
    ($kernel:expr, $headers:expr, $route:expr) => {
        admit!($kernel, $route, header(&$headers, "authorization"))
    };
}

fn object(body: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(map)) if !map.is_empty() => Some(map),
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

/// PHP's `\w` without the `u` flag: ASCII letters, digits and `_`.
fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `^[\w.@-]*$`, 1 to 128 characters.
fn valid_login(login: &str) -> bool {
    (1..=128).contains(&login.len()) && login.chars().all(|c| word_char(c) || ".@-".contains(c))
}

/// `^[\w-]*$`, 1 to 32 characters.
fn valid_entity_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.chars().all(|c| word_char(c) || c == '-')
}

/// Roughly PHP's `FILTER_VALIDATE_EMAIL`.
fn valid_mail(mail: &str) -> bool {
    let Some((local, domain)) = mail.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !mail.contains(char::is_whitespace)
        && !domain.contains('@')
}

/// Digits with spaces, dots, dashes or brackets, a leading `+`, a digit last.
fn valid_phone(phone: &str) -> bool {
    let body = phone.strip_prefix('+').unwrap_or(phone);
    phone.len() <= 32
        && body.ends_with(|c: char| c.is_ascii_digit())
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || " .()-".contains(c))
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
        .filter(|(_, u)| u.status != "DEL" && courrier.in_perimeter(u))
        .map(|(id, u)| {
            json!({
                "id": id, "user_id": u.login, "firstname": u.firstname, "lastname": u.lastname,
                "status": u.status, "mail": u.mail, "mode": u.mode,
            })
        })
        .collect();
    ok(json!({ "users": users, "quota": [] }))
}

/// The create's body checks, in Maarch's order.
fn check_new_user(map: &Map<String, Value>, personal_data: bool) -> Result<(), Response> {
    let phone = text(map, "phone");
    if !valid_login(&text(map, "userId")) {
        Err(bad_request(
            "Body userId is empty, not a string or not valid",
        ))
    } else if text(map, "firstname").is_empty() {
        Err(bad_request("Body firstname is empty or not a string"))
    } else if text(map, "lastname").is_empty() {
        Err(bad_request("Body lastname is empty or not a string"))
    } else if text(map, "initials").len() > 32 {
        Err(bad_request("Body initials is too long"))
    } else if !valid_mail(&text(map, "mail")) {
        Err(bad_request("Body mail is empty or not valid"))
    } else if personal_data && !phone.is_empty() && !valid_phone(&phone) {
        Err(bad_request("Body phone is not valid"))
    } else {
        Ok(())
    }
}

/// A 400 whose body shows the request's headers, and the credentials as
/// PHP decodes them (`PHP_AUTH_USER`, `PHP_AUTH_PW`), first.
fn echo(headers: &HeaderMap) -> Response {
    let basic = header(headers, "authorization")
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
        })
        .map(|decoded| String::from_utf8_lossy(&decoded).into_owned())
        .unwrap_or_default();
    let (user, password) = basic.split_once(':').unwrap_or(("", ""));
    let mut shown = vec![
        format!("PHP_AUTH_USER: {user}"),
        format!("PHP_AUTH_PW: {password}"),
    ];
    shown.extend(
        headers
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or(""))),
    );
    (
        StatusCode::BAD_REQUEST,
        format!("Bad Request\n{}\n", shown.join("\n")),
    )
        .into_response()
}

async fn create_user(State(kernel): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let admitted = admitted!(kernel, headers, "POST /rest/users");
    if kernel.lock().echo_headers {
        return echo(&headers);
    }
    let Some(map) = object(&body) else {
        return bad_request("Body is empty");
    };
    let id = {
        let mut courrier = kernel.lock();
        if let Err(response) = check_new_user(&map, courrier.rest.personal_data) {
            return response;
        }
        let login = text(&map, "userId");
        if let Some(id) = courrier.id_of(&login) {
            return restore(&mut courrier, id);
        }
        let mode = match text(&map, "mode") {
            mode if ["standard", "rest", "root_visible", "root_invisible"]
                .contains(&mode.as_str()) =>
            {
                mode
            }
            _ => "standard".to_string(),
        };
        if mode.starts_with("root") && !courrier.rest.root {
            return forbidden(FORBIDDEN);
        }
        let phone = if courrier.rest.personal_data {
            text(&map, "phone")
        } else {
            String::new()
        };
        courrier.activation_mails.push(login.clone());
        courrier.add_user(User {
            login,
            firstname: text(&map, "firstname"),
            lastname: text(&map, "lastname"),
            mail: text(&map, "mail"),
            initials: text(&map, "initials"),
            phone,
            mode,
            status: "OK".into(),
            ..User::default()
        })
    };
    if admitted.malformed() {
        return (StatusCode::OK, "{\"id\":").into_response();
    }
    ok(json!({ "id": id }))
}

/// A create of a login Maarch holds: a deleted one is restored as it was
/// (the body is ignored) and answered as a creation; any other is a 400.
fn restore(courrier: &mut Courrier, id: u64) -> Response {
    let Some(user) = courrier.users.get_mut(&id) else {
        return bad_request(USER_EXISTS);
    };
    if user.status != "DEL" {
        return bad_request(USER_EXISTS);
    }
    user.status = "OK".into();
    let login = user.login.clone();
    courrier.activation_mails.push(login);
    ok(json!({ "id": id }))
}

/// The user of a route's `{id}`, under the lock, if the REST user may
/// change it (`UserId out of perimeter` otherwise).
fn with_user<T>(
    kernel: &Kernel<Courrier>,
    id: &str,
    f: impl FnOnce(&mut Courrier, u64) -> Result<T, Response>,
) -> Result<T, Response> {
    let mut courrier = kernel.lock();
    let Some((id, user)) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| Some((id, courrier.users.get(&id)?)))
    else {
        return Err(bad_request("User not found"));
    };
    if !courrier.in_perimeter(user) {
        return Err(forbidden(OUT_OF_PERIMETER));
    }
    f(&mut courrier, id)
}

fn user_mut(courrier: &mut Courrier, id: u64) -> Result<&mut User, Response> {
    courrier
        .users
        .get_mut(&id)
        .ok_or_else(|| bad_request("User not found"))
}

/// The update's body checks, in Maarch's order.
fn check_user_update(map: &Map<String, Value>, personal_data: bool) -> Result<(), Response> {
    let (mail, phone) = (text(map, "mail"), text(map, "phone"));
    if text(map, "firstname").is_empty() {
        Err(bad_request("Body firstname is empty or not a string"))
    } else if text(map, "lastname").is_empty() {
        Err(bad_request("Body lastname is empty or not a string"))
    } else if text(map, "initials").len() > 32 {
        Err(bad_request("Body initials is too long"))
    } else if !mail.is_empty() && !valid_mail(&mail) {
        Err(bad_request("Body mail is not correct"))
    } else if personal_data && !phone.is_empty() && !valid_phone(&phone) {
        Err(bad_request("Body phone is not correct"))
    } else {
        Ok(())
    }
}

async fn update_user(
    State(kernel): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    admitted!(kernel, headers, "PUT /rest/users/{id}");
    let map = object(&body).unwrap_or_default();
    let result = with_user(&kernel, &id, |courrier, id| {
        let (personal_data, root) = (courrier.rest.personal_data, courrier.rest.root);
        check_user_update(&map, personal_data)?;
        let user = user_mut(courrier, id)?;
        let mode = text(&map, "mode");
        if !mode.is_empty()
            && mode != user.mode
            && (mode.starts_with("root") || user.mode.starts_with("root"))
            && !root
        {
            return Err(forbidden(FORBIDDEN));
        }
        // The whole record is replaced: what is omitted is erased.
        user.firstname = text(&map, "firstname");
        user.lastname = text(&map, "lastname");
        user.mail = text(&map, "mail");
        user.initials = text(&map, "initials");
        if personal_data {
            user.phone = text(&map, "phone");
        }
        if !mode.is_empty() {
            user.mode = mode;
        }
        // Only OK is applied: suspension has its own route.
        if text(&map, "status") == "OK" {
            user.status = "OK".into();
        }
        Ok(())
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
    set_status(&kernel, &id, "SPD")
}

/// `DELETE /rest/users/{id}`: Maarch refuses it for the same reasons as a
/// suspension, and marks the user `DEL` (no longer listed; a create of its
/// login restores it).
async fn delete_user(
    State(kernel): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    admitted!(kernel, headers, "DELETE /rest/users/{id}");
    set_status(&kernel, &id, "DEL")
}

/// Suspends or deletes a user, after Maarch's checks for both.
fn set_status(kernel: &Kernel<Courrier>, id: &str, status: &str) -> Response {
    let result = with_user(kernel, id, |courrier, id| {
        let user = user_mut(courrier, id)?;
        let login = user.login.to_lowercase();
        let root_user = user.mode.starts_with("root");
        let refusal = if login == courrier.rest.login.to_lowercase() {
            Some(YOURSELF)
        } else if root_user && !courrier.rest.root {
            Some(FORBIDDEN)
        } else if courrier.open_mail.iter().any(|l| l.to_lowercase() == login) {
            Some(OPEN_MAIL)
        } else if courrier
            .diffusion_lists
            .iter()
            .any(|l| l.to_lowercase() == login)
        {
            Some(DIFFUSION_LIST)
        } else {
            None
        };
        if let Some(reason) = refusal {
            return Err(forbidden(reason));
        }
        user_mut(courrier, id)?.status = status.into();
        Ok(())
    });
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(response) => response,
    }
}

#[derive(Clone, Copy)]
enum List {
    Groups,
    Entities,
}

impl List {
    fn not_found(self) -> &'static str {
        match self {
            List::Groups => "Group not found",
            List::Entities => "Entity not found",
        }
    }

    fn already(self) -> &'static str {
        match self {
            List::Groups => ALREADY_IN_GROUP,
            List::Entities => ALREADY_IN_ENTITY,
        }
    }

    fn key(self) -> &'static str {
        match self {
            List::Groups => "groups",
            List::Entities => "entities",
        }
    }
}

fn link(kernel: &Kernel<Courrier>, id: &str, list: List, value: &str, add: bool) -> Response {
    let result = with_user(kernel, id, |courrier, id| {
        if add && value.is_empty() {
            return Err(bad_request("Bad Request"));
        }
        let exists = match list {
            List::Groups => courrier.groups.contains(value),
            List::Entities => courrier.entities.contains_key(value),
        };
        if !exists {
            return Err(bad_request(list.not_found()));
        }
        let unassignable =
            matches!(list, List::Groups) && courrier.rest.unassignable.contains(value);
        let user = user_mut(courrier, id)?;
        let set = match list {
            List::Groups => &mut user.groups,
            List::Entities => &mut user.entities,
        };
        if !add {
            set.remove(value);
        } else if set.contains(value) {
            return Err(bad_request(list.already()));
        } else if unassignable {
            return Err(forbidden(FORBIDDEN));
        } else {
            set.insert(value.to_string());
        }
        Ok(set.iter().cloned().collect::<Vec<_>>())
    });
    match result {
        Ok(members) => ok(json!({ list.key(): members })),
        Err(response) => response,
    }
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

/// [`ENTITY_FIELDS`] as the body gives them (omitted ones left out).
fn entity_fields(map: &Map<String, Value>) -> BTreeMap<String, String> {
    ENTITY_FIELDS
        .iter()
        .map(|name| (name.to_string(), text(map, name)))
        .filter(|(_, value)| !value.is_empty())
        .collect()
}

fn entity_ids(courrier: &Courrier) -> Value {
    json!(courrier.entities.keys().collect::<Vec<_>>())
}

/// The create's body checks, in Maarch's order.
fn check_new_entity(map: &Map<String, Value>) -> Result<(), Response> {
    let email = text(map, "email");
    if !valid_entity_id(&text(map, "entity_id")) {
        Err(bad_request(
            "Body entity_id is empty, not a string or not valid",
        ))
    } else if text(map, "entity_label").is_empty() {
        Err(bad_request("Body entity_label is empty or not a string"))
    } else if text(map, "short_label").is_empty() {
        Err(bad_request("Body short_label is empty or not a string"))
    } else if text(map, "entity_type").is_empty() {
        Err(bad_request("Body entity_type is empty or not a string"))
    } else if !email.is_empty() && !valid_mail(&email) {
        Err(bad_request("Body email is not valid"))
    } else {
        Ok(())
    }
}

async fn create_entity(State(kernel): State<Shared>, headers: HeaderMap, body: String) -> Response {
    admitted!(kernel, headers, "POST /rest/entities");
    let Some(map) = object(&body) else {
        return bad_request("Body is empty");
    };
    if let Err(response) = check_new_entity(&map) {
        return response;
    }
    let id = text(&map, "entity_id");
    let mut courrier = kernel.lock();
    if courrier.entities.contains_key(&id) {
        return bad_request(ENTITY_EXISTS);
    }
    // An unknown parent is accepted: the entity is left dangling.
    let entity = Entity {
        fields: entity_fields(&map),
        ..Entity::default()
    };
    if entity.parent().is_empty() {
        // A top-level entity joins its creator's entities.
        courrier.rest.entities.insert(id.clone());
    }
    let serial = courrier.next_serial;
    courrier.add_entity(&id, entity);
    ok(json!({ "entities": entity_ids(&courrier), "id": serial }))
}

async fn update_entity(
    State(kernel): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    admitted!(kernel, headers, "PUT /rest/entities/{id}");
    let map = object(&body).unwrap_or_default();
    let mut courrier = kernel.lock();
    if !courrier.entities.contains_key(&id) {
        return bad_request("Entity not found");
    }
    if ["entity_label", "short_label", "entity_type"]
        .iter()
        .any(|name| text(&map, name).is_empty())
    {
        return bad_request("Bad Request");
    }
    let fields = entity_fields(&map);
    let parent = fields.get("parent_entity_id").cloned().unwrap_or_default();
    if courrier.subtree(&[id.clone()].into()).contains(&parent) {
        return bad_request(MOVE_INTO_CHILD);
    }
    if let Some(entity) = courrier.entities.get_mut(&id) {
        // Every field is replaced: what is omitted is erased.
        entity.fields = fields;
    }
    ok(json!({ "entities": entity_ids(&courrier) }))
}

async fn entity_details(
    State(kernel): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    admitted!(kernel, headers, "GET /rest/entities/{id}/details");
    let courrier = kernel.lock();
    let Some(entity) = courrier.entities.get(&id) else {
        return bad_request("Entity not found");
    };
    let mut shown = Map::new();
    for name in ENTITY_FIELDS {
        let value = entity.fields.get(*name).map_or(Value::Null, |v| json!(v));
        shown.insert(name.to_string(), value);
    }
    let users: Vec<Value> = courrier
        .users
        .iter()
        .filter(|(_, u)| u.entities.contains(&id))
        .map(|(uid, u)| json!({"id": uid, "user_id": u.login, "status": u.status}))
        .collect();
    let has_children = courrier.entities.values().any(|e| e.parent() == id);
    shown.insert("id".into(), json!(entity.serial));
    shown.insert("entity_id".into(), json!(id));
    shown.insert(
        "enabled".into(),
        json!(if entity.disabled { "N" } else { "Y" }),
    );
    shown.insert("users".into(), json!(users));
    shown.insert("hasChildren".into(), json!(has_children));
    shown.insert("templates".into(), json!([]));
    ok(json!({ "entity": shown }))
}

async fn entity_status(
    State(kernel): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    admitted!(kernel, headers, "PUT /rest/entities/{id}/status");
    let mut courrier = kernel.lock();
    if !courrier.entities.contains_key(&id) {
        return bad_request("Entity not found");
    }
    let method = object(&body)
        .map(|m| text(&m, "method"))
        .unwrap_or_default();
    if method.is_empty() {
        return bad_request("Bad Request");
    }
    // Anything but "disable" enables; both reach every entity below.
    let disabled = method == "disable";
    for below in courrier.subtree(&[id].into()) {
        if let Some(entity) = courrier.entities.get_mut(&below) {
            entity.disabled = disabled;
        }
    }
    ok(json!({ "success": "success" }))
}
