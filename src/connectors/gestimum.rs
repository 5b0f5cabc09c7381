//! `gestimum`: Gestimum ERP (seed 000). Users go in batches to
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
//! - A value holding `;` or `"` is quoted (`"…"`, inner quotes doubled) and
//!   the import says so with `identificateur_texte = "\""` (the seed's text
//!   identifier parameter). A value holding a line break cannot travel in one
//!   line of `fichier_utilisateurs`: the record fails alone, unsent.
//! - Block and unblock are **inferred** (the seed documents no status): every
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

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::config::TargetConfig;
use crate::ingest::record::{Field, FieldName, RecordKind};
use crate::projection::DefaultFields;
use crate::retry::Failure;
use crate::secret::Secret;

use super::http::Http;
use super::{
    Connector, Outcome, Place, PushItem, PushReply, SettingProblem, Settings, Verdict, bisect,
};

const IMPORT_PATH: &str = "/api/rest/Utilisateurs/%22Importer%22";
/// Gestimum's key for a user.
pub const KEY_COLUMN: &str = "USR_NAME";
pub const DEFAULT_DORMANT_COLUMN: &str = "USR_DORT";
/// Column sizes Gestimum is known to hold, in characters.
pub const SIZES: &[(&str, usize)] = &[("USR_NAME", 20), ("USR_GROUPE", 20), ("SAL_CODE", 3)];
const SEPARATOR: char = ';';
const QUOTE: char = '"';
const SUCCESS: &str = "succès";

/// How the import opens the company file.
pub struct Login {
    pub company: String,
    pub user: String,
    pub password: Secret,
}

pub struct Gestimum {
    target: String,
    http: Http,
    batch_size: usize,
    login: Login,
    dormant_column: String,
}

