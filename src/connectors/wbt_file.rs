//! `wbt-file`: WBT Manager imports files, not API calls. Each push writes one
//! WBT-format users or organisations CSV into the folder WBT Manager imports
//! from (`ingest::wbt`): `;`-separated, a header row, every column of the format in
//! order (`ingest::wbt`, which the `wbt` source preset reads with too),
//! `0`/`1` disable flags, `YYYY/MM/DD` dates, `||` lists; UTF-8 with a BOM by
//! default; values a spreadsheet would evaluate written as text
//! ([`crate::csv_safe`]). Written atomically (`*.tmp`, fsync, rename, fsync of the
//! folder): a record is acknowledged once its file is in place.

use std::convert::Infallible;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::TargetConfig;
use crate::csv_safe::{Cell, Formulas};
use crate::ingest::columns::ValueType;
use crate::ingest::record::{Field, RecordKind};
use crate::ingest::wbt::{self, Holds};
use crate::projection::{DefaultFields, is_projectable};
use crate::retry::Failure;

use super::{
    CheckError, Connector, Outcome, Place, PushItem, PushReply, Settings, SettingsError, Verdict,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileEncoding {
    Utf8Bom,
    Utf8,
    Windows1252,
}

pub struct WbtFile {
    dir: PathBuf,
    encoding: FileEncoding,
    formulas: Formulas,
    batch_size: usize,
    /// Keeps file names unique within a second.
    sequence: AtomicU64,
}

impl Connector for WbtFile {
    const KIND: &'static str = "wbt-file";
    const SETTINGS: Settings = Settings {
        place: Place::Dir,
        token: false,
        password: false,
        encodings: &["utf-8", "utf-8-bom", "windows-1252"],
        own_keys: &["neutralise_formulas"],
    };

    /// Every column of the format that a projection may hold, under its
    /// own header (`custom.udtf1`..`custom.udtf10` for the free fields).
    fn default_fields() -> DefaultFields {
        let mapping = |kind| {
            wbt::columns(kind)
                .iter()
                .map(|column| (column.header, column.field()))
                .filter(|(_, field)| is_projectable(field))
                .collect()
        };
        DefaultFields {
            users: mapping(RecordKind::Users),
            orgs: mapping(RecordKind::Orgs),
        }
    }

    fn from_config(target: &TargetConfig) -> Result<WbtFile, SettingsError> {
        let dir = target
            .dir
            .as_ref()
            .map(|d| d.get_ref().clone())
            .ok_or(SettingsError::Missing("a wbt-file target needs dir"))?;
        let encoding = match target.encoding.as_ref().map(|e| e.get_ref().to_lowercase()) {
            None => FileEncoding::Utf8Bom,
            Some(e) if e == "utf-8-bom" => FileEncoding::Utf8Bom,
            Some(e) if e == "utf-8" => FileEncoding::Utf8,
            Some(e) if e == "windows-1252" => FileEncoding::Windows1252,
            Some(other) => {
                return Err(SettingsError::Invalid(format!(
                    "encoding {other:?} is not utf-8-bom, utf-8 or windows-1252"
                )));
            }
        };
        Ok(WbtFile {
            dir,
            encoding,
            formulas: target.formulas(),
            batch_size: *target.batch_size.get_ref(),
            sequence: AtomicU64::new(0),
        })
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    async fn push(&self, items: &[PushItem]) -> PushReply {
        PushReply {
            outcomes: self.write(items).await,
            halt: None,
        }
    }

    async fn check(&self) -> Result<(), CheckError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)
                .and_then(|()| {
                    let probe = dir.join(".rostersync-check.tmp");
                    std::fs::write(&probe, b"")?;
                    std::fs::remove_file(probe)
                })
                .map_err(|error| {
                    CheckError::Failed(format!("cannot write in {}: {error}", dir.display()))
                })
        })
        .await
        .map_err(|error| CheckError::Failed(error.to_string()))?
    }

    /// Writes a file: no reply to judge.
    type Reply = Infallible;

    fn verdict(&self, _: &[&PushItem], reply: &Infallible) -> Verdict {
        match *reply {}
    }
}

