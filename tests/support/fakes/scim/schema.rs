//! What the SCIM fake declares at `/Schemas` and `/ResourceTypes`, and how a
//! strict provider holds a resource to it: an attribute the schemas do not
//! declare is refused (400 `invalidSyntax`, "Extra inputs are not
//! permitted: name.honorificPrefix"), a required one that is missing too
//! (400 `invalidValue`), in the words of a real provider (python-scim's
//! scim2-server, whose checks these follow).

use serde_json::{Map, Value, json};

use super::{ENTERPRISE, GROUP_SCHEMA, USER_SCHEMA};

/// An attribute as RFC 7643 §7 describes it: name, multi-valued, required,
/// and its sub-attributes (name, required).
fn attribute(name: &str, multi: bool, required: bool, subs: &[(&str, bool)]) -> Value {
    let kind = if subs.is_empty() { "string" } else { "complex" };
    let mut attribute = json!({
        "name": name, "type": kind, "multiValued": multi, "required": required,
        "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none",
    });
    if !subs.is_empty() {
        attribute["subAttributes"] = subs
            .iter()
            .map(|(sub, required)| attribute_leaf(sub, *required))
            .collect();
    }
    attribute
}

fn attribute_leaf(name: &str, required: bool) -> Value {
    let kind = if name == "primary" {
        "boolean"
    } else {
        "string"
    };
    json!({"name": name, "type": kind, "multiValued": false, "required": required,
           "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none"})
}

fn schema(id: &str, name: &str, attributes: Vec<Value>) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": id, "name": name, "description": name, "attributes": attributes,
    })
}

const MULTI: &[(&str, bool)] = &[
    ("value", false),
    ("display", false),
    ("type", false),
    ("primary", false),
];

/// The core User schema of RFC 7643 §8.7.1 (the attributes a directory
/// sync uses, and `active` with a boolean type).
pub fn user_schema() -> Value {
    user_schema_with(false, true, true)
}

/// A trimmed User schema as strict providers serve: no honorific prefix,
/// no `primary` on e-mails, `name.formatted` required.
pub fn strict_user_schema() -> Value {
    user_schema_with(true, false, false)
}

fn user_schema_with(formatted_required: bool, honorific: bool, email_primary: bool) -> Value {
    let mut name = vec![
        ("formatted", formatted_required),
        ("familyName", false),
        ("givenName", false),
        ("middleName", false),
        ("honorificSuffix", false),
    ];
    if honorific {
        name.push(("honorificPrefix", false));
    }
    let emails: Vec<(&str, bool)> = MULTI
        .iter()
        .copied()
        .filter(|(sub, _)| email_primary || *sub != "primary")
        .collect();
    let mut active = attribute("active", false, false, &[]);
    active["type"] = json!("boolean");
    // userName is unique at the provider (RFC 7643 §4.1.1); a provider
    // holds its schemas to what they say, uniqueness included.
    let mut user_name = attribute("userName", false, true, &[]);
    user_name["uniqueness"] = json!("server");
    schema(
        USER_SCHEMA,
        "User",
        vec![
            user_name,
            attribute("name", false, false, &name),
            attribute("displayName", false, false, &[]),
            attribute("nickName", false, false, &[]),
            attribute("title", false, false, &[]),
            attribute("preferredLanguage", false, false, &[]),
            active,
            attribute("emails", true, false, &emails),
            attribute("phoneNumbers", true, false, MULTI),
        ],
    )
}

/// The enterprise extension (RFC 7643 §4.3); `manager` only when asked.
pub fn enterprise_schema(manager: bool) -> Value {
    let mut attributes: Vec<Value> = [
        "employeeNumber",
        "costCenter",
        "organization",
        "division",
        "department",
    ]
    .iter()
    .map(|name| attribute(name, false, false, &[]))
    .collect();
    if manager {
        attributes.push(attribute(
            "manager",
            false,
            false,
            &[("value", false), ("$ref", false), ("displayName", false)],
        ));
    }
    schema(ENTERPRISE, "EnterpriseUser", attributes)
}

/// The Group schema; `members` required when asked (some providers want it
/// on every group, empty or not).
pub fn group_schema(members_required: bool) -> Value {
    schema(
        GROUP_SCHEMA,
        "Group",
        vec![
            attribute("displayName", false, true, &[]),
            attribute(
                "members",
                true,
                members_required,
                &[("value", false), ("$ref", false), ("display", false)],
            ),
        ],
    )
}

/// `/ResourceTypes`: User (with the enterprise extension when `enterprise`)
/// and Group.
pub fn resource_types(enterprise: bool) -> Vec<Value> {
    let mut user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User", "name": "User", "endpoint": "/Users", "schema": USER_SCHEMA,
    });
    if enterprise {
        user["schemaExtensions"] = json!([{"schema": ENTERPRISE, "required": false}]);
    }
    vec![
        user,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group", "name": "Group", "endpoint": "/Groups", "schema": GROUP_SCHEMA,
        }),
    ]
}

