//! The pure half of sending: SCIM resources and PATCH operations built from
//! a projection, filters and path segments.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::projection::Fields;

use super::schema::Wire;
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

/// One value of a typed list (`{"value", "type"}`), with `primary` when
/// given and the provider declares it.
fn typed_value(list: &str, kind: &str, value: &str, primary: Option<bool>, wire: &Wire) -> Value {
    let mut typed = json!({"value": value, "type": kind});
    if let Some(primary) = primary.filter(|_| wire.primary(list)) {
        typed["primary"] = Value::Bool(primary);
    }
    typed
}

/// The values of one typed multi-valued attribute as a new resource holds
/// them, `work` first and primary (else the first one).
pub(super) fn typed_values(fields: &Fields, attribute: &str, wire: &Wire) -> Vec<Value> {
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
        .map(|(i, (kind, value))| typed_value(attribute, kind, value, Some(i == 0), wire))
        .collect()
}

/// The full user resource for POST. `manager_id` is the provider's id of
/// the manager (left out when `None`).
pub fn user_resource(fields: &Fields, active: bool, manager_id: Option<&str>, wire: &Wire) -> Value {
    let mut resource = resource_of(fields, USER_SCHEMA, manager_id, wire);
    if !wire.no_active {
        resource.insert("active".into(), Value::Bool(active));
    }
    Value::Object(resource)
}

/// The group resource for POST and PUT, with `members` kept as given.
pub fn group_resource(fields: &Fields, members: Option<&Value>, wire: &Wire) -> Value {
    let mut resource = resource_of(fields, GROUP_SCHEMA, None, wire);
    if let Some(members) = members {
        resource.insert("members".into(), members.clone());
    }
    Value::Object(resource)
}

