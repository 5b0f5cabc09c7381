//! The pure half of sending: credentials, URLs, bodies, and the requests a
//! user needs once Maarch's id for it is known.

use std::collections::BTreeSet;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::connectors::PushItem;
use crate::model::ActionKind;
use crate::projection::Fields;
use crate::secret::Secret;

use super::{DEFAULT_ENTITY_TYPE, ENTITIES, ENTITY_ID, ENTITY_LABEL, GROUPS, LOGIN};

/// `user:password` in base64, the value of a Basic `Authorization` header.
pub fn basic_credentials(user: &str, password: &Secret) -> Secret {
    Secret::new(
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.expose())),
    )
}

/// `base` followed by each segment, percent-encoded (a group id may hold a space or a slash).
pub fn path_url(base: &str, segments: &[&str]) -> String {
    let mut url = base.trim_end_matches('/').to_string();
    for segment in segments {
        url.push('/');
        for byte in segment.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                url.push(byte as char);
            } else {
                url.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    url
}

/// Why Maarch would refuse this user, if it would: its required fields.
pub fn missing_user_fields(fields: &Fields) -> Option<String> {
    let missing: Vec<&str> = [
        (LOGIN, "a login (userId)"),
        ("firstname", "a first name"),
        ("lastname", "a last name"),
        ("mail", "an e-mail address"),
    ]
    .iter()
    .filter(|(name, _)| !fields.contains_key(*name))
    .map(|(_, what)| *what)
    .collect();
    (!missing.is_empty()).then(|| format!("Maarch needs {}", missing.join(" and ")))
}

/// Why Maarch would refuse this login, if it would: it takes letters,
/// digits and `_ . @ -` only (PHP's `^[\w.@-]*$`), 1 to 128 of them.
pub fn login_problem(login: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_.@-".contains(c);
    let fits = (1..=128).contains(&login.len()) && login.chars().all(allowed);
    (!fits).then(|| format!("Maarch takes logins of 1 to 128 letters, digits and _ . @ - only, not {login:?}: correct it in HR's file (or map userId to another field)"))
}

/// Why Maarch would refuse this entity id, if it would: letters, digits,
/// `_` and `-` only (`^[\w-]*$`), 1 to 32 of them.
pub fn entity_id_problem(id: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-".contains(c);
    let fits = (1..=32).contains(&id.len()) && id.chars().all(allowed);
    (!fits).then(|| format!("Maarch takes entity ids of 1 to 32 letters, digits, _ and - only, not {id:?}: correct the organisation's id in HR's file (or map entity_id to another field)"))
}

/// The user record as `POST` (with `userId`) or `PUT` (without) take it: every
/// projected field but the membership lists, as strings; `"status":"OK"` to unblock.
pub fn user_body(fields: &Fields, create: bool, status_ok: bool) -> Value {
    let mut body = Map::new();
    for (name, value) in fields {
        if name == GROUPS || name == ENTITIES || (name == LOGIN && !create) {
            continue;
        }
        body.insert(name.clone(), Value::String(value.clone()));
    }
    if status_ok {
        body.insert("status".into(), Value::String("OK".into()));
    }
    Value::Object(body)
}

/// The entity as `POST /rest/entities` and `PUT /rest/entities/{id}` take it.
pub fn entity_body(fields: &Fields, id: &str) -> Value {
    let mut body: Map<String, Value> = fields
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect();
    body.insert(ENTITY_ID.into(), Value::String(id.to_string()));
    let label = fields.get(ENTITY_LABEL).cloned().unwrap_or_default();
    body.entry("short_label")
        .or_insert_with(|| Value::String(label));
    body.entry("entity_type")
        .or_insert_with(|| Value::String(DEFAULT_ENTITY_TYPE.into()));
    // Sent empty for a top-level entity, so that a move to the top is applied.
    body.entry("parent_entity_id")
        .or_insert_with(|| Value::String(String::new()));
    Value::Object(body)
}

/// Items of an `a||b` list, trimmed, without empty ones.
pub fn split_list(value: Option<&str>) -> BTreeSet<&str> {
    value
        .unwrap_or("")
        .split("||")
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

/// What to add and remove to go from one list to another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListChange {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

pub fn list_change(acked: Option<&str>, desired: Option<&str>) -> ListChange {
    let (old, new) = (split_list(acked), split_list(desired));
    ListChange {
        add: new.difference(&old).map(|s| s.to_string()).collect(),
        remove: old.difference(&new).map(|s| s.to_string()).collect(),
    }
}

/// How the user's Maarch id was learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// From the store: Maarch confirmed it with `acked_fields`.
    Acked,
    /// Just created: no memberships, status `OK`. Maybe not with our
    /// values: a create of a login deleted in Maarch restores its old record.
    Created,
    /// Found by login in Maarch's list, with its status there.
    Found { status: String },
}

/// The requests a user needs once its id is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSteps {
    /// Send the full record with `PUT`.
    pub put: bool,
    /// With `"status":"OK"`.
    pub status_ok: bool,
    pub groups: ListChange,
    pub entities: ListChange,
    pub suspend: bool,
}

