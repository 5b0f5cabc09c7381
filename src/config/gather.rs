//! Reads a config while gathering every problem the deserializer finds, not
//! only the first: each unknown key or bad value is noted, blanked out of
//! the text (spaces of the same length, so that every position stays
//! right), and the rest is read again. Three typos take one `check`, not
//! three. A syntax error stops at once: nothing after it can be trusted.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{ConfigProblem, line_col};

/// Enough for any real config; a bound so that a pathological text ends.
const MAX_PROBLEMS: usize = 100;

/// The config read from `text`, once every bad entry is set aside, and the
/// problems of those entries (positions in `text`). `None` when it cannot
/// be read at all (a syntax error, a required key missing).
pub(super) fn deserialize<T: DeserializeOwned>(text: &str) -> (Option<T>, Vec<ConfigProblem>) {
    let mut current = text.to_string();
    let mut problems = Vec::new();
    // Keys blanked so far: a required one then reads as missing, which says nothing new.
    let mut blanked_keys: Vec<String> = Vec::new();
    while problems.len() < MAX_PROBLEMS {
        let error = match toml::from_str::<T>(&current) {
            Ok(config) => return (Some(config), problems),
            Err(error) => error,
        };
        let message = error.message().trim().to_string();
        let missing_blanked = blanked_keys
            .iter()
            .any(|key| message.contains(&format!("missing field `{key}`")));
        if !missing_blanked {
            let (line, column) = error
                .span()
                .map_or((1, 1), |span| line_col(text, span.start));
            problems.push(ConfigProblem {
                line,
                column,
                message,
            });
        }
        let Some(at) = error.span().map(|span| span.start) else {
            break;
        };
        let Ok(document) = DeTable::parse(&current) else {
            break; // a syntax error: reported above
        };
        let Some(entry) = entry_at(&current, document.get_ref(), at) else {
            break;
        };
        if current[entry.range.clone()].trim().is_empty() || missing_blanked {
            break; // no progress: stop rather than loop
        }
        blanked_keys.push(entry.key);
        blank(&mut current, entry.range);
    }
    (None, problems)
}

/// A key and the text it spans with its value.
struct Entry {
    key: String,
    range: Range<usize>,
}

/// The innermost entry of `table` at byte `at`: a `key = value` (its key
/// up to the end of its value), or a `[table]` header with its body.
fn entry_at(text: &str, table: &DeTable<'_>, at: usize) -> Option<Entry> {
    let mut best: Option<Entry> = None;
    let mut consider = |entry: Entry| {
        if entry.range.contains(&at)
            && best
                .as_ref()
                .is_none_or(|b| entry.range.len() < b.range.len())
        {
            best = Some(entry);
        }
    };
    walk(text, table, &mut consider);
    best
}

fn walk(text: &str, table: &DeTable<'_>, consider: &mut dyn FnMut(Entry)) {
    for (key, value) in table {
        let name = key.get_ref().to_string();
        match value.get_ref() {
            DeValue::Table(inner) if !inline(text, value) => {
                consider(header_entry(text, name, key.span()));
                walk(text, inner, consider);
            }
            DeValue::Array(items) if is_array_of_tables(text, items) => {
                for item in items {
                    if let DeValue::Table(inner) = item.get_ref() {
                        walk(text, inner, consider);
                    }
                }
                consider(header_entry(text, name, key.span()));
            }
            _ => consider(Entry {
                key: name,
                range: key.span().start..value.span().end.max(key.span().end),
            }),
        }
    }
}

fn inline(text: &str, value: &Spanned<DeValue<'_>>) -> bool {
    text.get(value.span().start..)
        .is_some_and(|rest| rest.starts_with('{'))
}

fn is_array_of_tables(text: &str, items: &[Spanned<DeValue<'_>>]) -> bool {
    !items.is_empty()
        && items
            .iter()
            .all(|item| matches!(item.get_ref(), DeValue::Table(_)) && !inline(text, item))
}

/// A `[name]` header: from its line to the next header.
fn header_entry(text: &str, key: String, span: Range<usize>) -> Entry {
    let start = text[..span.start.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let mut end = text.len();
    let mut offset = text[start..]
        .find('\n')
        .map_or(text.len(), |i| start + i + 1);
    while offset < text.len() {
        if text[offset..]
            .trim_start_matches([' ', '\t'])
            .starts_with('[')
        {
            end = offset;
            break;
        }
        offset = text[offset..]
            .find('\n')
            .map_or(text.len(), |i| offset + i + 1);
    }
    Entry {
        key,
        range: start..end,
    }
}

/// Spaces over `range`, line breaks kept.
fn blank(text: &mut String, range: Range<usize>) {
    let blanked: String = text[range.clone()]
        .chars()
        .map(|c| {
            if c == '\n' || c == '\r' {
                c.to_string()
            } else {
                " ".repeat(c.len_utf8())
            }
        })
        .collect();
    text.replace_range(range, &blanked);
}

#[cfg(test)]
mod tests {
    use super::*;

    // The fields are there to be read from the text, not by the tests.
    #[allow(dead_code)]
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        name: String,
        #[serde(default)]
        count: u32,
        #[serde(default)]
        section: Option<Section>,
        #[serde(default)]
        item: Vec<Section>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        #[serde(default)]
        size: u32,
    }

    fn lines(text: &str) -> Vec<(u64, String)> {
        let (_, problems) = deserialize::<Doc>(text);
        let mut found: Vec<(u64, String)> = problems
            .into_iter()
            .map(|p| (p.line, p.message.lines().next().unwrap_or("").to_string()))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn every_unknown_key_and_bad_value_is_named() {
        let text = "name = \"x\"\nnmae = 1\ncount = \"many\"\n\n[section]\nsise = 2\nsize = \"big\"\n\n[[item]]\nsize = 1\n[[item]]\nsiz = [\n 1,\n 2,\n]\n";
        let found = lines(text);
        let at: Vec<u64> = found.iter().map(|(line, _)| *line).collect();
        assert_eq!(at, vec![2, 3, 6, 7, 12], "{found:?}");
        assert!(found[0].1.contains("nmae"), "{found:?}");
        assert!(found[4].1.contains("siz"), "{found:?}");
    }

    #[test]
    fn a_good_text_reads_and_a_misspelt_table_is_one_problem() {
        let (doc, problems) = deserialize::<Doc>("name = \"x\"\n[section]\nsize = 3\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(doc.unwrap().section.unwrap().size, 3);
        let found = lines("name = \"x\"\n[sectoin]\nsize = 3\nother = 1\n[section]\nsize = 1\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 2);
    }

    #[test]
    fn a_syntax_error_is_the_only_problem() {
        let found = lines("name = \"x\"\nbad = = 1\nnmae = 2\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 2);
    }

    #[test]
    fn a_required_key_with_a_bad_value_is_named_once() {
        let found = lines("name = 3\n");
        assert_eq!(found.len(), 1, "{found:?}");
    }
}
