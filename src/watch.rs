//! Which files in an inbox are HR drops, and when they are complete.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// Sub-folders rostersync keeps in each inbox.
pub const SUBFOLDERS: [&str; 3] = ["archive", "rejected", "held"];

/// Marker files that say `NAME` is complete (`ready = "marker"`).
pub const MARKER_SUFFIXES: [&str; 2] = [".done", ".ok"];

/// Hidden files, `*.tmp`, `*.part`, Office lock files (`~$*`) and markers are never taken.
pub fn is_candidate(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !(name.starts_with('.')
        || name.starts_with("~$")
        || lower.ends_with(".tmp")
        || lower.ends_with(".part")
        || MARKER_SUFFIXES.iter().any(|suffix| lower.ends_with(suffix)))
}

/// `ready = "stable"`: unchanged for `settle`, judged from its last modification.
pub fn settled(modified: SystemTime, now: SystemTime, settle: Duration) -> bool {
    now.duration_since(modified).is_ok_and(|age| age >= settle)
}

/// `ready = "marker"`: `NAME.done` or `NAME.ok` exists beside it.
pub fn has_marker(file: &Path) -> bool {
    MARKER_SUFFIXES.iter().any(|suffix| {
        let mut marker = file.as_os_str().to_owned();
        marker.push(suffix);
        Path::new(&marker).exists()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_temporary_hidden_and_marker_files() {
        for name in [
            ".users.csv",
            "users.csv.tmp",
            "users.CSV.PART",
            "~$users.xlsx",
            "users.csv.done",
            "users.csv.ok",
        ] {
            assert!(!is_candidate(name), "{name}");
        }
        for name in ["users.csv", "orgs_2026-11-21.csv", "export.txt"] {
            assert!(is_candidate(name), "{name}");
        }
    }

    #[test]
    fn settle_counts_from_the_last_change() {
        let now = SystemTime::now();
        let settle = Duration::from_secs(2);
        assert!(settled(now - Duration::from_secs(3), now, settle));
        assert!(!settled(now - Duration::from_secs(1), now, settle));
        // A clock that went backwards never makes a file ready early.
        assert!(!settled(now + Duration::from_secs(5), now, settle));
    }
}
