//! `rostersync check` on real files: "ok", or every problem located by line and column.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;

fn check(config: &Path) -> (i32, String) {
    let output = Command::cargo_bin("rostersync")
        .unwrap()
        .env_remove("ROSTERSYNC_CONFIG")
        .args(["check", "-c"])
        .arg(config)
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

/// The config, with BASE's inbox folder made (a missing inbox is a warning).
fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("inbox/users")).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const BASE: &str = r#"
[daemon]
state_dir = "state"
log_dir = "log"

[[source]]
name = "hr-users"
kind = "users"
inbox = "inbox/users"
targets = ["wbt"]

[[target]]
name = "wbt"
kind = "wbt-file"
dir = "out"
"#;

#[test]
fn the_example_config_is_ok() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    assert_eq!(check(&example), (0, "ok\n".to_string()));
}

#[test]
fn a_minimal_config_is_ok_and_relative_paths_follow_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), BASE);
    assert_eq!(check(&path), (0, "ok\n".to_string()));
    // From another working directory, the inbox is still beside the config.
    let config = rostersync::config::load(&path, rostersync::config::CheckLevel::Full).unwrap();
    assert_eq!(
        config.sources[0].inbox.get_ref(),
        &dir.path().join("inbox/users")
    );
}

#[test]
fn unknown_keys_are_errors_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let text = BASE.replace("kind = \"users\"", "kind = \"users\"\nmood = \"full\"");
    let path = write_config(dir.path(), &text);
    let (code, output) = check(&path);
    assert_eq!(code, 2);
    let expected_prefix = format!("{}:9:1: unknown field `mood`", path.display());
    assert!(output.starts_with(&expected_prefix), "{output}");
}

#[test]
fn a_secret_written_inline_is_refused_without_being_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{BASE}\n[[target]]\nname = \"lms\"\nkind = \"collaborator\"\nurl = \"https://lms.example.org\"\ntoken = \"s3cr3t-t0ken\"\n"
    );
    let (code, output) = check(&write_config(dir.path(), &text));
    assert_eq!(code, 2);
    assert!(output.contains("unknown field `token`"), "{output}");
    assert!(!output.contains("s3cr3t"), "{output}");
}

#[test]
fn bad_durations_say_what_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let text = BASE.replace(
        "targets = [\"wbt\"]",
        "targets = [\"wbt\"]\nsettle = \"soon\"",
    );
    let (code, output) = check(&write_config(dir.path(), &text));
    assert_eq!(code, 2);
    assert!(
        output.contains(":11:10: \"soon\" is not a duration like \"2s\""),
        "{output}"
    );
}

#[test]
fn every_semantic_problem_is_listed_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "abc\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = format!(
        r##"
[safety]
max_block_percent = 150.0

[[source]]
name = "hr"
kind = "users"
inbox = "inbox/a"
encoding = "klingon"
delimiter = "#"
targets = ["wbt", "ghost"]

[[source]]
name = "hr"
kind = "orgs"
inbox = "inbox/a"
key = "login"
format = "custom"
targets = ["wbt"]

[[target]]
name = "wbt"
kind = "wbt-file"

[[target]]
name = "lms"
kind = "collaborator"
url = "ftp://lms.example.org"
token_file = "{}"
batch_size = 0
"##,
        token.display()
    );
    let path = write_config(dir.path(), &text);
    let (code, output) = check(&path);
    assert_eq!(code, 2);
    let p = path.display().to_string();
    let lines: Vec<String> = output.lines().map(|l| l.replacen(&p, "F", 1)).collect();
    let expected = [
        "F:3:21: safety.max_block_percent is 150; it is a percentage, 0 to 100",
        "F:14:8: source name \"hr\" is used twice",
        "F:11:19: source \"hr\" names target \"ghost\", which is not defined",
        "F:9:12: encoding \"klingon\" is not known; use auto, utf-8, windows-1252, iso-8859-15, shift_jis, utf-16le or utf-16be",
        "F:10:13: delimiter \"#\" is not auto, \";\", \",\", \"|\" or \"tab\"",
        "F:17:7: organisations are keyed by ext_id; key = \"login\" is for users",
        "F:18:10: format = \"custom\" needs a [source.columns] table",
        "F:16:9: inbox is also the inbox of source \"hr\": each source needs its own",
        "F:22:8: target \"wbt\" (wbt-file) needs dir",
        "F:28:7: url \"ftp://lms.example.org\" must be http:// or https://",
    ];
    for line in expected {
        assert!(
            lines.iter().any(|l| l == line),
            "missing {line:?} in:\n{output}"
        );
    }
    // Listed in file order, as an editor would walk them.
    let numbers: Vec<u64> = lines
        .iter()
        .map(|l| l.split(':').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] <= w[1]), "{output}");
    assert!(
        lines.iter().any(|l| l.starts_with("F:29:14: token_file")
            && l.ends_with("is readable by others (mode 644): chmod o-rwx it")),
        "{output}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "F:30:14: batch_size must be at least 1"),
        "{output}"
    );
}

