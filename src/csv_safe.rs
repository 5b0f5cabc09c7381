//! Formula neutralisation for the CSV rostersync writes (WBT files, the
//! Pleasanter and Gestimum imports): administrators open those in a
//! spreadsheet, which evaluates a cell that starts like a formula
//! (`=HYPERLINK(...)`, `=cmd|' /C calc'!A0`). The rule, after OWASP's
//! CSV-injection advice:
//!
//! - a value starting with `=`, `+`, `-`, `@`, a tab or a carriage return
//!   is written with a single quote before it (`'=HYPERLINK(...)`), and its
//!   cell is quoted, so a spreadsheet shows it as text;
//! - except a value made only of digits, spaces and `+ - . , ( )`: a phone
//!   number (`+33 1 23 45 67 89`), a number (`-12.5`) or a placeholder
//!   (`-`) stays as it is. Without a letter or any other sign it can name no
//!   function and no cell: at worst a spreadsheet shows it as a number.
//!
//! The target then holds the value with its quote. A target's
//! `neutralise_formulas = false` turns the rule off.

use std::borrow::Cow;

/// The characters a spreadsheet reads as the start of a formula.
const TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether a target's CSV has its formula-like values neutralised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Formulas {
    /// The default: see the module's rule.
    #[default]
    Neutralise,
    /// Values written as they are.
    Keep,
}

/// One value as a CSV writer must write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell<'a> {
    pub text: Cow<'a, str>,
    /// Neutralised: the writer must quote the cell, whatever it holds.
    pub quote: bool,
}

impl<'a> Cell<'a> {
    /// A value written as it is: a header, a flag rostersync sets.
    pub fn plain(text: &'a str) -> Cell<'a> {
        Cell {
            text: Cow::Borrowed(text),
            quote: false,
        }
    }
}

impl Formulas {
    /// `value` as it goes into a cell under this setting.
    pub fn cell(self, value: &str) -> Cell<'_> {
        if self == Formulas::Neutralise && is_evaluable(value) {
            Cell {
                text: Cow::Owned(format!("'{value}")),
                quote: true,
            }
        } else {
            Cell::plain(value)
        }
    }

    /// The text of `value`'s cell, for a writer that quotes every cell.
    pub fn text(self, value: &str) -> Cow<'_, str> {
        self.cell(value).text
    }
}

/// Whether a spreadsheet would evaluate `value`: it starts with a trigger
/// and is not a phone number or a number.
pub fn is_evaluable(value: &str) -> bool {
    value.starts_with(TRIGGERS) && !is_numeric(value)
}

/// Digits, spaces and `+ - . , ( )` only.
fn is_numeric(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_digit() || " +-.,()".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_values_are_quoted_text() {
        for hostile in [
            "=cmd|' /C calc'!A0",
            "=HYPERLINK(\"http://x.example\",\"click\")",
            "@SUM(A1:A9)",
            "+A1",
            "-2+3+cmd|' /C calc'!A0",
            "\t=1+1",
            "\r=1+1",
            "=1+1",
            "-x",
            "+\t",
        ] {
            let cell = Formulas::Neutralise.cell(hostile);
            assert_eq!(cell.text, format!("'{hostile}"), "{hostile:?}");
            assert!(cell.quote, "{hostile:?}");
        }
    }

    #[test]
    fn phone_numbers_numbers_and_plain_text_stay() {
        for kept in [
            "+33 1 23 45 67 89",
            "+1 (555) 123-4567",
            "+44-20-7946-0958",
            "-12.5",
            "-12,5",
            "+7",
            "-",
            "Durand",
            "a=b",
            "jean-paul@example.org",
            "'already quoted",
            "",
        ] {
            let cell = Formulas::Neutralise.cell(kept);
            assert_eq!(cell.text, kept, "{kept:?}");
            assert!(!cell.quote, "{kept:?}");
        }
    }

    #[test]
    fn keep_writes_every_value_as_it_is() {
        let cell = Formulas::Keep.cell("=cmd|' /C calc'!A0");
        assert_eq!(cell.text, "=cmd|' /C calc'!A0");
        assert!(!cell.quote);
    }
}
