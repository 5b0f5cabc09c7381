//! Checking and normalising single values. Pure functions, one per value type.

use std::borrow::Cow;

use chrono::NaiveDate;

use super::columns::{ColumnSpec, ValueType};
use super::problem::quote;
use super::record::{Field, FieldName};

/// Checks a trimmed cell and appends its normalised form to `out`; on error
/// `out` is left as it was.
pub fn normalise_into(
    spec: &ColumnSpec,
    raw: &str,
    dates: &DateFormat,
    out: &mut String,
) -> Result<(), String> {
    if spec.value_type == ValueType::Date && !raw.is_empty() {
        // The hot path of big files: no allocation for dates.
        if let Some(date) = dates.parse(raw) {
            push_iso_date(date, out);
            return Ok(());
        }
    }
    out.push_str(&normalise(spec, raw, dates)?);
    Ok(())
}

fn push_iso_date(date: NaiveDate, out: &mut String) {
    use chrono::Datelike;
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}",
        date.year(),
        date.month(),
        date.day()
    );
}

/// Checks a trimmed cell against its column and returns the normalised value,
/// or a message saying what was expected. Password values never appear in messages.
pub fn normalise<'a>(
    spec: &ColumnSpec,
    raw: &'a str,
    dates: &DateFormat,
) -> Result<Cow<'a, str>, String> {
    let header = &spec.header;
    if raw.is_empty() {
        return if spec.value_required {
            Err(format!("{header} is required and is empty"))
        } else {
            Ok(Cow::Borrowed(raw))
        };
    }
    if let Some(max) = spec.max_chars {
        // Byte length bounds the char count: count chars only when it could matter.
        if raw.len() > max {
            let chars = raw.chars().count();
            if chars > max {
                return Err(format!(
                    "{header} is {chars} characters long, at most {max} are allowed"
                ));
            }
        }
    }
    let shown = || {
        if spec.field == FieldName::Known(Field::Password) {
            "(hidden)".to_string()
        } else {
            quote(raw)
        }
    };
    // Control characters are C0 (< 0x20), DEL, or C1 (0xC2 0x80-0x9F in UTF-8),
    // the bidirectional controls start with 0xE2: a byte scan rules most
    // values out before a char-by-char look.
    let suspect = raw
        .bytes()
        .any(|b| b < 0x20 || b == 0x7F || b == 0xC2 || b == 0xE2);
    let unwanted = suspect
        .then(|| {
            raw.chars()
                .find(|&c| (c.is_control() && !allows_line_breaks(spec, c)) || is_bidi_control(c))
        })
        .flatten();
    if let Some(c) = unwanted {
        let what = if is_bidi_control(c) {
            "the bidirectional control character"
        } else {
            "the control character"
        };
        return Err(format!(
            "{header} {} contains {what} U+{:04X}",
            shown(),
            c as u32
        ));
    }
    let invalid = |expected: &str| format!("{header} {} is not {expected}", shown());
    match spec.value_type {
        ValueType::Text => Ok(Cow::Borrowed(raw)),
        ValueType::Date => dates
            .parse(raw)
            .map(|date| {
                let mut iso = String::with_capacity(10);
                push_iso_date(date, &mut iso);
                Cow::Owned(iso)
            })
            .ok_or_else(|| match dates.no_such_day(raw) {
                Some(why) => format!("{header} {} is not a real date: {why}", shown()),
                None => invalid(&format!("a date in the form {}", dates.human())),
            }),
        ValueType::Flag => match raw {
            "0" | "1" => Ok(Cow::Borrowed(raw)),
            _ => Err(invalid("0 or 1")),
        },
        ValueType::Email => {
            if is_email(raw) {
                Ok(Cow::Borrowed(raw))
            } else {
                Err(invalid("an e-mail address"))
            }
        }
        ValueType::Culture => culture(raw)
            .map(Cow::Owned)
            .ok_or_else(|| invalid("a culture code like fr-FR")),
        ValueType::Float => decimal(raw).ok_or_else(|| invalid("a number")),
        ValueType::Integer => {
            let digits = raw.strip_prefix('-').unwrap_or(raw);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                raw.parse::<i64>()
                    .map(|_| Cow::Borrowed(raw))
                    .map_err(|_| invalid("a whole number in range"))
            } else {
                Err(invalid("a whole number"))
            }
        }
        ValueType::List => list(raw).map_err(|why| format!("{header} {}: {why}", shown())),
        ValueType::Gender => match raw.to_ascii_lowercase().as_str() {
            "m" | "male" => Ok(Cow::Borrowed("M")),
            "f" | "female" => Ok(Cow::Borrowed("F")),
            _ => Err(invalid("M or F")),
        },
        ValueType::GenderDigit => match raw {
            "0" => Ok(Cow::Borrowed("M")),
            "1" => Ok(Cow::Borrowed("F")),
            _ => Err(invalid("0 (male) or 1 (female)")),
        },
        ValueType::EmploymentStatus => match raw {
            "0" | "2" | "3" => Ok(Cow::Borrowed("0")),
            "1" => Ok(Cow::Borrowed("1")),
            _ => Err(invalid("0 (working), 1 (dismissed), 2 or 3 (on leave)")),
        },
    }
}

