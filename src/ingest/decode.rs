//! Bytes to text: BOM sniffing, strict UTF-8 by default, or a configured
//! legacy encoding. Undecodable bytes are reported by line, never replaced.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8};

use super::problem::Problem;

/// How many bad spots are worth listing before the file is plainly in the wrong encoding.
const MAX_DECODE_PROBLEMS: usize = 20;

/// The configured `encoding` of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingChoice {
    /// A BOM decides; without one, strict UTF-8.
    Auto,
    /// This encoding, unless a BOM says otherwise.
    Fixed(&'static Encoding),
}

impl EncodingChoice {
    /// `auto` or a WHATWG label (`windows-1252`, `iso-8859-15`, `shift_jis`, `utf-16le`...).
    pub fn from_label(label: &str) -> Option<EncodingChoice> {
        if label.eq_ignore_ascii_case("auto") {
            return Some(EncodingChoice::Auto);
        }
        let encoding = Encoding::for_label(label.trim().as_bytes())?;
        // `replacement` and `x-user-defined` decode anything into nonsense.
        if encoding == encoding_rs::REPLACEMENT || encoding == encoding_rs::X_USER_DEFINED {
            return None;
        }
        Some(EncodingChoice::Fixed(encoding))
    }
}

/// The label of the UTF-16 the bytes look like (ASCII text interleaved
/// with NULs), when they have no BOM and are not read as UTF-16 already.
pub fn utf16_without_bom(bytes: &[u8], choice: EncodingChoice) -> Option<&'static str> {
    const SAMPLE: usize = 1024;
    if Encoding::for_bom(bytes).is_some() {
        return None;
    }
    if let EncodingChoice::Fixed(encoding) = choice
        && (encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE)
    {
        return None;
    }
    let sample = &bytes[..bytes.len().min(SAMPLE) & !1];
    let pairs = sample.len() / 2;
    if pairs < 4 {
        return None;
    }
    let nul_at = |parity: usize| {
        sample
            .iter()
            .skip(parity)
            .step_by(2)
            .filter(|&&b| b == 0)
            .count()
    };
    let (even, odd) = (nul_at(0), nul_at(1));
    // Mostly ASCII: one byte of each pair is NUL, the other hardly ever.
    let mostly = |nuls: usize| nuls * 10 >= pairs * 6;
    let hardly = |nuls: usize| nuls * 20 <= pairs;
    if mostly(odd) && hardly(even) {
        Some("utf-16le")
    } else if mostly(even) && hardly(odd) {
        Some("utf-16be")
    } else {
        None
    }
}

/// Lines that read as UTF-8 in a file decoded with a single-byte legacy
/// encoding (`windows-1252`, `iso-8859-15`...): a UTF-8 line pasted into a
/// legacy export, which decodes without error into mojibake (`Ã©` for `é`).
/// The first such line (1-based) and how many there are; `None` when there
/// is none or the encoding is not single-byte (the file came with a BOM, say).
pub fn utf8_lines_in_legacy(bytes: &[u8], encoding: &'static Encoding) -> Option<(u64, u64)> {
    if !encoding.is_single_byte() || bytes.is_ascii() {
        return None;
    }
    let mut first = None;
    let mut count = 0u64;
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        // Some byte above ASCII, and all of them valid UTF-8 sequences.
        if !line.is_ascii() && std::str::from_utf8(line).is_ok() {
            first.get_or_insert(index as u64 + 1);
            count += 1;
        }
    }
    first.map(|line| (line, count))
}

#[derive(Debug)]
pub struct Decoded<'a> {
    pub text: Cow<'a, str>,
    pub encoding: &'static Encoding,
}

pub fn decode(bytes: &[u8], choice: EncodingChoice) -> Result<Decoded<'_>, Vec<Problem>> {
    let (encoding, body) = match Encoding::for_bom(bytes) {
        Some((encoding, bom_len)) => (encoding, &bytes[bom_len..]),
        None => match choice {
            EncodingChoice::Auto => (UTF_8, bytes),
            EncodingChoice::Fixed(encoding) => (encoding, bytes),
        },
    };
    let text = if encoding == UTF_8 {
        decode_utf8(body).map(Cow::Borrowed)?
    } else {
        decode_legacy(body, encoding).map(Cow::Owned)?
    };
    Ok(Decoded { text, encoding })
}

