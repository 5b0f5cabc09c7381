//! Finding the accounts a provider already holds by the target's `match`
//! rules (the pure half): the filter each rule sends, whether a listed
//! resource answers it, and what of it adoption needs.

use serde_json::Value;

use super::reply::{matches, member};
use super::request::{Slot, slot};
use crate::connectors::adopt::Account;

/// The attribute path a rule's filter compares (`emails.work` is the
/// `value` of `emails`: the type is checked on what comes back, as few
/// providers take a filter on two sub-attributes).
pub fn filter_attribute(target_field: &str) -> Option<String> {
    match slot(target_field) {
        Slot::Simple(name) => Some(name),
        Slot::Sub(name, sub) => Some(format!("{name}.{sub}")),
        Slot::Typed(list, _) => Some(format!("{list}.value")),
        Slot::Extension(urn, name) => Some(format!("{urn}:{name}")),
        // An externalId of someone else: not the account's own value.
        Slot::Manager => None,
    }
}

/// Whether an attribute is compared without case (RFC 7643's schemas:
/// userName, and the values of e-mail addresses).
pub fn case_exact(attribute: &str) -> bool {
    !["userName", "displayName", "emails.value"]
        .iter()
        .any(|name| name.eq_ignore_ascii_case(attribute))
}

/// Whether `resource` holds `value` in the target field (for a typed value,
/// one of that type, or of none).
pub fn answers(resource: &Value, target_field: &str, value: &str) -> bool {
    match slot(target_field) {
        Slot::Typed(list, kind) => member(resource, &list)
            .and_then(Value::as_array)
            .is_some_and(|values| {
                values.iter().any(|v| {
                    let typed = member(v, "type").and_then(Value::as_str);
                    typed.is_none_or(|t| t.eq_ignore_ascii_case(&kind))
                        && matches(v, "value", value, case_exact(&format!("{list}.value")))
                })
            }),
        Slot::Extension(urn, name) => member(resource, &urn)
            .is_some_and(|extension| matches(extension, &name, value, true)),
        Slot::Manager => false,
        _ => filter_attribute(target_field)
            .is_some_and(|attribute| matches(resource, &attribute, value, case_exact(&attribute))),
    }
}

/// A listed user as an account: its id, userName and externalId.
pub fn account(resource: &Value) -> Option<Account> {
    let text = |name: &str| member(resource, name).and_then(Value::as_str);
    Some(Account {
        id: text("id").filter(|id| !id.is_empty())?.to_string(),
        login: text("userName").unwrap_or_default().to_string(),
        ext_id: text("externalId").map(str::to_string),
    })
}
