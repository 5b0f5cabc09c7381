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
    /// Just created: no memberships, status `OK`.
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
        Known::Created => (false, false, !item.active),
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