pub fn user_steps(item: &PushItem, known: &Known) -> UserSteps {
    let acked = match known {
        Known::Created => None,
        Known::Acked | Known::Found { .. } => item.acked_fields.as_ref(),
    };
    let record = |fields: &'_ Fields| {
        fields
            .iter()
            .filter(|(name, _)| name.as_str() != GROUPS && name.as_str() != ENTITIES)
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect::<Fields>()
    };
    let record_unchanged = acked.is_some_and(|acked| record(acked) == record(&item.fields));
    let (put, status_ok, suspend) = match known {
        // The full record follows: the create may have restored an old one.
        Known::Created => (true, false, !item.active),
        Known::Acked => (
            item.action == ActionKind::Unblock || !record_unchanged,
            item.active && item.action == ActionKind::Unblock,
            !item.active && item.action == ActionKind::Block,
        ),
        // What Maarch holds is unknown: send everything.
        Known::Found { status } => (
            true,
            item.active && status == "SPD",
            !item.active && status != "SPD",
        ),
    };
    let list = |name: &str| {
        list_change(
            acked.and_then(|a| a.get(name)).map(String::as_str),
            item.fields.get(name).map(String::as_str),
        )
    };
    UserSteps {
        put,
        status_ok,
        groups: list(GROUPS),
        entities: list(ENTITIES),
        suspend,
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Membership {
    Group,
    Entity,
}

impl Membership {
    /// Path segment, body key, and the word for messages.
    pub(super) fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Membership::Group => ("groups", "groupId", "group"),
            Membership::Entity => ("entities", "entityId", "entity"),
        }
    }
}

/// What an entity needs, besides being known to Maarch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntitySteps {
    /// Create it, or send it whole.
    pub write: bool,
    /// Then disable it (`Some(false)`) or enable it (`Some(true)`), with
    /// every entity below it (Maarch's `/status` reaches them all).
    pub enable: Option<bool>,
}

pub fn entity_steps(item: &PushItem) -> EntitySteps {
    let changed = item.acked_fields.as_ref() != Some(&item.fields);
    match item.action {
        ActionKind::Block => EntitySteps {
            // A block alone sends nothing else: the entity may never have
            // reached Maarch (then there is nothing to disable).
            write: changed && item.acked_fields.is_some(),
            enable: Some(false),
        },
        ActionKind::Unblock => EntitySteps {
            write: true,
            enable: Some(true),
        },
        _ => EntitySteps {
            write: true,
            enable: (!item.active).then_some(false),
        },
    }
}

/// The entity as Maarch holds it (its scalar fields) with ours over it, and
/// the fields we sent before but HR no longer gives emptied: `PUT` erases
/// what it is not sent, so fields set in Maarch by hand go back as they are.
pub fn merged_entity(held: &Map<String, Value>, ours: &Value, acked: Option<&Fields>) -> Value {
    let mut body: Map<String, Value> = held
        .iter()
        .filter(|(_, value)| {
            matches!(
                value,
                Value::String(_) | Value::Number(_) | Value::Bool(_)
            )
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    if let Some(acked) = acked {
        for name in acked.keys() {
            if ours.get(name).is_none() {
                body.insert(name.clone(), Value::String(String::new()));
            }
        }
    }
    if let Value::Object(ours) = ours {
        body.extend(ours.iter().map(|(name, value)| (name.clone(), value.clone())));
    }
    Value::Object(body)
}
