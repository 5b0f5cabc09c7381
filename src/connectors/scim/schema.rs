//! What a provider says of itself (RFC 7643 §5–7), read once before the
//! first record: its features (`/ServiceProviderConfig`), the attributes its
//! `/Schemas` declare and require, the extensions its `/ResourceTypes` allow
//! on a resource; and the pure use of them ([`Wire`]): which mapped fields
//! it takes, and the projection trimmed to those with what it requires
//! filled in. Strict providers refuse a resource carrying one attribute
//! they do not declare, so the trimming is what lets a default mapping
//! reach them.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::connectors::ReplyError;
use crate::projection::Fields;

use super::request::{Slot, slot};
use super::ENTERPRISE_SCHEMA;

/// What `/ServiceProviderConfig` announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    pub patch: bool,
    /// `filter.supported`: without it, lookups come from one paged scan.
    pub filter: bool,
    /// `etag.supported`: writes then carry `If-Match`.
    pub etag: bool,
    /// `filter.maxResults`: the most resources one page holds.
    pub max_results: Option<u64>,
}

impl Default for Features {
    /// A provider without `/ServiceProviderConfig`: PUT, filters, no ETags.
    fn default() -> Features {
        Features {
            patch: false,
            filter: true,
            etag: false,
            max_results: None,
        }
    }
}

/// What a ServiceProviderConfig holds (RFC 7643 §5): a reply with none of
/// it (`{}` from a proxy, say) is no description of the provider, and must
/// not be kept as one for as long as the daemon runs.
const PROVIDER_CONFIG_KEYS: &[&str] = &[
    "schemas",
    "patch",
    "bulk",
    "filter",
    "changePassword",
    "sort",
    "etag",
    "authenticationSchemes",
];

pub fn parse_features(body: &str) -> Result<Features, ReplyError> {
    let value: Value =
        serde_json::from_str(body).map_err(|error| ReplyError::unreadable("reply", &error))?;
    let described = value
        .as_object()
        .is_some_and(|object| PROVIDER_CONFIG_KEYS.iter().any(|key| object.contains_key(*key)));
    if !described {
        return Err(ReplyError::shape(
            "the reply is not a ServiceProviderConfig",
        ));
    }
    let supported = |name: &str, otherwise: bool| {
        value
            .get(name)
            .and_then(|f| f.get("supported"))
            .and_then(Value::as_bool)
            .unwrap_or(otherwise)
    };
    Ok(Features {
        patch: supported("patch", false),
        // Filters are what RFC 7644 lookups are made of: only an explicit
        // `false` is believed.
        filter: supported("filter", true),
        etag: supported("etag", false),
        max_results: value
            .pointer("/filter/maxResults")
            .and_then(Value::as_u64)
            .filter(|n| *n > 0),
    })
}

/// The resources of a discovery reply: a ListResponse's `Resources`, or a
/// bare array (some providers answer `/Schemas` so). A ListResponse without
/// `Resources` lists none only when it says so (`totalResults`): an object
/// with neither (`{}`) is not one, and taken as "no schemas" it would have
/// every mapped attribute sent, undeclared ones included.
pub fn parse_resources(body: &str) -> Result<Vec<Value>, ReplyError> {
    let value: Value =
        serde_json::from_str(body).map_err(|error| ReplyError::unreadable("reply", &error))?;
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(mut object) => match object.remove("Resources") {
            Some(Value::Array(items)) => Ok(items),
            None | Some(Value::Null) if object.contains_key("totalResults") => Ok(Vec::new()),
            None | Some(Value::Null) => Err(ReplyError::shape(
                "the reply is not a list of resources",
            )),
            Some(_) => Err(ReplyError::shape("Resources is not a list")),
        },
        _ => Err(ReplyError::shape("the reply is not a list of resources")),
    }
}

/// One declared attribute: whether it is required, and its sub-attributes
/// (lowercase name → required).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Attribute {
    required: bool,
    subs: HashMap<String, bool>,
}

