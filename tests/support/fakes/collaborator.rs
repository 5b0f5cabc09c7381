//! A fake Collaborator LMS: batch and single user import (an upsert by `uid`
//! with the portal's counts), organisation import, the bearer token, and the
//! portal option that blocks users missing from a batch.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

use super::kernel::admit;
use super::{Admitted, Kernel, Refusal, Server, header};

#[derive(Default)]
pub struct Portal {
    pub users: BTreeMap<String, Map<String, Value>>,
    pub orgs: BTreeMap<String, Value>,
    /// The portal's "block missing users" behaviour (its safety option off).
    pub block_missing: bool,
    /// Logins the portal refuses (a 400 for the batch or the single import).
    pub refused_logins: Vec<String>,
    /// Users the portal created (a uid it did not hold), and users it received in all.
    pub creates: u64,
    pub received: u64,
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
                .with_state(kernel)
        })
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

#[derive(Default)]
struct Counts {
    created: u64,
    updated: u64,
    blocked: u64,
    unblocked: u64,
}

// A fake's handler: the error is the HTTP answer itself.
#[allow(clippy::result_large_err)]
fn import(portal: &mut Portal, users: &[Value]) -> Result<Counts, Response> {
    let mut counts = Counts::default();
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
            return Err((
                StatusCode::BAD_REQUEST,
                format!("{{\"error\":\"login {login} is reserved\"}}"),
            )
                .into_response());
        }
    }
    let sent: Vec<&str> = users
        .iter()
        .filter_map(|u| u.get("uid").and_then(Value::as_str))
        .collect();
    for user in users {
        let object = user.as_object().cloned().unwrap_or_default();
        let uid = object
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let status = object
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("0")
            .to_string();
        portal.received += 1;
        match portal.users.get_mut(&uid) {
            None => {
                counts.created += 1;
                portal.creates += 1;
                portal.users.insert(uid, object);
            }
            Some(existing) => {
                counts.updated += 1;
                let before = existing
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("0")
                    .to_string();
                match (before.as_str(), status.as_str()) {
                    ("0", "1") => counts.blocked += 1,
                    ("1", "0") => counts.unblocked += 1,
                    _ => {}
                }
                for (key, value) in object {
                    existing.insert(key, value);
                }
            }
        }
    }
    if portal.block_missing {
        for (uid, user) in portal.users.iter_mut() {
            if !sent.contains(&uid.as_str())
                && user.get("status").and_then(Value::as_str) == Some("0")
            {
                user.insert("status".into(), json!("1"));
                counts.blocked += 1;
            }
        }
    }
    Ok(counts)
}

fn answer(admitted: &Admitted, counts: Counts) -> Response {
    if admitted.malformed() {
        return (StatusCode::OK, "{\"created_count\":").into_response();
    }
    let created = if admitted.wrong_counts() {
        counts.created + 1
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
    let counts = {
        let mut portal = kernel.lock();
        match import(&mut portal, &users) {
            Ok(counts) => counts,
            Err(response) => return response,
        }
    };
    answer(&admitted, counts)
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
    // The single endpoint's counts are always right.
    answer(&Admitted::default(), counts)
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
