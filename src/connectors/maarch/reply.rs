//! The pure half of receiving: what Maarch's replies say (created ids, the
//! user list, an entity as it holds it) and what its refusals mean, with the
//! reasons a person reads when a record is parked.

use serde_json::{Map, Value};

use crate::connectors::ReplyError;
use crate::connectors::adopt::Account;
use crate::connectors::http::Reply;
use crate::retry::Failure;

use super::{LOGIN, MAIL};

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
    pub mail: String,
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
                mail: user
                    .get("mail")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
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

/// The listed users whose `target_field` (`userId` or `mail`) holds
/// `value`, as Maarch compares them: without case.
pub fn holding(users: &[ListedUser], target_field: &str, value: &str) -> Vec<Account> {
    let of = |user: &ListedUser| -> Option<String> {
        match target_field {
            LOGIN => Some(user.login.clone()),
            MAIL => Some(user.mail.clone()),
            _ => None,
        }
    };
    users
        .iter()
        .filter(|user| of(user).is_some_and(|held| !held.is_empty() && held.to_lowercase() == value.to_lowercase()))
        .map(|user| Account {
            id: user.id.clone(),
            login: user.login.clone(),
            ext_id: None,
        })
        .collect()
}

/// The entity of `GET /rest/entities/{id}/details` (`{"entity":{...}}`).
pub fn parse_entity(body: &str) -> Result<Map<String, Value>, ReplyError> {
    let value: Value =
        serde_json::from_str(body).map_err(|error| ReplyError::unreadable("entity", &error))?;
    match value.get("entity") {
        Some(Value::Object(entity)) => Ok(entity.clone()),
        _ => Err(ReplyError::shape("the reply holds no entity")),
    }
}

