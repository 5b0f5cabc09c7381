//! `pleasanter`: Implem Pleasanter (seed 001). Users are created and updated
//! in batches through the CSV user import, `POST /api/users/import`
//! (`multipart/form-data`: a `parameters` JSON with the API key and the CSV's
//! encoding, and the CSV as `file`; an upsert keyed by `Login ID`). The CSV's
//! header row holds the tenant's column display names, which are the target
//! field names of the projection (`Login ID`, `Name`, `User code`,
//! `Mail address`, `Department code` by default). It is encoded in UTF-8 or
//! Shift-JIS (`encoding`); a value Shift-JIS cannot carry fails that record
//! alone. The reply's localised message ("50 items added and 12 items
//! updated." / "50 件追加し、12 件更新しました。") gives the counts: fewer
//! than sent splits the batch, down to single records, to find the culprit.
//!
//! Block and unblock go through the JSON API (the import carries no
//! `Disabled`): `POST /api/users/get` finds the `UserId` of a login (kept as
//! the record's target id), `POST /api/users/{UserId}/update` sets
//! `Disabled`. An unblock whose fields changed is an import then the update;
//! a record created inactive is an import then `Disabled: true`.
//!
//! Pleasanter keeps departments of its own, referenced by `Department code`:
//! this connector keeps no organisations.
//!
//! The API key travels in request bodies: it is never logged, and every
//! failure reason is scrubbed of it.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::config::TargetConfig;
use crate::ingest::record::{Field, RecordKind};
use crate::model::ActionKind;
use crate::projection::{DefaultFields, Projector};
use crate::retry::Failure;
use crate::secret::Secret;

use super::http::{Http, Reply};
use super::{Connector, Outcome, Place, PushItem, PushReply, Settings, Verdict, bisect};

const IMPORT_PATH: &str = "/api/users/import";
const GET_PATH: &str = "/api/users/get";
const API_VERSION: f64 = 1.1;
/// Pages of `/api/users/get` read at most while looking for one login.
const MAX_PAGES: usize = 1000;

// ---------------------------------------------------------------------------
// Settings

/// The encoding of the CSV sent, and its name in the import parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvEncoding {
    Utf8,
    ShiftJis,
}

impl CsvEncoding {
    /// `utf-8` (the default) or `shift_jis`, as the config takes them.
    pub fn from_config(label: Option<&str>) -> Result<CsvEncoding, String> {
        match label.map(str::to_ascii_lowercase).as_deref() {
            None | Some("utf-8") | Some("utf8") => Ok(CsvEncoding::Utf8),
            Some("shift_jis") | Some("shift-jis") | Some("sjis") => Ok(CsvEncoding::ShiftJis),
            Some(other) => Err(format!(
                "encoding {other:?} is not one pleasanter targets take (utf-8, shift_jis)"
            )),
        }
    }

    /// The `Encoding` import parameter.
    pub fn parameter(self) -> &'static str {
        match self {
            CsvEncoding::Utf8 => "UTF-8",
            CsvEncoding::ShiftJis => "Shift-JIS",
        }
    }

    fn name(self) -> &'static str {
        match self {
            CsvEncoding::Utf8 => "UTF-8",
            CsvEncoding::ShiftJis => "Shift-JIS",
        }
    }

    /// The bytes of `text`, or `None` when a character cannot be encoded.
    pub fn encode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            CsvEncoding::Utf8 => Some(text.as_bytes().to_vec()),
            CsvEncoding::ShiftJis => {
                let (bytes, _, had_errors) = encoding_rs::SHIFT_JIS.encode(text);
                (!had_errors).then(|| bytes.into_owned())
            }
        }
    }
}

pub struct Pleasanter {
    http: Http,
    key: Secret,
    encoding: CsvEncoding,
    /// The column (target field) that holds the login: `Login ID` by default.
    login_column: String,
    batch_size: usize,
}

impl Connector for Pleasanter {
    const KIND: &'static str = "pleasanter";
    const SETTINGS: Settings = Settings {
        place: Place::Url,
        token: true,
        password: false,
        encodings: &["utf-8", "shift_jis"],
        own_keys: &[],
    };

