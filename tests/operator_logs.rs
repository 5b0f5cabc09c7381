//! What an administrator reads in the logs: under systemd's journal every
//! line carries its level as a priority, and no escape code anywhere off a
//! terminal; debug lines follow a file and each HTTP request without a
//! secret; a target whose credential systemd did not hand over asks for a
//! restart, which only can bring it.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::fakes::collaborator::Fake;
use support::*;

/// How long a wait may take: generous, for a loaded machine (a passing
/// run takes seconds at most).
const PATIENCE: Duration = Duration::from_secs(60);

/// What a child writes into a pipe, read by a thread as it comes.
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// A pipe for a child's stderr, and the `JOURNAL_STREAM` value systemd
    /// would give for it (its device and inode).
    fn pipe() -> (Captured, std::io::PipeWriter, String) {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let stat = rustix::fs::fstat(&writer).unwrap();
        let stream = format!("{}:{}", stat.st_dev, stat.st_ino);
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&bytes);
        std::thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(n) = reader.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                into.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        });
        (Captured(bytes), writer, stream)
    }

    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    fn wait_for(&self, text: &str) {
        wait_until(
            PATIENCE,
            || self.text().contains(text),
            || format!("never written: {text:?}\n{}", self.text()),
        );
    }

    /// The one line holding `text`.
    fn line(&self, text: &str) -> String {
        let all = self.text();
        let found: Vec<&str> = all.lines().filter(|l| l.contains(text)).collect();
        assert_eq!(found.len(), 1, "{text:?} in:\n{all}");
        found[0].to_string()
    }
}

/// One users source (settling in 300 ms) feeding a WBT folder.
fn wbt_setup() -> Harness {
    Harness::builder()
        .source(
            Source::users("users", "inbox")
                .set("settle", "300ms")
                .targets(&["wbt"]),
        )
        .target(Target::wbt_file("wbt", "out"))
        .build()
}

#[test]
fn under_the_journal_each_line_has_its_priority_and_no_escape_code() {
    let setup = wbt_setup();
    let (stderr, writer, stream) = Captured::pipe();
    let daemon = setup.spawn_custom(|command| {
        command.env("JOURNAL_STREAM", &stream).stderr(writer);
    });
    stderr.wait_for("watching the inboxes");

    // A warning: a refused file.
    setup.drop_file("inbox/bad.csv", "nothing;here\n1;2\n");
    stderr.wait_for("file processed: refused");
    // An error: a reload refused.
    setup.rewrite_config(|good| good + "\nunknown_key = 1\n");
    daemon.signal("HUP");
    stderr.wait_for("config reload refused");
    let (status, _) = daemon.stop();
    assert!(status.success());
    stderr.wait_for("stopped");

    let bytes = stderr.bytes();
    let text = stderr.text();
    assert!(!bytes.contains(&0x1b), "an escape code:\n{text}");
    assert!(
        stderr.line("watching the inboxes").starts_with("<6>"),
        "{text}"
    );
    assert!(
        stderr.line("file processed: refused").starts_with("<4>"),
        "{text}"
    );
    assert!(
        stderr.line("config reload refused").starts_with("<3>"),
        "{text}"
    );
    // The harness runs the daemon at ROSTERSYNC_LOG=debug.
    assert!(text.lines().any(|l| l.starts_with("<7>")), "{text}");
    for line in text.lines() {
        let priority = line.get(..3).unwrap_or(line);
        assert!(
            ["<3>", "<4>", "<6>", "<7>"].contains(&priority),
            "a line without its priority: {line:?}"
        );
        // The level comes first: the journal stamps each line itself.
        let level = line[3..].trim_start();
        assert!(
            ["ERROR ", "WARN ", "INFO ", "DEBUG ", "TRACE "]
                .iter()
                .any(|l| level.starts_with(l)),
            "{line}"
        );
    }

    // The log file stays plain text, without priorities or escape codes.
    let logs: Vec<String> = files(&setup.path("log"))
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let file = std::fs::read(setup.path("log").join(&logs[0])).unwrap();
    let file = String::from_utf8(file).unwrap();
    assert!(file.contains("config reload refused"), "{file}");
    assert!(!file.contains('\u{1b}') && !file.contains("<3>"), "{file}");
}

