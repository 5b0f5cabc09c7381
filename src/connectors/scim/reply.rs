//! The pure half of receiving: what the provider's replies say (failures,
//! list pages, ids, its announced features).

use std::time::SystemTime;

use serde_json::Value;

use crate::connectors::http::Reply;
use crate::connectors::{CheckError, PushItem, ReplyError};
use crate::retry::{self, Failure};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Done,
    /// 404: the provider holds no resource with that id.
    Gone,
}

pub fn written(reply: &Reply, what: &str) -> Result<Written, Failure> {
    match reply.status {
        404 => Ok(Written::Gone),
        _ if reply.is_success() => Ok(Written::Done),
        _ => Err(failure(reply, what)),
    }
}

pub fn refused_token(reply: &Reply, what: &str) -> Result<(), CheckError> {
    match reply.status {
        401 | 403 => Err(CheckError::Refused(format!(
            "{what}: the token was refused (HTTP {}): check the target's token",
            reply.status
        ))),
        _ if reply.is_success() => Ok(()),
        _ => Err(CheckError::Failed(format!(
            "{what}: {}",
            failure(reply, what).reason()
        ))),
    }
}

pub(super) fn external_id(item: &PushItem) -> String {
    item.fields
        .get("externalId")
        .cloned()
        .unwrap_or_else(|| item.key.key.clone())
}

pub(super) fn permanent(reason: impl Into<String>) -> Failure {
    Failure::Permanent {
        reason: reason.into(),
    }
}

pub(super) fn transient(reason: impl Into<String>) -> Failure {
    Failure::Transient {
        reason: reason.into(),
        retry_after: None,
    }
}

/// A non-success reply as a failure, with the SCIM error's `detail` when it
/// has one; the reason names the request.
pub fn failure(reply: &Reply, what: &str) -> Failure {
    let text = error_text(&reply.body).unwrap_or_else(|| reply.body.clone());
    match retry::classify_status(
        reply.status,
        reply.retry_after.as_deref(),
        &text,
        SystemTime::now(),
    ) {
        Failure::Transient {
            reason,
            retry_after,
        } => Failure::Transient {
            reason: format!("{what}: {reason}"),
            retry_after,
        },
        Failure::Permanent { reason } => Failure::Permanent {
            reason: format!("{what}: {reason}"),
        },
    }
}

/// One page of a SCIM ListResponse (RFC 7644 §3.4.2).
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub total: u64,
    pub start: u64,
    pub per_page: u64,
    pub resources: Vec<Value>,
}

pub fn parse_list(body: &str) -> Result<ListPage, ReplyError> {
    let value: Value = serde_json::from_str(body).map_err(|error| {
        ReplyError::shape(format!(
            "not a SCIM ListResponse: unreadable reply ({error})"
        ))
    })?;
    let number = |name: &str| {
        value.get(name).and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
    };
    let total = number("totalResults").ok_or_else(|| {
        ReplyError::shape("not a SCIM ListResponse: the reply has no totalResults")
    })?;
    let resources = match value.get("Resources") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(resources)) => resources.clone(),
        Some(_) => {
            return Err(ReplyError::shape(
                "not a SCIM ListResponse: Resources is not a list",
            ));
        }
    };
    Ok(ListPage {
        total,
        start: number("startIndex").unwrap_or(1).max(1),
        per_page: number("itemsPerPage").unwrap_or(resources.len() as u64),
        resources,
    })
}

/// The `startIndex` of the next page, if there is one; `seen` counts the
/// resources of the pages before this one.
pub fn next_start(page: &ListPage, seen: u64) -> Option<u64> {
    let got = page.resources.len() as u64;
    // The provider's numbers: a startIndex at the end of u64 has no page after it.
    let next = page.start.checked_add(got)?;
    (got > 0 && seen.saturating_add(got) < page.total).then_some(next)
}

