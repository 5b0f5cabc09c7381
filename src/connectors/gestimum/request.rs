//! The pure half of sending: the import body and its CSV lines, and the
//! records Gestimum could not take, refused before any request.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::connectors::{PushItem, RecordError};
use crate::csv_safe::{Cell, Formulas};

use super::{KEY_COLUMN, Login, QUOTE, SEPARATOR, SIZES};

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
/// over a known size as written (`formulas`) or holds a line break. The
/// reason names the field.
pub fn check_item(
    item: &PushItem,
    dormant_column: &str,
    formulas: Formulas,
) -> Result<(), RecordError> {
    match item.fields.get(KEY_COLUMN) {
        Some(name) if !name.is_empty() => {}
        _ => {
            return Err(RecordError(format!(
                "no {KEY_COLUMN} (Gestimum's key, the login by default): give the user a login"
            )));
        }
    }
    for (name, value) in &item.fields {
        if value.contains(['\r', '\n']) {
            return Err(RecordError(format!(
                "{name} holds a line break, which a Gestimum import line cannot carry: remove it in the HR file"
            )));
        }
        if let Some(&(_, max)) = SIZES.iter().find(|(column, _)| column == name) {
            let cell = formulas.cell(value);
            let length = cell.text.chars().count();
            // The quote that keeps a spreadsheet from running it counts too.
            let quoted = if cell.quote {
                ", with the quote that keeps a spreadsheet from running it"
            } else {
                ""
            };
            if length > max {
                return Err(RecordError(format!(
                    "{name} {value:?} is {length} characters{quoted}; Gestimum holds {max} at most: shorten it in the HR file"
                )));
            }
        }
    }
    if item.fields.contains_key(dormant_column) {
        return Err(RecordError(format!(
            "{dormant_column} carries block/unblock: it cannot also be a field"
        )));
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
/// field the record lacks is sent empty; the dormant flag from `active`;
/// values as `formulas` writes them).
pub fn csv_lines(items: &[&PushItem], dormant_column: &str, formulas: Formulas) -> Vec<String> {
    let columns = columns(items, dormant_column);
    let mut lines = Vec::with_capacity(items.len() + 1);
    lines.push(csv_line(columns.iter().map(|c| Cell::plain(c))));
    for item in items {
        let dormant = if item.active { "0" } else { "1" };
        lines.push(csv_line(columns.iter().map(|column| {
            if column == dormant_column {
                Cell::plain(dormant)
            } else {
                formulas.cell(item.fields.get(column).map(String::as_str).unwrap_or(""))
            }
        })));
    }
    lines
}

/// One `;`-separated line; a neutralised cell, or one holding `;` or `"`, is
/// quoted, inner quotes doubled. Values must hold no line break (see
/// [`check_item`]).
pub fn csv_line<'a>(cells: impl IntoIterator<Item = Cell<'a>>) -> String {
    let mut line = String::new();
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            line.push(SEPARATOR);
        }
        if cell.quote || cell.text.contains([SEPARATOR, QUOTE]) {
            line.push(QUOTE);
            line.push_str(&cell.text.replace(QUOTE, "\"\""));
            line.push(QUOTE);
        } else {
            line.push_str(&cell.text);
        }
    }
    line
}
