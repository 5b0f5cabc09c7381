//! Checks across rows: duplicate keys, the organisation tree, manager references.

use std::collections::hash_map::Entry;

use foldhash::{HashMap, HashMapExt};

use super::header::Layout;
use super::problem::{Problem, quote};
use super::record::{Field, Record, RecordKind};

/// Rows refused by row validation: their key, so references to them are explained.
pub type Refused<'a> = std::collections::HashMap<&'a str, u64>;

/// Every check across rows. Returns problems and the indices of records they make invalid.
pub fn cross_row(
    records: &[Record],
    refused: &Refused<'_>,
    full: bool,
    layout: &Layout,
) -> (Vec<Problem>, Vec<usize>) {
    let mut problems = Vec::new();
    let mut invalid = Vec::new();
    let Some(first) = records.first() else {
        return (problems, invalid);
    };
    let kind = first.kind();
    let key = first.schema().key();
    let check_logins = kind == RecordKind::Users && key != Field::Login;
    // The two indexes are independent and each costs a pass over a million
    // rows of a big file: build them side by side.
    let (by_key, by_login) = std::thread::scope(|scope| {
        let logins = check_logins.then(|| scope.spawn(|| Index::build(records, Field::Login)));
        let by_key = Index::build(records, key);
        let by_login = logins.and_then(|handle| handle.join().ok());
        (by_key, by_login)
    });
    by_key.report_duplicates(records, key, layout, &mut problems, &mut invalid);
    if let Some(by_login) = &by_login {
        by_login.report_duplicates(records, Field::Login, layout, &mut problems, &mut invalid);
    }
    match kind {
        // Organisations are always keyed by ext_id (the config check says so).
        RecordKind::Orgs => org_tree(
            records,
            &by_key.first,
            refused,
            full,
            layout,
            &mut problems,
            &mut invalid,
        ),
        RecordKind::Users if full => {
            let by_ext_id = if key == Field::ExtId {
                by_key
            } else {
                Index::build(records, Field::ExtId)
            };
            managers(records, &by_ext_id.first, layout, &mut problems);
        }
        RecordKind::Users => {}
    }
    invalid.sort_unstable();
    invalid.dedup();
    (problems, invalid)
}

/// Where each value of a field first appears, and the values that repeat.
struct Index<'a> {
    first: HashMap<&'a str, usize>,
    repeated: HashMap<&'a str, Vec<usize>>,
}

impl<'a> Index<'a> {
    fn build(records: &'a [Record], field: Field) -> Index<'a> {
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(records.len());
        let mut repeated: HashMap<&str, Vec<usize>> = HashMap::new();
        for (index, record) in records.iter().enumerate() {
            let Some(value) = record.get(field) else {
                continue;
            };
            match first.entry(value) {
                Entry::Vacant(vacant) => {
                    vacant.insert(index);
                }
                Entry::Occupied(seen) => repeated
                    .entry(value)
                    .or_insert_with(|| vec![*seen.get()])
                    .push(index),
            }
        }
        Index { first, repeated }
    }

    /// Every row of a repeated value is refused, naming the other lines.
    fn report_duplicates(
        &self,
        records: &[Record],
        field: Field,
        layout: &Layout,
        problems: &mut Vec<Problem>,
        invalid: &mut Vec<usize>,
    ) {
        let Some((column, header)) = layout.column_of(field) else {
            return;
        };
        let mut groups: Vec<(&&str, &Vec<usize>)> = self.repeated.iter().collect();
        groups.sort_by_key(|(_, indices)| indices[0]);
        for (value, indices) in groups {
            for &index in indices {
                let others: Vec<String> = indices
                    .iter()
                    .filter(|&&other| other != index)
                    .map(|&other| records[other].line.to_string())
                    .collect();
                let line_word = if others.len() == 1 { "line" } else { "lines" };
                problems.push(Problem::row(
                    records[index].line,
                    column,
                    format!(
                        "{header} {} is also on {line_word} {}",
                        quote(value),
                        others.join(", ")
                    ),
                ));
                invalid.push(index);
            }
        }
    }
}

/// What became of an organisation once its chain of parents was followed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Chain {
    Unvisited,
    OnPath,
    Sound,
    Broken,
}

