//! Lookups without filters: where `/ServiceProviderConfig` says
//! `filter.supported = false`, one paged scan of an endpoint fills an
//! index, and every lookup of the run reads it instead of scanning again
//! (a scan per record is quadratic in the size of the directory).

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Value, json};

use super::reply::{matches, member};

/// The resources of one endpoint, by externalId, by their unique name
/// (`userName`, `displayName`: compared without case, RFC 7643 §4.1.1) and
/// by the values of their e-mail addresses (without case too), which
/// adoption looks accounts up by.
#[derive(Debug)]
pub struct Index {
    pub built: Instant,
    name: &'static str,
    /// Each resource as `{id, externalId, name, emails}`.
    entries: Vec<Value>,
    by_external: HashMap<String, Vec<usize>>,
    by_name: HashMap<String, Vec<usize>>,
    by_email: HashMap<String, Vec<usize>>,
}

impl Index {
    /// An empty index of resources whose unique name is `name`.
    pub fn new(name: &'static str) -> Index {
        Index {
            built: Instant::now(),
            name,
            entries: Vec::new(),
            by_external: HashMap::new(),
            by_name: HashMap::new(),
            by_email: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a resource as the provider listed it (one without an id is of
    /// no use to a lookup).
    pub fn add(&mut self, resource: &Value) {
        let text = |key: &str| {
            resource
                .as_object()
                .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
                .and_then(|(_, v)| v.as_str())
        };
        let Some(id) = text("id") else {
            return;
        };
        let at = self.entries.len();
        let mut entry = json!({"id": id});
        if let Some(external) = text("externalId") {
            entry["externalId"] = json!(external);
            self.by_external
                .entry(external.to_string())
                .or_default()
                .push(at);
        }
        if let Some(name) = text(self.name) {
            entry[self.name] = json!(name);
            self.by_name.entry(name.to_lowercase()).or_default().push(at);
        }
        if let Some(emails) = member(resource, "emails").and_then(Value::as_array) {
            for address in emails.iter().filter_map(|e| member(e, "value")?.as_str()) {
                self.by_email
                    .entry(address.to_lowercase())
                    .or_default()
                    .push(at);
            }
            entry["emails"] = json!(emails);
        }
        self.entries.push(entry);
    }

    /// Leaves out a resource the provider no longer holds (a 404 on its id).
    pub fn forget(&mut self, id: &str) {
        for entry in self.entries.iter_mut() {
            if entry.get("id").and_then(Value::as_str) == Some(id) {
                *entry = Value::Null;
            }
        }
    }

    /// The resources whose `attribute` equals `value`, as a filtered list
    /// would give them.
    pub fn find(&self, attribute: &str, value: &str) -> Vec<Value> {
        let at = if attribute.eq_ignore_ascii_case("externalId") {
            self.by_external.get(value)
        } else if attribute.eq_ignore_ascii_case(self.name) {
            self.by_name.get(&value.to_lowercase())
        } else if attribute.eq_ignore_ascii_case("emails.value") {
            self.by_email.get(&value.to_lowercase())
        } else {
            // Not indexed: compared one by one.
            return self
                .entries
                .iter()
                .filter(|e| matches(e, attribute, value, true))
                .cloned()
                .collect();
        };
        at.into_iter()
            .flatten()
            .filter_map(|&i| self.entries.get(i))
            .filter(|e| !e.is_null())
            .cloned()
            .collect()
    }
}