impl WbtFile {
    /// Writes one file of `items` (all of one kind); one outcome per item.
    async fn write(&self, items: &[PushItem]) -> Vec<Outcome> {
        let Some(first) = items.first() else {
            return Vec::new();
        };

        let kind = first.key.kind;
        let (text, unencodable) = match build_file(kind, items, self.encoding, self.formulas) {
            Ok(built) => built,
            Err(failure) => return vec![Outcome::Failed(failure); items.len()],
        };
        let name = self.file_name(kind);
        let dir = self.dir.clone();
        let written = tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &text))
            .await
            .unwrap_or_else(|error| Err(std::io::Error::other(error.to_string())));
        match written {
            Ok(()) => (0..items.len())
                .map(|i| match unencodable.get(&i) {
                    Some(reason) => Outcome::Failed(Failure::Permanent {
                        reason: reason.clone(),
                    }),
                    None => Outcome::Acked { target_id: None },
                })
                .collect(),
            // A full disk or a share gone away: worth another try.
            Err(error) => vec![
                Outcome::Failed(Failure::Transient {
                    reason: format!("cannot write in {}: {error}", self.dir.display()),
                    retry_after: None,
                });
                items.len()
            ],
        }
    }

    /// `users_20261121T145222123_0000.csv`: names sort in writing order, for
    /// importers that take files by name.
    fn file_name(&self, kind: RecordKind) -> String {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3f");
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let what = match kind {
            RecordKind::Users => "users",
            RecordKind::Orgs => "orgs",
        };
        format!("{what}_{stamp}_{sequence:04}.csv")
    }
}

/// The bytes of one import file for `items` (all of one kind), and the items
/// that could not be encoded (index → reason), written without their row.
pub fn build_file(
    kind: RecordKind,
    items: &[PushItem],
    encoding: FileEncoding,
    formulas: Formulas,
) -> Result<(Vec<u8>, std::collections::HashMap<usize, String>), Failure> {
    let columns = wbt::columns(kind);
    let mut unencodable = std::collections::HashMap::new();
    let mut out: Vec<u8> = Vec::new();
    if encoding == FileEncoding::Utf8Bom {
        out.extend_from_slice(b"\xEF\xBB\xBF");
    }
    let header: Vec<&str> = columns.iter().map(|column| column.header).collect();
    let mut lines = vec![header.join(";")];
    for (index, item) in items.iter().enumerate() {
        let row: Vec<String> = columns
            .iter()
            .map(|column| {
                let value = if column.holds == Holds::Known(Field::Disabled) {
                    if item.active { "0" } else { "1" }.to_string()
                } else {
                    let raw = item
                        .fields
                        .get(column.header)
                        .map(String::as_str)
                        .unwrap_or("");
                    if column.value_type == ValueType::Date {
                        raw.replace('-', "/")
                    } else {
                        raw.to_string()
                    }
                };
                quote(formulas.cell(&value))
            })
            .collect();
        let line = row.join(";");
        if encoding == FileEncoding::Windows1252 {
            let (_, _, lossy) = encoding_rs::WINDOWS_1252.encode(&line);
            if lossy {
                unencodable.insert(
                    index,
                    "a value has characters windows-1252 cannot hold; set the target's encoding to utf-8-bom".to_string(),
                );
                continue;
            }
        }
        lines.push(line);
    }
    let mut text = lines.join("\r\n");
    text.push_str("\r\n");
    match encoding {
        FileEncoding::Windows1252 => {
            let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&text);
            out.extend_from_slice(&bytes);
        }
        FileEncoding::Utf8 | FileEncoding::Utf8Bom => out.extend_from_slice(text.as_bytes()),
    }
    Ok((out, unencodable))
}

/// Quotes a neutralised cell, and one that holds the delimiter, a quote or
/// a line break.
fn quote(cell: Cell<'_>) -> String {
    if cell.quote || cell.text.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", cell.text.replace('"', "\"\""))
    } else {
        cell.text.into_owned()
    }
}