pub(super) fn resource_of(
    fields: &Fields,
    schema: &str,
    manager_id: Option<&str>,
    wire: &Wire,
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
                let values = typed_values(fields, &name, wire);
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

/// PATCH operations taking a user from `base` (what the provider holds, as
/// confirmed or as read) to `desired`: `replace` for what changed, `remove`
/// for what is gone, and `active` (where declared). A typed value is
/// changed alone (`emails[type eq "work"].value`), added to its list or
/// removed from it: the provider's other values stay. `manager_id` is
/// needed when the manager changed.
pub fn user_patch_ops(
    desired: &Fields,
    base: &Fields,
    active: bool,
    manager_id: Option<&str>,
    wire: &Wire,
) -> Vec<Value> {
    let mut ops = Vec::new();
    let changed: BTreeSet<&String> = desired
        .keys()
        .chain(base.keys())
        .filter(|field| desired.get(*field) != base.get(*field))
        .collect();
    for field in changed {
        let slot = slot(field);
        let value = match (&slot, desired.get(field)) {
            (Slot::Typed(name, kind), wanted) => {
                ops.push(typed_op(name, kind, wanted, base.contains_key(field), wire));
                continue;
            }
            (_, None) => None,
            (Slot::Manager, Some(_)) => manager_id.map(|id| json!({ "value": id })),
            (_, Some(value)) => Some(Value::String(value.clone())),
        };
        ops.push(operation(&slot.path(), value));
    }
    if !wire.no_active {
        ops.push(json!({"op": "replace", "path": "active", "value": active}));
    }
    ops
}

/// The operation that makes the provider hold `wanted` as the `kind` value
/// of `list`, when it `holds` one of that type or not.
fn typed_op(list: &str, kind: &str, wanted: Option<&String>, holds: bool, wire: &Wire) -> Value {
    let selected = format!("{list}[type eq {}]", Value::String(kind.to_string()));
    match (wanted, holds) {
        (Some(value), true) => json!({"op": "replace", "path": format!("{selected}.value"), "value": value}),
        (Some(value), false) => {
            json!({"op": "add", "path": list, "value": [typed_value(list, kind, value, None, wire)]})
        }
        (None, _) => json!({"op": "remove", "path": selected}),
    }
}

/// The key an attribute has in `object` (names compare without case,
/// RFC 7643 §2.1), or `name` when it has none.
fn key_of(object: &Map<String, Value>, name: &str) -> String {
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

fn get<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// A value as a projection holds it (text; numbers and booleans written out).
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

fn typed_of<'a>(values: &'a [Value], kind: &str) -> Option<&'a Map<String, Value>> {
    values.iter().filter_map(Value::as_object).find(|v| {
        get(v, "type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case(kind))
    })
}

/// What a resource read from the provider holds of one field (the manager
/// as the provider's id).
fn held(resource: &Map<String, Value>, field: &str) -> Option<String> {
    fn object(value: Option<&Value>) -> Option<&Map<String, Value>> {
        value.and_then(Value::as_object)
    }
    let value = match slot(field) {
        Slot::Simple(name) => get(resource, &name),
        Slot::Sub(name, sub) => object(get(resource, &name)).and_then(|c| get(c, &sub)),
        Slot::Typed(name, kind) => get(resource, &name)
            .and_then(Value::as_array)
            .and_then(|values| typed_of(values, &kind))
            .and_then(|typed| get(typed, "value")),
        Slot::Extension(urn, name) => object(get(resource, &urn)).and_then(|e| get(e, &name)),
        Slot::Manager => object(get(resource, ENTERPRISE_SCHEMA))
            .and_then(|e| object(get(e, "manager")))
            .and_then(|m| get(m, "value")),
    };
    value.and_then(scalar).filter(|v| !v.is_empty())
}

/// The `owned` fields as a resource read from the provider holds them: the
/// base of a PATCH when what the provider confirmed is not known.
pub fn view(resource: &Map<String, Value>, owned: &[String]) -> Fields {
    owned
        .iter()
        .filter_map(|field| Some((field.clone(), held(resource, field)?)))
        .collect()
}

/// Sets (or removes, when `value` is `None`) an attribute of `object`,
/// under the key it already has.
fn put(object: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    let key = key_of(object, name);
    match value {
        Some(value) => {
            object.insert(key, value);
        }
        None => {
            object.remove(&key);
        }
    }
}

/// Sets or removes `name` in the object `parent` holds in `object`; the
/// parent goes when it is left empty.
fn put_in(object: &mut Map<String, Value>, parent: &str, name: &str, value: Option<Value>) {
    let key = key_of(object, parent);
    let mut inner = match object.remove(&key) {
        Some(Value::Object(inner)) => inner,
        _ => Map::new(),
    };
    put(&mut inner, name, value);
    if !inner.is_empty() {
        object.insert(key, Value::Object(inner));
    }
}

/// Makes `value` the only `kind` value of the list `name`, in the place
/// (and with the `primary` flag) the one it replaces had; the other values
/// stay as they are.
fn put_typed(object: &mut Map<String, Value>, name: &str, kind: &str, value: Option<&String>, wire: &Wire) {
    let key = key_of(object, name);
    let mut values = match object.remove(&key) {
        Some(Value::Array(values)) => values,
        _ => Vec::new(),
    };
    let is_kind = |v: &Value| {
        v.as_object()
            .and_then(|o| get(o, "type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case(kind))
    };
    let at = values.iter().position(is_kind);
    let primary = at
        .and_then(|i| values[i].as_object())
        .and_then(|o| get(o, "primary"))
        .and_then(Value::as_bool);
    values.retain(|v| !is_kind(v));
    if let Some(value) = value {
        let typed = typed_value(name, kind, value, primary, wire);
        values.insert(at.unwrap_or(values.len()).min(values.len()), typed);
    }
    if !values.is_empty() {
        object.insert(key, Value::Array(values));
    }
}

/// The user resource for a PUT: what the provider holds (`current`, as
/// read) with the `owned` fields set to `desired` (or removed), `active`
/// and the manager; every other attribute and value the provider holds is
/// kept (RFC 7644 §3.5.1: a PUT replaces what it does not carry).
pub fn merged_user(
    current: &Map<String, Value>,
    desired: &Fields,
    owned: &[String],
    active: bool,
    manager_id: Option<&str>,
    wire: &Wire,
) -> Value {
    let mut resource = current.clone();
    resource.remove("meta");
    for field in owned {
        let value = desired.get(field);
        let text = || value.map(|v| Value::String(v.clone()));
        match slot(field) {
            Slot::Simple(name) => put(&mut resource, &name, text()),
            Slot::Sub(name, sub) => put_in(&mut resource, &name, &sub, text()),
            Slot::Typed(name, kind) => put_typed(&mut resource, &name, &kind, value, wire),
            Slot::Extension(urn, name) => put_in(&mut resource, &urn, &name, text()),
            Slot::Manager => {
                let manager = manager_id.filter(|_| value.is_some());
                let manager = manager.map(|id| json!({ "value": id }));
                put_in(&mut resource, ENTERPRISE_SCHEMA, "manager", manager);
            }
        }
    }
    if !wire.no_active {
        put(&mut resource, "active", Some(Value::Bool(active)));
    }
    list_schemas(&mut resource, USER_SCHEMA);
    Value::Object(resource)
}

/// `schemas` lists the core schema and exactly the extensions the resource
/// carries.
fn list_schemas(resource: &mut Map<String, Value>, core: &str) {
    let extensions: Vec<String> = resource
        .keys()
        .filter(|k| k.starts_with("urn:"))
        .cloned()
        .collect();
    let carried = |s: &str| {
        s.eq_ignore_ascii_case(core) || extensions.iter().any(|e| e.eq_ignore_ascii_case(s))
    };
    let mut schemas: Vec<String> = get(resource, "schemas")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|s| carried(s))
        .map(str::to_string)
        .collect();
    for urn in std::iter::once(core.to_string()).chain(extensions) {
        if !schemas.iter().any(|s| s.eq_ignore_ascii_case(&urn)) {
            schemas.push(urn);
        }
    }
    put(resource, "schemas", Some(json!(schemas)));
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
