//! The man pages the package ships (examples/gen_assets/man.rs, read here
//! as a module): each page's footer names the version, its DESCRIPTION is
//! more than its NAME line, each has EXIT STATUS, `rostersync-run(1)` tells
//! the signals and the logs, and groff reads them without a warning.

#[path = "../examples/gen_assets/man.rs"]
mod man;

use std::collections::BTreeMap;
use std::process::Command;

/// Each page's name and text.
fn pages() -> (tempfile::TempDir, BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let paths = man::write_pages(dir.path()).unwrap();
    let pages = paths
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(p).unwrap())
        })
        .collect();
    (dir, pages)
}

/// The text of a section, up to the next `.SH`, its roff lines without
/// the `.ie`/`.el` preamble clap_mangen repeats.
fn section(page: &str, heading: &str) -> Option<String> {
    let start = page.find(&format!(".SH {heading}\n"))?;
    let body = &page[start..];
    let body = &body[body.find('\n')? + 1..];
    let end = body.find(".SH ").unwrap_or(body.len());
    Some(
        body[..end]
            .lines()
            .filter(|l| !l.starts_with(".ie ") && !l.starts_with(".el "))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

#[test]
fn every_page_has_its_version_a_description_and_its_exit_status() {
    let (_dir, pages) = pages();
    assert!(pages.contains_key("rostersync.1"));
    assert!(pages.contains_key("rostersync-run.1"));
    assert_eq!(pages.len(), 12, "{:?}", pages.keys());
    for (name, page) in &pages {
        let title = name.trim_end_matches(".1");
        // .TH title section date source manual: the version is the source.
        assert_eq!(
            page.lines().next().unwrap(),
            format!(
                ".TH {title} 1 \"\" \"rostersync {}\" \"rostersync manual\"",
                env!("CARGO_PKG_VERSION")
            ),
            "{name}"
        );
        let name_line = section(page, "NAME").unwrap();
        let summary = name_line.split_once(" \\- ").unwrap().1.trim();
        let description = section(page, "DESCRIPTION").unwrap();
        let flat = description.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            !flat.is_empty() && !flat.contains(summary),
            "{name}: the DESCRIPTION repeats the NAME:\n{description}"
        );
        let exit =
            section(page, "\"EXIT STATUS\"").unwrap_or_else(|| panic!("{name} has no EXIT STATUS"));
        assert!(exit.contains("\\fB0\\fR"), "{name}: {exit}");
        assert!(section(page, "\"SEE ALSO\"").is_some(), "{name}");
    }
}

#[test]
fn the_daemon_page_tells_the_signals_and_the_logs() {
    let (_dir, pages) = pages();
    let run = &pages["rostersync-run.1"];
    let signals = section(run, "SIGNALS").expect("rostersync-run(1) has no SIGNALS");
    for word in [
        "SIGTERM",
        "SIGINT",
        "SIGHUP",
        "grace",
        "ExecReload=",
        "restart",
    ] {
        assert!(signals.contains(word), "SIGNALS lacks {word}:\n{signals}");
    }
    let logs = section(run, "LOGS").expect("rostersync-run(1) has no LOGS");
    for word in [
        "rostersync.YYYY\\-MM\\-DD.log",
        "JOURNAL_STREAM",
        "ROSTERSYNC_LOG",
        "\\fB<3>\\fR",
        "journalctl",
        "log_format",
    ] {
        assert!(logs.contains(word), "LOGS lacks {word}:\n{logs}");
    }
    let environment = section(run, "ENVIRONMENT").unwrap();
    for word in ["ROSTERSYNC_LOG", "JOURNAL_STREAM", "CREDENTIALS_DIRECTORY"] {
        assert!(environment.contains(word), "{environment}");
    }
}

#[test]
fn groff_reads_every_page_without_a_warning() {
    if Command::new("groff").arg("--version").output().is_err() {
        println!("SKIPPED: groff is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for page in man::write_pages(dir.path()).unwrap() {
        let out = Command::new("groff")
            .args(["-man", "-ww", "-z", "-Tutf8"])
            .arg(&page)
            .output()
            .unwrap();
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.trim().is_empty(),
            "{}: {warnings}",
            page.display()
        );
    }
}
