//! The pure half of receiving: what Pleasanter's replies say (user pages,
//! import counts in its localised message, the status in its body, a
//! record's refusal and what to do about it).

use serde_json::Value;

use crate::connectors::http::Reply;
use crate::connectors::{CheckError, Outcome, ReplyError};
use crate::retry::Failure;
use crate::secret::Secret;

use super::labels::{Language, labels, language_of};

/// One page of `/api/users/get`: its users and the total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersPage {
    pub users: Vec<PageUser>,
    pub total: u64,
}

/// A user of `/api/users/get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageUser {
    pub login: String,
    /// Its `UserId`.
    pub id: String,
    /// Its `UserCode`, when it has one.
    pub code: Option<String>,
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
        let code = user
            .get("UserCode")
            .and_then(Value::as_str)
            .filter(|code| !code.is_empty());
        if let (Some(login), Some(id)) = (login, id) {
            users.push(PageUser {
                login: login.to_string(),
                id,
                code: code.map(str::to_string),
            });
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

/// Reads ": 50 entries have been added and 12 entries updated." or ": 50 件
/// 追加し、12 件更新しました。" (or close wordings): each number is tagged by
/// the words that follow it, up to the next number. `None` when the counts
/// cannot be told apart for sure. Only logged: unchanged rows count in
/// neither total, so the counts say nothing of refusals.
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
    /// Pleasanter stopped at a record it refused, the rows before it
    /// written, those after it not read: split (rows written already count
    /// as unchanged when sent again); a record alone is refused with this.
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

/// What Pleasanter said: the `Message` of its JSON, else the start of the body.
pub(super) fn said(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("Message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

fn permanent(reason: String) -> Failure {
    Failure::Permanent { reason }
}

fn key_refused(reply: &Reply) -> String {
    format!(
        "the API key was refused (HTTP 401 {:?}): check the key, and that its user is neither disabled nor locked out",
        said(&reply.body)
    )
}

const NOT_A_MANAGER: &str = "the API key's user is not a tenant manager (HTTP 403), which the user import \
     needs: give that user the tenant manager right, or use a tenant manager's key";

/// A record Pleasanter refused with a 500 and its message, and what to do.
fn record_refused(message: &str) -> String {
    let advice = if message.contains("login ID is already in use") {
        "Login IDs are unique across all tenants and another tenant holds this one: free it \
         there, or give the user another login in the HR file"
    } else if message.starts_with("Invalid email address") {
        "fix the address in the HR file (Pleasanter checks addresses more strictly)"
    } else if message.starts_with("The required column is not included") {
        "map that column in [target.fields]"
    } else {
        "fix the record in the HR file or the user in Pleasanter"
    };
    format!(
        "Pleasanter refused this user: {message:?} (HTTP 500): {advice}; then `rostersync retry`"
    )
}

/// A redirect is how Pleasanter answers an exception (to its error page).
fn server_exception(status: u16) -> String {
    format!(
        "Pleasanter failed on this user with a server error (HTTP {status} to its error page), \
         most likely a value longer than its column takes: its log names the column; shorten \
         the value in the HR file, then `rostersync retry`"
    )
}

/// Judges an import reply for `sent` records. A 200 means every row was
/// read: an unchanged row counts in neither total, so the counts are only logged.
pub fn judge_import(reply: &Reply, sent: usize) -> ImportVerdict {
    let status = effective_status(reply);
    match status {
        200..=299 => {
            let counts = parse_message(&said(&reply.body));
            tracing::debug!(
                sent,
                added = counts.map(|c| c.added),
                updated = counts.map(|c| c.updated),
                "Pleasanter import done (unchanged rows count in neither total)"
            );
            ImportVerdict::All(Outcome::Acked { target_id: None })
        }
        401 => ImportVerdict::All(Outcome::Failed(permanent(key_refused(reply)))),
        403 => ImportVerdict::All(Outcome::Failed(permanent(NOT_A_MANAGER.into()))),
        300..=399 => ImportVerdict::Refused(permanent(server_exception(status))),
        500 => ImportVerdict::Refused(permanent(record_refused(&said(&reply.body)))),
        _ => match reply_failure(reply) {
            permanent @ Failure::Permanent { .. } => ImportVerdict::Refused(permanent),
            transient => ImportVerdict::All(Outcome::Failed(transient)),
        },
    }
}

pub(super) fn reply_failure(reply: &Reply) -> Failure {
    crate::retry::classify_status(
        effective_status(reply),
        reply.retry_after.as_deref(),
        &said(&reply.body),
        std::time::SystemTime::now(),
    )
}

/// A failed JSON API call, `doing` what: a refused key said plainly; a 500
/// or a redirect is that record's refusal; 502, 503, 504 are transient.
pub(super) fn refusal(reply: &Reply, doing: &str) -> Failure {
    let status = effective_status(reply);
    let failure = match status {
        401 => permanent(key_refused(reply)),
        403 => permanent(NOT_A_MANAGER.into()),
        300..=399 => permanent(server_exception(status)),
        500 => permanent(record_refused(&said(&reply.body))),
        _ => reply_failure(reply),
    };
    failure.map_reason(|reason| format!("{doing}: {reason}"))
}

/// A refused rename: a new login another user holds is said so (in this
/// tenant or another); anything else as [`refusal`].
pub fn rename_refusal(reply: &Reply, old: &str, new: &str) -> Failure {
    let doing = format!("renaming Login ID {old:?} to {new:?}");
    let message = said(&reply.body);
    if effective_status(reply) == 500 && message.contains("login ID is already in use") {
        return permanent(format!(
            "{doing}: Pleasanter refused: {message:?} (HTTP 500): another user holds {new:?}, \
             in this tenant or another: rename or remove that user in Pleasanter, or give this \
             one another login in the HR file; then `rostersync retry`"
        ));
    }
    refusal(reply, &doing)
}

/// What the header-only import `check --online` sends says of the key and
/// of the labels: 500 `Please select a file.` is the answer of a key that
/// may import, in its user's language, which must be the labels' (`wanted`).
pub fn judge_probe(reply: &Reply, wanted: Language) -> Result<(), CheckError> {
    let status = effective_status(reply);
    let message = said(&reply.body);
    match status {
        200..=299 => Ok(()),
        401 => Err(CheckError::Refused(key_refused(reply))),
        403 => Err(CheckError::Refused(NOT_A_MANAGER.into())),
        500 => match language_of(&message) {
            Some(language) if language == wanted => Ok(()),
            Some(language) => Err(CheckError::Failed(format!(
                "Pleasanter answers in {language} ({message:?}): the import takes the labels of \
                 the API key user's language, {}, and would drop the {wanted} ones; map those \
                 in [target.fields], or set that user's language to {wanted}",
                labels(language)
            ))),
            None => Err(CheckError::Unexpected(format!(
                "the probe import answered {message:?} (HTTP 500), not \"Please select a file.\": \
                 if that is in the API key user's language, rostersync knows only the English \
                 and Japanese labels; set that user's language to one of them"
            ))),
        },
        _ => Err(CheckError::Failed(reply_failure(reply).reason().to_string())),
    }
}

/// `reply` with its body scrubbed of the secret when the status it
/// carries is an error, whatever its HTTP status ([`effective_status`]).
pub(super) fn scrub_inner_error(mut reply: Reply, secret: &Secret) -> Reply {
    if !(200..300).contains(&effective_status(&reply)) {
        reply.body = secret.scrub(&reply.body);
    }
    reply
}

/// The outcome with its failure reason scrubbed of the secret ([`Secret::scrub`]).
pub(super) fn scrub_outcome(outcome: Outcome, secret: &Secret) -> Outcome {
    match outcome {
        Outcome::Failed(failure) => Outcome::Failed(failure.map_reason(|r| secret.scrub(r))),
        acked => acked,
    }
}