/// Lowercase attribute name → what the schema declares of it.
type Attributes = HashMap<String, Attribute>;

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn required(value: &Value) -> bool {
    value.get("required").and_then(Value::as_bool) == Some(true)
}

fn attributes_of(schema: &Value) -> Attributes {
    let list = schema.get("attributes").and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter_map(|attribute| {
            let subs = attribute.get("subAttributes").and_then(Value::as_array);
            let subs = subs
                .into_iter()
                .flatten()
                .filter_map(|sub| Some((text(sub, "name")?.to_lowercase(), required(sub))))
                .collect();
            let declared = Attribute {
                required: required(attribute),
                subs,
            };
            Some((text(attribute, "name")?.to_lowercase(), declared))
        })
        .collect()
}

/// What one resource type (User, Group) may carry at this provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceSchema {
    core: Attributes,
    /// Lowercase URN → (required on the resource, its attributes).
    extensions: HashMap<String, (bool, Attributes)>,
}

impl ResourceSchema {
    /// The schema of the resource type whose core schema is `core`, from
    /// `/Schemas` and (when the provider has it) `/ResourceTypes`; `None`
    /// when `/Schemas` does not describe it.
    pub fn of(schemas: &[Value], resource_types: Option<&[Value]>, core: &str) -> Option<Self> {
        let by_id = |id: &str| {
            schemas
                .iter()
                .find(|s| text(s, "id").is_some_and(|i| i.eq_ignore_ascii_case(id)))
        };
        let core_schema = by_id(core)?;
        // Without /ResourceTypes, every extension schema served is allowed.
        let allowed: Vec<(String, bool)> = match resource_types {
            Some(types) => types
                .iter()
                .filter(|t| text(t, "schema").is_some_and(|s| s.eq_ignore_ascii_case(core)))
                .flat_map(|t| t.get("schemaExtensions").and_then(Value::as_array))
                .flatten()
                .filter_map(|e| Some((text(e, "schema")?.to_string(), required(e))))
                .collect(),
            None => schemas
                .iter()
                .filter_map(|s| text(s, "id"))
                .filter(|id| id.contains(":extension:"))
                .map(|id| (id.to_string(), false))
                .collect(),
        };
        let extensions = allowed
            .into_iter()
            .filter_map(|(urn, required)| {
                let schema = by_id(&urn)?;
                Some((urn.to_lowercase(), (required, attributes_of(schema))))
            })
            .collect();
        Some(ResourceSchema {
            core: attributes_of(core_schema),
            extensions,
        })
    }

    fn core_attribute(&self, name: &str) -> Option<&Attribute> {
        self.core.get(&name.to_lowercase())
    }

    fn extension_attribute(&self, urn: &str, name: &str) -> Option<&Attribute> {
        let (_, attributes) = self.extensions.get(&urn.to_lowercase())?;
        attributes.get(&name.to_lowercase())
    }

    fn has_sub(attribute: Option<&Attribute>, sub: &str) -> bool {
        attribute.is_some_and(|a| a.subs.contains_key(&sub.to_lowercase()))
    }

    /// Whether the provider takes a field of the projection.
    pub fn takes(&self, field: &str) -> bool {
        match slot(field) {
            // Common attributes (RFC 7643 §3.1) are declared by no schema.
            Slot::Simple(name) if name.eq_ignore_ascii_case("externalId") => true,
            Slot::Simple(name) => self.core_attribute(&name).is_some(),
            Slot::Sub(name, sub) => Self::has_sub(self.core_attribute(&name), &sub),
            // Values told apart by their type: both must be declared.
            Slot::Typed(name, _) => ["value", "type"]
                .iter()
                .all(|sub| Self::has_sub(self.core_attribute(&name), sub)),
            Slot::Extension(urn, name) => self.extension_attribute(&urn, &name).is_some(),
            Slot::Manager => self
                .extension_attribute(ENTERPRISE_SCHEMA, "manager")
                .is_some(),
        }
    }

