//! The reference of issue 12: the `csv-diff` crate (xxh3 hashes, rayon
//! threads) diffing two WBT users exports by their key column, as a separate
//! binary so that `scripts/bench-store.sh` can time it beside rostersync on
//! the same machine in the same run.
//!
//! `csv-diff-peer FIRST LATER [KEY_COLUMN]` prints one line:
//! `added N deleted N modified N rows FIRST_ROWS/LATER_ROWS in S s`.
//! The files are `;`-delimited with a header; the key column (default
//! `user_extid`, WBT's external id) is looked up by name in FIRST's header.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::process::ExitCode;
use std::time::Instant;

use csv_diff::csv::{Csv, CsvReaderBuilderExt};
use csv_diff::csv_diff::CsvByteDiffLocalBuilder;
use csv_diff::diff_row::DiffByteRecord;

const DELIMITER: u8 = b';';

fn reader(path: &str) -> std::io::Result<Csv<File>> {
    let file = File::open(path)?;
    let reader = csv::ReaderBuilder::new()
        .delimiter(DELIMITER)
        .has_headers(true)
        .from_reader_seek(file);
    Ok(Csv::from(reader))
}

/// The key column's index in the file's header.
fn key_index(path: &str, name: &str) -> Result<usize, String> {
    let mut header = String::new();
    BufReader::new(File::open(path).map_err(|e| format!("{path}: {e}"))?)
        .read_line(&mut header)
        .map_err(|e| format!("{path}: {e}"))?;
    header
        .trim_start_matches('\u{feff}')
        .trim_end_matches(['\r', '\n'])
        .split(DELIMITER as char)
        .position(|column| column == name)
        .ok_or_else(|| format!("{path}: no column {name:?} in the header"))
}

/// Data rows (lines after the header; the exports have no quoted newlines).
fn rows(path: &str) -> std::io::Result<u64> {
    let mut lines = 0u64;
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            break;
        }
        lines += buffer.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = buffer.len();
        reader.consume(n);
    }
    Ok(lines.saturating_sub(1))
}

fn run(first: &str, later: &str, key: &str) -> Result<(), String> {
    let key = key_index(first, key)?;
    let started = Instant::now();
    let diff = CsvByteDiffLocalBuilder::new()
        .primary_key_columns([key])
        .build()
        .map_err(|e| format!("csv-diff: {e}"))?;
    let records = diff
        .diff(
            reader(first).map_err(|e| format!("{first}: {e}"))?,
            reader(later).map_err(|e| format!("{later}: {e}"))?,
        )
        .map_err(|e| format!("csv-diff: {e}"))?;
    let (mut added, mut deleted, mut modified) = (0u64, 0u64, 0u64);
    for record in records.iter() {
        match record {
            DiffByteRecord::Add(_) => added += 1,
            DiffByteRecord::Delete(_) => deleted += 1,
            DiffByteRecord::Modify { .. } => modified += 1,
        }
    }
    let elapsed = started.elapsed();
    // Counted after the timed diff: a plain newline count, for the sanity check.
    let (rows_first, rows_later) = (
        rows(first).map_err(|e| format!("{first}: {e}"))?,
        rows(later).map_err(|e| format!("{later}: {e}"))?,
    );
    println!(
        "added {added} deleted {deleted} modified {modified} rows {rows_first}/{rows_later} in {:.3} s",
        elapsed.as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (first, later, key) = match args.as_slice() {
        [first, later] => (first, later, "user_extid"),
        [first, later, key] => (first, later, key.as_str()),
        _ => {
            eprintln!("usage: csv-diff-peer FIRST LATER [KEY_COLUMN]");
            return ExitCode::from(2);
        }
    };
    match run(first, later, key) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("csv-diff-peer: {message}");
            ExitCode::FAILURE
        }
    }
}
