//! Ingest: bytes of an HR export in, canonical records and problems out.
//! Pure and synchronous: no IO but the bytes given.

mod checks;
pub mod columns;
pub mod decode;
pub mod dialect;
pub mod problem;
pub mod record;
pub mod values;

use std::collections::HashMap;
use std::sync::Arc;

use columns::{ColumnSpec, Format, column_specs};
use decode::{EncodingChoice, decode};
use dialect::{DelimiterOrigin, Dialect};
use problem::{Problem, Scope, quote};
use record::{Field, FieldName, Record, RecordKind, Schema};
use values::DateFormat;

/// More problems than this are counted, not listed: a garbage file must not
/// produce a report larger than itself.
pub const MAX_PROBLEMS: usize = 10_000;

/// `full`: the file is the whole population; `delta`: only the rows it holds change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Full,
    Delta,
}

/// How a source's files are read: everything ingest needs from the config.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub kind: RecordKind,
    pub mode: Mode,
    pub key: Field,
    pub format: Format,
    pub encoding: EncodingChoice,
    /// `None` = detect.
    pub delimiter: Option<u8>,
    pub dates: DateFormat,
    pub max_invalid_rows: usize,
}

impl SourceSpec {
    /// A full WBT export with every setting on `auto`: what `validate` uses without `--source`.
    pub fn wbt(kind: RecordKind) -> SourceSpec {
        let format = Format::Wbt;
        let dates = DateFormat::new(format.default_date_format())
            .unwrap_or_else(|| unreachable_date_format());
        SourceSpec {
            kind,
            mode: Mode::Full,
            key: Field::ExtId,
            format,
            encoding: EncodingChoice::Auto,
            delimiter: None,
            dates,
            max_invalid_rows: 0,
        }
    }
}