/// Attributes every resource has, declared by no schema (RFC 7643 §3.1).
const COMMON: &[&str] = &["schemas", "id", "externalId", "meta"];

fn find<'a>(list: &'a [Value], key: &str, value: &str) -> Option<&'a Value> {
    list.iter().find(|v| {
        v.get(key)
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case(value))
    })
}

fn declared<'a>(attributes: &'a Value, name: &str) -> Option<&'a Value> {
    attributes
        .as_array()
        .and_then(|list| find(list, "name", name))
}

fn extra(path: &str) -> (&'static str, String) {
    (
        "invalidSyntax",
        format!("Extra inputs are not permitted: {path}"),
    )
}

fn missing(field: &str, at: &str) -> (&'static str, String) {
    let at = if at.is_empty() {
        String::new()
    } else {
        format!(": {at}")
    };
    (
        "invalidValue",
        format!("Field '{field}' is required but value is missing, null or empty{at}"),
    )
}

/// A value that does not count as given. An empty list counts: providers
/// that require `members` on a group take a group with none.
fn empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Checks one complex value (an object) against its sub-attributes; `at`
/// names it in messages (`name`, `emails[0]`).
fn complex(value: &Value, attribute: &Value, at: &str) -> Result<(), (&'static str, String)> {
    let Some(object) = value.as_object() else {
        return Ok(());
    };
    let subs = &attribute["subAttributes"];
    for key in object.keys() {
        if declared(subs, key).is_none() {
            return Err(extra(&format!("{at}.{key}")));
        }
    }
    for sub in subs.as_array().into_iter().flatten() {
        let name = sub["name"].as_str().unwrap_or("");
        let present = object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .is_some_and(|(_, v)| !empty(v));
        if sub["required"] == json!(true) && !present {
            return Err(missing(name, at));
        }
    }
    Ok(())
}

/// Checks the attributes of `object` against a schema's; `prefix` is put
/// before their names in messages (an extension's URN and a colon).
fn attributes(
    object: &Map<String, Value>,
    schema: &Value,
    prefix: &str,
) -> Result<(), (&'static str, String)> {
    let declared_attributes = &schema["attributes"];
    for (key, value) in object {
        let Some(attribute) = declared(declared_attributes, key) else {
            return Err(extra(&format!("{prefix}{key}")));
        };
        if attribute["type"] != json!("complex") {
            continue;
        }
        match value {
            Value::Array(values) => {
                for (i, value) in values.iter().enumerate() {
                    complex(value, attribute, &format!("{prefix}{key}[{i}]"))?;
                }
            }
            _ => complex(value, attribute, &format!("{prefix}{key}"))?,
        }
    }
    for attribute in declared_attributes.as_array().into_iter().flatten() {
        let name = attribute["name"].as_str().unwrap_or("");
        let present = object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .is_some_and(|(_, v)| !empty(v));
        if attribute["required"] == json!(true) && !present {
            return Err(missing(name, prefix.trim_end_matches(':')));
        }
    }
    Ok(())
}

/// Whether `resource` (of the resource type whose core schema is `core`)
/// conforms to the schemas and resource types served: its scimType and
/// detail when it does not.
pub fn conform(
    resource: &Map<String, Value>,
    core: &str,
    schemas: &[Value],
    resource_types: &[Value],
) -> Result<(), (&'static str, String)> {
    let Some(core_schema) = find(schemas, "id", core) else {
        return Ok(());
    };
    let extensions: Vec<(String, bool)> = find(resource_types, "schema", core)
        .and_then(|t| t["schemaExtensions"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let urn = e["schema"].as_str()?;
            Some((urn.to_string(), e["required"] == json!(true)))
        })
        .collect();
    let mut own = Map::new();
    for (key, value) in resource {
        if COMMON.iter().any(|c| c.eq_ignore_ascii_case(key)) {
            continue;
        }
        if !key.starts_with("urn:") {
            own.insert(key.clone(), value.clone());
            continue;
        }
        let known = extensions
            .iter()
            .any(|(urn, _)| urn.eq_ignore_ascii_case(key));
        let schema = find(schemas, "id", key).filter(|_| known);
        match (schema, value.as_object()) {
            (Some(schema), Some(object)) => attributes(object, schema, &format!("{key}:"))?,
            _ => return Err(extra(key)),
        }
    }
    attributes(&own, core_schema, "")?;
    for (urn, required) in &extensions {
        if *required && !resource.keys().any(|k| k.eq_ignore_ascii_case(urn)) {
            return Err(missing(urn, ""));
        }
    }
    Ok(())
}
