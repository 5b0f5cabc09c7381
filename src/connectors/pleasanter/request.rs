//! The pure half of sending: what a record must satisfy, the import CSV and
//! the JSON bodies.

use serde_json::{Value, json};

use crate::connectors::{PushItem, RecordError};
use crate::csv_safe::Formulas;

use super::labels::{Column, Layout};
use super::{API_VERSION, CsvEncoding};

/// A record can go in the import: it has a login, every value as written
/// (`formulas`) fits Pleasanter's column (a longer one would fail on the
/// server with nothing said of it), and every value can be written in the
/// encoding.
pub fn check_record(
    item: &PushItem,
    layout: &Layout,
    encoding: CsvEncoding,
    formulas: Formulas,
) -> Result<(), RecordError> {
    let login = layout.login();
    if item.fields.get(login).is_none_or(|l| l.is_empty()) {
        return Err(RecordError(format!(
            "the record has no {login} (login), which Pleasanter requires"
        )));
    }
    for (column, value) in &item.fields {
        let limit = Column::of_label(column).and_then(|(c, _)| c.limit());
        let length = formulas.text(value).encode_utf16().count();
        if let Some(limit) = limit
            && length > limit
        {
            return Err(RecordError(format!(
                "{column} is {length} characters long; Pleasanter takes {limit} at most: shorten it in the HR file"
            )));
        }
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

/// The old and the new login of a record whose login changed since
/// Pleasanter last confirmed it: the import cannot rename (a new login is a
/// new user), so the user must be renamed first.
pub fn renamed<'a>(item: &'a PushItem, login_column: &str) -> Option<(&'a str, &'a str)> {
    let old = item.acked_fields.as_ref()?.get(login_column)?;
    let new = item.fields.get(login_column)?;
    (!old.is_empty() && old != new).then_some((old.as_str(), new.as_str()))
}

/// The CSV file of an import, encoded: the layout's header, then one row per
/// record (an empty cell where the record has no value, which clears it;
/// `Disabled` 1 or 0 from the state it must be in); every value quoted and
/// as `formulas` writes it, CRLF line ends. No records: the header alone, as
/// `check` probes with.
pub fn build_csv(
    records: &[&PushItem],
    layout: &Layout,
    encoding: CsvEncoding,
    formulas: Formulas,
) -> Result<Vec<u8>, RecordError> {
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let failed = |error: csv::Error| RecordError(format!("cannot write the import CSV: {error}"));
    writer.write_record(&layout.header).map_err(failed)?;
    for record in records {
        let row = layout.header.iter().map(|column| {
            if column == layout.disabled() {
                if record.active { "0" } else { "1" }.into()
            } else {
                formulas.text(record.fields.get(column).map_or("", String::as_str))
            }
        });
        writer
            .write_record(row.map(|cell| cell.into_owned()))
            .map_err(failed)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| RecordError(format!("cannot write the import CSV: {}", error.error())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| RecordError("the import CSV is not UTF-8".to_string()))?;
    encoding.encode(&text).ok_or_else(|| {
        let column = layout.header.iter().find(|c| encoding.encode(c).is_none());
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

/// The body of `/api/users/get` for the users whose `column` (its API
/// name: `LoginId`, `UserCode`) is exactly `value` (a view filter alone
/// matches any value that contains it).
pub fn get_users_body(key: &str, column: &str, value: &str, offset: u64) -> Value {
    json!({
        "ApiVersion": API_VERSION,
        "ApiKey": key,
        "Offset": offset,
        "View": {
            "ColumnFilterHash": {column: value},
            "ColumnFilterSearchTypes": {column: "ExactMatch"},
        },
    })
}

/// The body of `/api/users/{id}/update` that renames a user's login.
/// The body of `/api/users/{id}/delete`: the key alone.
pub fn delete_body(key: &str) -> Value {
    json!({"ApiVersion": API_VERSION, "ApiKey": key})
}

pub fn rename_body(key: &str, login: &str) -> Value {
    json!({"ApiVersion": API_VERSION, "ApiKey": key, "LoginId": login})
}