#[cold]
fn unreachable_date_format() -> DateFormat {
    // The preset formats are constants known to parse; keep going with ISO if one ever does not.
    DateFormat::new("%Y-%m-%d").unwrap_or_else(|| panic!("ISO date format rejected"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Refused { reason: String },
}

/// What ingest made of a file.
#[derive(Debug)]
pub struct Ingested {
    pub verdict: Verdict,
    /// The valid records; none when the file is refused.
    pub records: Vec<Record>,
    /// Errors and warnings, by line (at most [`MAX_PROBLEMS`]).
    pub problems: Vec<Problem>,
    /// Problems found beyond [`MAX_PROBLEMS`].
    pub problems_not_listed: usize,
    /// Data rows read (blank lines aside).
    pub rows: usize,
    pub invalid_rows: usize,
    pub encoding: &'static str,
    pub delimiter: Option<u8>,
}

impl Ingested {
    pub fn accepted(&self) -> bool {
        self.verdict == Verdict::Accepted
    }
}

/// How the file's header maps onto the source's columns.
pub(crate) struct Layout {
    specs: Vec<ColumnSpec>,
    /// Per file column: the spec it matched, if any.
    slots: Vec<Option<usize>>,
    schema: Arc<Schema>,
}

impl Layout {
    /// The 1-based file column and header of a field, when the file has it.
    pub(crate) fn column_of(&self, field: Field) -> Option<(u64, &str)> {
        self.slots.iter().enumerate().find_map(|(column, slot)| {
            let spec = &self.specs[(*slot)?];
            (spec.field == FieldName::Known(field))
                .then(|| (column as u64 + 1, spec.header.as_ref()))
        })
    }
}

/// Collects problems up to [`MAX_PROBLEMS`], counting the rest.
#[derive(Default)]
struct Problems {
    listed: Vec<Problem>,
    not_listed: usize,
    file_refused: bool,
}

impl Problems {
    fn push(&mut self, problem: Problem) {
        if problem.is_error() && problem.scope == Scope::File {
            self.file_refused = true;
        }
        if self.listed.len() < MAX_PROBLEMS {
            self.listed.push(problem);
        } else {
            self.not_listed += 1;
        }
    }
}

/// Reads a whole file. Never panics, whatever the bytes.
pub fn ingest(bytes: &[u8], spec: &SourceSpec) -> Ingested {
    let mut outcome = Ingested {
        verdict: Verdict::Accepted,
        records: Vec::new(),
        problems: Vec::new(),
        problems_not_listed: 0,
        rows: 0,
        invalid_rows: 0,
        encoding: "",
        delimiter: None,
    };
    let mut problems = Problems::default();
    if let Some(what) = binary_format(bytes) {
        problems.push(Problem::file(
            1,
            1,
            format!("this is {what}, not a CSV export: save it as CSV (semicolon-separated) and drop that"),
        ));
        return refuse(outcome, problems);
    }
    let decoded = match decode(bytes, spec.encoding) {
        Ok(decoded) => decoded,
        Err(found) => {
            problems.listed = found;
            problems.file_refused = true;
            return refuse(outcome, problems);
        }
    };
    outcome.encoding = decoded.encoding.name();
    let text: &str = &decoded.text;
    if let Some(at) = text.find('\0') {
        let line = text[..at].bytes().filter(|&b| b == b'\n').count() as u64 + 1;
        problems.push(Problem::file(
            line,
            1,
            "the file holds NUL bytes: it is not a CSV text export",
        ));
        return refuse(outcome, problems);
    }
    if text.trim().is_empty() {
        problems.push(Problem::file(1, 1, "the file is empty"));
        return refuse(outcome, problems);
    }
    let dialect = dialect::detect(text, spec.delimiter);
    outcome.delimiter = Some(dialect.delimiter);
    read_rows(&text[dialect.body_start..], &dialect, spec, &mut outcome, &mut problems);

    if problems.file_refused {
        return refuse(outcome, problems);
    }
    if outcome.invalid_rows > spec.max_invalid_rows {
        let reason = format!(
            "{} invalid row(s), max_invalid_rows allows {}",
            outcome.invalid_rows, spec.max_invalid_rows
        );
        return refuse_because(outcome, problems, reason);
    }
    finish(&mut outcome, problems);
    outcome
}

/// Refuses for the first file-level error, which says best what is wrong.
fn refuse(outcome: Ingested, problems: Problems) -> Ingested {
    let mut errors = problems
        .listed
        .iter()
        .filter(|p| p.is_error() && p.scope == Scope::File);
    let mut reason = errors
        .next()
        .map_or_else(|| "the file is not readable".to_string(), |p| p.message.clone());
    let more = errors.count() + problems.not_listed;
    if more > 0 {
        reason.push_str(&format!(" (and {more} more problem(s))"));
    }
    refuse_because(outcome, problems, reason)
}

fn refuse_because(mut outcome: Ingested, problems: Problems, reason: String) -> Ingested {
    outcome.verdict = Verdict::Refused { reason };
    outcome.records = Vec::new();
    finish(&mut outcome, problems);
    outcome
}

/// Files people drop by mistake instead of their CSV export.
fn binary_format(bytes: &[u8]) -> Option<&'static str> {
    const SIGNATURES: [(&[u8], &str); 4] = [
        (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook?)"),
        (b"\xD0\xCF\x11\xE0", "an Excel 97-2003 .xls workbook"),
        (b"%PDF-", "a PDF document"),
        (b"\x1F\x8B", "a gzip archive"),
    ];
    SIGNATURES
        .iter()
        .find(|(signature, _)| bytes.starts_with(signature))
        .map(|(_, what)| *what)
}

fn finish(outcome: &mut Ingested, mut problems: Problems) {
    problems
        .listed
        .sort_by_key(|p| (p.line, p.column, std::cmp::Reverse(p.severity)));
    outcome.problems = problems.listed;
    outcome.problems_not_listed = problems.not_listed;
}

fn read_rows(
    body: &str,
    dialect: &Dialect,
    spec: &SourceSpec,
    outcome: &mut Ingested,
    problems: &mut Problems,
) {
    let line_offset = dialect.body_line - 1;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(dialect.delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(body.as_bytes());
    let mut row = csv::StringRecord::new();

    // The header: the first row that is not blank.
    let header_line = loop {
        match reader.read_record(&mut row) {
            Ok(true) if is_blank(&row) => continue,
            Ok(true) => break row_line(&row, line_offset),
            Ok(false) => {
                problems.push(Problem::file(1, 1, "the file is empty"));
                return;
            }
            Err(error) => {
                problems.push(csv_problem(&error, line_offset));
                return;
            }
        }
    };
    let Some(layout) = map_header(&row, header_line, dialect, spec, problems) else {
        return;
    };

    let mut builder = RowBuilder::default();
    let mut refused: HashMap<String, u64> = HashMap::new();
    let mut records = Vec::new();
    let header_len = row.len();
    loop {
        match reader.read_record(&mut row) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => {
                problems.push(csv_problem(&error, line_offset));
                break;
            }
        }
        if is_blank(&row) {
            continue;
        }
        outcome.rows += 1;
        let line = row_line(&row, line_offset);
        if row.len() != header_len {
            problems.push(wrong_length(&row, line, header_len, reader.position().line() + line_offset));
            continue;
        }
        if problems.file_refused {
            continue; // the file is refused anyway; only its structure is still checked
        }
        match builder.build(&row, line, &layout, spec, problems) {
            Some(record) => records.push(record),
            None => {
                outcome.invalid_rows += 1;
                if let Some(key) = layout.key_in(&row) {
                    refused.entry(key.to_string()).or_insert(line);
                }
            }
        }
    }
    if outcome.rows == 0 {
        problems.push(Problem::file(
            header_line,
            1,
            "the file has a header but no rows",
        ));
        return;
    }
    if problems.file_refused {
        return;
    }
    let refused_refs: HashMap<&str, u64> =
        refused.iter().map(|(key, line)| (key.as_str(), *line)).collect();
    let (found, invalid) =
        checks::cross_row(&records, &refused_refs, spec.mode == Mode::Full, &layout);
    for problem in found {
        problems.push(problem);
    }
    outcome.invalid_rows += invalid.len();
    if !invalid.is_empty() {
        let mut invalid = invalid.into_iter().peekable();
        let mut index = 0;
        records.retain(|_| {
            let drop = invalid.next_if_eq(&index).is_some();
            index += 1;
            !drop
        });
    }
    outcome.records = records;
}

fn is_blank(row: &csv::StringRecord) -> bool {
    row.iter().all(|field| field.trim().is_empty())
}

fn row_line(row: &csv::StringRecord, line_offset: u64) -> u64 {
    row.position().map_or(0, |p| p.line()) + line_offset
}

fn csv_problem(error: &csv::Error, line_offset: u64) -> Problem {
    let line = error.position().map_or(1, |p| p.line() + line_offset);
    Problem::file(line, 1, format!("unreadable CSV: {error}"))
}

fn wrong_length(row: &csv::StringRecord, line: u64, expected: usize, next_line: u64) -> Problem {
    let found = row.len();
    let mut message = format!("the row has {found} fields, the header has {expected}");
    // A row that ran over several lines usually hides a quote that was never closed.
    if next_line > line + 1 && row.iter().any(|field| field.contains('\n')) {
        message.push_str(" (it runs over several lines: is a quote left open?)");
    }
    Problem::file(line, found.min(expected) as u64 + 1, message)
}

fn map_header(
    header: &csv::StringRecord,
    line: u64,
    dialect: &Dialect,
    spec: &SourceSpec,
    problems: &mut Problems,
) -> Option<Layout> {
    let specs = column_specs(&spec.format, spec.kind, spec.key);
    let mut slots: Vec<Option<usize>> = Vec::with_capacity(header.len());
    let mut seen_at: HashMap<usize, usize> = HashMap::new();
    for (index, raw) in header.iter().enumerate() {
        let column = index as u64 + 1;
        let name = raw.trim().trim_start_matches('\u{feff}');
        if name.is_empty() {
            slots.push(None);
            continue;
        }
        let lowered = name.to_lowercase();
        let matched = specs
            .iter()
            .position(|s| s.header.to_lowercase() == lowered);
        match matched {
            Some(spec_index) => {
                if let Some(first) = seen_at.insert(spec_index, index) {
                    problems.push(Problem::file(
                        line,
                        column,
                        format!(
                            "column {} appears twice (columns {} and {column})",
                            quote(name),
                            first + 1
                        ),
                    ));
                }
                slots.push(Some(spec_index));
            }
            None => {
                problems.push(Problem::warning(
                    line,
                    column,
                    format!("column {} is not a known column: ignored", quote(name)),
                ));
                slots.push(None);
            }
        }
    }
    let missing: Vec<&str> = specs
        .iter()
        .enumerate()
        .filter(|(i, s)| s.column_required && !seen_at.contains_key(i))
        .map(|(_, s)| s.header.as_ref())
        .collect();
    for name in &missing {
        let mut message = format!("required column {name} is missing");
        if header.len() == 1 {
            let how = match dialect.origin {
                DelimiterOrigin::SepLine => "from the sep= line",
                DelimiterOrigin::Configured => "configured",
                DelimiterOrigin::Detected => "detected",
                DelimiterOrigin::Fallback => "none of ; , tab | found",
            };
            message.push_str(&format!(
                " (the header has a single column; delimiter {:?}, {how})",
                dialect.delimiter as char
            ));
        }
        problems.push(Problem::file(line, 1, message));
    }
    if problems.file_refused {
        return None;
    }
    let fields: Vec<FieldName> = slots
        .iter()
        .flatten()
        .map(|&i| specs[i].field.clone())
        .collect();
    let schema = Arc::new(Schema::new(spec.kind, spec.key, fields));
    Some(Layout {
        specs,
        slots,
        schema,
    })
}

impl Layout {
    /// The raw key of a row, to explain later references to a refused row.
    fn key_in<'r>(&self, row: &'r csv::StringRecord) -> Option<&'r str> {
        let key = FieldName::Known(self.schema.key());
        let column = self
            .slots
            .iter()
            .position(|slot| slot.is_some_and(|i| self.specs[i].field == key))?;
        row.get(column).map(str::trim).filter(|k| !k.is_empty())
    }
}

