//! The files waiting in a source's `held/` for `approve`, for `status`: read
//! from the folder each time, so that they stay listed across restarts and
//! whatever the source took after them, until someone approves or moves
//! them.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::lifecycle;
use super::status::HeldFile;

/// The most of a `.plan.txt` read for its rule: the rule is on its second
/// line, and a plan can be long.
const PLAN_HEAD_BYTES: u64 = 16 * 1024;

/// The held files of a folder, oldest first; none when it cannot be read
/// (it does not exist until a first file is held).
pub(super) fn list(held: &Path) -> Vec<HeldFile> {
    let Ok(entries) = std::fs::read_dir(held) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| is_held_file(name))
        .collect();
    // Timestamped names sort by time.
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let plan = held.join(format!("{name}{}", lifecycle::PLAN_TEXT_SUFFIX));
            HeldFile {
                since: lifecycle::stamp_of(&name).map(super::rfc3339),
                rule: rule_of(&plan),
                file: crate::escape::text(&name).to_string(),
            }
        })
        .collect()
}

/// A held drop, not one of its side files or a temporary file.
fn is_held_file(name: &str) -> bool {
    !name.starts_with('.')
        && ![lifecycle::PLAN_TEXT_SUFFIX, lifecycle::PLAN_JSON_SUFFIX]
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

/// The rule (and its figures) a `.plan.txt` says held the file.
fn rule_of(plan: &Path) -> Option<String> {
    let file = std::fs::File::open(plan).ok()?;
    let head = BufReader::new(file.take(PLAN_HEAD_BYTES));
    head.lines().map_while(Result::ok).find_map(|line| {
        line.strip_prefix("HELD by safety rule ")
            .map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_files_are_listed_oldest_first_with_their_rule() {
        let dir = tempfile::tempdir().unwrap();
        let older = "20261121T093012.345Z_users.csv";
        let newer = "20261122T080000.000Z_users.csv";
        for name in [newer, older] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::fs::write(
            dir.path().join(format!("{older}.plan.txt")),
            "plan for users.csv (source hr, 10 rows)\nHELD by safety rule max_block_percent: 40 of 100\n",
        )
        .unwrap();
        std::fs::write(dir.path().join(format!("{older}.plan.json")), "{}").unwrap();
        std::fs::write(dir.path().join(".x.tmp"), "").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();

        let held = list(dir.path());
        assert_eq!(
            held,
            vec![
                HeldFile {
                    file: older.into(),
                    since: Some("2026-11-21T09:30:12Z".into()),
                    rule: Some("max_block_percent: 40 of 100".into()),
                },
                HeldFile {
                    file: newer.into(),
                    since: Some("2026-11-22T08:00:00Z".into()),
                    rule: None,
                },
            ]
        );
        assert!(list(&dir.path().join("missing")).is_empty());
    }
}