    fn default_fields() -> DefaultFields {
        use Field::*;
        // The column display names of an English tenant's user import
        // (a Japanese tenant renames them in [target.fields]). `Name`, the
        // display name Pleasanter requires, is the last name unless a
        // full-name column is mapped to it.
        DefaultFields::known(
            &[
                ("Login ID", Login),
                ("Name", LastName),
                ("User code", ExtId),
                ("Mail address", Email),
                ("Department code", OrgExtId),
            ],
            &[],
        )
    }

    fn from_config(target: &TargetConfig) -> Result<Pleasanter, String> {
        let key = target
            .token_source()
            .ok_or(
                "a pleasanter target needs an API key (token_env, token_file or token_credential)",
            )?
            .load()
            .map_err(|error| error.to_string())?;
        let encoding =
            CsvEncoding::from_config(target.encoding.as_ref().map(|e| e.get_ref().as_str()))?;
        let projector = Projector::new(target.kind, target.fields.get_ref());
        let login_column = projector
            .target_field(RecordKind::Users, Field::Login)
            .ok_or(
                "a pleasanter target must map the login (the import matches users on it): \
                 keep the default `\"Login ID\" = \"login\"` in [target.fields]",
            )?
            .to_string();
        Ok(Pleasanter {
            http: Http::new(target, Default::default())?,
            key,
            encoding,
            login_column,
            batch_size: *target.batch_size.get_ref(),
        })
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    async fn push(&self, items: &[PushItem]) -> PushReply {
        let outcomes = match items.first().map(|i| i.key.kind) {
            Some(RecordKind::Users) => self.push_users(items).await,
            Some(RecordKind::Orgs) => items
                .iter()
                .map(|_| {
                    Outcome::Failed(Failure::Permanent {
                        reason: "Pleasanter keeps no organisations here: users reference its \
                                 departments by Department code; manage departments in Pleasanter"
                            .into(),
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        PushReply {
            outcomes: outcomes
                .into_iter()
                .map(|outcome| scrub_outcome(outcome, self.key.expose()))
                .collect(),
            halt: None,
        }
    }

    /// Lists users with the key: a refused key says so.
    async fn check(&self) -> Result<(), String> {
        let body = get_users_body(self.key.expose(), None, 0);
        let reply = self
            .http
            .send(self.http.client().post(self.http.url(GET_PATH)).json(&body))
            .await
            .map_err(|failure| scrub(failure.reason(), self.key.expose()))?;
        let status = effective_status(&reply);
        if matches!(status, 401 | 403) {
            return Err(format!(
                "the API key was refused (HTTP {status}): check the key and that API use is allowed for its user"
            ));
        }
        if !(200..300).contains(&status) {
            return Err(scrub(reply_failure(&reply).reason(), self.key.expose()));
        }
        parse_users_page(&reply.body)
            .map(|_| ())
            .map_err(|reason| format!("{}: {reason}", self.http.url(GET_PATH)))
    }

    type Reply = Reply;

    /// An import's reply, judged by [`judge_import`]; for a single record, a
    /// shortfall or a refusal is that record's refusal.
    fn verdict(&self, sent: &[&PushItem], reply: &Reply) -> Verdict {
        match judge_import(reply, sent.len()) {
            ImportVerdict::All(outcome) => Verdict::All(outcome),
            ImportVerdict::Split(message) if sent.len() == 1 => {
                Verdict::All(Outcome::Failed(Failure::Permanent {
                    reason: format!(
                        "Pleasanter imported nothing for this user (it answered {message:?})"
                    ),
                }))
            }
            ImportVerdict::Refused(failure) if sent.len() == 1 => {
                Verdict::All(Outcome::Failed(failure))
            }
            ImportVerdict::Split(_) | ImportVerdict::Refused(_) => {
                tracing::debug!(
                    records = sent.len(),
                    "Pleasanter import fell short: splitting the batch"
                );
                Verdict::Split
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The part that sends

impl Pleasanter {
    async fn push_users(&self, items: &[PushItem]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
        // 1. The import, for the records whose fields must be written.
        let mut to_import = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if !needs_import(item) {
                continue;
            }
            match check_record(item, &self.login_column, self.encoding) {
                Ok(()) => to_import.push(i),
                Err(reason) => outcomes[i] = Some(Outcome::Failed(Failure::Permanent { reason })),
            }
        }
        self.import(items, &to_import, &mut outcomes).await;
        // 2. The Disabled flag, for the records imported (or needing no import).
        for (i, item) in items.iter().enumerate() {
            if outcomes[i].is_some() && !matches!(outcomes[i], Some(Outcome::Acked { .. })) {
                continue;
            }
            let Some(disabled) = disabled_change(item) else {
                outcomes[i].get_or_insert(Outcome::Acked {
                    target_id: item.target_id.clone(),
                });
                continue;
            };
            outcomes[i] = Some(self.set_disabled(item, disabled).await);
        }
        outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or(Outcome::Failed(Failure::Transient {
                    reason: "not sent".into(),
                    retry_after: None,
                }))
            })
            .collect()
    }

    /// Imports `chosen` (indexes into `items`), splitting a batch whose counts
    /// fall short down to single records; sets the outcome of each (an
    /// `Acked` here means imported, the Disabled flag may still follow).
    async fn import(&self, items: &[PushItem], chosen: &[usize], outcomes: &mut [Option<Outcome>]) {
        let (imported, _) = bisect(chosen.len(), move |range| async move {
            let records: Vec<&PushItem> = chosen[range].iter().map(|&i| &items[i]).collect();
            match self.send_import(&records).await {
                Err(failure) => Verdict::All(Outcome::Failed(failure)),
                Ok(reply) => self.verdict(&records, &reply),
            }
        })
        .await;
        for (&i, outcome) in chosen.iter().zip(imported) {
            outcomes[i] = Some(match outcome {
                Outcome::Acked { .. } => Outcome::Acked {
                    target_id: items[i].target_id.clone(),
                },
                failed => failed,
            });
        }
    }

    async fn send_import(&self, records: &[&PushItem]) -> Result<Reply, Failure> {
        let csv = build_csv(records, &self.login_column, self.encoding)
            .map_err(|reason| Failure::Permanent { reason })?;
        tracing::debug!(
            records = records.len(),
            bytes = csv.len(),
            encoding = self.encoding.name(),
            "Pleasanter user import"
        );
        let file = reqwest::multipart::Part::bytes(csv)
            .file_name("users.csv")
            .mime_str("text/csv")
            .map_err(|error| Failure::Permanent {
                reason: format!("cannot build the import request: {error}"),
            })?;
        let form = reqwest::multipart::Form::new()
            .text(
                "parameters",
                import_parameters(self.key.expose(), self.encoding),
            )
            .part("file", file);
        self.http
            .send(
                self.http
                    .client()
                    .post(self.http.url(IMPORT_PATH))
                    .multipart(form),
            )
            .await
    }

    async fn set_disabled(&self, item: &PushItem, disabled: bool) -> Outcome {
        let Some(login) = item.fields.get(&self.login_column) else {
            return Outcome::Failed(Failure::Permanent {
                reason: format!(
                    "the record has no {} (login), needed to find it in Pleasanter",
                    self.login_column
                ),
            });
        };
        let cached = item.target_id.clone();
        let mut looked_up = false;
        let mut user_id = match cached {
            Some(id) => id,
            None => {
                looked_up = true;
                match self.find_user_id(login).await {
                    Ok(id) => id,
                    Err(failure) => return Outcome::Failed(failure),
                }
            }
        };
        loop {
            let body = json!({"ApiVersion": API_VERSION, "ApiKey": self.key.expose(), "Disabled": disabled});
            let path = format!("/api/users/{user_id}/update");
            let reply = match self
                .http
                .send(self.http.client().post(self.http.url(&path)).json(&body))
                .await
            {
                Ok(reply) => reply,
                Err(failure) => return Outcome::Failed(failure),
            };
            let status = effective_status(&reply);
            if (200..300).contains(&status) {
                tracing::debug!(login = %login, user_id = %user_id, disabled, "Pleasanter user updated");
                return Outcome::Acked {
                    target_id: Some(user_id),
                };
            }
            // A cached id may be stale (the user deleted and made again): look it up once.
            if status == 404 && !looked_up {
                looked_up = true;
                match self.find_user_id(login).await {
                    Ok(id) => {
                        user_id = id;
                        continue;
                    }
                    Err(failure) => return Outcome::Failed(failure),
                }
            }
            return Outcome::Failed(refusal(&reply, status, "updating Disabled"));
        }
    }

    /// The `UserId` of the user whose `LoginId` is `login`, page by page.
    async fn find_user_id(&self, login: &str) -> Result<String, Failure> {
        let mut offset = 0;
        for _ in 0..MAX_PAGES {
            let body = get_users_body(self.key.expose(), Some(login), offset);
            let reply = self
                .http
                .send(self.http.client().post(self.http.url(GET_PATH)).json(&body))
                .await?;
            let status = effective_status(&reply);
            if !(200..300).contains(&status) {
                return Err(refusal(&reply, status, "looking the user up"));
            }
            let page = parse_users_page(&reply.body).map_err(|reason| Failure::Transient {
                reason: format!("looking the user up: {reason}"),
                retry_after: None,
            })?;
            if let Some(id) = page
                .users
                .iter()
                .find(|(l, _)| l == login)
                .map(|(_, id)| id)
            {
                return Ok(id.clone());
            }
            offset += page.users.len() as u64;
            if page.users.is_empty() || offset >= page.total {
                break;
            }
        }
        Err(Failure::Permanent {
            reason: format!("Pleasanter has no user with Login ID {login:?}"),
        })
    }
}

// ---------------------------------------------------------------------------
// Pure parts: what to send, and what the replies say

/// Whether the record's fields must be written with an import.
pub fn needs_import(item: &PushItem) -> bool {
    match item.action {
        ActionKind::Create | ActionKind::Update => true,
        ActionKind::Block | ActionKind::Unblock => item.acked_fields.as_ref() != Some(&item.fields),
    }
}

/// The `Disabled` value to set after the import, if any. New users are
/// enabled: only one created inactive needs the flag.
pub fn disabled_change(item: &PushItem) -> Option<bool> {
    match item.action {
        ActionKind::Create => (!item.active).then_some(true),
        ActionKind::Update => None,
        ActionKind::Block => Some(true),
        ActionKind::Unblock => Some(false),
    }
}

/// A record can go in the CSV: it has a login, and every value can be
/// written in the encoding.
pub fn check_record(
    item: &PushItem,
    login_column: &str,
    encoding: CsvEncoding,
) -> Result<(), String> {
    if item.fields.get(login_column).is_none_or(|l| l.is_empty()) {
        return Err(format!(
            "the record has no {login_column} (login), which Pleasanter requires"
        ));
    }
    for (column, value) in &item.fields {
        if encoding.encode(value).is_none() {
            let culprit = value
                .chars()
                .find(|c| encoding.encode(c.encode_utf8(&mut [0; 4])).is_none())
                .map(|c| format!(" ({c:?}, U+{:04X})", c as u32))
                .unwrap_or_default();
            return Err(format!(
                "{column} holds a character {} cannot encode{culprit}: fix it in the HR file or set encoding = \"utf-8\"",
                encoding.name()
            ));
        }
    }
    Ok(())
}

/// The columns of an import: the login first, then every field any record of
/// it holds now or held when last acknowledged (an empty cell clears a value
/// HR removed), in name order.
pub fn columns(records: &[&PushItem], login_column: &str) -> Vec<String> {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for record in records {
        names.extend(record.fields.keys().map(String::as_str));
        if let Some(acked) = &record.acked_fields {
            names.extend(acked.keys().map(String::as_str));
        }
    }
    names.remove(login_column);
    std::iter::once(login_column.to_string())
        .chain(names.into_iter().map(str::to_string))
        .collect()
}

/// The CSV file of an import, encoded: a header row of column names, then one
/// row per record; every value quoted, CRLF line ends.
pub fn build_csv(
    records: &[&PushItem],
    login_column: &str,
    encoding: CsvEncoding,
) -> Result<Vec<u8>, String> {
    let header = columns(records, login_column);
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let failed = |error: csv::Error| format!("cannot write the import CSV: {error}");
    writer.write_record(&header).map_err(failed)?;
    for record in records {
        let row = header
            .iter()
            .map(|column| record.fields.get(column).map_or("", String::as_str));
        writer.write_record(row).map_err(failed)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| format!("cannot write the import CSV: {}", error.error()))?;
    let text = String::from_utf8(bytes).map_err(|_| "the import CSV is not UTF-8".to_string())?;
    encoding.encode(&text).ok_or_else(|| {
        let column = header.iter().find(|c| encoding.encode(c).is_none());
        match column {
            Some(column) => format!(
                "the column name {column:?} cannot be written in {}: rename it in [target.fields]",
                encoding.name()
            ),
            None => format!("the import CSV cannot be written in {}", encoding.name()),
        }
    })
}

/// The `parameters` field of an import: holds the API key, so never log it.
pub fn import_parameters(key: &str, encoding: CsvEncoding) -> String {
    json!({"ApiVersion": API_VERSION, "ApiKey": key, "Encoding": encoding.parameter()}).to_string()
}

/// The body of `/api/users/get`, filtered on a login when one is given.
pub fn get_users_body(key: &str, login: Option<&str>, offset: u64) -> Value {
    let mut body = json!({"ApiVersion": API_VERSION, "ApiKey": key, "Offset": offset});
    if let Some(login) = login {
        body["View"] = json!({"ColumnFilterHash": {"LoginId": login}});
    }
    body
}

/// One page of `/api/users/get`: (LoginId, UserId) pairs and the total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersPage {
    pub users: Vec<(String, String)>,
    pub total: u64,
}

pub fn parse_users_page(body: &str) -> Result<UsersPage, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|error| format!("unreadable reply ({error})"))?;
    let response = value.get("Response").ok_or("the reply has no Response")?;
    let data = response
        .get("Data")
        .and_then(Value::as_array)
        .ok_or("the reply has no Response.Data list")?;
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

struct Number {
    /// `None` when too big for a u64.
    value: Option<u64>,
    start: usize,
    end: usize,
}

/// The numbers of a text, with their byte spans; `1,234` is one number.
fn numbers_in(text: &str) -> Vec<Number> {
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
fn effective_status(reply: &Reply) -> u16 {
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
fn reply_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("Message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.to_string())
}

fn reply_failure(reply: &Reply) -> Failure {
    crate::retry::classify_status(
        effective_status(reply),
        reply.retry_after.as_deref(),
        &reply_message(&reply.body),
        std::time::SystemTime::now(),
    )
}

/// A failed JSON API call: a refused key said plainly, otherwise classified.
fn refusal(reply: &Reply, status: u16, doing: &str) -> Failure {
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

/// `text` without the secret in it.
pub fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "***")
    }
}

fn scrub_outcome(outcome: Outcome, secret: &str) -> Outcome {
    match outcome {
        Outcome::Failed(Failure::Permanent { reason }) => Outcome::Failed(Failure::Permanent {
            reason: scrub(&reason, secret),
        }),
        Outcome::Failed(Failure::Transient {
            reason,
            retry_after,
        }) => Outcome::Failed(Failure::Transient {
            reason: scrub(&reason, secret),
            retry_after,
        }),
        acked => acked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::test_user;
    use crate::projection::Fields;

    fn item(action: ActionKind, active: bool, fields: &[(&str, &str)]) -> PushItem {
        test_user("wiki", action, active, fields)
    }

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.into(),
            retry_after: None,
        }
    }

    #[test]
    fn english_and_japanese_messages_give_the_counts() {
        assert_eq!(
            parse_message("50 items added and 12 items updated."),
            Some(ImportCounts {
                added: 50,
                updated: 12
            })
        );
        assert_eq!(
            parse_message("50 件追加し、12 件更新しました。"),
            Some(ImportCounts {
                added: 50,
                updated: 12
            })
        );
        // Full-width digits, thousands separators, the order reversed.
        assert_eq!(
            parse_message("１２件更新し、1,050件追加しました。"),
            Some(ImportCounts {
                added: 1050,
                updated: 12
            })
        );
        assert_eq!(
            parse_message("Updated: 3, created: 4"),
            None,
            "the words come before the numbers: nothing can be told for sure"
        );
        assert_eq!(
            parse_message("3 users updated, 4 new users"),
            Some(ImportCounts {
                added: 4,
                updated: 3
            })
        );
        assert_eq!(
            parse_message("7 items added."),
            Some(ImportCounts {
                added: 7,
                updated: 0
            })
        );
        assert_eq!(parse_message("Import completed."), None);
        assert_eq!(parse_message("2 rows, 3 columns"), None);
        assert_eq!(parse_message("7 items added, 2 errors."), None);
        assert_eq!(
            parse_message("99999999999999999999999 items added and 1 items updated."),
            None
        );
    }

    #[test]
    fn import_replies_are_judged_against_what_was_sent() {
        let ok = r#"{"Id":0,"StatusCode":200,"Message":"2 items added and 1 items updated."}"#;
        assert_eq!(
            judge_import(&reply(200, ok), 3),
            ImportVerdict::All(Outcome::Acked { target_id: None })
        );
        assert_eq!(
            judge_import(&reply(200, ok), 4),
            ImportVerdict::Split("2 items added and 1 items updated.".into())
        );
        // Unreadable: transient, replaying is harmless.
        for body in [
            "<html>",
            r#"{"Id":0,"StatusCode":200,"Message":"Done."}"#,
            "{}",
        ] {
            assert!(
                matches!(
                    judge_import(&reply(200, body), 1),
                    ImportVerdict::All(Outcome::Failed(Failure::Transient { .. }))
                ),
                "{body}"
            );
        }
        // A refused key fails every record at once, without splitting.
        let refused = r#"{"Id":0,"StatusCode":401,"Message":"Authentication failed."}"#;
        for status in [200, 401] {
            assert!(matches!(
                judge_import(&reply(status, refused), 5),
                ImportVerdict::All(Outcome::Failed(Failure::Permanent { reason })) if reason.contains("API key was refused")
            ));
        }
        // A refused import is split to find the record; 5xx is transient.
        assert!(matches!(
            judge_import(&reply(400, r#"{"StatusCode":400,"Message":"Row 2: Name is required."}"#), 2),
            ImportVerdict::Refused(Failure::Permanent { reason }) if reason == "HTTP 400: Row 2: Name is required."
        ));
        assert!(matches!(
            judge_import(&reply(503, ""), 2),
            ImportVerdict::All(Outcome::Failed(Failure::Transient { .. }))
        ));
    }

    #[test]
    fn the_csv_has_the_display_names_and_quotes_every_value() {
        let mut ana = item(
            ActionKind::Create,
            true,
            &[
                ("Login ID", "ana"),
                ("Name", "Alves, \"Ana\""),
                ("Mail address", "ana@x.fr"),
            ],
        );
        ana.acked_fields = Some(Fields::from([("User code".into(), "E1".into())]));
        let ben = item(
            ActionKind::Update,
            true,
            &[
                ("Login ID", "ben"),
                ("Name", "Blanc"),
                ("Department code", "D2"),
            ],
        );
        let csv = build_csv(&[&ana, &ben], "Login ID", CsvEncoding::Utf8).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "\"Login ID\",\"Department code\",\"Mail address\",\"Name\",\"User code\"\r\n\
             \"ana\",\"\",\"ana@x.fr\",\"Alves, \"\"Ana\"\"\",\"\"\r\n\
             \"ben\",\"D2\",\"\",\"Blanc\",\"\"\r\n"
        );
    }

    #[test]
    fn shift_jis_encodes_japanese_and_names_the_field_it_cannot_encode() {
        let taro = item(
            ActionKind::Create,
            true,
            &[("ログインID", "yamada"), ("名前", "山田 太郎")],
        );
        assert_eq!(
            check_record(&taro, "ログインID", CsvEncoding::ShiftJis),
            Ok(())
        );
        let csv = build_csv(&[&taro], "ログインID", CsvEncoding::ShiftJis).unwrap();
        let (text, _, errors) = encoding_rs::SHIFT_JIS.decode(&csv);
        assert!(!errors);
        assert_eq!(
            text,
            "\"ログインID\",\"名前\"\r\n\"yamada\",\"山田 太郎\"\r\n"
        );
        assert_ne!(csv, text.as_bytes(), "the bytes are Shift-JIS, not UTF-8");

        let yoshio = item(
            ActionKind::Create,
            true,
            &[("ログインID", "yoshi"), ("名前", "𠮷田 義男")],
        );
        let reason = check_record(&yoshio, "ログインID", CsvEncoding::ShiftJis).unwrap_err();
        assert!(
            reason.contains("名前") && reason.contains("U+20BB7"),
            "{reason}"
        );
        assert_eq!(
            check_record(&yoshio, "ログインID", CsvEncoding::Utf8),
            Ok(())
        );

        let nobody = item(ActionKind::Create, true, &[("名前", "山田")]);
        assert!(
            check_record(&nobody, "ログインID", CsvEncoding::Utf8)
                .unwrap_err()
                .contains("ログインID")
        );
    }

    #[test]
    fn parameters_carry_the_version_the_key_and_the_encoding() {
        let parameters: Value =
            serde_json::from_str(&import_parameters("k3y", CsvEncoding::ShiftJis)).unwrap();
        assert_eq!(
            parameters,
            json!({"ApiVersion": 1.1, "ApiKey": "k3y", "Encoding": "Shift-JIS"})
        );
        assert_eq!(CsvEncoding::from_config(None), Ok(CsvEncoding::Utf8));
        assert_eq!(
            CsvEncoding::from_config(Some("Shift_JIS")),
            Ok(CsvEncoding::ShiftJis)
        );
        assert!(CsvEncoding::from_config(Some("latin1")).is_err());
        assert_eq!(
            get_users_body("k3y", Some("ana"), 200),
            json!({"ApiVersion": 1.1, "ApiKey": "k3y", "Offset": 200,
                   "View": {"ColumnFilterHash": {"LoginId": "ana"}}})
        );
    }

    #[test]
    fn user_pages_give_ids_by_login() {
        let page = parse_users_page(
            r#"{"StatusCode":200,"Response":{"Offset":0,"PageSize":200,"TotalCount":3,
                "Data":[{"UserId":7,"LoginId":"banana"},{"UserId":"9","LoginId":"ana"},{"LoginId":"x"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            page,
            UsersPage {
                users: vec![("banana".into(), "7".into()), ("ana".into(), "9".into())],
                total: 3
            }
        );
        assert!(parse_users_page("{}").is_err());
        assert!(parse_users_page("nope").is_err());
    }

    #[test]
    fn actions_map_to_an_import_and_the_disabled_flag() {
        let fields = [("Login ID", "ana")];
        let create_inactive = item(ActionKind::Create, false, &fields);
        assert!(needs_import(&create_inactive));
        assert_eq!(disabled_change(&create_inactive), Some(true));
        assert_eq!(
            disabled_change(&item(ActionKind::Create, true, &fields)),
            None
        );
        assert_eq!(
            disabled_change(&item(ActionKind::Update, true, &fields)),
            None
        );

        let mut block = item(ActionKind::Block, false, &fields);
        block.acked_fields = Some(block.fields.clone());
        assert!(!needs_import(&block));
        assert_eq!(disabled_change(&block), Some(true));

        let mut unblock = item(ActionKind::Unblock, true, &fields);
        unblock.acked_fields = Some(Fields::from([("Login ID".into(), "ana.old".into())]));
        assert!(
            needs_import(&unblock),
            "an unblock with changed fields imports first"
        );
        assert_eq!(disabled_change(&unblock), Some(false));
    }

    #[test]
    fn the_key_is_scrubbed_from_reasons() {
        let outcome = scrub_outcome(
            Outcome::Failed(Failure::Permanent {
                reason: "HTTP 400: bad ApiKey k3y-s3cret".into(),
            }),
            "k3y-s3cret",
        );
        assert_eq!(
            outcome,
            Outcome::Failed(Failure::Permanent {
                reason: "HTTP 400: bad ApiKey ***".into()
            })
        );
    }
}