/// Parents must exist (in a full file) and chains of parents must end at a root.
/// An organisation under a refused or looping one is refused too: sending it
/// would leave it under a parent the target does not have.
fn org_tree(
    records: &[Record],
    index_of: &HashMap<&str, usize>,
    refused: &Refused<'_>,
    full: bool,
    layout: &Layout,
    problems: &mut Vec<Problem>,
    invalid: &mut Vec<usize>,
) {
    let Some((column, header)) = layout.column_of(Field::ParentExtId) else {
        return;
    };
    let mut chain = vec![Chain::Unvisited; records.len()];
    let mut path: Vec<usize> = Vec::new();
    for start in 0..records.len() {
        path.clear();
        let mut current = start;
        let outcome = loop {
            match chain[current] {
                Chain::Sound => break Chain::Sound,
                Chain::Broken => {
                    let culprit = &records[current];
                    break_descendants(&path, records, culprit, column, problems, invalid);
                    break Chain::Broken;
                }
                Chain::OnPath => {
                    let from = path.iter().position(|&i| i == current).unwrap_or(0);
                    let cycle = path.split_off(from);
                    let mut names: Vec<String> =
                        cycle.iter().map(|&i| quote(records[i].key())).collect();
                    names.push(quote(records[current].key()));
                    for &i in &cycle {
                        chain[i] = Chain::Broken;
                        problems.push(Problem::row(
                            records[i].line,
                            column,
                            format!("{header} makes a loop: {}", names.join(" → ")),
                        ));
                        invalid.push(i);
                    }
                    break_descendants(&path, records, &records[current], column, problems, invalid);
                    break Chain::Broken;
                }
                Chain::Unvisited => {}
            }
            chain[current] = Chain::OnPath;
            path.push(current);
            let record = &records[current];
            let Some(parent) = record.get(Field::ParentExtId) else {
                break Chain::Sound;
            };
            if let Some(&next) = index_of.get(parent) {
                current = next;
                continue;
            }
            let message = match refused.get(parent) {
                Some(line) => format!(
                    "{header} {} is on line {line}, which is refused",
                    quote(parent)
                ),
                None => format!("{header} {} is not in this file", quote(parent)),
            };
            if full || refused.contains_key(parent) {
                problems.push(Problem::row(record.line, column, message));
                invalid.push(current);
                chain[current] = Chain::Broken;
                path.pop();
                break_descendants(&path, records, record, column, problems, invalid);
                break Chain::Broken;
            }
            problems.push(Problem::warning(
                record.line,
                column,
                format!("{message}; the targets must already have it"),
            ));
            break Chain::Sound;
        };
        for &i in &path {
            if chain[i] == Chain::OnPath {
                chain[i] = outcome;
            }
        }
    }
}

/// Refuses each organisation on `path` (children first) whose chain reaches `culprit`.
fn break_descendants(
    path: &[usize],
    records: &[Record],
    culprit: &Record,
    column: u64,
    problems: &mut Vec<Problem>,
    invalid: &mut Vec<usize>,
) {
    for &i in path {
        problems.push(Problem::row(
            records[i].line,
            column,
            format!(
                "its chain of parents reaches {} (line {}), which is refused",
                quote(culprit.key()),
                culprit.line
            ),
        ));
        invalid.push(i);
    }
}

/// A manager absent from a full file is only a warning: the target may know them.
/// Read-only lookups over every user: shared between threads for big files.
fn managers(
    records: &[Record],
    ext_ids: &HashMap<&str, usize>,
    layout: &Layout,
    problems: &mut Vec<Problem>,
) {
    let columns: Vec<(Field, u64, &str)> = [Field::ManagerExtId, Field::AltManagerExtId]
        .into_iter()
        .filter_map(|field| {
            layout
                .column_of(field)
                .map(|(column, header)| (field, column, header))
        })
        .collect();
    if columns.is_empty() {
        return;
    }
    let check = |part: &[Record]| {
        let mut found = Vec::new();
        for record in part {
            for &(field, column, header) in &columns {
                let Some(manager) = record.get(field) else {
                    continue;
                };
                let message = if record.get(Field::ExtId) == Some(manager) {
                    format!("{header} {} is the user themselves", quote(manager))
                } else if !ext_ids.contains_key(manager) {
                    format!(
                        "{header} {} is not in this file; the targets must already have it",
                        quote(manager)
                    )
                } else {
                    continue;
                };
                found.push(Problem::warning(record.line, column, message));
            }
        }
        found
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if workers < 2 || records.len() < PARALLEL_MIN_RECORDS {
        problems.extend(check(records));
        return;
    }
    let part_len = records.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = records
            .chunks(part_len)
            .map(|part| scope.spawn(move || check(part)))
            .collect();
        for handle in handles {
            // `check` only reads and formats; a failed thread would be a bug, and
            // losing warnings is better than losing the file.
            problems.extend(handle.join().unwrap_or_default());
        }
    });
}

/// Below this many records, one thread checks managers faster than several.
const PARALLEL_MIN_RECORDS: usize = 50_000;
