//! `gestimum`: Gestimum ERP. Users go in batches to
//! `POST {url}/api/rest/Utilisateurs/%22Importer%22` (the path segment is
//! `"Importer"`, quotes URL-encoded): a JSON body that opens the company file
//! (`societe`: file, user, password) and carries the users as CSV lines,
//! header first, `;`-separated (`parametres.fichier_utilisateurs`). Gestimum
//! upserts by `USR_NAME` and answers with a journal and the number of lines
//! imported and not imported. Fewer lines imported than sent splits the
//! batch, in halves down to one line, to find the lines it refuses; those
//! fail alone, with what the journal said about them.
//!
//! - Known sizes (`USR_NAME` 20, `USR_GROUPE` 20, `SAL_CODE` 3 characters)
//!   are checked before sending: a record over them fails alone, unsent.
//! - A value a spreadsheet would run as a formula is sent as quoted text
//!   ([`crate::csv_safe`]; `neutralise_formulas`), and checked against the
//!   known sizes as sent.
//! - A value holding `;` or `"` is quoted (`"…"`, inner quotes doubled) and
//!   the import says so with `identificateur_texte = "\""` (the import's text
//!   identifier parameter). A value holding a line break cannot travel in one
//!   line of `fichier_utilisateurs`: the record fails alone, unsent.
//! - Block and unblock are **inferred** (Gestimum's documentation gives no status): every
//!   line carries the dormant flag, `USR_DORT` = `1` blocked / `0` active, a
//!   column named by the target's `dormant_column` setting.
//! - Gestimum keeps no organisations (the projection maps none): organisation
//!   records, if any reach it, are acknowledged without a request.
//! - The password travels in the body: the body is never logged, and any text
//!   from a reply that goes into a log or a failure reason has the password
//!   masked, in case a server echoes its request.
//! - Gestimum keys users by `USR_NAME` (the login by default): a record whose
//!   login changes becomes a new Gestimum user, and the old one is left as it
//!   is there (a warning in the log says so; block it in Gestimum).
//! - The CSV header is `USR_NAME`, then every field the batch's records hold
//!   or last held (so that a value HR removed is sent empty, i.e. cleared),
//!   then the dormant column.

use crate::config::TargetConfig;
use crate::csv_safe::{Cell, Formulas};
use crate::ingest::record::{Field, FieldName, RecordKind};
use crate::projection::DefaultFields;
use crate::retry::Failure;
use crate::secret::Secret;

use super::http::Http;
use super::{
    CheckError, Connector, Outcome, Place, PushItem, PushReply, SettingProblem, Settings,
    SettingsError, Verdict, bisect,
};

mod reply;
mod request;
#[cfg(test)]
mod tests;

pub use reply::*;
pub use request::*;

const IMPORT_PATH: &str = "/api/rest/Utilisateurs/%22Importer%22";
/// Gestimum's key for a user.
pub const KEY_COLUMN: &str = "USR_NAME";
pub const DEFAULT_DORMANT_COLUMN: &str = "USR_DORT";
/// Column sizes Gestimum is known to hold, in characters.
pub const SIZES: &[(&str, usize)] = &[("USR_NAME", 20), ("USR_GROUPE", 20), ("SAL_CODE", 3)];
pub(super) const SEPARATOR: char = ';';
pub(super) const QUOTE: char = '"';
pub(super) const SUCCESS: &str = "succès";

/// How the import opens the company file.
pub struct Login {
    pub company: String,
    pub user: String,
    pub password: Secret,
}

pub struct Gestimum {
    target: String,
    http: Http,
    /// Why Gestimum refused the last import as a whole (the user, its
    /// password or the company file), until an import is done: the push
    /// then holds the target rather than parking every record.
    refused: std::sync::Mutex<Option<String>>,
    batch_size: usize,
    login: Login,
    dormant_column: String,
    formulas: Formulas,
}

impl Connector for Gestimum {
    const KIND: &'static str = "gestimum";
    const SETTINGS: Settings = Settings {
        place: Place::Url,
        token: false,
        password: true,
        encodings: &[],
        own_keys: &["company", "dormant_column", "neutralise_formulas"],
    };

    fn default_fields() -> DefaultFields {
        DefaultFields {
            users: vec![
                ("USR_NAME", FieldName::Known(Field::Login)),
                ("USR_GROUPE", FieldName::Known(Field::Department)),
                ("SAL_CODE", FieldName::Custom("sal_code".into())),
            ],
            orgs: Vec::new(),
        }
    }

