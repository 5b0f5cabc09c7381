//! The pure half of sending: which calls a record needs, and the import CSV
//! and the JSON bodies.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::connectors::{PushItem, RecordError};
use crate::model::ActionKind;

use super::{API_VERSION, CsvEncoding};

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
) -> Result<(), RecordError> {
    if item.fields.get(login_column).is_none_or(|l| l.is_empty()) {
        return Err(RecordError(format!(
            "the record has no {login_column} (login), which Pleasanter requires"
        )));
    }
    for (column, value) in &item.fields {
        if encoding.encode(value).is_none() {
            let culprit = value
                .chars()
                .find(|c| encoding.encode(c.encode_utf8(&mut [0; 4])).is_none())
                .map(|c| format!(" ({c:?}, U+{:04X})", c as u32))
                .unwrap_or_default();
            return Err(RecordError(format!(
                "{column} holds a character {} cannot encode{culprit}: fix it in the HR file or set encoding = \"utf-8\"",
                encoding.name()
            )));
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
) -> Result<Vec<u8>, RecordError> {
    let header = columns(records, login_column);
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let failed = |error: csv::Error| RecordError(format!("cannot write the import CSV: {error}"));
    writer.write_record(&header).map_err(failed)?;
    for record in records {
        let row = header
            .iter()
            .map(|column| record.fields.get(column).map_or("", String::as_str));
        writer.write_record(row).map_err(failed)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| RecordError(format!("cannot write the import CSV: {}", error.error())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| RecordError("the import CSV is not UTF-8".to_string()))?;
    encoding.encode(&text).ok_or_else(|| {
        let column = header.iter().find(|c| encoding.encode(c).is_none());
        RecordError(match column {
            Some(column) => format!(
                "the column name {column:?} cannot be written in {}: rename it in [target.fields]",
                encoding.name()
            ),
            None => format!("the import CSV cannot be written in {}", encoding.name()),
        })
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