impl Connector for Gestimum {
    const KIND: &'static str = "gestimum";
    const SETTINGS: Settings = Settings {
        place: Place::Url,
        token: false,
        password: true,
        encodings: &[],
        own_keys: &["company", "dormant_column"],
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

    fn from_config(target: &TargetConfig) -> Result<Gestimum, String> {
        let company = target
            .company
            .as_ref()
            .map(|c| c.get_ref().clone())
            .ok_or("a gestimum target needs company (the company file users go into)")?;
        let user = target
            .user
            .as_ref()
            .map(|u| u.get_ref().clone())
            .ok_or("a gestimum target needs user")?;
        let password = target
            .password_source()
            .ok_or("a gestimum target needs a password (password_env, password_file or password_credential)")?
            .load()
            .map_err(|error| error.to_string())?;
        let dormant_column = target
            .dormant_column
            .as_ref()
            .map(|c| c.get_ref().clone())
            .unwrap_or_else(|| DEFAULT_DORMANT_COLUMN.to_string());
        if target.fields.get_ref().contains_key(&dormant_column) {
            return Err(format!(
                "{dormant_column} carries block/unblock: it cannot also be mapped in [target.fields]"
            ));
        }
        Ok(Gestimum {
            target: target.name.get_ref().clone(),
            http: Http::new(target, Default::default())?,
            batch_size: *target.batch_size.get_ref(),
            login: Login {
                company,
                user,
                password,
            },
            dormant_column,
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

    /// Sends an import holding only the header line: it opens the company
    /// file with the credentials and imports nothing.
    async fn check(&self) -> Result<(), String> {
        let header = csv_line([KEY_COLUMN, self.dormant_column.as_str()]);
        match self.import(&[header]).await {
            Attempt::Done(_) => Ok(()),
            Attempt::Refused(reason) => Err(reason),
            Attempt::Failed(failure, _) => Err(failure.reason().to_string()),
        }
    }

    type Reply = Attempt;

    /// What an import of `sent` came to: all imported; a split when a batch
    /// is refused for its content or its counts fall short; a single line
    /// refused with what the journal said of it; a halt when Gestimum refused
    /// the import as a whole (credentials, company file).
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
            match check_item(item, &self.dormant_column) {
                Ok(()) => sendable.push(i),
                Err(reason) => outcomes[i] = Some(Outcome::Failed(Failure::Permanent { reason })),
            }
        }
        // A batch whose counts fall short is split in two, down to a single line.
        let sendable = &sendable;
        let (sent_outcomes, halt) = bisect(sendable.len(), move |range| async move {
            let part: Vec<&PushItem> = sendable[range].iter().map(|&i| &items[i]).collect();
            let lines = csv_lines(&part, &self.dormant_column);
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
                        reason: self.mask(&reason),
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
            return Attempt::Refused(format!(
                "Gestimum refused the import into company {:?} as user {:?}: {} (check user, password and company)",
                self.login.company,
                self.login.user,
                self.mask(&parsed.refusal())
            ));
        }
        Attempt::Done(parsed)
    }

    fn mask(&self, text: &str) -> String {
        mask(text, &self.login.password)
    }

    fn mask_failure(&self, failure: Failure) -> Failure {
        match failure {
            Failure::Transient {
                reason,
                retry_after,
            } => Failure::Transient {
                reason: self.mask(&reason),
                retry_after,
            },
            Failure::Permanent { reason } => Failure::Permanent {
                reason: self.mask(&reason),
            },
        }
    }
}

pub enum Attempt {
    /// Gestimum ran the import (its counts still to be checked).
    Done(ImportReply),
    /// Gestimum refused the import as a whole (credentials, company file).
    Refused(String),
    /// No import: the failure, and the HTTP status when a reply came.
    Failed(Failure, Option<u16>),
}

/// The request body of an import.
pub fn import_body(login: &Login, lines: &[String]) -> Value {
    json!({
        "importer_utilisateurs": {
            "societe": {
                "fichier": login.company,
                "utilisateur": login.user,
                "mot_passe": login.password.expose(),
                "deconnecter": "Non",
                "exclusif": "Non",
            },
            "parametres": {
                "journal": "Oui",
                "statistiques": "Oui",
                "entete": "Oui",
                "separateur_champs": SEPARATOR.to_string(),
                "identificateur_texte": QUOTE.to_string(),
                "fichier_utilisateurs": lines,
            }
        }
    })
}

/// Whether Gestimum can take the record: it has a `USR_NAME`, no value is
/// over a known size or holds a line break. The reason names the field.
pub fn check_item(item: &PushItem, dormant_column: &str) -> Result<(), String> {
    match item.fields.get(KEY_COLUMN) {
        Some(name) if !name.is_empty() => {}
        _ => {
            return Err(format!(
                "no {KEY_COLUMN} (Gestimum's key, the login by default): give the user a login"
            ));
        }
    }
    for (name, value) in &item.fields {
        if value.contains(['\r', '\n']) {
            return Err(format!(
                "{name} holds a line break, which a Gestimum import line cannot carry: remove it in the HR file"
            ));
        }
        if let Some(&(_, max)) = SIZES.iter().find(|(column, _)| column == name) {
            let length = value.chars().count();
            if length > max {
                return Err(format!(
                    "{name} {value:?} is {length} characters; Gestimum holds {max} at most: shorten it in the HR file"
                ));
            }
        }
    }
    if item.fields.contains_key(dormant_column) {
        return Err(format!(
            "{dormant_column} carries block/unblock: it cannot also be a field"
        ));
    }
    Ok(())
}

/// The `USR_NAME` Gestimum last confirmed, when the record now has another
/// (Gestimum keys users by it, so a new name is a new user).
pub fn renamed(item: &PushItem) -> Option<&str> {
    let old = item.acked_fields.as_ref()?.get(KEY_COLUMN)?;
    (item.fields.get(KEY_COLUMN) != Some(old)).then_some(old.as_str())
}

/// The columns of a batch: `USR_NAME`, every other field its records hold
/// or last held (in name order), then the dormant column.
pub fn columns(items: &[&PushItem], dormant_column: &str) -> Vec<String> {
    let mut names = BTreeSet::new();
    for item in items {
        names.extend(item.fields.keys().map(String::as_str));
        if let Some(acked) = &item.acked_fields {
            names.extend(acked.keys().map(String::as_str));
        }
    }
    names.remove(KEY_COLUMN);
    names.remove(dormant_column);
    std::iter::once(KEY_COLUMN)
        .chain(names)
        .chain(std::iter::once(dormant_column))
        .map(str::to_string)
        .collect()
}

/// The CSV lines of an import: the header, then one line per record (a
/// field the record lacks is sent empty; the dormant flag from `active`).
pub fn csv_lines(items: &[&PushItem], dormant_column: &str) -> Vec<String> {
    let columns = columns(items, dormant_column);
    let mut lines = Vec::with_capacity(items.len() + 1);
    lines.push(csv_line(columns.iter().map(String::as_str)));
    for item in items {
        let dormant = if item.active { "0" } else { "1" };
        lines.push(csv_line(columns.iter().map(|column| {
            if column == dormant_column {
                dormant
            } else {
                item.fields.get(column).map(String::as_str).unwrap_or("")
            }
        })));
    }
    lines
}

/// One `;`-separated line; a value holding `;` or `"` is quoted, inner
/// quotes doubled. Values must hold no line break (see [`check_item`]).
pub fn csv_line<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = String::new();
    for (i, value) in values.into_iter().enumerate() {
        if i > 0 {
            line.push(SEPARATOR);
        }
        if value.contains([SEPARATOR, QUOTE]) {
            line.push(QUOTE);
            line.push_str(&value.replace(QUOTE, "\"\""));
            line.push(QUOTE);
        } else {
            line.push_str(value);
        }
    }
    line
}

/// What an import answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportReply {
    /// `result[0].resultat == "succès"`.
    pub success: bool,
    pub message: String,
    pub journal: Vec<String>,
    pub imported: Option<u64>,
    pub not_imported: Option<u64>,
}

impl ImportReply {
    /// What a refused import said: its message, and its journal's unusual lines.
    fn refusal(&self) -> String {
        let mut parts = Vec::new();
        if !self.message.is_empty() {
            parts.push(self.message.clone());
        }
        parts.extend(journal_details(&self.journal));
        if parts.is_empty() {
            "no message".into()
        } else {
            parts.join(" / ")
        }
    }
}

/// Reads an import's reply (seed 000: `result[0]` with `resultat`,
/// `message`, `journal`, `statistiques`; counts as strings or numbers).
pub fn parse_reply(body: &str) -> Result<ImportReply, String> {
    let value: Value = serde_json::from_str(body)
        .map_err(|error| format!("unreadable reply from Gestimum ({error})"))?;
    let result = value
        .get("result")
        .and_then(|r| r.get(0))
        .ok_or("Gestimum's reply has no result[0]")?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let resultat = text(result.get("resultat"));
    let journal = result
        .get("journal")
        .and_then(Value::as_array)
        .map(|lines| {
            lines
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let count = |name: &str| -> Result<Option<u64>, String> {
        match result.get("statistiques").and_then(|s| s.get(name)) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .map(Some)
                .ok_or_else(|| format!("Gestimum's reply has an unreadable {name}")),
        }
    };
    Ok(ImportReply {
        success: resultat.trim() == SUCCESS,
        message: text(result.get("message")),
        journal,
        imported: count("nombre_lignes_importées")?,
        not_imported: count("nombre_lignes_non_importées")?,
    })
}

#[derive(Debug, PartialEq, Eq)]
pub enum CountCheck {
    Consistent,
    /// Not every line was imported (or the counts cannot be read): the summary.
    Short(String),
}

/// Every line sent was imported and none refused. A reply without the
/// imported count proves nothing and counts as short.
pub fn check_counts(sent: u64, reply: &ImportReply) -> CountCheck {
    match (reply.imported, reply.not_imported.unwrap_or(0)) {
        (Some(imported), 0) if imported == sent => CountCheck::Consistent,
        // One line, imported (a count above one is odd, not a refusal).
        (Some(imported), 0) if sent == 1 && imported >= 1 => CountCheck::Consistent,
        (Some(imported), not_imported) => CountCheck::Short(format!(
            "{sent} lines sent, {imported} imported, {not_imported} not imported"
        )),
        (None, _) => CountCheck::Short(format!("{sent} lines sent, no count of lines imported")),
    }
}

/// The journal's lines that say something about the data, without their
/// timestamp: everything but the routine opening, counting and closing lines.
pub fn journal_details(journal: &[String]) -> Vec<String> {
    journal
        .iter()
        .map(|line| strip_timestamp(line))
        .filter(|line| !line.is_empty() && !is_routine(line))
        .map(str::to_string)
        .collect()
}

/// The lines every import writes (seed 000).
fn is_routine(line: &str) -> bool {
    const ROUTINE: &[&str] = &[
        "Ouverture de la société",
        "Fermeture de la société",
        "Lancement de la tâche",
        "L'import a été effectué avec succès",
        "Nombre de lignes importées",
        "Nombre de lignes non importées",
    ];
    let line = strip_timestamp(line);
    ROUTINE.iter().any(|start| line.starts_with(start))
        || (line.starts_with("Société ") && line.ends_with(" ouverte"))
        || (line.starts_with("Tâche ") && line.ends_with(" terminée"))
}

/// `10/09/2019 11:25:38 text` → `text`.
fn strip_timestamp(line: &str) -> &str {
    let line = line.trim();
    let mut parts = line.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(date), Some(time), Some(rest))
            if date.len() == 10
                && date.chars().filter(|&c| c == '/').count() == 2
                && time.chars().filter(|&c| c == ':').count() == 2 =>
        {
            rest.trim()
        }
        _ => line,
    }
}

