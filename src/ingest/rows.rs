//! The data rows: read in chunks, one thread each for big files, and
//! validated into records.

use std::collections::HashMap;

use super::header::Layout;
use super::problem::Problem;
use super::record::Record;
use super::{Problems, SourceSpec, values};

/// How many threads read the rows, and from what size it is worth it.
#[derive(Debug, Clone, Copy)]
pub struct Parallelism {
    pub workers: usize,
    pub min_bytes: usize,
}

impl Default for Parallelism {
    fn default() -> Self {
        Parallelism {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
            min_bytes: 4 << 20,
        }
    }
}

/// What the rows gave, line numbers counted from the start of `text`.
#[derive(Default)]
pub(crate) struct RowsOutcome {
    pub records: Vec<Record>,
    pub problems: Problems,
    pub rows: usize,
    pub invalid_rows: usize,
    /// Keys of invalid rows, to explain references to them.
    pub refused: HashMap<String, u64>,
}

/// Reads and validates every row of `text` (the file after its header);
/// `first_line` is the line number of its first byte.
pub(crate) fn read_rows(
    text: &str,
    first_line: u64,
    delimiter: u8,
    header_len: usize,
    layout: &Layout,
    spec: &SourceSpec,
    parallelism: Parallelism,
) -> RowsOutcome {
    let chunks = split_rows(text, delimiter, parallelism);
    let read = |chunk: &&str| read_chunk(chunk, delimiter, header_len, layout, spec);
    let outcomes: Vec<ChunkOutcome> = if chunks.len() == 1 {
        chunks.iter().map(read).collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|chunk| scope.spawn(move || read(chunk)))
                .collect();
            handles
                .into_iter()
                // A worker that panicked is a bug; report it rather than take the process down.
                .map(|handle| handle.join().unwrap_or_else(|_| ChunkOutcome::crashed()))
                .collect()
        })
    };
    merge(outcomes, first_line)
}

/// Joins chunk outcomes in file order, turning their chunk-relative line
/// numbers into the file's.
fn merge(outcomes: Vec<ChunkOutcome>, first_line: u64) -> RowsOutcome {
    let mut merged = RowsOutcome {
        records: Vec::with_capacity(outcomes.iter().map(|o| o.rows.records.len()).sum()),
        ..RowsOutcome::default()
    };
    let mut offset = first_line - 1;
    for chunk in outcomes {
        let rows = chunk.rows;
        merged
            .records
            .extend(rows.records.into_iter().map(|mut record| {
                record.line += offset;
                record
            }));
        merged.rows += rows.rows;
        merged.invalid_rows += rows.invalid_rows;
        let mut problems = rows.problems;
        for problem in &mut problems.listed {
            problem.line += offset;
        }
        merged.problems.absorb(problems);
        for (key, line) in rows.refused {
            merged.refused.entry(key).or_insert(line + offset);
        }
        offset += chunk.newlines;
    }
    merged
}

/// Cuts the rows into about `workers` chunks, each starting where a row starts.
/// Without a quote before a cut, the next newline ends a row; with quotes, a
/// quick pass of the CSV parser finds row starts (a newline inside a quoted
/// field is not one).
fn split_rows(text: &str, delimiter: u8, parallelism: Parallelism) -> Vec<&str> {
    let parts = parallelism.workers;
    if parts < 2 || text.len() < parallelism.min_bytes.max(1) {
        return vec![text];
    }
    let step = text.len() / parts;
    let mut cuts = vec![0usize];
    let bytes = text.as_bytes();
    // Where the next newline after each step ends a row, if no quote came before.
    for part in 1..parts {
        let from = (step * part).max(cuts[cuts.len() - 1]);
        match bytes[from..].iter().position(|&b| b == b'\n') {
            Some(newline) if from + newline + 1 < bytes.len() => cuts.push(from + newline + 1),
            _ => break,
        }
    }
    let last_cut = cuts[cuts.len() - 1];
    if bytes[..last_cut].contains(&b'"') {
        cuts = row_starts_near(bytes, delimiter, step, parts);
    }
    // Every cut follows a newline or starts a row: both are char boundaries.
    let ends = cuts.iter().skip(1).copied().chain([text.len()]);
    cuts.iter()
        .zip(ends)
        .filter_map(|(&start, end)| text.get(start..end))
        .collect()
}