/// The most pages one unfiltered scan reads: 100,000 pages of the smallest
/// page worth having is far beyond any directory, and a provider whose
/// paging never ends must not keep a scan (and its memory) growing.
pub const MAX_SCAN_PAGES: u64 = 100_000;

/// Where an unfiltered scan goes after a page asked at `asked`, the
/// `pages` read so far included: the next `startIndex`, none at the end, or
/// why the provider's paging cannot be followed (it does not move forward,
/// or does not end).
pub fn scan_next(page: &ListPage, asked: u64, seen: u64, pages: u64) -> Result<Option<u64>, String> {
    let Some(next) = next_start(page, seen) else {
        return Ok(None);
    };
    if next <= asked {
        return Err(format!(
            "the provider answered startIndex {asked} with a page at {}: its paging does not move forward",
            page.start
        ));
    }
    if pages >= MAX_SCAN_PAGES {
        return Err(format!(
            "the provider's list did not end after {pages} pages (totalResults {})",
            page.total
        ));
    }
    Ok(Some(next))
}

/// Whether a resource's attribute equals `value` (`case_exact` false for
/// userName and displayName, RFC 7643 §4.1.1 and §8.7.1). A path
/// (`emails.value`) reads a sub-attribute, of any value of a multi-valued
/// attribute.
pub fn matches(resource: &Value, attribute: &str, value: &str, case_exact: bool) -> bool {
    let (name, sub) = match attribute.split_once('.') {
        Some((name, sub)) => (name, Some(sub)),
        None => (attribute, None),
    };
    let Some(found) = member(resource, name) else {
        return false;
    };
    let equal = |text: Option<&str>| match text {
        Some(text) if case_exact => text == value,
        Some(text) => text.to_lowercase() == value.to_lowercase(),
        None => false,
    };
    match (sub, found) {
        (None, found) => equal(found.as_str()),
        (Some(sub), Value::Array(values)) => values
            .iter()
            .any(|v| equal(member(v, sub).and_then(Value::as_str))),
        (Some(sub), found) => equal(member(found, sub).and_then(Value::as_str)),
    }
}

/// An attribute of a resource, its name compared without case.
pub(super) fn member<'v>(resource: &'v Value, name: &str) -> Option<&'v Value> {
    resource
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The id of the only resource found; none; or a refusal when several match.
pub fn single(
    found: &[Value],
    what: &str,
    attribute: &str,
    value: &str,
) -> Result<Option<String>, Failure> {
    match found {
        [] => Ok(None),
        [one] => one
            .get("id")
            .and_then(Value::as_str)
            .map(|id| Some(id.to_string()))
            .ok_or_else(|| transient(format!("the provider listed {what} without an id"))),
        many => Err(permanent(format!(
            "{} {what} at the provider have {attribute} {value:?}: merge them there",
            many.len()
        ))),
    }
}

/// The `id` of a created resource.
pub fn parse_id(body: &str) -> Result<String, ReplyError> {
    let value: Value =
        serde_json::from_str(body).map_err(|error| ReplyError::unreadable("reply", &error))?;
    value
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ReplyError::shape("the reply has no id"))
}

/// A SCIM error's `scimType` and `detail` (RFC 7644 §3.12), when the body is one.
pub fn error_text(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let detail = value.get("detail").and_then(Value::as_str);
    let kind = value.get("scimType").and_then(Value::as_str);
    match (kind, detail) {
        (Some(kind), Some(detail)) => Some(format!("{detail} ({kind})")),
        (None, Some(detail)) => Some(detail.to_string()),
        (Some(kind), None) => Some(kind.to_string()),
        (None, None) => None,
    }
}

/// Whether a 400 says a PATCH path's value filter selected nothing (RFC
/// 7644 §3.5.2: `noTarget`).
pub fn no_target(body: &str) -> bool {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("scimType").and_then(Value::as_str).map(str::to_string))
        .is_some_and(|kind| kind.eq_ignore_ascii_case("noTarget"))
}
