//! A fake Collaborator LMS: batch and single user import (an upsert by `uid`
//! answered with counts of *changes*: a user sent as the portal holds it
//! counts nowhere, a block or an unblock only as such), organisation import,
//! the bearer token, the portal option that blocks users missing from a
//! batch, and imports whose answer never arrives.
// The handlers' errors are the HTTP answers themselves.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

use super::kernel::{admit, delay};
use super::{Admitted, Kernel, Refusal, Server, header};

#[derive(Default)]
pub struct Portal {
    pub users: BTreeMap<String, Map<String, Value>>,
    pub orgs: BTreeMap<String, Value>,
    /// The portal's "block missing users" behaviour (its safety option off).
    pub block_missing: bool,
    /// Logins the portal refuses (a 400 for the batch or the single import).
    pub refused_logins: Vec<String>,
    /// Refuse them with a 500 instead, as the portal answers some record
    /// errors (a JSON object saying why, like a 400's).
    pub refuse_with_500: bool,
    /// The next this many batch imports are done, but their answer is held
    /// past any client's timeout, then given as a 504: the client never learns
    /// that the import happened (as when it is killed mid-request).
    pub lost_answers: u64,
    /// Users the portal created (a uid it did not hold), and users it received in all.
    pub creates: u64,
    pub received: u64,
    /// Creates by uid (each should be 1: a replay is an update).
    pub created: BTreeMap<String, u64>,
    /// Users received exactly as the portal held them: replays.
    pub unchanged: u64,
    /// Requests begun and finished (answered, or dropped with their
    /// connection): the difference is what is in flight.
    pub begun: u64,
    pub finished: u64,
    /// User imports answered with their counts, and the uids of the last.
    pub imports: u64,
    pub last_answered: Vec<String>,
}

/// The portal; its requests per path are counted as "batch", "single" and "orgs".
pub type Fake = Server<Portal>;

type Shared = Arc<Kernel<Portal>>;

/// How the portal words the kernel's refusals.
fn refusal(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unauthorised => {
            (StatusCode::UNAUTHORIZED, "{\"error\":\"invalid token\"}").into_response()
        }
        Refusal::TooManyRequests => {
            (StatusCode::TOO_MANY_REQUESTS, "{\"error\":\"slow down\"}").into_response()
        }
        Refusal::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"error\":\"maintenance\"}",
        )
            .into_response(),
    }
}