fn decode_utf8(bytes: &[u8]) -> Result<&str, Vec<Problem>> {
    // SIMD validation for the common case; std's error tells where it went wrong.
    if let Ok(text) = simdutf8::basic::from_utf8(bytes) {
        return Ok(text);
    }
    let error = match std::str::from_utf8(bytes) {
        Ok(text) => return Ok(text),
        Err(error) => error,
    };
    const HINT: &str = " (the file is not UTF-8: set this source's encoding, e.g. \"windows-1252\" for a Western Excel export)";
    let mut problems = Vec::new();
    let mut fields = FieldLocator::new(bytes);
    let mut offset = 0;
    let mut next_error = Some(error);
    while let Some(error) = next_error.take() {
        let bad_at = offset + error.valid_up_to();
        let bad_len = error.error_len().unwrap_or(bytes.len() - bad_at);
        let shown: Vec<String> = bytes[bad_at..bad_at + bad_len.min(4)]
            .iter()
            .map(|b| format!("0x{b:02X}"))
            .collect();
        let hint = if problems.is_empty() { HINT } else { "" };
        let at = fields.locate(bad_at);
        let message = format!(
            "bytes {}{} are not valid UTF-8{hint}",
            shown.join(" "),
            at.in_column()
        );
        push_decode_problem(&mut problems, &at, message);
        offset = bad_at + bad_len;
        if problems.len() >= MAX_DECODE_PROBLEMS {
            break;
        }
        next_error = std::str::from_utf8(&bytes[offset..]).err();
    }
    Err(problems)
}

