//! The pure half of receiving: what Pleasanter's replies say (user pages,
//! import counts in its localised message, the status in its body).

use serde_json::Value;

use crate::connectors::http::Reply;
use crate::connectors::{Outcome, ReplyError};
use crate::retry::Failure;
use crate::secret::Secret;

/// One page of `/api/users/get`: (LoginId, UserId) pairs and the total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersPage {
    pub users: Vec<(String, String)>,
    pub total: u64,
}

pub fn parse_users_page(body: &str) -> Result<UsersPage, ReplyError> {
    let value: Value =
        serde_json::from_str(body).map_err(|error| ReplyError::unreadable("reply", &error))?;
    let response = value
        .get("Response")
        .ok_or_else(|| ReplyError::shape("the reply has no Response"))?;
    let data = response
        .get("Data")
        .and_then(Value::as_array)
        .ok_or_else(|| ReplyError::shape("the reply has no Response.Data list"))?;
    let mut users = Vec::new();
    for user in data {
        let login = user.get("LoginId").and_then(Value::as_str);
        let id = user.get("UserId").and_then(|id| match id {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        });
        if let (Some(login), Some(id)) = (login, id) {
            users.push((login.to_string(), id));
        }
    }
    let total = response
        .get("TotalCount")
        .and_then(Value::as_u64)
        .unwrap_or(users.len() as u64);
    Ok(UsersPage { users, total })
}

/// The two numbers of an import's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportCounts {
    pub added: u64,
    pub updated: u64,
}

/// Reads "50 items added and 12 items updated." or "50 件追加し、12 件更新
/// しました。" (or close wordings): each number is tagged by the words that
/// follow it, up to the next number. `None` when the counts cannot be told
/// apart for sure.
pub fn parse_message(message: &str) -> Option<ImportCounts> {
    let text: String = message
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            '，' => ',',
            _ => c,
        })
        .collect();
    let numbers = numbers_in(&text);
    let (mut added, mut updated, mut untagged) = (None, None, 0);
    for (k, number) in numbers.iter().enumerate() {
        let next = numbers.get(k + 1).map_or(text.len(), |n| n.start);
        let after = text[number.end..next].to_lowercase();
        let is_added = ["add", "creat", "new", "追加", "作成", "登録"]
            .iter()
            .any(|w| after.contains(w));
        let is_updated = ["updat", "更新"].iter().any(|w| after.contains(w));
        match (number.value, is_added, is_updated) {
            (Some(value), true, false) if added.is_none() => added = Some(value),
            (Some(value), false, true) if updated.is_none() => updated = Some(value),
            _ => untagged += 1,
        }
    }
    match (added, updated) {
        (Some(added), Some(updated)) => Some(ImportCounts { added, updated }),
        // One count alone is trusted only when the message holds no other number.
        (Some(added), None) if untagged == 0 => Some(ImportCounts { added, updated: 0 }),
        (None, Some(updated)) if untagged == 0 => Some(ImportCounts { added: 0, updated }),
        _ => None,
    }
}

pub(super) struct Number {
    /// `None` when too big for a u64.
    value: Option<u64>,
    start: usize,
    end: usize,
}

/// The numbers of a text, with their byte spans; `1,234` is one number.
pub(super) fn numbers_in(text: &str) -> Vec<Number> {
    let bytes = text.as_bytes();
    let digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !digit(i) {
            i += 1;
            continue;
        }
        let start = i;
        let mut value = Some(0u64);
        loop {
            if digit(i) {
                value = value
                    .and_then(|v| v.checked_mul(10))
                    .and_then(|v| v.checked_add(u64::from(bytes[i] - b'0')));
                i += 1;
            } else if bytes.get(i) == Some(&b',')
                && digit(i + 1)
                && digit(i + 2)
                && digit(i + 3)
                && !digit(i + 4)
            {
                i += 1; // a thousands separator
            } else {
                break;
            }
        }
        out.push(Number {
            value,
            start,
            end: i,
        });
    }
    out
}