impl Fake {
    pub fn start(token: &str) -> Fake {
        let kernel = Kernel::new(Portal::default(), Some(format!("Bearer {token}")), refusal);
        Server::launch(kernel, |kernel| {
            Router::new()
                .route("/api/v2/users-import/batch", post(batch))
                .route("/api/v2/users-import/single", post(single))
                .route("/api/v2/orgstructure/import", post(orgs))
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

    /// uid → (login, secondname, email, status) of every user.
    pub fn directory(&self) -> BTreeMap<String, (String, String, String, String)> {
        self.with(|p| {
            p.users
                .iter()
                .map(|(uid, user)| {
                    let get = |k: &str| {
                        user.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    (
                        uid.clone(),
                        (get("login"), get("secondname"), get("email"), get("status")),
                    )
                })
                .collect()
        })
    }
}

const AUTHORIZATION: &str = "x-cbr-authorization";

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

/// How long a lost answer is held: longer than the tests' client timeouts.
const LOST_ANSWER_MS: u64 = 5_000;

#[derive(Default)]
struct Counts {
    created: u64,
    updated: u64,
    blocked: u64,
    unblocked: u64,
}

/// `status` "1" is dismissed (blocked); anything else is at work or on leave.
fn is_blocked(user: &Map<String, Value>) -> bool {
    user.get("status").and_then(Value::as_str) == Some("1")
}

/// Refuses the whole batch for its first bad user, before changing anything.
fn validate(portal: &Portal, users: &[Value]) -> Result<(), Response> {
    for user in users {
        let Some(object) = user.as_object() else {
            return Err((
                StatusCode::BAD_REQUEST,
                "{\"error\":\"a user is not an object\"}",
            )
                .into_response());
        };
        if object.get("uid").and_then(Value::as_str).is_none() {
            return Err(
                (StatusCode::BAD_REQUEST, "{\"error\":\"uid is required\"}").into_response()
            );
        }
        let login = object.get("login").and_then(Value::as_str).unwrap_or("");
        if portal.refused_logins.iter().any(|l| l == login) {
            let status = if portal.refuse_with_500 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::BAD_REQUEST
            };
            return Err((
                status,
                format!("{{\"error\":\"login {login} is reserved\"}}"),
            )
                .into_response());
        }
    }
    Ok(())
}

/// Upserts one user and counts what changed, as the portal does: a new uid
/// is created; for a known one, a change of `status` counts only as a block
/// or an unblock, a change of any other field as an update, and a user sent
/// exactly as held counts nowhere.
fn upsert(portal: &mut Portal, user: Map<String, Value>, counts: &mut Counts) {
    let uid = user
        .get("uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    portal.received += 1;
    let Some(existing) = portal.users.get_mut(&uid) else {
        counts.created += 1;
        portal.creates += 1;
        *portal.created.entry(uid.clone()).or_default() += 1;
        portal.users.insert(uid, user);
        return;
    };
    match (is_blocked(existing), is_blocked(&user)) {
        (false, true) => counts.blocked += 1,
        (true, false) => counts.unblocked += 1,
        _ => {}
    }
    let fields_changed = user
        .iter()
        .any(|(key, value)| key != "status" && existing.get(key) != Some(value));
    if fields_changed {
        counts.updated += 1;
    }
    let unchanged = user
        .iter()
        .all(|(key, value)| existing.get(key) == Some(value));
    existing.extend(user);
    if unchanged {
        portal.unchanged += 1;
    }
}

/// With its "don't block missing users" option off, the portal blocks every
/// active user the batch does not hold, and counts them as blocked.
fn block_missing(portal: &mut Portal, users: &[Value], counts: &mut Counts) {
    let sent: Vec<&str> = users
        .iter()
        .filter_map(|u| u.get("uid").and_then(Value::as_str))
        .collect();
    for (uid, user) in portal.users.iter_mut() {
        if !sent.contains(&uid.as_str()) && !is_blocked(user) {
            user.insert("status".into(), json!("1"));
            counts.blocked += 1;
        }
    }
}

fn uids(users: &[Value]) -> Vec<String> {
    users
        .iter()
        .filter_map(|u| u.get("uid").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn import(portal: &mut Portal, users: &[Value]) -> Result<Counts, Response> {
    validate(portal, users)?;
    let mut counts = Counts::default();
    for user in users {
        upsert(
            portal,
            user.as_object().cloned().unwrap_or_default(),
            &mut counts,
        );
    }
    if portal.block_missing {
        block_missing(portal, users, &mut counts);
    }
    Ok(counts)
}

/// The counts as JSON; with the wrong-counts fault, more users created
/// than the batch held (the one error in counts a client can see: fewer
/// is what a batch of unchanged users gives).
fn answer(admitted: &Admitted, counts: Counts, sent: usize) -> Response {
    if admitted.malformed() {
        return (StatusCode::OK, "{\"created_count\":").into_response();
    }
    let created = if admitted.wrong_counts() {
        sent as u64 + 1
    } else {
        counts.created
    };
    axum::Json(json!({
        "created_count": created,
        "updated_count": counts.updated,
        "blocked_count": counts.blocked,
        "unblocked_count": counts.unblocked,
    }))
    .into_response()
}

async fn batch(State(kernel): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let admitted = admit!(kernel, "batch", header(&headers, AUTHORIZATION));
    let Ok(Value::Array(users)) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "{\"error\":\"expected a JSON array\"}",
        )
            .into_response();
    };
    let (counts, lost) = {
        let mut portal = kernel.lock();
        let counts = match import(&mut portal, &users) {
            Ok(counts) => counts,
            Err(response) => return response,
        };
        let lost = portal.lost_answers > 0;
        portal.lost_answers = portal.lost_answers.saturating_sub(1);
        (counts, lost)
    };
    if lost {
        delay(LOST_ANSWER_MS).await;
        return (StatusCode::GATEWAY_TIMEOUT, "{\"error\":\"timeout\"}").into_response();
    }
    {
        let mut portal = kernel.lock();
        portal.imports += 1;
        portal.last_answered = uids(&users);
    }
    answer(&admitted, counts, users.len())
}

async fn single(State(kernel): State<Shared>, headers: HeaderMap, body: String) -> Response {
    admit!(kernel, "single", header(&headers, AUTHORIZATION));
    let Ok(user @ Value::Object(_)) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "{\"error\":\"expected a JSON object\"}",
        )
            .into_response();
    };
    let answered = uids(std::slice::from_ref(&user));
    let counts = {
        let mut portal = kernel.lock();
        let block_missing = std::mem::take(&mut portal.block_missing);
        let result = import(&mut portal, &[user]);
        portal.block_missing = block_missing;
        match result {
            Ok(counts) => counts,
            Err(response) => return response,
        }
    };
    {
        let mut portal = kernel.lock();
        portal.imports += 1;
        portal.last_answered = answered;
    }
    // The single endpoint's counts are always right.
    answer(&Admitted::default(), counts, 1)
}

async fn orgs(State(kernel): State<Shared>, headers: HeaderMap, body: String) -> Response {
    admit!(kernel, "orgs", header(&headers, AUTHORIZATION));
    let Ok(Value::Array(orgs)) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "{\"error\":\"expected a JSON array\"}",
        )
            .into_response();
    };
    let mut portal = kernel.lock();
    for org in orgs {
        let Some(uid) = org.get("uid").and_then(Value::as_str).map(str::to_string) else {
            return (StatusCode::BAD_REQUEST, "{\"error\":\"uid is required\"}").into_response();
        };
        // The org structure is a tree: a parent must be there before its children.
        let parent = org.get("parent_uid").and_then(Value::as_str).unwrap_or("");
        if !parent.is_empty() && !portal.orgs.contains_key(parent) {
            return (
                StatusCode::BAD_REQUEST,
                format!("{{\"error\":\"parent {parent} of {uid} does not exist\"}}"),
            )
                .into_response();
        }
        portal.orgs.insert(uid, org);
    }
    (StatusCode::OK, "{}").into_response()
}
