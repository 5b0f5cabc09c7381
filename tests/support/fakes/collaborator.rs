//! A fake Collaborator LMS: batch and single user import (an upsert by `uid`
//! with the portal's counts), organisation import, the bearer token, and the
//! portal option that blocks users missing from a batch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

use super::{Counter, Faults, roll, serve};

#[derive(Default)]
pub struct Portal {
    pub users: BTreeMap<String, Map<String, Value>>,
    pub orgs: BTreeMap<String, Value>,
    pub faults: Faults,
    /// The portal's "block missing users" behaviour (its safety option off).
    pub block_missing: bool,
    /// Logins the portal refuses (a 400 for the batch or the single import).
    pub refused_logins: Vec<String>,
    /// Requests per path.
    pub hits: BTreeMap<String, u64>,
    /// Users the portal created (a uid it did not hold), and users it received in all.
    pub creates: u64,
    pub received: u64,
}

pub struct Fake {
    pub url: String,
    pub portal: Arc<Mutex<Portal>>,
    requests: Arc<Counter>,
}

struct Shared {
    portal: Arc<Mutex<Portal>>,
    requests: Arc<Counter>,
    token: String,
}

impl Fake {
    pub fn start(token: &str) -> Fake {
        let portal = Arc::new(Mutex::new(Portal::default()));
        let requests = Arc::new(Counter::default());
        let shared = Arc::new(Shared {
            portal: Arc::clone(&portal),
            requests: Arc::clone(&requests),
            token: format!("Bearer {token}"),
        });
        let app = Router::new()
            .route("/api/v2/users-import/batch", post(batch))
            .route("/api/v2/users-import/single", post(single))
            .route("/api/v2/orgstructure/import", post(orgs))
            .with_state(shared);
        Fake {
            url: serve(app),
            portal,
            requests,
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.get()
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Portal) -> T) -> T {
        f(&mut self.portal.lock().unwrap())
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

/// The start of every request: authentication, numbering, injected faults.
async fn admit(
    shared: &Shared,
    headers: &HeaderMap,
    path: &str,
) -> Result<(u64, Faults), Response> {
    let n = shared.requests.next();
    let faults = {
        let mut portal = shared.portal.lock().unwrap();
        *portal.hits.entry(path.to_string()).or_default() += 1;
        portal.faults.clone()
    };
    if faults.slow_ms > 0 {
        super::delay(faults.slow_ms).await;
    }
    let authorised = headers
        .get("x-cbr-authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == shared.token);
    if !authorised {
        return Err((StatusCode::UNAUTHORIZED, "{\"error\":\"invalid token\"}").into_response());
    }
    if roll(n, faults.fail_percent, 0) {
        return Err(match &faults.retry_after {
            Some(after) => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", after.clone())],
                "{\"error\":\"slow down\"}",
            )
                .into_response(),
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                "{\"error\":\"maintenance\"}",
            )
                .into_response(),
        });
    }
    Ok((n, faults))
}

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

fn answer(n: u64, faults: &Faults, counts: Counts) -> Response {
    if roll(n, faults.malformed_percent, 17) {
        return (StatusCode::OK, "{\"created_count\":").into_response();
    }
    let created = if roll(n, faults.wrong_counts_percent, 31) {
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

async fn batch(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    let (n, faults) = match admit(&shared, &headers, "batch").await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let Ok(Value::Array(users)) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "{\"error\":\"expected a JSON array\"}",
        )
            .into_response();
    };
    let counts = {
        let mut portal = shared.portal.lock().unwrap();
        match import(&mut portal, &users) {
            Ok(counts) => counts,
            Err(response) => return response,
        }
    };
    answer(n, &faults, counts)
}

async fn single(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    let (n, _) = match admit(&shared, &headers, "single").await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let Ok(user @ Value::Object(_)) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "{\"error\":\"expected a JSON object\"}",
        )
            .into_response();
    };
    let counts = {
        let mut portal = shared.portal.lock().unwrap();
        let block_missing = std::mem::take(&mut portal.block_missing);
        let result = import(&mut portal, &[user]);
        portal.block_missing = block_missing;
        match result {
            Ok(counts) => counts,
            Err(response) => return response,
        }
    };
    // The single endpoint's counts are always right.
    answer(n, &Faults::default(), counts)
}

async fn orgs(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    if let Err(response) = admit(&shared, &headers, "orgs").await {
        return response;
    }
    let Ok(Value::Array(orgs)) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "{\"error\":\"expected a JSON array\"}",
        )
            .into_response();
    };
    let mut portal = shared.portal.lock().unwrap();
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
