//! The pure half of sending: SCIM resources and PATCH operations built from
//! a projection, filters and path segments.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::projection::Fields;

use super::{
    ENTERPRISE_ATTRIBUTES, ENTERPRISE_SCHEMA, GROUP_SCHEMA, PATCH_SCHEMA, TYPED_LISTS, USER_SCHEMA,
};

/// Where a projected field goes in a SCIM resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    /// A top-level attribute (`userName`, `title`).
    Simple(String),
    /// A sub-attribute of a complex attribute (`name.givenName`).
    Sub(String, String),
    /// The value of one `type` of a multi-valued attribute (`emails.work`).
    Typed(String, String),
    /// An attribute of an extension schema (`department` → enterprise).
    Extension(String, String),
    /// The enterprise manager: an externalId, sent as the provider's id.
    Manager,
}

impl Slot {
    /// The attribute path of a PATCH operation (RFC 7644 §3.5.2).
    fn path(&self) -> String {
        match self {
            Slot::Simple(name) => name.clone(),
            Slot::Sub(name, sub) => format!("{name}.{sub}"),
            Slot::Typed(name, _) => name.clone(),
            Slot::Extension(urn, name) => format!("{urn}:{name}"),
            Slot::Manager => format!("{ENTERPRISE_SCHEMA}:manager"),
        }
    }
}

pub fn slot(field: &str) -> Slot {
    if field.starts_with("urn:")
        && let Some((urn, name)) = field.rsplit_once(':')
    {
        return match urn {
            USER_SCHEMA | GROUP_SCHEMA => slot(name),
            ENTERPRISE_SCHEMA if name == "manager" => Slot::Manager,
            _ => Slot::Extension(urn.to_string(), name.to_string()),
        };
    }
    if field == "manager" {
        return Slot::Manager;
    }
    if ENTERPRISE_ATTRIBUTES.contains(&field) {
        return Slot::Extension(ENTERPRISE_SCHEMA.into(), field.into());
    }
    match field.split_once('.') {
        Some((name, kind)) if TYPED_LISTS.contains(&name) => Slot::Typed(name.into(), kind.into()),
        Some((name, sub)) => Slot::Sub(name.into(), sub.into()),
        None => Slot::Simple(field.into()),
    }
}

/// The values of one typed multi-valued attribute, `work` first and primary
/// (else the first one).
pub(super) fn typed_values(fields: &Fields, attribute: &str) -> Vec<Value> {
    let mut values: Vec<(&str, &str)> = fields
        .iter()
        .filter_map(|(field, value)| match slot(field) {
            Slot::Typed(name, _) if name == attribute => {
                Some((field.split_once('.').map_or("", |(_, t)| t), value.as_str()))
            }
            _ => None,
        })
        .collect();
    values.sort_by_key(|(kind, _)| *kind != "work");
    values
        .iter()
        .enumerate()
        .map(|(i, (kind, value))| json!({"value": value, "type": kind, "primary": i == 0}))
        .collect()
}

/// The full user resource for POST and PUT. `manager_id` is the provider's
/// id of the manager (left out when `None`).
pub fn user_resource(fields: &Fields, active: bool, manager_id: Option<&str>) -> Value {
    let mut resource = resource_of(fields, USER_SCHEMA, manager_id);
    resource.insert("active".into(), Value::Bool(active));
    Value::Object(resource)
}

/// The group resource for POST and PUT, with `members` kept as given.
pub fn group_resource(fields: &Fields, members: Option<&Value>) -> Value {
    let mut resource = resource_of(fields, GROUP_SCHEMA, None);
    if let Some(members) = members {
        resource.insert("members".into(), members.clone());
    }
    Value::Object(resource)
}

