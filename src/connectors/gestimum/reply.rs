//! The pure half of receiving: what an import answered, its counts and its
//! journal.

use serde_json::Value;

use crate::connectors::ReplyError;
use crate::retry::Failure;

use super::SUCCESS;

/// What one import request came to, as [`super::Gestimum`]'s verdict reads it.
pub enum Attempt {
    /// Gestimum ran the import (its counts still to be checked).
    Done(ImportReply),
    /// Gestimum refused the import as a whole (credentials, company file).
    Refused(String),
    /// No import: the failure, and the HTTP status when a reply came.
    Failed(Failure, Option<u16>),
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
    pub fn refusal(&self) -> String {
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

/// Reads an import's reply (Gestimum's web services: `result[0]` with `resultat`,
/// `message`, `journal`, `statistiques`; counts as strings or numbers).
pub fn parse_reply(body: &str) -> Result<ImportReply, ReplyError> {
    let value: Value = serde_json::from_str(body)
        .map_err(|error| ReplyError::unreadable("reply from Gestimum", &error))?;
    let result = value
        .get("result")
        .and_then(|r| r.get(0))
        .ok_or_else(|| ReplyError::shape("Gestimum's reply has no result[0]"))?;
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
    let count = |name: &str| -> Result<Option<u64>, ReplyError> {
        match result.get("statistiques").and_then(|s| s.get(name)) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .map(Some)
                .ok_or_else(|| {
                    ReplyError::shape(format!("Gestimum's reply has an unreadable {name}"))
                }),
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

/// The lines every import writes.
pub fn is_routine(line: &str) -> bool {
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
pub(super) fn strip_timestamp(line: &str) -> &str {
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
