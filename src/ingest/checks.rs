//! Checks across rows: duplicate keys, the organisation tree, manager references.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

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
    duplicates(records, key, layout, &mut problems, &mut invalid);
    if kind == RecordKind::Users && key != Field::Login {
        duplicates(records, Field::Login, layout, &mut problems, &mut invalid);
    }
    match kind {
        RecordKind::Orgs => org_tree(records, refused, full, layout, &mut problems, &mut invalid),
        RecordKind::Users if full => managers(records, layout, &mut problems),
        RecordKind::Users => {}
    }
    invalid.sort_unstable();
    invalid.dedup();
    (problems, invalid)
}

fn duplicates(
    records: &[Record],
    field: Field,
    layout: &Layout,
    problems: &mut Vec<Problem>,
    invalid: &mut Vec<usize>,
) {
    let Some((column, header)) = layout.column_of(field) else {
        return;
    };
    let mut first_seen: HashMap<&str, usize> = HashMap::with_capacity(records.len());
    let mut repeated: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, record) in records.iter().enumerate() {
        let Some(value) = record.get(field) else {
            continue;
        };
        if let Some(&first) = first_seen.get(value) {
            repeated
                .entry(value)
                .or_insert_with(|| vec![first])
                .push(index);
        } else {
            first_seen.insert(value, index);
        }
    }
    let mut groups: Vec<(&str, Vec<usize>)> = repeated.into_iter().collect();
    groups.sort_by_key(|(_, indices)| indices[0]);
    for (value, indices) in groups {
        for &index in &indices {
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
    refused: &Refused<'_>,
    full: bool,
    layout: &Layout,
    problems: &mut Vec<Problem>,
    invalid: &mut Vec<usize>,
) {
    let Some((column, header)) = layout.column_of(Field::ParentExtId) else {
        return;
    };
    let mut index_of: HashMap<&str, usize> = HashMap::with_capacity(records.len());
    index_of.extend(records.iter().enumerate().map(|(i, r)| (r.key(), i)));
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
fn managers(records: &[Record], layout: &Layout, problems: &mut Vec<Problem>) {
    let mut ext_ids: HashSet<&str> = HashSet::with_capacity(records.len());
    ext_ids.extend(records.iter().filter_map(|r| r.get(Field::ExtId)));
    for field in [Field::ManagerExtId, Field::AltManagerExtId] {
        let Some((column, header)) = layout.column_of(field) else {
            continue;
        };
        for record in records {
            let Some(manager) = record.get(field) else {
                continue;
            };
            if record.get(Field::ExtId) == Some(manager) {
                problems.push(Problem::warning(
                    record.line,
                    column,
                    format!("{header} {} is the user themselves", quote(manager)),
                ));
            } else if !ext_ids.contains(manager) {
                problems.push(Problem::warning(
                    record.line,
                    column,
                    format!(
                        "{header} {} is not in this file; the targets must already have it",
                        quote(manager)
                    ),
                ));
            }
        }
    }
}