/// What an import reply means for the records it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportVerdict {
    /// The same outcome for every record of the import.
    All(Outcome),
    /// Fewer imported than sent (Pleasanter's message): split to find the culprit.
    Split(String),
    /// The import was refused as a whole (a record it cannot take, most
    /// likely): split, and a single record is refused with this failure.
    Refused(Failure),
}

/// The status a reply really carries: Pleasanter also puts one in its body.
pub(super) fn effective_status(reply: &Reply) -> u16 {
    let inner = serde_json::from_str::<Value>(&reply.body)
        .ok()
        .and_then(|v| v.get("StatusCode").and_then(Value::as_u64))
        .and_then(|code| u16::try_from(code).ok());
    match inner {
        Some(code)
            if (200..300).contains(&reply.status) && !(200..300).contains(&code) && code >= 100 =>
        {
            code
        }
        _ => reply.status,
    }
}

/// The message of a Pleasanter reply, or the body itself.
pub(super) fn reply_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("Message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.to_string())
}

pub(super) fn reply_failure(reply: &Reply) -> Failure {
    crate::retry::classify_status(
        effective_status(reply),
        reply.retry_after.as_deref(),
        &reply_message(&reply.body),
        std::time::SystemTime::now(),
    )
}

/// A failed JSON API call: a refused key said plainly, otherwise classified.
pub(super) fn refusal(reply: &Reply, status: u16, doing: &str) -> Failure {
    match status {
        401 | 403 => Failure::Permanent {
            reason: format!("{doing}: the API key was refused (HTTP {status})"),
        },
        _ => match reply_failure(reply) {
            Failure::Permanent { reason } => Failure::Permanent {
                reason: format!("{doing}: {reason}"),
            },
            Failure::Transient {
                reason,
                retry_after,
            } => Failure::Transient {
                reason: format!("{doing}: {reason}"),
                retry_after,
            },
        },
    }
}

/// Judges an import reply for `sent` records.
pub fn judge_import(reply: &Reply, sent: usize) -> ImportVerdict {
    let status = effective_status(reply);
    if matches!(status, 401 | 403) {
        return ImportVerdict::All(Outcome::Failed(Failure::Permanent {
            reason: format!(
                "the API key was refused (HTTP {status}): check the key and that API use is allowed for its user"
            ),
        }));
    }
    if !(200..300).contains(&status) {
        return match reply_failure(reply) {
            permanent @ Failure::Permanent { .. } => ImportVerdict::Refused(permanent),
            transient => ImportVerdict::All(Outcome::Failed(transient)),
        };
    }
    let message = match serde_json::from_str::<Value>(&reply.body) {
        Ok(value) => value
            .get("Message")
            .and_then(Value::as_str)
            .map(str::to_string),
        Err(_) => None,
    };
    // Without readable counts the import may or may not have happened; sending it again is harmless.
    let unknown = |why: String| {
        ImportVerdict::All(Outcome::Failed(Failure::Transient {
            reason: why,
            retry_after: None,
        }))
    };
    let Some(message) = message else {
        return unknown("the import reply is not Pleasanter's JSON with a Message".into());
    };
    let Some(counts) = parse_message(&message) else {
        return unknown(format!(
            "cannot read the counts of the import reply {message:?}"
        ));
    };
    if counts.added.saturating_add(counts.updated) < sent as u64 {
        tracing::debug!(
            sent,
            added = counts.added,
            updated = counts.updated,
            "Pleasanter imported fewer users than sent"
        );
        ImportVerdict::Split(message)
    } else {
        ImportVerdict::All(Outcome::Acked { target_id: None })
    }
}

/// The outcome with its failure reason scrubbed of the secret ([`Secret::scrub`]).
pub(super) fn scrub_outcome(outcome: Outcome, secret: &Secret) -> Outcome {
    match outcome {
        Outcome::Failed(failure) => Outcome::Failed(failure.map_reason(|r| secret.scrub(r))),
        acked => acked,
    }
}
