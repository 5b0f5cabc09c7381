//! The pure half of receiving: what Maarch's replies say (created ids, the
//! user list, refusals worth another try, settled memberships).

use serde_json::Value;

use crate::connectors::ReplyError;
use crate::connectors::http::Reply;
use crate::retry::Failure;

/// The id of `{"id":N}` (a number, or a string of digits).
pub fn parse_created_id(body: &str) -> Result<String, ReplyError> {
    let value: Value =
        serde_json::from_str(body).map_err(|error| ReplyError::unreadable("reply", &error))?;
    value
        .get("id")
        .and_then(id_text)
        .ok_or_else(|| ReplyError::shape("the reply has no id"))
}

pub(super) fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        _ => None,
    }
}

/// A user of `GET /rest/users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUser {
    pub id: String,
    pub login: String,
    pub status: String,
}

pub fn parse_users(body: &str) -> Result<Vec<ListedUser>, ReplyError> {
    let value: Value =
        serde_json::from_str(body).map_err(|error| ReplyError::unreadable("user list", &error))?;
    let users = value
        .get("users")
        .and_then(Value::as_array)
        .ok_or_else(|| ReplyError::shape("the user list has no users array"))?;
    Ok(users
        .iter()
        .filter_map(|user| {
            Some(ListedUser {
                id: user.get("id").and_then(id_text)?,
                login: user.get("user_id")?.as_str()?.to_string(),
                status: user
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("OK")
                    .to_string(),
            })
        })
        .collect())
}

/// The user with this login: the exact one, else the only one that differs in case.
pub fn pick_user(users: Vec<ListedUser>, login: &str) -> Option<ListedUser> {
    let mut folded: Vec<ListedUser> = Vec::new();
    for user in users {
        if user.login == login {
            return Some(user);
        }
        if user.login.eq_ignore_ascii_case(login) {
            folded.push(user);
        }
    }
    (folded.len() == 1).then(|| folded.remove(0))
}

/// A refused entity. Its parent missing is worth another try: the parent may
/// be on its way (failed transiently just before, in the same push); the
/// retry budget bounds the wait.
pub fn entity_failure(reply: &Reply) -> Failure {
    let body = reply.body.to_lowercase();
    let parent_missing = reply.status == 400
        && body.contains("parent")
        && ["not found", "does not exist", "n'existe pas", "introuvable"]
            .iter()
            .any(|words| body.contains(words));
    match reply.failure() {
        Failure::Permanent { reason } if parent_missing => {
            transient(format!("the parent entity is not in Maarch yet ({reason})"))
        }
        failure => failure,
    }
}

/// A 400 saying a membership is already there (or already gone): the replay of a change that went through.
pub fn membership_settled(reply: &Reply) -> bool {
    let body = reply.body.to_lowercase();
    reply.status == 400
        && ["already", "déjà", "not linked", "n'est pas lié"]
            .iter()
            .any(|words| body.contains(words))
}

pub(super) fn transient(reason: String) -> Failure {
    Failure::Transient {
        reason,
        retry_after: None,
    }
}

/// The failure, its reason prefixed with what was being done.
pub(super) fn in_context(context: &str, failure: Failure) -> Failure {
    match failure {
        Failure::Transient {
            reason,
            retry_after,
        } => Failure::Transient {
            reason: format!("{context}: {reason}"),
            retry_after,
        },
        Failure::Permanent { reason } => Failure::Permanent {
            reason: format!("{context}: {reason}"),
        },
    }
}
