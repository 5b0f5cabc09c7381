//! `pleasanter`: Implem Pleasanter. Users are created, updated, blocked
//! and unblocked in batches through the CSV user import, `POST
//! /api/users/import` (`multipart/form-data`: a `parameters` JSON with the
//! API key and the CSV's encoding, and the CSV as `file`; an upsert keyed by
//! `Login ID`).
//!
//! The CSV's headers are the column labels in the language of the API key's
//! user, and Pleasanter drops a header that is none without an error: the
//! target field names of the projection are checked against the English
//! and Japanese labels ([`labels`]). The header is the same for every batch
//! (an empty cell clears a value) and ends with `Disabled` (1 or 0), so a
//! block or an unblock is an import too. The CSV is UTF-8 or Shift-JIS
//! (`encoding`), encoded strictly here: Pleasanter would replace a bad byte
//! silently. A value a spreadsheet would run as a formula is sent as quoted
//! text ([`crate::csv_safe`]; `neutralise_formulas`), so Pleasanter holds it
//! with its quote. Values longer than Pleasanter's columns, as sent, are
//! refused before sending.
//!
//! Each row is written on its own. A 200 means every row was read: the
//! counts in its message leave out unchanged rows (a replay, a user the
//! tenant already held), so they are only logged. A refused record answers
//! 500 with a message (or a redirect to the error page, for a server
//! exception): the batch is split to isolate it, and alone it is parked with
//! what Pleasanter said. No redirect is followed.
//!
//! The import cannot rename a login (a new login is a new user): a changed
//! login is first renamed with `POST /api/users/{UserId}/update`, the
//! `UserId` found with `POST /api/users/get` by exact login (its filter
//! alone matches any login containing the one asked for).
//!
//! Before a record is created, the target's `match` rules look the user up
//! with `/api/users/get`, by exact user code (the external id) and login
//! (its API lists no e-mail addresses): one user found is adopted (renamed
//! to the record's login first when found by its code, so that the import
//! updates it), several park the record as ambiguous, another record's is
//! never taken ([`super::adopt`]). A user the import itself creates gets no
//! id here (the import answers none): its user code says whose it is.
//!
//! Pleasanter keeps departments of its own, referenced by `Department code`:
//! this connector keeps no organisations.
//!
//! The API key travels in request bodies: it is never logged, and every
//! failure reason is scrubbed of it.

use crate::config::TargetConfig;
use crate::csv_safe::Formulas;
use crate::ingest::record::{Field, RecordKind};
use crate::model::ActionKind;
use crate::projection::{DefaultFields, Projector};
use crate::retry::Failure;
use crate::secret::Secret;

use super::adopt::{self, Account, Adoption, Found, Holders, Nobody, Rule};
use super::http::{Http, Reply};
use super::{
    CheckError, Connector, Outcome, Place, PushItem, PushReply, SettingProblem, Settings,
    SettingsError, UnknownEncoding, Verdict, bisect,
};

mod delete;
mod labels;
mod reply;
mod request;
#[cfg(test)]
mod tests;

use labels::{Column, Layout};
pub use labels::Language;
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

    /// The `Encoding` import parameter (Pleasanter reads anything but the
    /// exact `Shift-JIS` as UTF-8).
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
    layout: Layout,
    formulas: Formulas,
    batch_size: usize,
    /// The target's `match` rules, with which a user the tenant already
    /// holds is found before one is created.
    rules: Vec<Rule>,
    /// The label the external id goes under, when it is the user code (an
    /// account's code then says whose it is).
    code_label: Option<String>,
}

/// The import layout of a target's mapped fields.
fn target_layout(target: &TargetConfig) -> Result<Layout, Vec<String>> {
    let projector = Projector::new(Pleasanter::default_fields(), target.fields.get_ref());
    labels::layout(projector.target_fields(RecordKind::Users))
}

impl Connector for Pleasanter {
    const KIND: &'static str = "pleasanter";
    const SETTINGS: Settings = Settings {
        place: Place::Url,
        token: true,
        password: false,
        encodings: &["utf-8", "shift_jis"],
        own_keys: &["neutralise_formulas"],
    };