#[test]
fn a_missing_config_file_is_a_config_problem_naming_it_once() {
    let output = Command::cargo_bin("rostersync")
        .unwrap()
        .args(["check", "-c", "/nonexistent/rostersync.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        "rostersync: cannot read config /nonexistent/rostersync.toml: No such file or directory (os error 2)\n"
    );
}

#[test]
fn three_unknown_keys_and_two_bad_values_are_all_named_in_one_check() {
    let dir = tempfile::tempdir().unwrap();
    let text = BASE
        .replace("log_dir = \"log\"", "log_dir = \"log\"\nrescann = \"5s\"")
        .replace(
            "kind = \"users\"",
            "kind = \"users\"\nmood = \"full\"\nsettle = \"soon\"",
        )
        .replace(
            "dir = \"out\"",
            "dir = \"out\"\ndirr = \"out2\"\nbatch_size = \"ten\"",
        );
    let path = write_config(dir.path(), &text);
    let (code, output) = check(&path);
    assert_eq!(code, 2, "{output}");
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 5, "{output}");
    for (line, what) in [
        (5, "unknown field `rescann`"),
        (10, "unknown field `mood`"),
        (11, "\"soon\" is not a duration"),
        (19, "unknown field `dirr`"),
        (20, "invalid type: string \"ten\""),
    ] {
        assert!(
            output.contains(&format!("{}:{line}:", path.display()))
                && lines.iter().any(|l| l.contains(what)),
            "line {line}, {what}:\n{output}"
        );
    }
}

#[test]
fn the_config_is_found_through_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), BASE);
    let output = Command::cargo_bin("rostersync")
        .unwrap()
        .env("ROSTERSYNC_CONFIG", &path)
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "ok\n");
}

#[test]
fn daemon_grace_and_rescan_are_durations_with_defaults_and_rescan_is_above_zero() {
    let dir = tempfile::tempdir().unwrap();
    let load = |text: &str| {
        let path = write_config(dir.path(), text);
        rostersync::config::load(&path, rostersync::config::CheckLevel::Full)
    };
    let defaults = load(BASE).unwrap();
    assert_eq!(defaults.daemon.grace.0, Duration::from_secs(5));
    assert_eq!(defaults.daemon.rescan.get_ref().0, Duration::from_secs(10));
    let set = BASE.replace(
        "log_dir = \"log\"",
        "log_dir = \"log\"\ngrace = \"1s\"\nrescan = \"250ms\"",
    );
    let config = load(&set).unwrap();
    assert_eq!(config.daemon.grace.0, Duration::from_secs(1));
    assert_eq!(config.daemon.rescan.get_ref().0, Duration::from_millis(250));
    assert_eq!(
        check(&write_config(dir.path(), &set)),
        (0, "ok\n".to_string())
    );

    let zero = BASE.replace("log_dir = \"log\"", "log_dir = \"log\"\nrescan = \"0s\"");
    let (code, output) = check(&write_config(dir.path(), &zero));
    assert_eq!(code, 2);
    assert!(
        output.contains(":5:10: daemon.rescan must be above 0"),
        "{output}"
    );
    let bad = BASE.replace("log_dir = \"log\"", "log_dir = \"log\"\ngrace = \"soon\"");
    let (code, output) = check(&write_config(dir.path(), &bad));
    assert_eq!(code, 2);
    assert!(
        output.contains(":5:9: \"soon\" is not a duration"),
        "{output}"
    );
    let unknown = BASE.replace("log_dir = \"log\"", "log_dir = \"log\"\nrescn = \"1s\"");
    let (code, output) = check(&write_config(dir.path(), &unknown));
    assert_eq!(code, 2);
    assert!(output.contains(":5:1: unknown field `rescn`"), "{output}");
}

/// Only the kinds that write CSV take `neutralise_formulas`; it is on
/// unless set to false.
#[test]
fn neutralise_formulas_is_for_the_kinds_that_write_csv() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{BASE}neutralise_formulas = false\n\n[[target]]\nname = \"lms\"\nkind = \"collaborator\"\n\
         url = \"https://lms.example.org\"\ntoken_env = \"PATH\"\nneutralise_formulas = true\n"
    );
    let path = write_config(dir.path(), &text);
    let (code, output) = check(&path);
    assert_eq!(code, 2, "{output}");
    assert!(
        output.contains(
            "neutralise_formulas is for gestimum, pleasanter and wbt-file targets; collaborator takes none"
        ),
        "{output}"
    );
    assert_eq!(output.lines().count(), 1, "{output}");
    let config = rostersync::config::load(
        &write_config(dir.path(), BASE),
        rostersync::config::CheckLevel::Full,
    )
    .unwrap();
    assert_eq!(
        config.targets[0].formulas(),
        rostersync::csv_safe::Formulas::Neutralise
    );
}

/// `match` names fields the kind can find accounts by, each once; kinds
/// that upsert by their own key have no accounts to look for.
#[test]
fn match_takes_the_fields_a_kind_finds_accounts_by_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"{BASE}
[[target]]
name = "lms"
kind = "collaborator"
url = "https://lms.example.org"
token_env = "HOME"
match = ["login"]