/// Free text may span lines (an address, a description); identifiers may not.
/// The embeddings, overrides and isolates of Unicode's bidirectional
/// algorithm: they make a value display in another order than it reads
/// (`Dupont\u{202e}gnp.exe` shows as `Dupontexe.png`), in a target's screens
/// as in a terminal. Names never need them; the marks (U+200E, U+200F,
/// U+061C) that right-to-left text may carry are kept.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn allows_line_breaks(spec: &ColumnSpec, c: char) -> bool {
    let identifier = matches!(
        spec.field,
        FieldName::Known(
            Field::ExtId
                | Field::Login
                | Field::OrgExtId
                | Field::ManagerExtId
                | Field::AltManagerExtId
                | Field::ParentExtId
        )
    );
    spec.value_type == ValueType::Text && !identifier && matches!(c, '\n' | '\r' | '\t')
}

/// A pragmatic address check: one `@`, a sensible local part, a dotted domain.
pub fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| {
            tld.chars().count() >= 2 && !tld.bytes().all(|b| b.is_ascii_digit())
        });
    local_ok && domain_ok
}

/// `fr` or `fr-FR` (any case) → `fr` or `fr-FR`.
fn culture(value: &str) -> Option<String> {
    let letters = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic());
    match value.split_once('-') {
        None if letters(value) => Some(value.to_ascii_lowercase()),
        Some((language, region)) if letters(language) && letters(region) => Some(format!(
            "{}-{}",
            language.to_ascii_lowercase(),
            region.to_ascii_uppercase()
        )),
        _ => None,
    }
}

/// `12`, `-3.5`, `12,75` (a French decimal comma) → with a `.` decimal point.
fn decimal(value: &str) -> Option<Cow<'_, str>> {
    let unsigned = value.strip_prefix(['-', '+']).unwrap_or(value);
    let mut separators = 0;
    let well_formed = !unsigned.is_empty()
        && unsigned.bytes().all(|b| {
            if b == b'.' || b == b',' {
                separators += 1;
                true
            } else {
                b.is_ascii_digit()
            }
        })
        && separators <= 1
        && unsigned.bytes().any(|b| b.is_ascii_digit());
    if !well_formed {
        return None;
    }
    if value.contains(',') {
        Some(Cow::Owned(value.replace(',', ".")))
    } else {
        Some(Cow::Borrowed(value))
    }
}

/// `a||b||c`, items trimmed, none empty.
fn list(value: &str) -> Result<Cow<'_, str>, &'static str> {
    let items: Vec<&str> = value.split("||").map(str::trim).collect();
    if items.iter().any(|item| item.is_empty()) {
        return Err("has an empty item in its || list");
    }
    if items.iter().any(|item| item.contains('|')) {
        return Err("has a single | where lists use ||");
    }
    let joined = items.join("||");
    Ok(if joined == value {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(joined)
    })
}

/// A source's `date_format`, read strictly: the text must be exactly what the
/// format would print (`2024/1/5` is not `%Y/%m/%d`).
#[derive(Debug, Clone)]
pub struct DateFormat {
    format: String,
    /// Formats made only of `%Y`, `%m`, `%d` and literal ASCII take a fast path.
    simple: Option<Vec<DatePart>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DatePart {
    Year,
    Month,
    Day,
    Literal(u8),
}

impl DateFormat {
    /// `None` when the format cannot print and read back a calendar date.
    pub fn new(format: &str) -> Option<DateFormat> {
        let sample = NaiveDate::from_ymd_opt(1987, 11, 23)?;
        let mut printed = String::new();
        std::fmt::Write::write_fmt(&mut printed, format_args!("{}", sample.format(format))).ok()?;
        if NaiveDate::parse_from_str(&printed, format).ok()? != sample {
            return None;
        }
        Some(DateFormat {
            format: format.to_string(),
            simple: simple_parts(format),
        })
    }

    /// A format rostersync itself defines (a preset's), known to be sound.
    pub fn preset(format: &'static str) -> DateFormat {
        DateFormat {
            format: format.to_string(),
            simple: simple_parts(format),
        }
    }

