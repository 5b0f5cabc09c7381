//! Problems found in a file: where, how bad, and what was expected.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational: the row still goes on (an unknown manager, an ignored column).
    Warning,
    /// The row (or, for a file-level problem, the whole file) is refused.
    Error,
}

/// Whether a problem condemns one row or the whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Row,
    File,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub severity: Severity,
    pub scope: Scope,
    /// 1-based line in the file as the user sees it.
    pub line: u64,
    /// 1-based column: the field's position in the row.
    pub column: u64,
    pub message: String,
}

impl Problem {
    pub fn row(line: u64, column: u64, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Error,
            scope: Scope::Row,
            line,
            column,
            message: message.into(),
        }
    }

    pub fn file(line: u64, column: u64, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Error,
            scope: Scope::File,
            line,
            column,
            message: message.into(),
        }
    }

    pub fn warning(line: u64, column: u64, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Warning,
            scope: Scope::Row,
            line,
            column,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `FILE:LINE:COLUMN: message`, the form editors and `grep -n` users know.
    pub fn located<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        Located {
            file,
            problem: self,
        }
    }
}

struct Located<'a> {
    file: &'a str,
    problem: &'a Problem,
}

/// `LINE:COLUMN: message`, for a report that is the file's own.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.line, self.column)?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        f.write_str(&self.message)
    }
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.problem;
        write!(f, "{}:{}:{}: ", self.file, p.line, p.column)?;
        if p.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        f.write_str(&p.message)
    }
}

/// Quotes a value for a message, cut short so that a 10 MB cell stays readable.
pub fn quote(value: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(MAX_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}
