//! `config.example.toml` documents every key with its default, and every
//! example it shows (commented out) is a valid config.

use std::path::Path;

use assert_cmd::Command;
use rostersync::config::{self, CheckLevel, Config};

fn example_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"))
        .unwrap()
}

/// The keys serde accepts in a section, read from its "unknown field"
/// message (`expected one of `a`, `b`...`), so a key added to the schema
/// shows up here without anyone listing it.
fn schema_keys(section: &str) -> Vec<String> {
    let text = format!("{section}\nzz_not_a_key = 1\n");
    let problems = config::parse(&text, Path::new("."), CheckLevel::SourcesOnly).unwrap_err();
    let message = &problems
        .iter()
        .find(|p| p.message.contains("unknown field"))
        .unwrap_or_else(|| panic!("{section}: {problems:?}"))
        .message;
    let (_, expected) = message
        .split_once("expected")
        .unwrap_or_else(|| panic!("{section}: {message}"));
    let keys: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(keys.len() >= 2, "{section}: {message}");
    keys
}

/// Is `key` shown as set (`key = `, commented out or not), or as its table?
fn documents(text: &str, key: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim_start_matches('#').trim_start();
        line.starts_with(&format!("{key} ="))
            || line.contains(&format!(" {key} = "))
            || line.starts_with(&format!("[source.{key}]"))
            || line.starts_with(&format!("[target.{key}]"))
    })
}

#[test]
fn every_key_of_the_schema_is_in_the_example() {
    let text = example_text();
    let mut missing = Vec::new();
    for section in [
        "[daemon]",
        "[safety]",
        "[[source]]",
        "[[target]]",
        "[[target]]\nretry = { zz_not_a_key = 1 }\n#",
        "[[notify]]",
    ] {
        for key in schema_keys(section) {
            if !documents(&text, &key) {
                missing.push(format!("{} {key}", section.lines().next().unwrap()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "config.example.toml does not show: {missing:?}"
    );
}

#[test]
fn the_values_shown_are_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let example: Config = config::parse(&example_text(), base, CheckLevel::SourcesOnly).unwrap();
    let minimal: Config = config::parse(
        "[[source]]\nname = \"s\"\nkind = \"orgs\"\ninbox = \"in\"\ntargets = [\"t\"]\n\
         [[target]]\nname = \"t\"\nkind = \"wbt-file\"\ndir = \"out\"\n",
        base,
        CheckLevel::SourcesOnly,
    )
    .unwrap();

    let (d, m) = (&example.daemon, &minimal.daemon);
    assert_eq!(
        (d.log_format, d.log_keep),
        (m.log_format, m.log_keep),
        "[daemon]"
    );
    let (s, m) = (&example.safety, &minimal.safety);
    assert_eq!(
        (
            *s.max_block_percent.get_ref(),
            s.max_block_count,
            *s.max_shrink_percent.get_ref(),
            s.min_rows
        ),
        (
            *m.max_block_percent.get_ref(),
            m.max_block_count,
            *m.max_shrink_percent.get_ref(),
            m.min_rows
        ),
        "[safety]"
    );
    // The first source spells out every key with its default.
    let (s, m) = (&example.sources[0], &minimal.sources[0]);
    assert_eq!(
        format!(
            "{:?}",
            (
                s.mode,
                s.key.get_ref(),
                s.max_invalid_rows,
                s.format.get_ref(),
                s.create_disabled,
                s.ready,
                s.settle,
                s.poll
            )
        ),
        format!(
            "{:?}",
            (
                m.mode,
                m.key.get_ref(),
                m.max_invalid_rows,
                m.format.get_ref(),
                m.create_disabled,
                m.ready,
                m.settle,
                m.poll
            )
        ),
        "[[source]] hr-orgs"
    );
    assert_eq!(
        format!("{:?}", s.spec().unwrap()),
        format!("{:?}", m.spec().unwrap()),
        "[[source]] hr-orgs reads files as the defaults do (encoding, delimiter, dates)"
    );
    let (t, m) = (&example.targets[0], &minimal.targets[0]);
    assert_eq!(
        format!(
            "{:?}",
            (
                t.batch_size.get_ref(),
                t.concurrency.get_ref(),
                &t.rate_per_sec,
                t.timeout,
                &t.retry
            )
        ),
        format!(
            "{:?}",
            (
                m.batch_size.get_ref(),
                m.concurrency.get_ref(),
                &m.rate_per_sec,
                m.timeout,
                &m.retry
            )
        ),
        "[[target]] wbt"
    );
}

/// A commented-out line that is TOML (`# key = value`, `# [table]`), not prose.
fn is_commented_toml(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("# ")?;
    if rest.starts_with('[') {
        return Some(rest);
    }
    let (key, _) = rest.split_once(" = ")?;
    let key = key.trim_end();
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    let quoted = key.len() >= 2 && key.starts_with('"') && key.ends_with('"');
    (bare || quoted).then_some(rest)
}

#[test]
fn the_example_and_all_its_commented_examples_pass_check() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let text = example_text();

    // As shipped: the demo, its inboxes there (a missing one is a warning).
    std::fs::write(root.join("config.toml"), &text).unwrap();
    for line in text.lines() {
        if let Some(inbox) = line
            .strip_prefix("inbox = \"")
            .and_then(|rest| rest.split('"').next())
        {
            std::fs::create_dir_all(root.join(inbox)).unwrap();
        }
    }
    Command::cargo_bin("rostersync")
        .unwrap()
        .args(["check", "-c"])
        .arg(root.join("config.toml"))
        .assert()
        .success()
        .stdout("ok\n");

    // Every commented example switched on, with its absolute paths moved
    // into the temp folder.
    let uncommented: String = text
        .lines()
        .map(|line| is_commented_toml(line).unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("/srv/rostersync/", &format!("{}/srv/", root.display()))
        .replace("/etc/rostersync/", &format!("{}/etc/", root.display()));
    for kind in [
        "kind = \"collaborator\"",
        "kind = \"maarch\"",
        "kind = \"gestimum\"",
        "kind = \"pleasanter\"",
        "kind = \"scim\"",
        "format = \"custom\"",
        "[source.columns]",
        "ca_file =",
        "date_format =",
        "kind = \"webhook\"",
        "kind = \"email\"",
        "metrics =",
    ] {
        assert!(
            uncommented.lines().any(|l| l.starts_with(kind)),
            "no example with {kind}"
        );
    }
    std::fs::create_dir_all(root.join("etc")).unwrap();
    // check reads it: a certificate.
    let ca = rcgen::generate_simple_self_signed(vec!["ca.example".to_string()]).unwrap();
    std::fs::write(root.join("etc/private-ca.pem"), ca.cert.pem()).unwrap();
    std::fs::write(root.join("all.toml"), &uncommented).unwrap();
    let output = Command::cargo_bin("rostersync")
        .unwrap()
        .args(["check", "-c"])
        .arg(root.join("all.toml"))
        .env("ROSTERSYNC_IDP_TOKEN", "t")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}\n--- the config:\n{uncommented}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