pub(super) fn resource_of(
    fields: &Fields,
    schema: &str,
    manager_id: Option<&str>,
) -> Map<String, Value> {
    let mut resource = Map::new();
    let mut schemas = BTreeSet::new();
    let mut extensions: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for (field, value) in fields {
        match slot(field) {
            Slot::Simple(name) => {
                resource.insert(name, Value::String(value.clone()));
            }
            Slot::Sub(name, sub) => {
                if let Value::Object(complex) = resource
                    .entry(name)
                    .or_insert_with(|| Value::Object(Map::new()))
                {
                    complex.insert(sub, Value::String(value.clone()));
                }
            }
            Slot::Typed(name, _) => {
                let values = typed_values(fields, &name);
                resource.insert(name, Value::Array(values));
            }
            Slot::Extension(urn, name) => {
                extensions
                    .entry(urn)
                    .or_default()
                    .insert(name, Value::String(value.clone()));
            }
            Slot::Manager => {
                if let Some(id) = manager_id {
                    extensions
                        .entry(ENTERPRISE_SCHEMA.into())
                        .or_default()
                        .insert("manager".into(), json!({ "value": id }));
                }
            }
        }
    }
    for (urn, attributes) in extensions {
        schemas.insert(urn.clone());
        resource.insert(urn, Value::Object(attributes));
    }
    let mut all = vec![Value::String(schema.into())];
    all.extend(schemas.into_iter().map(Value::String));
    resource.insert("schemas".into(), Value::Array(all));
    resource
}

/// Whether an update must carry the manager (it changed to a new one).
pub fn manager_changed(desired: &Fields, acked: &Fields) -> bool {
    desired.get("manager").is_some() && desired.get("manager") != acked.get("manager")
}

/// PATCH operations taking a user from `acked` to `desired`: `replace` for
/// what changed, `remove` for what is gone, whole typed lists replaced, and
/// `active` always. `manager_id` is needed when the manager changed.
pub fn user_patch_ops(
    desired: &Fields,
    acked: &Fields,
    active: bool,
    manager_id: Option<&str>,
) -> Vec<Value> {
    let mut ops = Vec::new();
    let changed: BTreeSet<&String> = desired
        .keys()
        .chain(acked.keys())
        .filter(|field| desired.get(*field) != acked.get(*field))
        .collect();
    let mut lists = BTreeSet::new();
    for field in changed {
        let slot = slot(field);
        let value = match (&slot, desired.get(field)) {
            (Slot::Typed(name, _), _) => {
                lists.insert(name.clone());
                continue;
            }
            (_, None) => None,
            (Slot::Manager, Some(_)) => manager_id.map(|id| json!({ "value": id })),
            (_, Some(value)) => Some(Value::String(value.clone())),
        };
        ops.push(operation(&slot.path(), value));
    }
    for name in lists {
        let values = typed_values(desired, &name);
        let value = (!values.is_empty()).then_some(Value::Array(values));
        ops.push(operation(&name, value));
    }
    ops.push(json!({"op": "replace", "path": "active", "value": active}));
    ops
}

/// PATCH operations for a group: every desired attribute replaced (the
/// members untouched), and what the provider confirmed but is gone removed.
pub fn group_patch_ops(desired: &Fields, acked: Option<&Fields>) -> Vec<Value> {
    let mut ops: Vec<Value> = desired
        .iter()
        .map(|(field, value)| operation(&slot(field).path(), Some(Value::String(value.clone()))))
        .collect();
    for field in acked.into_iter().flat_map(|a| a.keys()) {
        if !desired.contains_key(field) {
            ops.push(operation(&slot(field).path(), None));
        }
    }
    ops
}

pub(super) fn operation(path: &str, value: Option<Value>) -> Value {
    match value {
        Some(value) => json!({"op": "replace", "path": path, "value": value}),
        None => json!({"op": "remove", "path": path}),
    }
}

pub fn patch_body(operations: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": operations})
}

/// `attribute eq "value"`: the value as a JSON string (RFC 7644 §3.4.2.2),
/// so that quotes and backslashes are escaped.
pub fn eq_filter(attribute: &str, value: &str) -> String {
    format!("{attribute} eq {}", Value::String(value.to_string()))
}

/// Percent-encodes a query value or path segment (spaces as `%20`, which
/// every server reads, unlike `+`).
pub fn encode(text: &str) -> String {
    // byte_serialize writes a space as `+` and a `+` as `%2B`.
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

pub(super) fn segment(id: &str) -> String {
    encode(id)
}