    const MATCH_FIELDS: &'static [Field] = &[Field::ExtId, Field::Login];

    const DELETES: bool = true;

    fn default_fields() -> DefaultFields {
        use Field::*;
        // English labels (a Japanese key owner's are mapped in
        // [target.fields]). `Name`, the display name Pleasanter requires, is
        // the last name unless a full-name column is mapped to it.
        DefaultFields::known(
            &[
                ("Login ID", Login),
                ("Name", LastName),
                ("User code", ExtId),
                ("Email address", Email),
                ("Department code", OrgExtId),
            ],
            &[],
        )
    }

    /// Every mapped name must be a label of the import, all of one language.
    fn check_config(target: &TargetConfig) -> Vec<SettingProblem> {
        match target_layout(target) {
            Ok(_) => Vec::new(),
            Err(problems) => problems
                .into_iter()
                .map(|problem| (target.fields.span(), problem))
                .collect(),
        }
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
        let layout =
            target_layout(target).map_err(|problems| SettingsError::Invalid(problems.join("; ")))?;
        let projector = Projector::new(Self::default_fields(), target.fields.get_ref());
        let code_label = projector
            .target_field(RecordKind::Users, Field::ExtId)
            .filter(|label| Column::of_label(label).is_some_and(|(c, _)| c == Column::UserCode))
            .map(str::to_string);
        Ok(Pleasanter {
            rules: adopt::rules(target, &projector, Self::MATCH_FIELDS),
            code_label,
            // A redirect is Pleasanter's answer to an exception, not a place to go.
            http: Http::without_redirects(target, Default::default())?,
            key,
            encoding,
            layout,
            formulas: target.formulas(),
            batch_size: *target.batch_size.get_ref(),
        })
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    async fn push(&self, items: &[PushItem]) -> PushReply {
        self.push_with(items, &Nobody).await
    }

    async fn push_with(&self, items: &[PushItem], holders: &dyn Holders) -> PushReply {
        let outcomes = match items.first().map(|i| i.key.kind) {
            Some(RecordKind::Users) => self.push_users(items, holders).await,
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

    /// Sends an import of the header alone: Pleasanter checks the key and
    /// its user's right before it finds no rows, and answers in that user's
    /// language, which must be the labels'.
    fn refusal(&self) -> Option<crate::connectors::Refusal> {
        self.http.refusal()
    }

    async fn check(&self) -> Result<(), CheckError> {
        let scrub = |error: CheckError| match error {
            CheckError::Failed(reason) => CheckError::Failed(self.key.scrub(&reason)),
            CheckError::Refused(reason) => CheckError::Refused(self.key.scrub(&reason)),
            CheckError::Unexpected(reason) => CheckError::Unexpected(self.key.scrub(&reason)),
        };
        let reply = self
            .send_import(&[])
            .await
            .map_err(|failure| CheckError::Failed(self.key.scrub(failure.reason())))?;
        judge_probe(&reply, self.layout.language).map_err(scrub)
    }

    type Reply = Reply;

    /// An import's reply, judged by [`judge_import`]; for a single record, a
    /// refusal is that record's.
    fn verdict(&self, sent: &[&PushItem], reply: &Reply) -> Verdict {
        match judge_import(reply, sent.len()) {
            ImportVerdict::All(outcome) => Verdict::All(outcome),
            ImportVerdict::Refused(failure) if sent.len() == 1 => {
                Verdict::All(Outcome::Failed(failure))
            }
            ImportVerdict::Refused(_) => {
                tracing::debug!(
                    records = sent.len(),
                    "Pleasanter refused a record of the import: splitting the batch"
                );
                Verdict::Split
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The part that sends

impl Pleasanter {
    async fn push_users(&self, items: &[PushItem], holders: &dyn Holders) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
        let mut target_ids: Vec<Option<String>> =
            items.iter().map(|i| i.target_id.clone()).collect();
        let mut to_import = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if item.action == ActionKind::Delete {
                outcomes[i] = Some(self.delete(item).await);
                target_ids[i] = None;
                continue;
            }
            if let Err(refused) = check_record(item, &self.layout, self.encoding, self.formulas) {
                outcomes[i] = Some(Outcome::Failed(Failure::Permanent {
                    reason: refused.to_string(),
                }));
                continue;
            }
            let looked_up = if let Some((old, new)) = renamed(item, self.layout.login()) {
                // Pleasanter holds logins as the import wrote them.
                let (old, new) = (self.formulas.text(old), self.formulas.text(new));
                self.rename(item, &old, &new)
                    .await
                    .map_err(Outcome::Failed)
            } else if item.target_id.is_none() && item.action == ActionKind::Create {
                // Users the import made have no id here: only a create looks.
                self.adopt(item, holders).await
            } else {
                Ok(None)
            };
            match looked_up {
                Ok(Some(id)) => target_ids[i] = Some(id),
                Ok(None) => {}
                Err(outcome) => {
                    let asked_to_wait = matches!(
                        &outcome,
                        Outcome::Failed(Failure::Transient {
                            retry_after: Some(_),
                            ..
                        })
                    );
                    if asked_to_wait || self.http.refusal().is_some() {
                        // The key refused, or the tenant asked to wait
                        // (`Retry-After`): every other record of the batch
                        // would be refused the same, one request each.
                        for later in &mut outcomes[i..] {
                            later.get_or_insert_with(|| outcome.clone());
                        }
                        to_import.clear();
                        break;
                    }
                    outcomes[i] = Some(outcome);
                    continue;
                }
            }
            to_import.push(i);
        }
        self.import(items, &to_import, &mut outcomes).await;
        outcomes
            .into_iter()
            .zip(target_ids)
            .map(|(outcome, target_id)| match outcome {
                Some(Outcome::Acked { .. }) => Outcome::Acked { target_id },
                Some(failed) => failed,
                None => Outcome::Failed(Failure::Transient {
                    reason: "not sent".into(),
                    retry_after: None,
                }),
            })
            .collect()
    }

    /// Imports `chosen` (indexes into `items`), splitting a batch Pleasanter
    /// refused a record of down to single records; sets the outcome of each.
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
            outcomes[i] = Some(outcome);
        }
    }

    async fn send_import(&self, records: &[&PushItem]) -> Result<Reply, Failure> {
        let csv = build_csv(records, &self.layout, self.encoding, self.formulas).map_err(|refused| {
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
        self.send(
            self.http
                .client()
                .post(self.http.url(IMPORT_PATH))
                .multipart(form),
        )
        .await
    }

    /// Sends a request. Pleasanter answers some errors with a 200 holding
    /// their status: those are scrubbed of the key here, as `Http` scrubs
    /// the others, before anything reads or cuts them short.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Reply, Failure> {
        let reply = self.http.send(request).await?;
        Ok(scrub_inner_error(reply, &self.key))
    }

    /// The user the `match` rules find for a new record, adopted: its
    /// `UserId` (renamed to the record's login when found by user code),
    /// or `None` to let the import create one. `Err`: the record's outcome
    /// (ambiguous, or refused).
    async fn adopt(&self, item: &PushItem, holders: &dyn Holders) -> Result<Option<String>, Outcome> {
        let failed = |failure| Outcome::Failed(failure);
        let found = self.find_accounts(item).await.map_err(failed)?;
        if found.is_empty() {
            return Ok(None);
        }
        let mine = self.code_label.as_ref().and_then(|label| item.fields.get(label));
        let adoption = adopt::decide(&item.key, mine.map(String::as_str), found, holders)
            .await
            .map_err(failed)?;
        let account = match adoption {
            Adoption::Create => return Ok(None),
            Adoption::Adopt(account) => account,
            Adoption::Ambiguous(candidates) => return Err(Outcome::Ambiguous(candidates)),
            Adoption::Refused(reason) => return Err(failed(Failure::Permanent { reason })),
        };
        let login = item.fields.get(self.layout.login()).map_or("", String::as_str);
        if account.login != login {
            // The import finds users by login: it must be the record's first.
            let reply = self.send_rename(&account.id, login).await.map_err(failed)?;
            match effective_status(&reply) {
                200..=299 => {}
                404 => {
                    return Err(failed(Failure::Transient {
                        reason: format!(
                            "user {} vanished from Pleasanter while being adopted",
                            account.id
                        ),
                        retry_after: None,
                    }));
                }
                _ => return Err(failed(rename_refusal(&reply, &account.login, login))),
            }
        }
        tracing::info!(key = %item.key.key, id = %account.id, "Pleasanter holds the user already: adopting it");
        Ok(Some(account.id))
    }

    /// What the rules find in the tenant for the record.
    async fn find_accounts(&self, item: &PushItem) -> Result<Found, Failure> {
        let mut found = Found::default();
        for rule in &self.rules {
            let Some(value) = item.fields.get(&rule.target_field).filter(|v| !v.is_empty()) else {
                continue;
            };
            let Some((column, _)) = Column::of_label(&rule.target_field) else {
                continue;
            };
            let users = self.find_users(column, value).await?;
            let code_is_ext = self.code_label.is_some();
            found.add(
                rule.field,
                users.into_iter().map(|user| Account {
                    id: user.id,
                    login: user.login,
                    ext_id: user.code.filter(|_| code_is_ext),
                }),
            );
        }
        Ok(found)
    }

    /// `POST /api/users/{user_id}/update` of a new login.
    async fn send_rename(&self, user_id: &str, login: &str) -> Result<Reply, Failure> {
        let path = format!("/api/users/{user_id}/update");
        let body = rename_body(self.key.expose(), login);
        self.send(self.http.client().post(self.http.url(&path)).json(&body))
            .await
    }

    /// Renames the user holding `old` to `new`; its `UserId`, or `None` when
    /// no user holds `old` (renamed already, before an acknowledgement was
    /// lost, or never made): the import then does the rest.
    async fn rename(&self, item: &PushItem, old: &str, new: &str) -> Result<Option<String>, Failure> {
        let mut cached = item.target_id.clone();
        loop {
            let looked_up = cached.is_none();
            let user_id = match cached.take() {
                Some(id) => id,
                None => match self.find_user_id(old).await? {
                    Some(id) => id,
                    None => return Ok(None),
                },
            };
            let reply = self.send_rename(&user_id, new).await?;
            if (200..300).contains(&effective_status(&reply)) {
                tracing::debug!(old = %old, new = %new, user_id = %user_id, "Pleasanter user renamed");
                return Ok(Some(user_id));
            }
            // A cached id may be stale (the user deleted and made again): look it up once.
            if effective_status(&reply) == 404 {
                if looked_up {
                    return Ok(None);
                }
                continue;
            }
            return Err(rename_refusal(&reply, old, new));
        }
    }

    /// The `UserId` of the user whose `LoginId` is exactly `login`, if any.
    async fn find_user_id(&self, login: &str) -> Result<Option<String>, Failure> {
        let users = self.find_users(Column::LoginId, login).await?;
        Ok(users.into_iter().next().map(|user| user.id))
    }

    /// The users whose `column` is exactly `value` (checked here too: a
    /// server that took the filter for a partial one must not make us take
    /// another user).
    async fn find_users(&self, column: Column, value: &str) -> Result<Vec<PageUser>, Failure> {
        let holds = |user: &PageUser| match column {
            Column::LoginId => user.login == value,
            Column::UserCode => user.code.as_deref() == Some(value),
            _ => false,
        };
        let mut found = Vec::new();
        let mut offset = 0;
        for _ in 0..MAX_PAGES {
            let body = get_users_body(self.key.expose(), column.api_name(), value, offset);
            let reply = self
                .send(self.http.client().post(self.http.url(GET_PATH)).json(&body))
                .await?;
            if !(200..300).contains(&effective_status(&reply)) {
                return Err(refusal(&reply, "looking users up"));
            }
            let page = parse_users_page(&reply.body).map_err(|reason| Failure::Transient {
                reason: format!("looking users up: {reason}"),
                retry_after: None,
            })?;
            offset += page.users.len() as u64;
            let last = page.users.is_empty() || offset >= page.total;
            found.extend(page.users.into_iter().filter(holds));
            if last {
                break;
            }
        }
        Ok(found)
    }
}