/// Row starts found by the CSV parser itself, about `step` bytes apart.
fn row_starts_near(bytes: &[u8], delimiter: u8, step: usize, parts: usize) -> Vec<usize> {
    let mut cuts = vec![0usize];
    let mut reader = csv_reader(bytes, delimiter);
    let mut record = csv::ByteRecord::new();
    let mut next_cut = step;
    while cuts.len() < parts && matches!(reader.read_byte_record(&mut record), Ok(true)) {
        let Some(position) = record.position() else {
            break;
        };
        let byte = position.byte() as usize;
        if byte >= next_cut {
            cuts.push(byte);
            next_cut = byte + step;
        }
    }
    cuts
}

/// One chunk's rows, and how many newlines the chunk holds.
#[derive(Default)]
struct ChunkOutcome {
    rows: RowsOutcome,
    newlines: u64,
}

impl ChunkOutcome {
    fn crashed() -> ChunkOutcome {
        let mut outcome = ChunkOutcome::default();
        outcome.rows.problems.push(Problem::file(
            1,
            1,
            "internal error while reading rows (a bug: please report it with the file)",
        ));
        outcome
    }
}

fn read_chunk(
    text: &str,
    delimiter: u8,
    header_len: usize,
    layout: &Layout,
    spec: &SourceSpec,
) -> ChunkOutcome {
    let mut reader = csv_reader(text.as_bytes(), delimiter);
    let mut row = csv::StringRecord::new();
    let mut builder = RowBuilder::default();
    let mut outcome = RowsOutcome::default();
    let problems = &mut outcome.problems;
    loop {
        match reader.read_record(&mut row) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => {
                problems.push(csv_problem(&error, 0));
                break;
            }
        }
        if is_blank(&row) {
            continue;
        }
        outcome.rows += 1;
        let line = row_line(&row, text.as_bytes(), 0);
        if row.len() != header_len {
            let next_line = reader.position().line();
            problems.push(wrong_length(&row, line, header_len, next_line));
            continue;
        }
        match builder.build(&row, line, layout, spec, problems) {
            Some(record) => outcome.records.push(record),
            None => {
                outcome.invalid_rows += 1;
                if let Some(key) = layout.key_in(&row) {
                    outcome.refused.entry(key.to_string()).or_insert(line);
                }
            }
        }
    }
    ChunkOutcome {
        rows: outcome,
        newlines: reader.position().line() - 1,
    }
}

/// The one way rows are read: no header handling (ours names columns), and
/// rows of any length (ours reports a wrong one with its line).
pub(crate) fn csv_reader(bytes: &[u8], delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes)
}

pub(crate) fn is_blank(row: &csv::StringRecord) -> bool {
    // All fields back to back: one scan that stops at the first visible character.
    row.as_slice().trim().is_empty()
}

/// The line a row starts on. The CSV reader's position is where it began
/// looking for the row, before the blank lines it skipped: count those too.
pub(crate) fn row_line(row: &csv::StringRecord, text: &[u8], line_offset: u64) -> u64 {
    let Some(position) = row.position() else {
        return line_offset + 1;
    };
    let start = usize::try_from(position.byte()).unwrap_or(usize::MAX);
    let skipped = text
        .get(start..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .filter(|&&b| b == b'\n')
        .count() as u64;
    position.line() + skipped + line_offset
}

pub(crate) fn csv_problem(error: &csv::Error, line_offset: u64) -> Problem {
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
            match values::normalise_into(column, raw.trim(), &spec.dates, &mut self.text) {
                Ok(()) => {
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