#[test]
fn off_a_terminal_the_daemon_writes_no_escape_code() {
    // The harness gives the daemon a file for stderr, no JOURNAL_STREAM.
    let setup = wbt_setup();
    let daemon = setup.start();
    setup.drop_file("inbox/bad.csv", "nothing;here\n1;2\n");
    daemon.wait_log("file processed: refused", PATIENCE);
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains('\u{1b}'), "an escape code:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(" WARN ") && l.contains("refused")),
        "{log}"
    );
    assert!(!log.contains("<4>"), "{log}");
}

/// `rostersync run` with a config that does not exist: (its stderr) with
/// stderr a pipe and `JOURNAL_STREAM` either that pipe's or `other`.
fn fatal_error(journal: Option<&str>) -> String {
    let (stderr, writer, stream) = Captured::pipe();
    let status = Command::new(binary())
        .args(["run", "-c", "/nonexistent/rostersync.toml"])
        .env("JOURNAL_STREAM", journal.unwrap_or(&stream))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(writer)
        .status()
        .unwrap();
    assert!(!status.success());
    stderr.wait_for("\n");
    stderr.text()
}

#[test]
fn a_fatal_error_is_an_error_for_the_journal_and_only_for_it() {
    let journal = fatal_error(None);
    assert!(journal.starts_with("<3>rostersync: "), "{journal}");
    assert!(
        journal.contains("/nonexistent/rostersync.toml"),
        "{journal}"
    );
    // Inherited from a service, but stderr is another stream: no prefix.
    let elsewhere = fatal_error(Some("1:1"));
    assert!(elsewhere.starts_with("rostersync: "), "{elsewhere}");
}

#[test]
fn check_prints_its_problems_as_errors_for_the_journal() {
    let setup = wbt_setup();
    setup.rewrite_config(|good| good + "\nunknown_key = 1\n");
    let (stdout, writer, stream) = Captured::pipe();
    let status = setup
        .command()
        .args(["check", "-c", "config.toml"])
        .env("JOURNAL_STREAM", &stream)
        .stdout(writer)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
    stdout.wait_for("unknown_key");
    let text = stdout.text();
    assert!(
        text.lines().all(|l| l.starts_with("<3>")),
        "a line without <3>:\n{text}"
    );
}

#[test]
fn check_prints_a_warning_as_a_warning_for_the_journal() {
    let setup = wbt_setup();
    // An inbox that does not exist yet: a warning, the config still valid.
    std::fs::remove_dir(setup.path("inbox")).unwrap();
    let (stdout, writer, stream) = Captured::pipe();
    let status = setup
        .command()
        .args(["check", "-c", "config.toml"])
        .env("JOURNAL_STREAM", &stream)
        .stdout(writer)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    stdout.wait_for("\nok\n");
    let text = stdout.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("<4>config.toml:") && lines[0].contains(": warning: inbox "),
        "{text}"
    );
    // `ok` is information: no prefix, the journal's default.
    assert_eq!(lines[1], "ok", "{text}");
}

/// The debug field `name=value` of a line, if it has one.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    line[start..].split(' ').next()
}