/// `*.tmp` (never picked up by an importer), fsync, rename, fsync the folder.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    crate::file_modes::shared_dir(dir)?;
    let temporary = dir.join(format!("{name}.tmp"));
    let result = (|| {
        // Read by WBT Manager's importer: the group's, as the inbox files.
        let mut file = crate::file_modes::create_file(&temporary, crate::file_modes::Access::Shared)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        // Never over an existing file (another process, the same millisecond):
        // that would lose its records.
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &temporary,
            rustix::fs::CWD,
            dir.join(name),
            rustix::fs::RenameFlags::NOREPLACE,
        )?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::test_user;
    use crate::ingest::{SourceSpec, ingest};

    use crate::model::ActionKind;

    fn item(fields: &[(&str, &str)], active: bool) -> PushItem {
        test_user("wbt", ActionKind::Create, active, fields)
    }

    #[test]
    fn a_users_file_follows_the_format_and_reads_back_with_the_wbt_preset() {
        let items = [
            item(
                &[
                    ("user_extid", "E1"),
                    ("user_fname", "Hélène"),
                    ("user_login", "hlefevre"),
                    ("user_lname", "Lefèvre; née Roux"),
                    ("birth_date", "1971-04-02"),
                    ("user_roles", "a||b"),
                ],
                true,
            ),
            item(
                &[
                    ("user_extid", "E2"),
                    ("user_fname", "Paul"),
                    ("user_login", "pdurand"),
                ],
                false,
            ),
        ];
        let (bytes, unencodable) =
            build_file(RecordKind::Users, &items, FileEncoding::Utf8Bom, Formulas::Neutralise).unwrap();
        assert!(unencodable.is_empty());
        assert!(bytes.starts_with(b"\xEF\xBB\xBFuser_lname;user_fname;user_tname;user_login;"));
        let outcome = ingest(&bytes, &SourceSpec::wbt(RecordKind::Users));
        assert!(outcome.accepted(), "{:?}", outcome.problems);
        use crate::ingest::record::Field;
        let [first, second] = &outcome.records[..] else {
            panic!()
        };
        assert_eq!(first.get(Field::LastName), Some("Lefèvre; née Roux"));
        assert_eq!(first.get(Field::BirthDate), Some("1971-04-02"));
        assert_eq!(first.list(Field::Roles).collect::<Vec<_>>(), ["a", "b"]);
        assert!(!first.disabled());
        assert!(second.disabled());
    }

    /// The users file of one hostile record, as text.
    fn hostile_file(formulas: Formulas) -> String {
        let items = [item(
            &[
                ("user_extid", "E1"),
                ("user_lname", "=cmd|' /C calc'!A0"),
                ("user_fname", "@SUM(1+1)"),
                ("user_login", "-2+3+cmd|' /C calc'!A0"),
                ("user_phone", "+33 1 23 45 67 89"),
            ],
            true,
        )];
        let (bytes, _) =
            build_file(RecordKind::Users, &items, FileEncoding::Utf8, formulas).unwrap();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn formula_like_values_are_written_as_quoted_text_and_phones_as_they_are() {
        let text = hostile_file(Formulas::Neutralise);
        let row = text.lines().nth(1).unwrap();
        assert!(
            row.starts_with(r#""'=cmd|' /C calc'!A0";"'@SUM(1+1)";;"'-2+3+cmd|' /C calc'!A0";"#),
            "{row}"
        );
        assert!(row.contains(";+33 1 23 45 67 89;"), "{row}");
        let off = hostile_file(Formulas::Keep);
        let row = off.lines().nth(1).unwrap();
        assert!(
            row.starts_with("=cmd|' /C calc'!A0;@SUM(1+1);;-2+3+cmd|' /C calc'!A0;"),
            "{row}"
        );
    }

    #[test]
    fn windows_1252_refuses_only_the_records_it_cannot_hold() {
        let items = [
            item(&[("user_extid", "E1"), ("user_fname", "Zoé")], true),
            item(&[("user_extid", "E2"), ("user_fname", "太郎")], true),
        ];
        let (bytes, unencodable) =
            build_file(RecordKind::Users, &items, FileEncoding::Windows1252, Formulas::Neutralise).unwrap();
        assert_eq!(unencodable.keys().copied().collect::<Vec<_>>(), [1]);
        assert!(bytes.windows(3).any(|w| w == b"Zo\xE9"));
    }

    #[test]
    fn an_existing_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "users_1.csv", b"first").unwrap();
        assert!(write_atomically(dir.path(), "users_1.csv", b"second").is_err());
        assert_eq!(
            std::fs::read(dir.path().join("users_1.csv")).unwrap(),
            b"first"
        );
        assert!(!dir.path().join("users_1.csv.tmp").exists());
    }

    #[test]
    fn files_appear_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "users_1.csv", b"data").unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["users_1.csv"]);
    }
}
