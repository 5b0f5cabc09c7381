//! Text that comes from outside (a file name above all) made safe to log,
//! show and write into reports: a name holding a line break must not forge
//! a log line, and one holding escape codes or bidirectional overrides must
//! not rewrite a terminal or disguise itself. Control and reordering
//! characters are written as Rust-style escapes (`\n`, `\u{1b}`), bytes that
//! are not UTF-8 as `\xNN`, and the backslash itself as `\\`, so that the
//! escaped text reads back unambiguously.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `text` with every character that could forge or disguise a line escaped.
pub fn text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    push_escaped(&mut out, text);
    Cow::Owned(out)
}

/// A name from the file system, which need not be UTF-8.
pub fn os(name: &OsStr) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.as_bytes().utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for byte in chunk.invalid() {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// A path, escaped as a whole.
pub fn path(path: &Path) -> String {
    os(path.as_os_str())
}

/// The last component of a path (the path itself when it has none), escaped.
pub fn file_name(path: &Path) -> String {
    os(path.file_name().unwrap_or(path.as_os_str()))
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || reorders(c)
}

/// Characters that change how the text around them is displayed or broken
/// into lines: bidirectional marks and overrides, zero-width characters, the
/// Unicode line and paragraph separators.
fn reorders(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn plain_names_are_kept_as_they_are() {
        for name in [
            "users_2026-11-21.csv",
            "Employés été.csv",
            "社員.csv",
            "a b;c.csv",
        ] {
            assert!(matches!(text(name), Cow::Borrowed(_)), "{name}");
            assert_eq!(os(OsStr::new(name)), name);
        }
    }

    #[test]
    fn line_breaks_and_escape_codes_cannot_forge_a_line() {
        let forged = "u.csv\n2026-11-21T10:00:00Z  INFO file processed: committed\r\x1b[2K\u{85}";
        let shown = text(forged);
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert_eq!(
            shown,
            "u.csv\\n2026-11-21T10:00:00Z  INFO file processed: committed\\r\\u{1b}[2K\\u{85}"
        );
    }

    #[test]
    fn reordering_characters_and_backslashes_are_escaped() {
        // "exe.csv" shown reversed by a right-to-left override.
        assert_eq!(text("report\u{202e}vsc.exe"), "report\\u{202e}vsc.exe");
        assert_eq!(text("a\u{2028}b\u{200b}"), "a\\u{2028}b\\u{200b}");
        assert_eq!(
            text("a\\nb"),
            "a\\\\nb",
            "a backslash is told from an escape"
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_in_hex() {
        let name = OsStr::from_bytes(b"Employ\xe9s\n.csv");
        assert_eq!(os(name), "Employ\\xe9s\\n.csv");
        assert_eq!(
            file_name(Path::new(OsStr::from_bytes(b"/in/\xff.csv"))),
            "\\xff.csv"
        );
        assert_eq!(path(Path::new("/in/a\tb.csv")), "/in/a\\tb.csv");
    }
}