fn decode_legacy(bytes: &[u8], encoding: &'static Encoding) -> Result<String, Vec<Problem>> {
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let capacity = decoder
        .max_utf8_buffer_length_without_replacement(bytes.len())
        .unwrap_or(bytes.len().saturating_mul(3));
    let mut text = String::with_capacity(capacity);
    let mut problems = Vec::new();
    let mut fields = FieldLocator::new(bytes);
    let mut read_total = 0;
    loop {
        let (result, read) =
            decoder.decode_to_string_without_replacement(&bytes[read_total..], &mut text, true);
        read_total += read;
        match result {
            encoding_rs::DecoderResult::InputEmpty => break,
            // Capacity was sized for the worst case; grow and go on if it ever is not.
            encoding_rs::DecoderResult::OutputFull => text.reserve(bytes.len() - read_total + 16),
            encoding_rs::DecoderResult::Malformed(bad_len, after) => {
                let bad_at = read_total.saturating_sub(usize::from(after) + usize::from(bad_len));
                let at = fields.locate(bad_at);
                let message = format!(
                    "{bad_len} byte(s){} cannot be decoded as {}",
                    at.in_column(),
                    encoding.name()
                );
                push_decode_problem(&mut problems, &at, message);
                if problems.len() >= MAX_DECODE_PROBLEMS {
                    break;
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(text)
    } else {
        Err(problems)
    }
}

/// One problem per line: the first bad spot says enough about that line.
fn push_decode_problem(problems: &mut Vec<Problem>, at: &Place, message: String) {
    if problems.last().is_some_and(|last| last.line == at.line) {
        return;
    }
    let mut problem = Problem::file(at.line, at.column, message);
    if problems.len() + 1 == MAX_DECODE_PROBLEMS {
        problem
            .message
            .push_str(" (further decoding errors not listed)");
    }
    problems.push(problem);
}

/// Where a byte is, as every problem says it: its line, and its column —
/// the field (1-based) it is in, with that column's header name.
struct Place {
    line: u64,
    column: u64,
    header: Option<String>,
}

impl Place {
    /// ` in user_lname`, or nothing when the header does not name it.
    fn in_column(&self) -> String {
        self.header
            .as_ref()
            .map_or_else(String::new, |name| format!(" in {name}"))
    }
}

/// Places bytes of a file not decoded yet, by its bytes alone: the
/// delimiter and header names are read from the first line (its ASCII is
/// the same in every encoding a CSV export uses but UTF-16).
struct FieldLocator<'a> {
    bytes: &'a [u8],
    delimiter: u8,
    header: Vec<String>,
    /// Lines counted up to `counted_to`, so that each problem counts on from the last.
    lines_before: u64,
    counted_to: usize,
}

impl<'a> FieldLocator<'a> {
    fn new(bytes: &'a [u8]) -> FieldLocator<'a> {
        let line_of = |from: usize| {
            let rest = bytes.get(from..).unwrap_or_default();
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            (&rest[..end], from + end + 1)
        };
        let (first, after_first) = line_of(0);
        let (delimiter, header) = match first.strip_prefix(b"sep=") {
            // An Excel `sep=;` line: the header is the next one.
            Some(sep) if !sep.is_empty() => (sep[0], line_of(after_first).0),
            _ => (guess_delimiter(first), first),
        };
        let header = header
            .split(|&b| b == delimiter)
            .map(|name| {
                String::from_utf8_lossy(name)
                    .trim_matches(|c: char| c.is_whitespace() || c == '"' || c == '\u{feff}')
                    .to_string()
            })
            .collect();
        FieldLocator {
            bytes,
            delimiter,
            header,
            lines_before: 0,
            counted_to: 0,
        }
    }

    /// Only called with increasing offsets, as decoding goes.
    fn locate(&mut self, at: usize) -> Place {
        let at = at.min(self.bytes.len());
        if at >= self.counted_to {
            self.lines_before += self.bytes[self.counted_to..at]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            self.counted_to = at;
        }
        let line_start = self.bytes[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let mut quoted = false;
        let mut field = 1u64;
        for &b in &self.bytes[line_start..at] {
            match b {
                b'"' => quoted = !quoted,
                b if b == self.delimiter && !quoted => field += 1,
                _ => {}
            }
        }
        let header = usize::try_from(field - 1)
            .ok()
            .and_then(|index| self.header.get(index))
            .filter(|name| plausible_header(name))
            .cloned();
        Place {
            line: self.lines_before + 1,
            column: field,
            header,
        }
    }
}

/// A header name worth quoting in a message: short, printable, decoded
/// (the first line of a binary file is no header).
fn plausible_header(name: &str) -> bool {
    const MAX_CHARS: usize = 64;
    !name.is_empty()
        && name.chars().count() <= MAX_CHARS
        && !name.chars().any(|c| c.is_control() || c == '\u{fffd}')
}

/// The most frequent of `;` `,` tab `|` in a header line (`;` if none).
fn guess_delimiter(line: &[u8]) -> u8 {
    [b';', b',', b'\t', b'|']
        .into_iter()
        .map(|d| (line.iter().filter(|&&b| b == d).count(), d))
        .filter(|(count, _)| *count > 0)
        .max_by_key(|(count, d)| (*count, std::cmp::Reverse(*d)))
        .map_or(b';', |(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_lines_in_a_windows_1252_file_are_found() {
        let windows_1252 = encoding_rs::WINDOWS_1252;
        // "Hervé" in windows-1252 on line 2, in UTF-8 on lines 3 and 4.
        let bytes = b"a;b\nHerv\xE9;1\nHerv\xC3\xA9;2\nJos\xC3\xA9;3\n";
        assert_eq!(utf8_lines_in_legacy(bytes, windows_1252), Some((3, 2)));
        assert_eq!(
            utf8_lines_in_legacy(b"a;b\nHerv\xE9;1\n", windows_1252),
            None
        );
        assert_eq!(utf8_lines_in_legacy(b"a;b\nplain;1\n", windows_1252), None);
        // Not single-byte: nothing to say.
        assert_eq!(utf8_lines_in_legacy(bytes, encoding_rs::SHIFT_JIS), None);
    }

    #[test]
    fn utf8_bom_is_stripped() {
        let decoded = decode(b"\xEF\xBB\xBFa;b\n", EncodingChoice::Auto).unwrap();
        assert_eq!(decoded.text, "a;b\n");
        assert_eq!(decoded.encoding, UTF_8);
    }

    #[test]
    fn bad_utf8_names_line_and_column_and_hints_windows_1252() {
        let problems = decode(b"a;b\nc;d\xE9\n", EncodingChoice::Auto).unwrap_err();
        assert_eq!(problems.len(), 1);
        // COLUMN is the field, as in every other problem, with its header.
        assert_eq!((problems[0].line, problems[0].column), (2, 2));
        assert!(problems[0].message.starts_with("bytes 0xE9 in b are"));
        assert!(problems[0].message.contains("set this source's encoding"));
    }

    #[test]
    fn the_field_of_a_bad_byte_counts_delimiters_outside_quotes_only() {
        let bytes = b"sep=,\nid,name,city\n1,\"Doe, J\",Par\xE9s\n";
        let problems = decode(bytes, EncodingChoice::Auto).unwrap_err();
        assert_eq!((problems[0].line, problems[0].column), (3, 3));
        assert!(
            problems[0].message.starts_with("bytes 0xE9 in city"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_header_of_binary_bytes_is_not_quoted() {
        let problems = decode(b"\x02\xE5x\x01;b\n1;2\n", EncodingChoice::Auto).unwrap_err();
        assert!(
            problems[0].message.starts_with("bytes 0xE5 are not"),
            "{problems:?}"
        );
    }

    #[test]
    fn windows_1252_decodes_accents() {
        let choice = EncodingChoice::from_label("windows-1252").unwrap();
        let decoded = decode(b"Herv\xE9;\x80\n", choice).unwrap();
        assert_eq!(decoded.text, "Hervé;€\n");
    }

    #[test]
    fn iso_8859_15_has_the_euro_sign_at_a4() {
        let choice = EncodingChoice::from_label("iso-8859-15").unwrap();
        assert_eq!(decode(b"\xA4", choice).unwrap().text, "€");
    }

    #[test]
    fn utf16_bom_overrides_the_configured_encoding() {
        let choice = EncodingChoice::from_label("shift_jis").unwrap();
        let decoded = decode(b"\xFF\xFEa\x00;\x00b\x00", choice).unwrap();
        assert_eq!(decoded.text, "a;b");
    }

    #[test]
    fn malformed_shift_jis_names_the_line() {
        let choice = EncodingChoice::from_label("shift_jis").unwrap();
        // 0x82 0xA0 is "あ"; a lone 0x82 before a newline is malformed.
        let problems = decode(b"\x82\xA0\n\x82\n", choice).unwrap_err();
        assert_eq!(problems[0].line, 2);
    }

    #[test]
    fn utf16_without_a_bom_is_recognised_unless_configured() {
        let text = "user_extid;user_lname\nE1;Hervé\n";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let auto = EncodingChoice::Auto;
        assert_eq!(utf16_without_bom(&le, auto), Some("utf-16le"));
        assert_eq!(utf16_without_bom(&be, auto), Some("utf-16be"));
        let cp1252 = EncodingChoice::from_label("windows-1252").unwrap();
        assert_eq!(utf16_without_bom(&le, cp1252), Some("utf-16le"));
        let configured = EncodingChoice::from_label("utf-16le").unwrap();
        assert_eq!(utf16_without_bom(&le, configured), None);
        assert_eq!(decode(&le, configured).unwrap().text, text);
        let mut with_bom = vec![0xFF, 0xFE];
        with_bom.extend_from_slice(&le);
        assert_eq!(utf16_without_bom(&with_bom, auto), None);
        assert_eq!(utf16_without_bom(text.as_bytes(), auto), None);
        assert_eq!(utf16_without_bom(b"a\0", auto), None, "too short to tell");
    }

    #[test]
    fn unknown_labels_are_refused() {
        assert!(EncodingChoice::from_label("klingon").is_none());
        assert!(EncodingChoice::from_label("replacement").is_none());
        assert_eq!(
            EncodingChoice::from_label("AUTO"),
            Some(EncodingChoice::Auto)
        );
    }
}
