//! The shape of a CSV file: its delimiter, and Excel's optional `sep=` line.

/// Delimiters tried by `delimiter = "auto"`, in order of preference on a tie.
pub const CANDIDATES: [u8; 4] = [b';', b',', b'\t', b'|'];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    /// How the delimiter was chosen, for messages.
    pub origin: DelimiterOrigin,
    /// Byte offset where the CSV (header row first) starts.
    pub body_start: usize,
    /// Line number of the text at `body_start`.
    pub body_line: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelimiterOrigin {
    /// Excel's `sep=X` first line.
    SepLine,
    Configured,
    Detected,
    /// Nothing in the header looked like a delimiter.
    Fallback,
}

/// Works out the dialect from the text; `configured` is the source's
/// `delimiter` unless it is `auto`. A `sep=` line wins: Excel wrote it.
pub fn detect(text: &str, configured: Option<u8>) -> Dialect {
    if let Some((delimiter, line_len)) = sep_line(text) {
        return Dialect {
            delimiter,
            origin: DelimiterOrigin::SepLine,
            body_start: line_len,
            body_line: 2,
        };
    }
    let (delimiter, origin) = match configured {
        Some(delimiter) => (delimiter, DelimiterOrigin::Configured),
        None => match most_frequent_outside_quotes(header_line(text)) {
            Some(delimiter) => (delimiter, DelimiterOrigin::Detected),
            None => (CANDIDATES[0], DelimiterOrigin::Fallback),
        },
    };
    Dialect {
        delimiter,
        origin,
        body_start: 0,
        body_line: 1,
    }
}

/// `sep=;` (any single ASCII character) alone on the first line, and the
/// length of that line with its line break.
fn sep_line(text: &str) -> Option<(u8, usize)> {
    let first = text.split_inclusive('\n').next()?;
    let content = first.trim_end_matches(['\r', '\n']);
    let rest = content.get(..4)?;
    if !rest.eq_ignore_ascii_case("sep=") {
        return None;
    }
    match content.as_bytes()[4..] {
        [delimiter] if delimiter.is_ascii() && delimiter != b'"' => Some((delimiter, first.len())),
        _ => None,
    }
}

fn header_line(text: &str) -> &str {
    text.lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("")
}

fn most_frequent_outside_quotes(line: &str) -> Option<u8> {
    let mut counts = [0usize; CANDIDATES.len()];
    let mut in_quotes = false;
    for byte in line.bytes() {
        if byte == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes && let Some(i) = CANDIDATES.iter().position(|&c| c == byte) {
            counts[i] += 1;
        }
    }
    // max_by_key keeps the last maximum; iterate in reverse so the first candidate wins ties.
    let (best, count) = counts
        .iter()
        .enumerate()
        .rev()
        .max_by_key(|(_, count)| **count)?;
    (*count > 0).then_some(CANDIDATES[best])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_candidate() {
        for delimiter in CANDIDATES {
            let d = delimiter as char;
            let text = format!("a{d}b{d}c\n1{d}2{d}3\n");
            assert_eq!(detect(&text, None).delimiter, delimiter);
        }
    }

    #[test]
    fn delimiters_inside_quotes_do_not_count() {
        let text = "\"last, first\";\"a, b, c\";x\n";
        assert_eq!(detect(text, None).delimiter, b';');
    }

    #[test]
    fn semicolon_wins_a_tie() {
        assert_eq!(detect("a;b,c\n", None).delimiter, b';');
    }

    #[test]
    fn sep_line_wins_and_shifts_the_body() {
        let text = "sep=,\r\na;b,c\n";
        let dialect = detect(text, Some(b'|'));
        assert_eq!(dialect.delimiter, b',');
        assert_eq!(dialect.origin, DelimiterOrigin::SepLine);
        assert_eq!(&text[dialect.body_start..], "a;b,c\n");
        assert_eq!(dialect.body_line, 2);
    }

    #[test]
    fn configured_delimiter_is_used_without_sep_line() {
        assert_eq!(detect("a;b\n", Some(b',')).delimiter, b',');
    }

    #[test]
    fn no_candidate_falls_back_to_semicolon() {
        let dialect = detect("justone\n", None);
        assert_eq!(dialect.origin, DelimiterOrigin::Fallback);
        assert_eq!(dialect.delimiter, b';');
    }
}
