//! `pleasanter`: Implem Pleasanter. Users are created and updated
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

use serde_json::json;

use crate::config::TargetConfig;
use crate::ingest::record::{Field, RecordKind};
use crate::projection::{DefaultFields, Projector};
use crate::retry::Failure;
use crate::secret::Secret;

use super::http::{Http, Reply};
use super::{
    CheckError, Connector, Outcome, Place, PushItem, PushReply, Settings, SettingsError,
    UnknownEncoding, Verdict, bisect,
};

mod reply;
mod request;
#[cfg(test)]
mod tests;

pub use reply::*;
pub use request::*;

const IMPORT_PATH: &str = "/api/users/import";
const GET_PATH: &str = "/api/users/get";
pub(super) const API_VERSION: f64 = 1.1;
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
    pub fn from_config(label: Option<&str>) -> Result<CsvEncoding, UnknownEncoding> {
        match label.map(str::to_ascii_lowercase).as_deref() {
            None | Some("utf-8") | Some("utf8") => Ok(CsvEncoding::Utf8),
            Some("shift_jis") | Some("shift-jis") | Some("sjis") => Ok(CsvEncoding::ShiftJis),
            Some(other) => Err(UnknownEncoding {
                label: other.to_string(),
                kind: "pleasanter",
                takes: "utf-8, shift_jis",
            }),
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

    fn from_config(target: &TargetConfig) -> Result<Pleasanter, SettingsError> {
        let key = target
            .token_source()
            .ok_or(SettingsError::Missing(
                "a pleasanter target needs an API key (token_env, token_file or token_credential)",
            ))?
            .load()?;
        let encoding =
            CsvEncoding::from_config(target.encoding.as_ref().map(|e| e.get_ref().as_str()))?;
        let projector = Projector::new(target.kind.default_fields(), target.fields.get_ref());
        let login_column = projector
            .target_field(RecordKind::Users, Field::Login)
            .ok_or(SettingsError::Missing(
                "a pleasanter target must map the login (the import matches users on it): \
                 keep the default `\"Login ID\" = \"login\"` in [target.fields]",
            ))?
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
                .map(|outcome| scrub_outcome(outcome, &self.key))
                .collect(),
            halt: None,
        }
    }

    /// Lists users with the key: a refused key says so.
    async fn check(&self) -> Result<(), CheckError> {
        let body = get_users_body(self.key.expose(), None, 0);
        let reply = self
            .http
            .send(self.http.client().post(self.http.url(GET_PATH)).json(&body))
            .await
            .map_err(|failure| CheckError::Failed(self.key.scrub(failure.reason())))?;
        let status = effective_status(&reply);
        if matches!(status, 401 | 403) {
            return Err(CheckError::Refused(format!(
                "the API key was refused (HTTP {status}): check the key and that API use is allowed for its user"
            )));
        }
        if !(200..300).contains(&status) {
            return Err(CheckError::Failed(
                self.key.scrub(reply_failure(&reply).reason()),
            ));
        }
        parse_users_page(&reply.body).map(|_| ()).map_err(|reason| {
            CheckError::Unexpected(format!("{}: {reason}", self.http.url(GET_PATH)))
        })
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
                Err(refused) => {
                    outcomes[i] = Some(Outcome::Failed(Failure::Permanent {
                        reason: refused.to_string(),
                    }))
                }
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
        let csv = build_csv(records, &self.login_column, self.encoding).map_err(|refused| {
            Failure::Permanent {
                reason: refused.to_string(),
            }
        })?;
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