    /// `company` is required; the dormant column is a plain column name that
    /// `[target.fields]` does not also map.
    fn check_config(target: &TargetConfig) -> Vec<SettingProblem> {
        let mut problems = Vec::new();
        if target.company.is_none() {
            problems.push((
                target.name.span(),
                format!(
                    "target {:?} (gestimum) needs company (the company file users go into)",
                    target.name.get_ref()
                ),
            ));
        }
        let (value, span) = match &target.dormant_column {
            Some(column) => (column.get_ref().as_str(), column.span()),
            None => (DEFAULT_DORMANT_COLUMN, target.fields.span()),
        };
        if value.is_empty()
            || value
                .chars()
                .any(|ch| ch == ';' || ch == '"' || ch.is_whitespace() || ch.is_control())
        {
            problems.push((
                span,
                format!("dormant_column {value:?} is not a Gestimum column name (no spaces, `;` or quotes)"),
            ));
        } else if target.fields.get_ref().contains_key(value) {
            problems.push((
                span,
                format!("{value} is the dormant column (block/unblock): it cannot also be mapped in [target.fields]"),
            ));
        }
        problems
    }

    fn from_config(target: &TargetConfig) -> Result<Gestimum, SettingsError> {
        let company =
            target
                .company
                .as_ref()
                .map(|c| c.get_ref().clone())
                .ok_or(SettingsError::Missing(
                    "a gestimum target needs company (the company file users go into)",
                ))?;
        let user = target
            .user
            .as_ref()
            .map(|u| u.get_ref().clone())
            .ok_or(SettingsError::Missing("a gestimum target needs user"))?;
        let password = target
            .password_source()
            .ok_or(SettingsError::Missing("a gestimum target needs a password (password_env, password_file or password_credential)"))?
            .load()?;
        let dormant_column = target
            .dormant_column
            .as_ref()
            .map(|c| c.get_ref().clone())
            .unwrap_or_else(|| DEFAULT_DORMANT_COLUMN.to_string());
        if target.fields.get_ref().contains_key(&dormant_column) {
            return Err(SettingsError::Invalid(format!(
                "{dormant_column} carries block/unblock: it cannot also be mapped in [target.fields]"
            )));
        }
        Ok(Gestimum {
            target: target.name.get_ref().clone(),
            http: Http::new(target, Default::default())?,
            refused: std::sync::Mutex::new(None),
            batch_size: *target.batch_size.get_ref(),
            login: Login {
                company,
                user,
                password,
            },
            dormant_column,
            formulas: target.formulas(),
        })
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    async fn push(&self, items: &[PushItem]) -> PushReply {
        match items.first().map(|i| i.key.kind) {
            Some(RecordKind::Users) => self.push_users(items).await,
            Some(RecordKind::Orgs) => {
                // Nothing to hold: the projection maps no organisation field,
                // unless a custom [target.fields] entry pulled them in.
                tracing::info!(target = %self.target, records = items.len(),
                    "Gestimum keeps no organisations: acknowledged without sending");
                PushReply {
                    outcomes: vec![Outcome::Acked { target_id: None }; items.len()],
                    halt: None,
                }
            }
            None => PushReply::default(),
        }
    }

    /// A 401, a certificate not trusted, or Gestimum's own refusal of the
    /// import as a whole (its login): it says nothing of the records, which
    /// keep waiting.
    fn refusal(&self) -> Option<crate::connectors::Refusal> {
        self.http.refusal().or_else(|| {
            self.refused_login()
                .is_some()
                .then_some(crate::connectors::Refusal::Credentials)
        })
    }

    /// Sends an import holding only the header line: it opens the company
    /// file with the credentials and imports nothing.
    async fn check(&self) -> Result<(), CheckError> {
        let header = csv_line([KEY_COLUMN, self.dormant_column.as_str()].map(Cell::plain));
        match self.import(&[header]).await {
            Attempt::Done(_) => Ok(()),
            Attempt::Refused(reason) => Err(CheckError::Refused(reason)),
            Attempt::Failed(failure, _) => Err(failure.into()),
        }
    }

    type Reply = Attempt;

    /// What an import of `sent` came to: all imported; a split when a batch
    /// is refused for its content or its counts fall short; a single line
    /// refused with what the journal said of it; a halt when Gestimum refused
    /// the import as a whole (credentials, company file), which holds the
    /// target with its records waiting (see `refusal`).
    fn verdict(&self, sent: &[&PushItem], attempt: &Attempt) -> Verdict {
        match attempt {
            Attempt::Failed(failure @ Failure::Transient { .. }, _) => {
                Verdict::All(Outcome::Failed(failure.clone()))
            }
            // A request refused for its content: find the line.
            Attempt::Failed(Failure::Permanent { .. }, Some(400 | 413 | 422)) if sent.len() > 1 => {
                Verdict::Split
            }
            Attempt::Failed(failure, _) => Verdict::All(Outcome::Failed(failure.clone())),
            Attempt::Refused(reason) => Verdict::Halt(
                Outcome::Failed(Failure::Permanent {
                    reason: reason.clone(),
                }),
                format!("{reason}; pushing to this target is stopped"),
            ),
            Attempt::Done(reply) => match check_counts(sent.len() as u64, reply) {
                CountCheck::Consistent => Verdict::All(Outcome::Acked { target_id: None }),
                CountCheck::Short(_) if sent.len() > 1 => Verdict::Split,
                CountCheck::Short(summary) => {
                    let details = journal_details(&reply.journal);
                    let reason = if details.is_empty() {
                        format!("Gestimum did not import the user ({summary})")
                    } else {
                        format!(
                            "Gestimum did not import the user: {}",
                            self.mask(&details.join(" / "))
                        )
                    };
                    Verdict::All(Outcome::Failed(Failure::Permanent { reason }))
                }
            },
        }
    }
}

impl Gestimum {
    async fn push_users(&self, items: &[PushItem]) -> PushReply {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
        let mut sendable = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(old) = renamed(item) {
                tracing::warn!(target = %self.target, key = %item.key.key, old = %old,
                    new = %item.fields.get(KEY_COLUMN).map_or("", String::as_str),
                    "the user's USR_NAME changed: Gestimum gets a new user, and the old one stays as it is there");
            }
            match check_item(item, &self.dormant_column, self.formulas) {
                Ok(()) => sendable.push(i),
                Err(refused) => {
                    outcomes[i] = Some(Outcome::Failed(Failure::Permanent {
                        reason: refused.to_string(),
                    }))
                }
            }
        }
        // A batch whose counts fall short is split in two, down to a single line.
        let sendable = &sendable;
        let (sent_outcomes, halt) = bisect(sendable.len(), move |range| async move {
            let part: Vec<&PushItem> = sendable[range].iter().map(|&i| &items[i]).collect();
            let lines = csv_lines(&part, &self.dormant_column, self.formulas);
            let attempt = self.import(&lines).await;
            self.verdict(&part, &attempt)
        })
        .await;
        for (&i, outcome) in sendable.iter().zip(sent_outcomes) {
            outcomes[i] = Some(outcome);
        }
        PushReply {
            outcomes: outcomes
                .into_iter()
                .map(|o| {
                    o.unwrap_or(Outcome::Failed(Failure::Transient {
                        reason: "not sent: pushing to this target stopped".into(),
                        retry_after: None,
                    }))
                })
                .collect(),
            halt,
        }
    }