    /// How rostersync writes to this resource type, for the `mapped` fields.
    pub fn wire(&self, mapped: &[String]) -> Wire {
        let mut wire = Wire {
            dropped: mapped.iter().filter(|f| !self.takes(f)).cloned().collect(),
            ..Wire::default()
        };
        for field in mapped.iter().filter(|f| self.takes(f)) {
            if let Slot::Typed(name, _) = slot(field)
                && !Self::has_sub(self.core_attribute(&name), "primary")
            {
                wire.no_primary.insert(name);
            }
        }
        wire.no_active = self.core_attribute("active").is_none();
        let given = |field: &str| mapped.iter().any(|f| f == field) && !wire.dropped.contains(field);
        let name = self.core_attribute("name");
        if name.is_some_and(|n| n.subs.get("formatted") == Some(&true)) && !given("name.formatted") {
            wire.fill.push(FORMATTED);
        }
        if self.core_attribute("displayName").is_some_and(|a| a.required) && !given("displayName") {
            wire.fill.push(DISPLAY_NAME);
        }
        wire.members = self.core_attribute("members").is_some_and(|a| a.required);
        let mapped_or_made = |name: &str| {
            mapped.iter().any(|f| f.eq_ignore_ascii_case(name))
                || wire.fill.iter().any(|f| f.eq_ignore_ascii_case(name))
                || (wire.members && name == "members")
        };
        let mut unmet: Vec<String> = self
            .core
            .iter()
            .filter(|(name, a)| a.required && !mapped_or_made(name))
            .map(|(name, _)| name.clone())
            .collect();
        unmet.extend(
            self.extensions
                .iter()
                .filter(|(_, (required, _))| *required)
                .map(|(urn, _)| urn.clone()),
        );
        unmet.sort();
        wire.unmet = unmet;
        wire
    }
}

const FORMATTED: &str = "name.formatted";
const DISPLAY_NAME: &str = "displayName";

/// How rostersync writes one resource type to this provider. The default
/// is a provider that takes everything (one that has no `/Schemas`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wire {
    /// Mapped fields the provider does not declare: never sent.
    pub dropped: BTreeSet<String>,
    /// Typed lists whose values cannot carry `primary` (undeclared there).
    no_primary: BTreeSet<String>,
    /// `active` undeclared: a user cannot be blocked there.
    pub no_active: bool,
    /// Required attributes rostersync does not map but can make
    /// (`name.formatted`, `displayName` from the name's parts).
    fill: Vec<&'static str>,
    /// Groups must carry `members` (an empty list on create).
    pub members: bool,
    /// Required attributes it neither maps nor can make: what the provider
    /// will refuse every resource for.
    pub unmet: Vec<String>,
}

impl Wire {
    /// Whether the values of a typed list may carry `primary`.
    pub fn primary(&self, list: &str) -> bool {
        !self.no_primary.contains(list)
    }

    /// The projection as this provider takes it: undeclared fields left
    /// out, the required ones rostersync can make filled in.
    pub fn shape(&self, fields: &Fields) -> Fields {
        let mut shaped: Fields = fields
            .iter()
            .filter(|(field, _)| !self.dropped.contains(*field))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for field in &self.fill {
            if let Some(name) = full_name(fields) {
                shaped.insert(field.to_string(), name);
            }
        }
        shaped
    }

    /// The fields rostersync owns at the provider: mapped and taken, and
    /// what it fills. A mapped field absent from a record is removed there;
    /// everything else the provider holds is left alone.
    pub fn owned(&self, mapped: &[String]) -> Vec<String> {
        let mut owned: Vec<String> = mapped
            .iter()
            .filter(|f| !self.dropped.contains(*f))
            .cloned()
            .collect();
        owned.extend(self.fill.iter().map(|f| f.to_string()));
        owned.sort();
        owned.dedup();
        owned
    }
}

/// "Given Middle Family", from the parts the record has.
fn full_name(fields: &Fields) -> Option<String> {
    let parts: Vec<&str> = ["name.givenName", "name.middleName", "name.familyName"]
        .iter()
        .filter_map(|f| fields.get(*f))
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}
