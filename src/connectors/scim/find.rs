//! Finding resources at the provider: by a filter where it offers them,
//! else from an index built by one paged scan (kept for the drain, checked
//! against a new scan when a miss is old), and keeping that index in step
//! with what rostersync creates and deletes.

use reqwest::Method;
use serde_json::{Value, json};

use super::reply::{failure, matches, next_start, parse_list, permanent, scan_next, transient};
use super::request::{Slot, encode, eq_filter, slot};
use super::{Index, MAX_PAGES, REINDEX_AFTER, Scim, lookup};
use crate::projection::Fields;
use crate::retry::Failure;

impl Scim {
    /// Every resource of `endpoint` whose `attribute` equals `value`: with
    /// a filter, or from the index where the provider has no filters
    /// (`fresh`: a miss there is checked against a new scan, when the index
    /// is older than [`REINDEX_AFTER`]).
    pub(super) async fn find(
        &self,
        endpoint: &'static str,
        attribute: &str,
        value: &str,
        fresh: bool,
    ) -> Result<Vec<Value>, Failure> {
        let features = self.provider().await?.features;
        if features.filter {
            return self.find_filtered(endpoint, attribute, value).await;
        }
        let mut indexes = self.state.indexes.lock().await;
        if !indexes.contains_key(endpoint) {
            indexes.insert(endpoint, self.scan(endpoint, features.max_results).await?);
        }
        let found = indexes.get(endpoint).map(|i| i.find(attribute, value));
        let old = indexes
            .get(endpoint)
            .is_some_and(|i| i.built.elapsed() > REINDEX_AFTER);
        match found {
            Some(found) if found.is_empty() && fresh && old => {
                let index = self.scan(endpoint, features.max_results).await?;
                let found = index.find(attribute, value);
                indexes.insert(endpoint, index);
                Ok(found)
            }
            found => Ok(found.unwrap_or_default()),
        }
    }

    /// One paged scan of `endpoint` into an index (pages as large as the
    /// provider's `maxResults`).
    pub(super) async fn scan(&self, endpoint: &str, max_results: Option<u64>) -> Result<Index, Failure> {
        let name = if endpoint == "/Groups" { "displayName" } else { "userName" };
        let mut index = Index::new(name);
        let count = max_results.map(|n| format!("&count={n}")).unwrap_or_default();
        let (mut start, mut pages) = (1, 0);
        loop {
            // Users with their addresses: adoption looks accounts up by them.
            let emails = if endpoint == "/Users" { ",emails" } else { "" };
            let path = format!(
                "{endpoint}?startIndex={start}{count}&attributes=externalId,{name}{emails}"
            );
            let reply = self.call(Method::GET, &path, None).await?;
            if !reply.is_success() {
                return Err(failure(&reply, &format!("GET {endpoint} (scan)")));
            }
            let page = parse_list(&reply.body)
                .map_err(|reason| transient(format!("GET {endpoint} (scan): {reason}")))?;
            pages += 1;
            let next = scan_next(&page, start, index.len() as u64, pages)
                .map_err(|reason| permanent(format!("GET {endpoint} (scan): {reason}")))?;
            for resource in &page.resources {
                index.add(resource);
            }
            match next {
                Some(next) => start = next,
                None => break,
            }
        }
        tracing::info!(endpoint, resources = index.len(), pages, "the provider has no filters: lookups read one scan of it");
        Ok(index)
    }

    /// A resource just created goes into the index, if there is one.
    pub(super) async fn index_created(&self, endpoint: &'static str, id: &str, fields: &Fields) {
        if let Some(index) = self.state.indexes.lock().await.get_mut(endpoint) {
            let mut resource = json!({"id": id});
            for name in ["externalId", "userName", "displayName"] {
                if let Some(value) = fields.get(name) {
                    resource[name] = json!(value);
                }
            }
            let emails: Vec<Value> = fields
                .iter()
                .filter_map(|(name, value)| match slot(name) {
                    Slot::Typed(list, kind) if list == "emails" => {
                        Some(json!({"value": value, "type": kind}))
                    }
                    _ => None,
                })
                .collect();
            if !emails.is_empty() {
                resource["emails"] = json!(emails);
            }
            index.add(&resource);
        }
    }

    /// A resource the provider no longer holds leaves the index.
    pub(super) async fn forget(&self, endpoint: &'static str, id: &str) {
        if let Some(index) = self.state.indexes.lock().await.get_mut(endpoint) {
            index.forget(id);
        }
    }

    /// Every resource of `endpoint` whose `attribute` equals `value`,
    /// following the pages of the filtered ListResponse.
    pub(super) async fn find_filtered(
        &self,
        endpoint: &str,
        attribute: &str,
        value: &str,
    ) -> Result<Vec<Value>, Failure> {
        let filter = encode(&eq_filter(attribute, value));
        let mut resources = Vec::new();
        let mut start = 1;
        for _ in 0..MAX_PAGES {
            let path = format!("{endpoint}?filter={filter}&startIndex={start}");
            let reply = self.call(Method::GET, &path, None).await?;
            if !reply.is_success() {
                return Err(failure(
                    &reply,
                    &format!("GET {endpoint} (filter {attribute})"),
                ));
            }
            let page = parse_list(&reply.body).map_err(|reason| {
                transient(format!("GET {endpoint} (filter {attribute}): {reason}"))
            })?;
            let next = next_start(&page, resources.len() as u64);
            resources.extend(page.resources);
            match next {
                Some(next) => start = next,
                None => break,
            }
        }
        // A provider that ignores the filter must not make us take another
        // resource. userName and a group's displayName are caseExact false
        // in RFC 7643's schemas.
        let case_exact = lookup::case_exact(attribute);
        resources.retain(|r| matches(r, attribute, value, case_exact));
        Ok(resources)
    }
}