    /// One import request. The body (which holds the password) is never
    /// logged; reply text is masked before it goes anywhere.
    async fn import(&self, lines: &[String]) -> Attempt {
        let body = import_body(&self.login, lines);
        let reply = self
            .http
            .send(
                self.http
                    .client()
                    .post(self.http.url(IMPORT_PATH))
                    .json(&body),
            )
            .await;
        drop(body);
        let reply = match reply {
            Err(failure) => return Attempt::Failed(failure, None),
            Ok(reply) => reply,
        };
        if matches!(reply.status, 401 | 403) {
            return Attempt::Refused(format!(
                "Gestimum refused user {:?} or its password for company {:?} (HTTP {})",
                self.login.user, self.login.company, reply.status
            ));
        }
        if !reply.is_success() {
            return Attempt::Failed(self.mask_failure(reply.failure()), Some(reply.status));
        }
        let parsed = match parse_reply(&reply.body) {
            // A 200 without a readable reply: the import may have happened;
            // sending it again is harmless (an upsert by USR_NAME).
            Err(reason) => {
                return Attempt::Failed(
                    Failure::Transient {
                        reason: self.mask(&reason.to_string()),
                        retry_after: None,
                    },
                    Some(reply.status),
                );
            }
            Ok(parsed) => parsed,
        };
        for line in &parsed.journal {
            let line = self.mask(line);
            if is_routine(&line) {
                tracing::info!(target = %self.target, "Gestimum journal: {line}");
            } else {
                tracing::warn!(target = %self.target, "Gestimum journal: {line}");
            }
        }
        if !parsed.success {
            let reason = format!(
                "Gestimum refused the import into company {:?} as user {:?}: {} (check user, password and company)",
                self.login.company,
                self.login.user,
                self.mask(&parsed.refusal())
            );
            *self.refused_login() = Some(reason.clone());
            return Attempt::Refused(reason);
        }
        *self.refused_login() = None;
        Attempt::Done(parsed)
    }

    fn refused_login(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A poisoned lock still holds a sound value: an Option being set.
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `text` without the password, in any form ([`Secret::scrub`]).
    fn mask(&self, text: &str) -> String {
        self.login.password.scrub(text)
    }

    fn mask_failure(&self, failure: Failure) -> Failure {
        failure.map_reason(|reason| self.mask(reason))
    }
}