/// `text` with the password (as is, and as JSON writes it) replaced by `***`.
pub fn mask(text: &str, password: &Secret) -> String {
    let secret = password.expose();
    if secret.is_empty() {
        return text.to_string();
    }
    let mut masked = text.replace(secret, "***");
    if let Ok(json) = serde_json::to_string(secret) {
        let escaped = &json[1..json.len() - 1];
        if escaped != secret {
            masked = masked.replace(escaped, "***");
        }
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::test_user;
    use crate::model::ActionKind;
    use crate::projection::Fields;

    fn item(fields: &[(&str, &str)], active: bool) -> PushItem {
        test_user("erp", ActionKind::Create, active, fields)
    }

    #[test]
    fn the_body_has_the_seed_s_shape() {
        let login = Login {
            company: "DEMO.Gestimum".into(),
            user: "DEMO".into(),
            password: Secret::new("pw"),
        };
        let body = import_body(&login, &["USR_NAME;USR_DORT".into(), "BSP;0".into()]);
        assert_eq!(
            body,
            json!({"importer_utilisateurs": {
                "societe": {"fichier": "DEMO.Gestimum", "utilisateur": "DEMO", "mot_passe": "pw",
                            "deconnecter": "Non", "exclusif": "Non"},
                "parametres": {"journal": "Oui", "statistiques": "Oui", "entete": "Oui",
                               "separateur_champs": ";", "identificateur_texte": "\"",
                               "fichier_utilisateurs": ["USR_NAME;USR_DORT", "BSP;0"]}
            }})
        );
    }

    #[test]
    fn lines_have_the_key_first_every_field_and_the_dormant_flag_last() {
        let ana = item(
            &[
                ("USR_NAME", "ANA"),
                ("USR_GROUPE", "ADMIN"),
                ("SAL_CODE", "ANA"),
            ],
            true,
        );
        let mut ben = item(&[("USR_NAME", "BEN")], false);
        // Ben had a group: it is sent empty, to clear it.
        ben.acked_fields = Some(
            [("USR_NAME", "BEN"), ("USR_GROUPE", "VENTE")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        assert_eq!(
            csv_lines(&[&ana, &ben], "USR_DORT"),
            [
                "USR_NAME;SAL_CODE;USR_GROUPE;USR_DORT",
                "ANA;ANA;ADMIN;0",
                "BEN;;;1"
            ]
        );
        assert_eq!(
            csv_lines(&[&ben], "DORMANT"),
            ["USR_NAME;USR_GROUPE;DORMANT", "BEN;;1"]
        );
    }

    #[test]
    fn a_changed_usr_name_is_noticed() {
        let fields = |name: &str| -> Fields {
            [("USR_NAME".to_string(), name.to_string())]
                .into_iter()
                .collect()
        };
        let mut ana = item(&[("USR_NAME", "ANA2")], true);
        assert_eq!(renamed(&ana), None);
        ana.acked_fields = Some(fields("ANA2"));
        assert_eq!(renamed(&ana), None);
        ana.acked_fields = Some(fields("ANA"));
        assert_eq!(renamed(&ana), Some("ANA"));
    }

    #[test]
    fn separators_and_quotes_are_quoted() {
        assert_eq!(
            csv_line(["a;b", "plain", "say \"hi\"", ""]),
            "\"a;b\";plain;\"say \"\"hi\"\"\";"
        );
    }

    #[test]
    fn records_gestimum_cannot_take_are_refused_with_the_field_named() {
        assert_eq!(
            check_item(&item(&[("USR_NAME", "ANA")], true), "USR_DORT"),
            Ok(())
        );
        // 20 characters is the limit, counted in characters, not bytes.
        let twenty = "É".repeat(20);
        assert_eq!(
            check_item(&item(&[("USR_NAME", &twenty)], true), "USR_DORT"),
            Ok(())
        );
        let cases = [
            (item(&[("USR_GROUPE", "ADMIN")], true), "no USR_NAME"),
            (item(&[("USR_NAME", "")], true), "no USR_NAME"),
            (
                item(
                    &[("USR_NAME", "A"), ("USR_GROUPE", "DIRECTION-FINANCIERES")],
                    true,
                ),
                "USR_GROUPE \"DIRECTION-FINANCIERES\" is 21 characters; Gestimum holds 20 at most",
            ),
            (
                item(&[("USR_NAME", "A"), ("SAL_CODE", "ABCD")], true),
                "SAL_CODE \"ABCD\" is 4 characters; Gestimum holds 3 at most",
            ),
            (
                item(&[("USR_NAME", "A"), ("USR_NOTE", "two\nlines")], true),
                "USR_NOTE holds a line break",
            ),
            (
                item(&[("USR_NAME", "A"), ("USR_DORT", "0")], true),
                "USR_DORT carries block/unblock",
            ),
        ];
        for (item, expected) in cases {
            let reason = check_item(&item, "USR_DORT").unwrap_err();
            assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
        }
    }

    const SEED_REPLY: &str = r#"{
        "result": [{
            "resultat": "succès",
            "message": "terminé",
            "journal": [
                "10/09/2019 11:25:32 Ouverture de la société C:\\ProgramData\\Gestimum\\DEMO.Gestimum",
                "10/09/2019 11:25:38 Société C:\\ProgramData\\Gestimum\\DEMO.Gestimum ouverte",
                "10/09/2019 11:25:38 Lancement de la tâche ImporterUtilisateurs",
                "10/09/2019 11:25:38 L'import a été effectué avec succès.",
                "10/09/2019 11:25:38 Nombre de lignes importées : 3",
                "10/09/2019 11:25:38 Nombre de lignes non importées : 0",
                "10/09/2019 11:25:38 Tâche ImporterUtilisateurs terminée",
                "10/09/2019 11:25:38 Fermeture de la société C:\\ProgramData\\Gestimum\\DEMO.Gestimum"
            ],
            "statistiques": {"nombre_lignes_importées": "3", "nombre_lignes_non_importées": "0"}
        }]
    }"#;

    #[test]
    fn the_seed_s_reply_is_read_and_its_journal_is_routine() {
        let reply = parse_reply(SEED_REPLY).unwrap();
        assert!(reply.success);
        assert_eq!(reply.message, "terminé");
        assert_eq!(reply.journal.len(), 8);
        assert_eq!((reply.imported, reply.not_imported), (Some(3), Some(0)));
        assert_eq!(journal_details(&reply.journal), Vec::<String>::new());
        assert_eq!(check_counts(3, &reply), CountCheck::Consistent);
        assert!(matches!(check_counts(4, &reply), CountCheck::Short(_)));
    }

    #[test]
    fn short_counts_and_refusals_are_told_apart() {
        let reply = parse_reply(
            r#"{"result":[{"resultat":"succès","journal":[
                "10/09/2019 11:25:38 Ligne 2 : USR_GROUPE trop long",
                "10/09/2019 11:25:38 Nombre de lignes importées : 1"],
                "statistiques":{"nombre_lignes_importées":1,"nombre_lignes_non_importées":"1"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            check_counts(2, &reply),
            CountCheck::Short("2 lines sent, 1 imported, 1 not imported".into())
        );
        assert_eq!(
            journal_details(&reply.journal),
            ["Ligne 2 : USR_GROUPE trop long"]
        );

        let refused =
            parse_reply(r#"{"result":[{"resultat":"échec","message":"Mot de passe incorrect"}]}"#)
                .unwrap();
        assert!(!refused.success);
        assert_eq!(refused.refusal(), "Mot de passe incorrect");
        assert!(matches!(check_counts(1, &refused), CountCheck::Short(_)));

        assert!(parse_reply("{\"result\":[{\"resultat\":").is_err());
        assert!(parse_reply("{}").is_err());
        assert!(
            parse_reply(r#"{"result":[{"statistiques":{"nombre_lignes_importées":"trois"}}]}"#)
                .is_err()
        );
    }

    #[test]
    fn the_password_is_masked_raw_and_json_escaped() {
        let password = Secret::new("p\"w;1");
        assert_eq!(
            mask(r#"bad body {"mot_passe":"p\"w;1"} or p"w;1"#, &password),
            r#"bad body {"mot_passe":"***"} or ***"#
        );
        assert_eq!(mask("nothing", &Secret::new("")), "nothing");
    }
}