/// What Maarch said in a refusal: the `errors` text of its JSON body
/// (with `detail` when it gives one), or the start of a body that is not
/// its JSON (a proxy's page).
pub fn said(body: &str) -> String {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(body) else {
        return shorten(body);
    };
    let text = |key: &str| match object.get(key) {
        Some(Value::String(text)) => Some(text.trim().to_string()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    match (text("errors"), text("detail")) {
        (Some(errors), Some(detail)) if !detail.is_empty() && detail != errors => {
            shorten(&format!("{errors} ({detail})"))
        }
        (Some(errors), _) => shorten(&errors),
        (None, _) => shorten(body),
    }
}

/// At most 300 characters, on one line.
fn shorten(text: &str) -> String {
    const MAX: usize = 300;
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The refusals the connector tells apart, by Maarch's words in either
/// language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The link is there already.
    AlreadyLinked,
    /// The login or the entity id is taken.
    Exists,
    /// The user (or entity) is outside the REST user's perimeter.
    OutOfPerimeter,
    /// Suspension: the user still receives open mail.
    OpenMail,
    /// Suspension: the user is in an entity's diffusion list.
    DiffusionList,
    /// Suspension: the user is the REST user itself.
    Yourself,
    /// A right the REST user lacks (a root user is one such case).
    Forbidden,
    /// The group, entity or user named does not exist.
    NotFound,
    Other,
}

impl Refusal {
    pub fn of(said: &str) -> Refusal {
        let text = said.to_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
        if has(&["déjà lié", "already linked"]) {
            Refusal::AlreadyLinked
        } else if has(&["existe déjà", "already exist"]) {
            Refusal::Exists
        } else if has(&["out of perimeter"]) {
            Refusal::OutOfPerimeter
        } else if has(&["listinstances"]) {
            Refusal::OpenMail
        } else if has(&["listtemplates"]) {
            Refusal::DiffusionList
        } else if has(&["delete yourself"]) {
            Refusal::Yourself
        } else if has(&["service forbidden"]) {
            Refusal::Forbidden
        } else if has(&["not found", "does not exist", "n'existe pas", "introuvable"]) {
            Refusal::NotFound
        } else {
            Refusal::Other
        }
    }
}

/// What the French texts Maarch answers with mean.
fn in_english(said: &str) -> Option<&'static str> {
    let text = said.to_lowercase();
    [
        ("déjà lié", "it is linked already"),
        ("existe déjà", "it exists already"),
        (
            "déplacer",
            "an entity cannot move under one of its own sub-entities",
        ),
        ("n'existe pas", "it does not exist"),
        ("introuvable", "it was not found"),
    ]
    .into_iter()
    .find(|(french, _)| text.contains(french))
    .map(|(_, english)| english)
}

/// `HTTP 400 "what Maarch said" (its meaning, when it said it in French)`.
pub fn answered(reply: &Reply) -> String {
    let said = said(&reply.body);
    match (said.is_empty(), in_english(&said)) {
        (true, _) => format!("HTTP {}", reply.status),
        (false, Some(english)) => format!("HTTP {} \"{said}\" ({english})", reply.status),
        (false, None) => format!("HTTP {} \"{said}\"", reply.status),
    }
}

/// A refusal as a failure worth another try or not, as its status says:
/// `doing`, what Maarch answered, then `advice` (what to do about it).
pub fn refused(doing: &str, reply: &Reply, advice: &str) -> Failure {
    let reason = format!("{doing}: Maarch answered {}; {advice}", answered(reply));
    match reply.failure() {
        Failure::Transient { retry_after, .. } => Failure::Transient {
            reason,
            retry_after,
        },
        Failure::Permanent { .. } => Failure::Permanent { reason },
    }
}

/// What to do about a refusal nothing more specific explains, by its status.
pub fn advice(status: u16, rest_user: &str) -> String {
    match status {
        401 => format!(
            "check the target's user ({rest_user}) and its password, and that it is a Maarch user of mode rest"
        ),
        403 => format!(
            "the Maarch user {rest_user} lacks the right to do this: give it that right in Maarch, then run `rostersync retry`"
        ),
        404 => "check the target's url (Maarch's address, without /rest)".to_string(),
        400..=499 => "correct the record in HR's file (or the target's mapping); the next file or `rostersync retry` sends it again".to_string(),
        _ => "rostersync tries again".to_string(),
    }
}

/// What to do about a user outside the REST user's perimeter.
pub fn out_of_perimeter(login: &str, rest_user: &str) -> String {
    format!(
        "{login} is outside the perimeter of the REST user {rest_user}, which sees and changes only the users of its own entities (and those below them) and users without entity: give {rest_user} an entity above {login}'s in Maarch, or make it root, then run `rostersync retry`"
    )
}

/// What to do about a suspension Maarch refused with 403.
pub fn suspension_advice(refusal: Refusal, login: &str, rest_user: &str) -> String {
    removal_advice(refusal, login, rest_user, "suspend")
}

/// What to do about a suspension or a delete (`verb`) Maarch refused with
/// 403: it refuses both for the same reasons.
pub fn removal_advice(refusal: Refusal, login: &str, rest_user: &str, verb: &str) -> String {
    let retry = "then run `rostersync retry`";
    match refusal {
        Refusal::OpenMail => format!(
            "{login} is still the recipient of open mail: redirect or close that mail in Maarch, {retry}"
        ),
        Refusal::DiffusionList => format!(
            "{login} is still in an entity's diffusion list: take them out of it in Maarch (administration of the entity), {retry}"
        ),
        Refusal::Yourself => format!(
            "{login} is the Maarch user rostersync logs in as ({rest_user}), which cannot {verb} itself: {verb} it by hand, or give rostersync another user of mode rest"
        ),
        Refusal::Forbidden => format!(
            "either {login} is a root user, whom only a root user may {verb}, or {rest_user} lacks the right to administer users: {verb} {login} by hand, or give {rest_user} that right (or root), {retry}"
        ),
        Refusal::OutOfPerimeter => out_of_perimeter(login, rest_user),
        _ => advice(403, rest_user),
    }
}

/// Whether a refused link change is in fact done: adding a link that is
/// there, or removing one from a group or entity that no longer exists.
pub fn membership_settled(reply: &Reply, add: bool) -> bool {
    reply.status == 400
        && match Refusal::of(&said(&reply.body)) {
            Refusal::AlreadyLinked => add,
            Refusal::NotFound => !add,
            _ => false,
        }
}

pub(super) fn transient(reason: String) -> Failure {
    Failure::Transient {
        reason,
        retry_after: None,
    }
}

/// The failure, its reason prefixed with what was being done.
pub(super) fn in_context(context: &str, failure: Failure) -> Failure {
    failure.map_reason(|reason| format!("{context}: {reason}"))
}
