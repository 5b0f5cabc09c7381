//! Ingest: bytes of an HR export in, canonical records and problems out.
//! Pure and synchronous: no IO but the bytes given.

mod checks;
pub mod columns;
pub mod decode;
pub mod dialect;
mod header;
pub mod problem;
pub mod record;
mod rows;
pub mod values;
pub mod wbt;

use std::collections::HashMap;

use columns::Format;
use decode::{EncodingChoice, decode};
use dialect::Dialect;
use problem::{Problem, Scope};
use record::{Field, Record, RecordKind};
pub use rows::Parallelism;
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
        let dates = DateFormat::preset(format.default_date_format());
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

/// Collects problems up to [`MAX_PROBLEMS`], counting the rest.
#[derive(Default)]
pub(crate) struct Problems {
    listed: Vec<Problem>,
    not_listed: usize,
    file_refused: bool,
}

impl Problems {
    /// Takes in the problems of one chunk of rows.
    fn absorb(&mut self, other: Problems) {
        self.file_refused |= other.file_refused;
        self.not_listed += other.not_listed;
        for problem in other.listed {
            self.push(problem);
        }
    }

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

/// A file refused before its bytes were read (too big, say): one problem,
/// at its first line, says why.
pub fn refused(message: String) -> Ingested {
    let mut problems = Problems::default();
    problems.push(Problem::file(1, 1, message));
    refuse(empty_outcome(), problems)
}

fn empty_outcome() -> Ingested {
    Ingested {
        verdict: Verdict::Accepted,
        records: Vec::new(),
        problems: Vec::new(),
        problems_not_listed: 0,
        rows: 0,
        invalid_rows: 0,
        encoding: "",
        delimiter: None,
    }
}

/// Reads a whole file. Never panics, whatever the bytes.
pub fn ingest(bytes: &[u8], spec: &SourceSpec) -> Ingested {
    ingest_with(bytes, spec, Parallelism::default())
}

/// [`ingest`] with a chosen number of threads; the outcome never depends on it.
pub fn ingest_with(bytes: &[u8], spec: &SourceSpec, parallelism: Parallelism) -> Ingested {
    let mut outcome = empty_outcome();
    let mut problems = Problems::default();
    if let Some(what) = binary_format(bytes) {
        problems.push(Problem::file(
            1,
            1,
            format!("this is {what}, not a CSV export: save it as CSV (semicolon-separated) and drop that"),
        ));
        return refuse(outcome, problems);
    }
    // Read as UTF-8, UTF-16 text without a BOM would only show as NUL bytes.
    if let Some(label) = decode::utf16_without_bom(bytes, spec.encoding) {
        problems.push(Problem::file(
            1,
            1,
            format!("the file holds NUL bytes: it looks like UTF-16 text without a byte order mark; set this source's encoding = \"{label}\""),
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
    if let Some((line, count)) = decode::utf8_lines_in_legacy(bytes, decoded.encoding) {
        problems.push(Problem::warning(
            line,
            1,
            format!(
                "{count} line(s), this one first, read as UTF-8, not {}: their accents come out wrong (\"Ã©\" for \"é\"); if the whole file is UTF-8, set this source's encoding = \"auto\"",
                decoded.encoding.name()
            ),
        ));
    }
    let text: &str = &decoded.text;
    if let Some(at) = text.find('\0') {
        problems.push(Problem::file(
            line_of(text, at),
            1,
            "the file holds NUL bytes: it is not a CSV text export",
        ));
        return refuse(outcome, problems);
    }
    // The leading BOM is gone already; another one means files were glued together.
    if let Some(at) = text.find('\u{feff}') {
        problems.push(Problem::file(
            line_of(text, at),
            1,
            "a byte order mark (U+FEFF) in the middle of the file: were two exports joined into one?",
        ));
        return refuse(outcome, problems);
    }
    if text.trim().is_empty() {
        problems.push(Problem::file(1, 1, "the file is empty"));
        return refuse(outcome, problems);
    }
    let dialect = dialect::detect(text, spec.delimiter);
    outcome.delimiter = Some(dialect.delimiter);
    let body = text.get(dialect.body_start..).unwrap_or("");
    read_file(
        body,
        &dialect,
        spec,
        parallelism,
        &mut outcome,
        &mut problems,
    );

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

fn line_of(text: &str, byte: usize) -> u64 {
    text.as_bytes()[..byte.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
        + 1
}

/// Refuses for the first file-level error, which says best what is wrong.
fn refuse(outcome: Ingested, problems: Problems) -> Ingested {
    let mut errors = problems
        .listed
        .iter()
        .filter(|p| p.is_error() && p.scope == Scope::File);
    let mut reason = errors.next().map_or_else(
        || "the file is not readable".to_string(),
        |p| p.message.clone(),
    );
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

/// The header, the rows, then the checks across rows.
fn read_file(
    body: &str,
    dialect: &Dialect,
    spec: &SourceSpec,
    parallelism: Parallelism,
    outcome: &mut Ingested,
    problems: &mut Problems,
) {
    let line_offset = dialect.body_line - 1;
    let mut reader = rows::csv_reader(body.as_bytes(), dialect.delimiter);
    let mut row = csv::StringRecord::new();

    // The header: the first row that is not blank.
    let header_line = loop {
        match reader.read_record(&mut row) {
            Ok(true) if rows::is_blank(&row) => continue,
            Ok(true) => break rows::row_line(&row, body.as_bytes(), line_offset),
            Ok(false) => {
                problems.push(Problem::file(1, 1, "the file is empty"));
                return;
            }
            Err(error) => {
                problems.push(rows::csv_problem(&error, line_offset));
                return;
            }
        }
    };
    let Some(layout) = header::map_header(&row, header_line, dialect, spec, problems) else {
        return;
    };

    // The rows after the header.
    let after_header = reader.position();
    let rows_text = body.get(after_header.byte() as usize..).unwrap_or("");
    let rows = rows::read_rows(
        rows_text,
        after_header.line() + line_offset,
        dialect.delimiter,
        row.len(),
        &layout,
        spec,
        parallelism,
    );
    let mut records = rows.records;
    let refused = rows.refused;
    outcome.rows = rows.rows;
    outcome.invalid_rows = rows.invalid_rows;
    problems.absorb(rows.problems);
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
    let refused_refs: HashMap<&str, u64> = refused
        .iter()
        .map(|(key, line)| (key.as_str(), *line))
        .collect();
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