[[target]]
name = "idp"
kind = "scim"
url = "https://idp.example.org/scim/v2"
token_env = "HOME"
match = ["login", "mail", "login", "email"]
fields = {{ "emails.work" = "" }}

[[target]]
name = "wiki"
kind = "pleasanter"
url = "https://wiki.example.org"
token_env = "HOME"
match = ["email"]
"#
    );
    let path = write_config(dir.path(), &text);
    let (code, output) = check(&path);
    assert_eq!(code, 2, "{output}");
    let p = path.display().to_string();
    let lines: Vec<String> = output.lines().map(|l| l.replacen(&p, "F", 1)).collect();
    assert_eq!(
        lines,
        [
            "F:22:9: match does not apply to collaborator targets: they create or update the \
             account that holds the record's own key, so there is no account to look for \
             (match is for maarch, pleasanter, scim targets)",
            "F:29:19: match: \"mail\" is not a canonical field; scim targets find accounts by \
             ext_id, login, email",
            "F:29:27: match: login is listed twice",
            "F:29:36: match: email is not mapped for this target ([target.fields]), so accounts cannot be found by it",
            "F:37:10: match: pleasanter targets cannot find accounts by email, only by ext_id, login",
        ],
        "{output}"
    );
}

#[test]
fn an_inbox_that_does_not_exist_yet_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let text = BASE.replace("inbox/users", "inbox/usres");
    let path = write_config(dir.path(), &text);
    let (code, output) = check(&path);
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        output,
        format!(
            "{}:9:9: warning: inbox {} does not exist yet: the daemon creates it when it starts, but HR must drop its files there; is the path right?\nok\n",
            path.display(),
            dir.path().join("inbox/usres").display()
        )
    );
}

#[test]
fn a_credential_over_plain_http_is_refused_but_on_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let target = |url: &str| {
        format!(
            "{BASE}\n[[target]]\nname = \"lms\"\nkind = \"collaborator\"\nurl = \"{url}\"\ntoken_env = \"LMS_TOKEN\"\n"
        )
    };
    let checked = |url: &str| {
        let path = write_config(dir.path(), &target(url));
        let output = Command::cargo_bin("rostersync")
            .unwrap()
            .env("LMS_TOKEN", "t0ken")
            .args(["check", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        (
            output.status.code().unwrap(),
            String::from_utf8(output.stdout).unwrap(),
        )
    };
    let (code, output) = checked("http://lms.example.org/api");
    assert_eq!(code, 2, "{output}");
    assert!(
        output.contains(
            "is plain http: the target's credentials would cross the network unencrypted"
        ),
        "{output}"
    );
    for url in [
        "https://lms.example.org/api",
        "http://127.0.0.1:8080",
        "http://localhost/api",
        "http://[::1]:80",
    ] {
        assert_eq!(checked(url), (0, "ok\n".to_string()), "{url}");
    }
}

/// `delete_after` only where the kind's API can delete, and never under a
/// day; `max_delete_count` and `prehire` are read as given.
#[test]
fn delete_after_is_refused_where_the_kind_cannot_delete() {
    let dir = tempfile::tempdir().unwrap();
    let text = BASE.replace("dir = \"out\"", "dir = \"out\"\ndelete_after = \"90d\"")
        + r#"
[[target]]
name = "idp"
kind = "scim"
url = "https://idp.example.org/scim/v2"
token_env = "HOME"
delete_after = "12h"
"#;
    let path = write_config(dir.path(), &text);
    let (code, output) = check(&path);
    assert_eq!(code, 2, "{output}");
    let p = path.display().to_string();
    let lines: Vec<String> = output.lines().map(|l| l.replacen(&p, "F", 1)).collect();
    assert_eq!(
        lines,
        [
            "F:16:16: delete_after: wbt-file targets cannot delete accounts (their API only \
             blocks them), so leavers stay blocked there; delete_after is for maarch, \
             pleasanter, scim targets",
            "F:23:16: delete_after: at least 1 day (\"1d\"), so that a mistaken block can be \
             undone before the account goes",
        ],
        "{output}"
    );
    let fine = BASE.replace(
        "targets = [\"wbt\"]",
        "targets = [\"wbt\"]\nprehire = \"14d\"",
    ) + r#"
[[target]]
name = "idp"
kind = "scim"
url = "https://idp.example.org/scim/v2"
token_env = "HOME"
delete_after = "90d"
max_delete_count = 5
"#;
    let config = rostersync::config::load(
        &write_config(dir.path(), &fine),
        rostersync::config::CheckLevel::Full,
    )
    .unwrap();
    assert_eq!(config.sources[0].prehire_days(), 14);
    assert_eq!(config.targets[1].delete_after_days(), Some(90));
    assert_eq!(*config.targets[1].max_delete_count.get_ref(), 5);
    assert_eq!(*config.targets[0].max_delete_count.get_ref(), 50);
}