/// Builds records, reusing its buffers from row to row.
#[derive(Default)]
struct RowBuilder {
    text: String,
    ends: Vec<u32>,
}

impl RowBuilder {
    /// The normalised record, or `None` with its problems pushed.
    fn build(
        &mut self,
        row: &csv::StringRecord,
        line: u64,
        layout: &Layout,
        spec: &SourceSpec,
        problems: &mut Problems,
    ) -> Option<Record> {
        self.text.clear();
        self.ends.clear();
        let mut valid = true;
        for (index, (raw, slot)) in row.iter().zip(&layout.slots).enumerate() {
            let Some(spec_index) = slot else { continue };
            let column = &layout.specs[*spec_index];
            match values::normalise(column, raw.trim(), &spec.dates) {
                Ok(value) => {
                    self.text.push_str(&value);
                    let end = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
                    self.ends.push(end);
                }
                Err(message) => {
                    problems.push(Problem::row(line, index as u64 + 1, message));
                    valid = false;
                }
            }
        }
        valid.then(|| Record::from_parts(line, layout.schema.clone(), &self.text, &self.ends))
    }
}

/// Users or organisations, from a file's first line: WBT organisation files
/// have `org_label`, user files never do. For `validate` without `--source`.
pub fn guess_kind(bytes: &[u8]) -> RecordKind {
    let head = &bytes[..bytes.len().min(64 * 1024)];
    let first_line = head.split(|&b| b == b'\n').find(|line| {
        !line.iter().all(u8::is_ascii_whitespace) && !line.to_ascii_lowercase().starts_with(b"sep=")
    });
    let lower = first_line.unwrap_or_default().to_ascii_lowercase();
    // UTF-16 text interleaves NULs; drop them so the name still matches.
    let compact: Vec<u8> = lower.into_iter().filter(|&b| b != 0).collect();
    if compact.windows(9).any(|w| w == b"org_label") {
        RecordKind::Orgs
    } else {
        RecordKind::Users
    }
}