#[test]
fn debug_lines_follow_each_step_of_a_file_and_each_request_without_secrets() {
    let setup = Harness::builder()
        .fake(Fake::start(TOKEN))
        .source(
            Source::users("users", "inbox")
                .set("settle", "300ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .fast(),
        )
        .build();
    // The harness runs the daemon at ROSTERSYNC_LOG=debug.
    let daemon = setup.start();
    let text = users_file(&[user(1, false), user(2, false)]);
    setup.drop_file("inbox/users.csv", &text);
    setup.wait_archived(&daemon, "inbox", 1);
    daemon.wait_log("HTTP request", PATIENCE);
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");

    let step = |message: &str| -> String {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" DEBUG ") && l.contains(message))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one debug line {message:?} expected:\n{log}"
        );
        lines[0].to_string()
    };
    let seen = step("file seen: settling");
    assert_eq!(field(&seen, "size"), Some(text.len().to_string().as_str()));
    step("file ready: taking it");
    let read = step("file read ");
    assert_eq!(field(&read, "bytes"), Some(text.len().to_string().as_str()));
    let ingested = step("file ingested");
    assert_eq!(field(&ingested, "rows"), Some("2"), "{ingested}");
    assert_eq!(field(&ingested, "problems"), Some("0"), "{ingested}");
    let planned = step("file planned");
    assert_eq!(field(&planned, "target"), Some("lms"), "{planned}");
    assert_eq!(field(&planned, "create"), Some("2"), "{planned}");
    assert_eq!(field(&planned, "block"), Some("0"), "{planned}");
    assert_eq!(field(&planned, "not_created"), Some("0"), "{planned}");
    step("file committed");
    let moved = step("file moved to archive/");
    assert!(
        field(&moved, "moved_to").is_some_and(|m| m.ends_with("Z_users.csv")),
        "{moved}"
    );
    // In that order.
    let at = |line: &str| log.find(line).unwrap();
    let order = [&seen, &read, &ingested, &planned, &moved];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{log}");

    // Each request: method, path (no query), status, duration; nothing else.
    let requests: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" DEBUG ") && l.contains("HTTP request"))
        .collect();
    assert!(!requests.is_empty(), "{log}");
    for line in &requests {
        assert_eq!(field(line, "method"), Some("POST"), "{line}");
        assert_eq!(
            field(line, "path"),
            Some("/api/v2/users-import/batch"),
            "{line}"
        );
        assert_eq!(field(line, "status"), Some("200"), "{line}");
        assert!(
            field(line, "ms").is_some_and(|ms| ms.parse::<u64>().is_ok()),
            "{line}"
        );
        for never in ["login1", "Name1", "Bearer", "uthorization"] {
            assert!(!line.contains(never), "{never:?} in {line}");
        }
    }
    assert_eq!(requests.len() as u64, setup.fake.requests(), "{log}");
    assert!(!log.contains(TOKEN), "the token is in the log:\n{log}");
}

/// The error line of a target whose `token_credential` systemd did not hand
/// over, the daemon's environment changed by `environment`.
fn missing_credential(environment: impl FnOnce(&Path, &mut Command)) -> String {
    let setup = Harness::builder()
        .fake(Fake::start(TOKEN))
        .source(Source::users("users", "inbox").targets(&["lms"]))
        .target(Target::collaborator("lms").set("token_credential", "lms-token"))
        .build();
    let root = setup.root().to_path_buf();
    let daemon = setup.spawn_custom(|command| environment(&root, command));
    daemon.wait_log("cannot push to this target", PATIENCE);
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("cannot push to this target"))
        .unwrap()
        .to_string();
    daemon.kill();
    line
}

#[test]
fn a_credential_systemd_did_not_hand_over_asks_for_a_restart_not_a_reload() {
    let without_any = missing_credential(|_, command| {
        command.env_remove("CREDENTIALS_DIRECTORY");
    });
    let not_in_it = missing_credential(|root, command| {
        std::fs::create_dir(root.join("credentials")).unwrap();
        command.env("CREDENTIALS_DIRECTORY", root.join("credentials"));
    });
    for line in [without_any, not_in_it] {
        assert!(line.contains(" ERROR "), "{line}");
        assert!(line.contains("lms-token"), "{line}");
        assert!(line.contains("LoadCredential="), "{line}");
        assert!(line.contains("systemctl restart rostersync"), "{line}");
        assert!(!line.contains("SIGHUP"), "{line}");
    }
}
