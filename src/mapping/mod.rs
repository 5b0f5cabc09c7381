//! Mapping: `[target.fields]` templates and `[target.scope]` expressions,
//! in one expression language (MiniJinja's Jinja), compiled once per target
//! and evaluated per record over its canonical fields (README, *Templates*
//! and *Scope*).

mod context;
mod filters;
mod scope;
mod template;

pub use scope::{Scope, ScopeProblem};
pub use template::{FieldTemplate, TemplateFailure};

/// The reasons of records parked while planning (a template or scope
/// expression failed on them) begin so: the next file that maps the record
/// releases it, not `retry` (nothing was queued for it).
pub const PARKED_MAPPING: &str = "mapping: ";

/// Whether a `[target.fields]` value is a template rather than a field name.
pub fn is_template(value: &str) -> bool {
    value.contains("{{")
}

/// Where in a template or expression something went wrong, 1-based, and
/// what: a compile error as `check` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// A MiniJinja error in our words: its kind and detail, without the
/// template name (the caller says which target and field it is).
fn describe(error: &minijinja::Error) -> String {
    if error.kind() == minijinja::ErrorKind::UndefinedError {
        return "a field it reads has no value (`| default(\"...\")` gives one)".into();
    }
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
}

/// [`describe`], with the part of `source` that failed when known
/// (`undefined value, at "last_name | lower"`).
fn describe_in(source: &str, error: &minijinja::Error) -> String {
    let described = describe(error);
    match error.range().and_then(|range| source.get(range)) {
        Some(part) if !part.is_empty() => format!("{described}, at {part:?}"),
        _ => described,
    }
}

/// A compile error of `source`, with its position.
fn compile_error(source: &str, error: &minijinja::Error) -> CompileError {
    let (line, column) = match error.range() {
        Some(range) => crate::config::line_col(source, range.start.min(source.len())),
        None => (error.line().unwrap_or(1) as u64, 1),
    };
    CompileError {
        line,
        column,
        message: describe(error),
    }
}

/// Users of a `;` file whose headers are canonical field names.
#[cfg(test)]
pub(crate) fn test_records(text: &str) -> Vec<crate::ingest::record::Record> {
    test_records_of(crate::ingest::record::RecordKind::Users, text)
}

/// Records of a kind from a `;` file whose headers are canonical field names.
#[cfg(test)]
pub(crate) fn test_records_of(
    kind: crate::ingest::record::RecordKind,
    text: &str,
) -> Vec<crate::ingest::record::Record> {
    use crate::ingest::record::Field;
    use crate::ingest::{SourceSpec, columns::Format, ingest};
    let header = text.lines().next().unwrap_or_default();
    let columns = header
        .split(';')
        .map(|name| (name.to_string(), name.to_string()))
        .collect();
    let spec = SourceSpec {
        format: Format::Custom(columns),
        delimiter: Some(b';'),
        dates: crate::ingest::values::DateFormat::preset("%Y-%m-%d"),
        key: Field::ExtId,
        ..SourceSpec::wbt(kind)
    };
    let outcome = ingest(text.as_bytes(), &spec);
    assert!(outcome.accepted(), "{:?}", outcome.problems);
    outcome.records
}
