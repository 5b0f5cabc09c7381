//! The header row: which file column is which canonical field.

use std::collections::HashMap;
use std::sync::Arc;

use super::columns::{ColumnSpec, column_specs};
use super::dialect::{DelimiterOrigin, Dialect};
use super::problem::{Problem, quote};
use super::record::{Field, FieldName, Schema};
use super::{Problems, SourceSpec};

/// How the file's header maps onto the source's columns.
pub(crate) struct Layout {
    pub(crate) specs: Vec<ColumnSpec>,
    /// Per file column: the spec it matched, if any.
    pub(crate) slots: Vec<Option<usize>>,
    pub(crate) schema: Arc<Schema>,
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

pub(crate) fn map_header(
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
    pub(crate) fn key_in<'r>(&self, row: &'r csv::StringRecord) -> Option<&'r str> {
        let key = FieldName::Known(self.schema.key());
        let column = self
            .slots
            .iter()
            .position(|slot| slot.is_some_and(|i| self.specs[i].field == key))?;
        row.get(column).map(str::trim).filter(|k| !k.is_empty())
    }
}