    pub fn parse(&self, value: &str) -> Option<NaiveDate> {
        match &self.simple {
            Some(parts) => parse_simple(parts, value.as_bytes()),
            None => {
                let date = NaiveDate::parse_from_str(value, &self.format).ok()?;
                (date.format(&self.format).to_string() == value).then_some(date)
            }
        }
    }

    /// Why a value written in the form is no date: the calendar has no
    /// such month or day (`None` when the form itself is not followed).
    pub fn no_such_day(&self, value: &str) -> Option<String> {
        let (year, month, day) = read_simple(self.simple.as_ref()?, value.as_bytes())?;
        Some(if !(1..=12).contains(&month) {
            format!("there is no month {month:02}")
        } else {
            format!("month {month:02} of {year} has no day {day:02}")
        })
    }

    /// `YYYY/MM/DD` for `%Y/%m/%d`, for messages.
    pub fn human(&self) -> String {
        self.format
            .replace("%Y", "YYYY")
            .replace("%m", "MM")
            .replace("%d", "DD")
    }
}

/// A normalised (`YYYY-MM-DD`) date, read without chrono's format machinery:
/// planning reads two dates per record per target.
pub fn parse_iso_date(value: &str) -> Option<NaiveDate> {
    const ISO: [DatePart; 5] = [
        DatePart::Year,
        DatePart::Literal(b'-'),
        DatePart::Month,
        DatePart::Literal(b'-'),
        DatePart::Day,
    ];
    parse_simple(&ISO, value.as_bytes())
}

fn simple_parts(format: &str) -> Option<Vec<DatePart>> {
    let mut parts = Vec::new();
    let mut bytes = format.bytes();
    while let Some(b) = bytes.next() {
        parts.push(match b {
            b'%' => match bytes.next()? {
                b'Y' => DatePart::Year,
                b'm' => DatePart::Month,
                b'd' => DatePart::Day,
                _ => return None,
            },
            b if b.is_ascii() => DatePart::Literal(b),
            _ => return None,
        });
    }
    Some(parts)
}

fn parse_simple(parts: &[DatePart], text: &[u8]) -> Option<NaiveDate> {
    let (year, month, day) = read_simple(parts, text)?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// Year, month and day as written in the form, whether or not that day exists.
fn read_simple(parts: &[DatePart], mut text: &[u8]) -> Option<(i32, u32, u32)> {
    let (mut year, mut month, mut day) = (None, None, None);
    for part in parts {
        let width = match part {
            DatePart::Literal(b) => {
                let (first, rest) = text.split_first()?;
                if first != b {
                    return None;
                }
                text = rest;
                continue;
            }
            DatePart::Year => 4,
            DatePart::Month | DatePart::Day => 2,
        };
        let digits = text.get(..width)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let number = digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        text = &text[width..];
        match part {
            DatePart::Year => year = Some(number as i32),
            DatePart::Month => month = Some(number),
            _ => day = Some(number),
        }
    }
    if !text.is_empty() {
        return None;
    }
    Some((year?, month?, day?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(header: &'static str, value_type: ValueType) -> ColumnSpec {
        ColumnSpec {
            header: header.into(),
            field: FieldName::Known(Field::Title),
            column_required: false,
            value_required: false,
            max_chars: Some(10),
            value_type,
        }
    }

    fn wbt_dates() -> DateFormat {
        DateFormat::new("%Y/%m/%d").unwrap()
    }

    #[test]
    fn dates_are_strict_and_normalised() {
        let d = wbt_dates();
        let mut s = spec("birth_date", ValueType::Date);
        s.max_chars = None;
        assert_eq!(normalise(&s, "1990/12/31", &d).unwrap(), "1990-12-31");
        for bad in ["31/12/1990", "1990/2/3", "1990/12/31x", "1990-12-31"] {
            let err = normalise(&s, bad, &d).unwrap_err();
            assert!(err.contains("YYYY/MM/DD"), "{bad}: {err}");
        }
        // In the form, but the calendar has no such day: said so.
        let err = normalise(&s, "1990/02/30", &d).unwrap_err();
        assert!(
            err.ends_with("is not a real date: month 02 of 1990 has no day 30"),
            "{err}"
        );
    }

    #[test]
    fn chrono_formats_round_trip_strictly() {
        let d = DateFormat::new("%d %B %Y").unwrap();
        assert!(d.simple.is_none());
        assert_eq!(
            d.parse("05 March 2021"),
            NaiveDate::from_ymd_opt(2021, 3, 5)
        );
        assert_eq!(d.parse("5 March 2021"), None);
        assert!(DateFormat::new("%H:%M").is_none());
    }

    #[test]
    fn preset_formats_are_sound() {
        for format in ["%Y/%m/%d", "%d.%m.%Y", "%Y-%m-%d"] {
            let preset = DateFormat::preset(format);
            assert!(preset.simple.is_some(), "{format}");
            assert!(DateFormat::new(format).is_some(), "{format}");
        }
    }

    #[test]
    fn collaborator_dates() {
        let d = DateFormat::new("%d.%m.%Y").unwrap();
        assert_eq!(d.parse("16.10.1988"), NaiveDate::from_ymd_opt(1988, 10, 16));
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let d = wbt_dates();
        let s = spec("user_lname", ValueType::Text);
        assert!(normalise(&s, "ééééééééé", &d).is_ok());
        let err = normalise(&s, "ééééééééééé", &d).unwrap_err();
        assert_eq!(
            err,
            "user_lname is 11 characters long, at most 10 are allowed"
        );
    }

    #[test]
    fn emails() {
        for good in [
            "a@b.fr",
            "jean.dupont+rh@mairie-lyon.fr",
            "élodie@exemple.fr",
        ] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "a",
            "a@b",
            "@b.fr",
            "a@@b.fr",
            "a b@c.fr",
            "a@-b.fr",
            "a..b@c.fr",
            "a@b.1",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn cultures_flags_numbers_lists() {
        let d = wbt_dates();
        let culture = spec("user_culture", ValueType::Culture);
        assert_eq!(normalise(&culture, "FR-fr", &d).unwrap(), "fr-FR");
        assert!(normalise(&culture, "fra", &d).is_err());
        let flag = spec("user_disable", ValueType::Flag);
        assert_eq!(normalise(&flag, "1", &d).unwrap(), "1");
        assert!(normalise(&flag, "yes", &d).is_err());
        let cost = spec("user_hourly_cost", ValueType::Float);
        assert_eq!(normalise(&cost, "12,5", &d).unwrap(), "12.5");
        for bad in ["1.2.3", "NaN", "inf", "-", "1e5"] {
            assert!(normalise(&cost, bad, &d).is_err(), "{bad}");
        }
        let budget = spec("org_budget", ValueType::Integer);
        assert!(normalise(&budget, "12.5", &d).is_err());
        assert_eq!(normalise(&budget, "-40", &d).unwrap(), "-40");
        let roles = spec("user_roles", ValueType::List);
        assert_eq!(normalise(&roles, "a || b", &d).unwrap(), "a||b");
        assert!(normalise(&roles, "a||||b", &d).is_err());
        assert!(normalise(&roles, "a|b", &d).is_err());
    }

    #[test]
    fn required_and_control_characters() {
        let d = wbt_dates();
        let mut s = spec("user_fname", ValueType::Text);
        s.value_required = true;
        assert_eq!(
            normalise(&s, "", &d).unwrap_err(),
            "user_fname is required and is empty"
        );
        assert!(normalise(&s, "a\u{0}b", &d).is_err());
        assert!(normalise(&s, "a\nb", &d).is_ok());
        s.field = FieldName::Known(Field::Login);
        assert!(normalise(&s, "a\nb", &d).is_err());
    }

    #[test]
    fn bidirectional_overrides_are_refused_and_marks_kept() {
        let d = wbt_dates();
        let mut s = spec("user_lname", ValueType::Text);
        s.max_chars = None;
        assert_eq!(
            normalise(&s, "Dupont\u{202e}gnp.exe", &d).unwrap_err(),
            "user_lname \"Dupont\\u{202e}gnp.exe\" contains the bidirectional control character U+202E"
        );
        for hostile in ["a\u{202a}b", "a\u{202d}b", "\u{2066}a", "a\u{2069}"] {
            assert!(normalise(&s, hostile, &d).is_err(), "{hostile:?}");
        }
        // Right-to-left marks, an em dash, a euro sign (0xE2 too): kept.
        for kept in [
            "\u{5e9}\u{5dc}\u{5d5}\u{5dd}\u{200f}",
            "a\u{200e}b",
            "Jean\u{2014}Paul",
            "5\u{20ac}",
        ] {
            assert!(normalise(&s, kept, &d).is_ok(), "{kept:?}");
        }
    }

    #[test]
    fn passwords_never_appear_in_messages() {
        let d = wbt_dates();
        let mut s = spec("user_password", ValueType::Text);
        s.field = FieldName::Known(Field::Password);
        let err = normalise(&s, "s3cr\u{7}t", &d).unwrap_err();
        assert!(!err.contains("s3cr"), "{err}");
    }
}
