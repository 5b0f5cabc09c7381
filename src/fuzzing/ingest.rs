//! A dropped file's bytes through ingest: decoding, dialect and header
//! detection, the rows and their checks, for users and organisations in
//! each format, and what `validate` does without `--source`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use crate::ingest::columns::Format;
use crate::ingest::decode::EncodingChoice;
use crate::ingest::record::{Field, RecordKind};
use crate::ingest::values::DateFormat;
use crate::ingest::{
    Ingested, MAX_PROBLEMS, Mode, Parallelism, SourceSpec, guess_kind, ingest_with,
};

use super::Broken;

/// Sources as a config makes them: each preset, both kinds, a fixed
/// encoding, a forced delimiter, a date format off the fast path.
static SPECS: LazyLock<Vec<SourceSpec>> = LazyLock::new(|| {
    let payroll: BTreeMap<String, String> = [
        ("ext_id", "Matricule"),
        ("login", "Identifiant"),
        ("last_name", "Nom"),
        ("first_name", "Prénom"),
        ("birth_date", "Né le"),
        ("email", "Mail"),
        ("custom.badge", "Badge"),
    ]
    .into_iter()
    .map(|(field, header)| (field.to_string(), header.to_string()))
    .collect();
    let fixed = |label: &str| EncodingChoice::from_label(label).unwrap_or(EncodingChoice::Auto);
    let dates = |format: &str| DateFormat::new(format).unwrap_or(DateFormat::preset("%Y-%m-%d"));
    vec![
        SourceSpec::wbt(RecordKind::Users),
        SourceSpec::wbt(RecordKind::Orgs),
        SourceSpec {
            mode: Mode::Delta,
            key: Field::Login,
            encoding: fixed("windows-1252"),
            max_invalid_rows: 3,
            ..SourceSpec::wbt(RecordKind::Users)
        },
        SourceSpec {
            format: Format::Collaborator,
            dates: DateFormat::preset(Format::Collaborator.default_date_format()),
            ..SourceSpec::wbt(RecordKind::Users)
        },
        SourceSpec {
            format: Format::Collaborator,
            dates: DateFormat::preset(Format::Collaborator.default_date_format()),
            mode: Mode::Delta,
            ..SourceSpec::wbt(RecordKind::Orgs)
        },
        SourceSpec {
            format: Format::Custom(payroll),
            encoding: fixed("shift_jis"),
            delimiter: Some(b'|'),
            dates: dates("%d/%m/%Y"),
            max_invalid_rows: 1,
            ..SourceSpec::wbt(RecordKind::Users)
        },
        SourceSpec {
            encoding: fixed("utf-16le"),
            dates: dates("%e %B %Y"),
            ..SourceSpec::wbt(RecordKind::Users)
        },
    ]
});

/// Read whole, on one thread.
const WHOLE: Parallelism = Parallelism {
    workers: 1,
    min_bytes: usize::MAX,
};

/// Split into three chunks read side by side, however small the file.
const SPLIT: Parallelism = Parallelism {
    workers: 3,
    min_bytes: 1,
};

/// Every source reads the bytes without a panic, keeps ingest's promises,
/// and comes to the same outcome whole or split across threads.
pub fn ingest(data: &[u8]) -> Result<(), Broken> {
    let validate = SourceSpec::wbt(guess_kind(data));
    for spec in SPECS.iter().chain([&validate]) {
        let whole = ingest_with(data, spec, WHOLE);
        promises(&whole, spec)?;
        let split = ingest_with(data, spec, SPLIT);
        same(&whole, &split)?;
    }
    Ok(())
}

/// What [`crate::ingest::Ingested`] promises, whatever the file.
fn promises(outcome: &Ingested, spec: &SourceSpec) -> Result<(), Broken> {
    if outcome.problems.len() > MAX_PROBLEMS {
        return Err(format!("{} problems listed", outcome.problems.len()));
    }
    if !outcome.accepted() && !outcome.records.is_empty() {
        return Err(format!(
            "refused ({:?}) with {} records",
            outcome.verdict,
            outcome.records.len()
        ));
    }
    if outcome.accepted() && outcome.invalid_rows > spec.max_invalid_rows {
        return Err(format!(
            "accepted with {} invalid rows, {} allowed",
            outcome.invalid_rows, spec.max_invalid_rows
        ));
    }
    if outcome.records.len() > outcome.rows {
        return Err(format!(
            "{} records of {} rows",
            outcome.records.len(),
            outcome.rows
        ));
    }
    Ok(())
}

/// The outcome does not depend on the number of threads.
fn same(whole: &Ingested, split: &Ingested) -> Result<(), Broken> {
    let differs = |what: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
        Err(format!("{what} differ: whole {a:?}, split {b:?}"))
    };
    if whole.verdict != split.verdict {
        return differs("verdicts", &whole.verdict, &split.verdict);
    }
    if whole.problems != split.problems {
        return differs("problems", &whole.problems, &split.problems);
    }
    if whole.records != split.records {
        return differs("records", &whole.records, &split.records);
    }
    let counts = |o: &Ingested| (o.rows, o.invalid_rows, o.problems_not_listed);
    if counts(whole) != counts(split) {
        return differs("counts", &counts(whole), &counts(split));
    }
    Ok(())
}
