//! `[[notify]]` end to end: the real daemon pushing to the Collaborator
//! fake, its notifications received by a loopback webhook receiver (which
//! checks each body's HMAC-SHA256 signature) and by a real SMTP server,
//! aiosmtpd from PyPI, started by the test into a maildir. One held file,
//! one refused file, 500 records parked in a burst, and the target down
//! past `down_after`: one message each, and none holds a secret or a
//! personal field other than external ids and logins.
//!
//! The SMTP server is found through `ROSTERSYNC_SMTP_SERVER` (the path of
//! its `aiosmtpd` command), else `aiosmtpd` on the PATH; `.ci/run` installs
//! it. Without it the e-mail test says why and passes, unless
//! `ROSTERSYNC_REQUIRE_SMTP_SERVER` is set (as `.ci/run` sets it).

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{KeyInit, Mac};
use serde_json::Value;
use support::fakes::collaborator::Fake;
use support::*;

const HOOK_SECRET: &str = "h00k-s1gning-k3y-77";
const USERS: usize = 500;

/// A message as received: its event, its whole text, its JSON body (webhook).
#[derive(Debug, Clone)]
struct Received {
    event: String,
    text: String,
    body: Option<Value>,
}

/// A loopback webhook receiver: keeps each POST whose signature is right,
/// counts the others; answers 503 to the first `fail_first` requests.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    bad_signatures: Arc<Mutex<u64>>,
    refused: Arc<Mutex<u64>>,
    fail_first: u64,
}

fn expected_signature(body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

async fn hook(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    {
        let mut refused = receiver.refused.lock().unwrap();
        if *refused < receiver.fail_first {
            *refused += 1;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    let signature = headers
        .get("x-rostersync-signature")
        .and_then(|v| v.to_str().ok());
    if signature != Some(expected_signature(&body).as_str()) {
        *receiver.bad_signatures.lock().unwrap() += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let text = String::from_utf8(body.to_vec()).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    receiver.received.lock().unwrap().push(Received {
        event: json["event"].as_str().unwrap().to_string(),
        text,
        body: Some(json),
    });
    StatusCode::NO_CONTENT
}

impl Receiver {
    /// Starts it; its URL.
    fn start(fail_first: u64) -> (Receiver, String, support::fakes::Switch) {
        let receiver = Receiver {
            fail_first,
            ..Receiver::default()
        };
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(receiver.clone());
        let (url, switch) = support::fakes::serve(app);
        (receiver, format!("{url}/hook"), switch)
    }

    fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A running aiosmtpd that writes what it receives into a maildir.
struct SmtpServer {
    child: Child,
    address: String,
    maildir: PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_command() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ROSTERSYNC_SMTP_SERVER") {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("aiosmtpd"))
        .find(|path| path.is_file())
}

/// The server's command, or `None` after saying loudly why the test does
/// not run (a failure where the server is required).
fn smtp_or_skip(test: &str) -> Option<PathBuf> {
    let found = smtp_command();
    if found.is_none() {
        let why = "no aiosmtpd: set ROSTERSYNC_SMTP_SERVER to its command, or \
                   `pip install aiosmtpd` (.ci/run installs it)";
        assert!(
            std::env::var_os("ROSTERSYNC_REQUIRE_SMTP_SERVER").is_none(),
            "{test}: {why}"
        );
        // Past the test harness's capture, so that it shows in every run.
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    }
    found
}

impl SmtpServer {
    fn start(command: &Path, dir: &Path) -> SmtpServer {
        let address = support::scrape::free_address();
        // aiosmtpd makes the maildir; one that exists empty it cannot use.
        let maildir = dir.join("maildir");
        let child = Command::new(command)
            .args(["-n", "-l", &address, "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("aiosmtpd.stderr")).unwrap())
            .spawn()
            .unwrap();
        let server = SmtpServer {
            child,
            address,
            maildir,
        };
        wait_until(
            Duration::from_secs(20),
            || std::net::TcpStream::connect(&server.address).is_ok(),
            || "aiosmtpd never listened".into(),
        );
        server
    }

    /// Each mail received: its event from the subject (`[rostersync] EVENT: ...`).
    fn messages(&self) -> Vec<Received> {
        files(&self.maildir.join("new"))
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.maildir.join("new").join(name)).unwrap();
                let subject = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: [rostersync] "))
                    .unwrap_or_else(|| panic!("no subject:\n{text}"));
                let event = subject.split(':').next().unwrap().to_string();
                Received {
                    event,
                    text,
                    body: None,
                }
            })
            .collect()
    }
}

/// A `[[notify]]` of string keys.
fn table(keys: &[(&str, &str)]) -> Table {
    let mut table = Table::default();
    for (name, value) in keys {
        table.set(name, *value);
    }
    table
}

/// The portal refusing every login of the first file, one users source,
/// and the `[[notify]]` given.
fn harness(notify: Table) -> Harness<Fake> {
    let mut harness = Harness::builder()
        .fake(Fake::start(TOKEN))
        .daemon("grace", "1s")
        .source(
            Source::users("users", "inbox")
                .set("settle", "200ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .set("batch_size", 50)
                .set("timeout", "2s")
                .retry("10ms", "1s", "30s"),
        )
        .notify(notify)
        .build();
    harness.set_secret("HOOK_SECRET", HOOK_SECRET);
    harness
        .fake
        .with(|l| l.refused_logins = (1..=USERS).map(|n| format!("login{n}")).collect());
    harness
}

/// Keys every destination of these tests shares: all the events but the
/// daily summary (the default), a long `min_interval` (nothing is sent
/// twice about one thing), a short `down_after`, quick retries.
fn common() -> Table {
    let mut keys = Table::default();
    keys.set("min_interval", "1h");
    keys.set("down_after", "2s");
    keys.set(
        "retry",
        Raw("{ initial = \"50ms\", max_interval = \"200ms\", max_elapsed = \"20s\" }".into()),
    );
    keys
}

/// The scenario every destination goes through; `received` reads what it
/// got so far. Returns the messages once the daemon stopped.
fn scenario(harness: &Harness<Fake>, received: &dyn Fn() -> Vec<Received>) -> Vec<Received> {
    let daemon = harness.start();
    let wait_for = |event: &str| {
        wait_until(
            Duration::from_secs(30),
            || received().iter().any(|m| m.event == event),
            || format!("no {event} message: {:?}\n{}", received(), daemon.log()),
        )
    };
    let users: Vec<String> = (1..=USERS).map(|n| user(n, false)).collect();
    harness.drop_file("inbox/users1.csv", &users_file(&users));
    wait_for("parked");
    harness.drop_file(
        "inbox/bad.csv",
        &users_file(&[user(1, false), "E2;;First2;login2;not-an-email;0".into()]),
    );
    wait_for("rejected");
    harness.drop_file("inbox/users2.csv", &users_file(&users[..2]));
    wait_for("held");
    // Down: every record of the next file fails to connect, and is retried.
    harness.fake.down();
    let mut more = users.clone();
    more.push(user(USERS + 1, false));
    harness.drop_file("inbox/users3.csv", &users_file(&more));
    wait_for("target_down");
    harness.fake.up();
    // Back up, it refuses the 500 again: parked again, which waits for
    // min_interval after the first parked message.
    wait_until(
        Duration::from_secs(30),
        || {
            harness
                .fake
                .directory()
                .contains_key(&format!("E{}", USERS + 1))
                && std::fs::read_to_string(harness.path("log/status.json"))
                    .is_ok_and(|s| s.contains("\"parked\": 500"))
        },
        || daemon.log(),
    );
    std::thread::sleep(Duration::from_secs(3)); // longer than a burst is gathered
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    // The second parking was an event, held back by min_interval.
    assert!(
        log.contains("the daemon stops: notifications not sent yet are dropped"),
        "{log}"
    );
    received()
}

/// One message per event, each about what it should be, and nothing in
/// any of them that names a person beyond external ids and logins.
fn check_messages(messages: &[Received]) -> BTreeMap<String, Received> {
    let mut by_event: BTreeMap<String, Received> = BTreeMap::new();
    for message in messages {
        assert!(
            by_event
                .insert(message.event.clone(), message.clone())
                .is_none(),
            "two {} messages: {messages:#?}",
            message.event
        );
    }
    let events: Vec<&str> = by_event.keys().map(String::as_str).collect();
    assert_eq!(
        events,
        ["held", "parked", "rejected", "target_down"],
        "{messages:#?}"
    );
    for message in messages {
        let text = &message.text;
        for secret in [TOKEN, HOOK_SECRET] {
            assert!(!text.contains(secret), "a secret in {text}");
        }
        // Names, first names and e-mail addresses of the users (and the
        // value of the refused file) never show; E1 and login1 may.
        let named = (1..=USERS + 1).any(|n| {
            text.contains(&format!("Name{n};"))
                || text.contains(&format!("Name{n}\""))
                || text.contains(&format!("Name{n}\n"))
        });
        assert!(!named, "a name in {text}");
        assert!(!text.contains("First"), "a first name in {text}");
        assert!(!text.contains("@x.fr"), "an e-mail address in {text}");
        assert!(
            !text.contains("not-an-email"),
            "a value of the file in {text}"
        );
    }
    assert!(
        by_event["parked"]
            .text
            .contains("500 record(s) parked on target lms")
    );
    assert!(
        by_event["held"]
            .text
            .contains("users2.csv from source users is held")
    );
    assert!(
        by_event["rejected"]
            .text
            .contains("bad.csv from source users was refused")
    );
    assert!(
        by_event["target_down"]
            .text
            .contains("target lms has confirmed nothing for")
    );
    by_event
}

#[test]
fn webhooks_are_signed_coalesced_and_say_no_more_than_ids() {
    let (receiver, url, _switch) = Receiver::start(1);
    let mut keys = common();
    keys.set("kind", "webhook");
    keys.set("url", url.as_str());
    keys.set("secret_env", "HOOK_SECRET");
    let harness = harness(keys);
    let messages = scenario(&harness, &|| receiver.messages());
    let by_event = check_messages(&messages);
    assert_eq!(*receiver.bad_signatures.lock().unwrap(), 0);
    assert_eq!(
        *receiver.refused.lock().unwrap(),
        1,
        "the first delivery failed…"
    );
    let daemon_log = std::fs::read_dir(harness.root())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("daemon-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(
        daemon_log.contains("a notification could not be sent; trying again"),
        "…was logged and tried again"
    );

    let parked = by_event["parked"].body.as_ref().unwrap();
    assert_eq!(parked["target"], "lms");
    assert_eq!(parked["counts"]["records"], 500, "{parked}");
    let items = parked["items"].as_array().unwrap();
    assert_eq!(items.len(), 100, "the first 100 listed");
    // In the order they were refused; each a record by its id alone.
    let mut ids = std::collections::BTreeSet::new();
    for item in items {
        let keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys, ["ext_id", "kind"], "{item}");
        assert_eq!(item["kind"], "users");
        let id = item["ext_id"].as_str().unwrap();
        let n: usize = id.strip_prefix('E').unwrap().parse().unwrap();
        assert!((1..=USERS).contains(&n) && ids.insert(n), "{id}");
    }
    let keys: Vec<&str> = parked
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        ["at", "counts", "event", "items", "summary", "target"]
    );

    let rejected = by_event["rejected"].body.as_ref().unwrap();
    assert_eq!(rejected["source"], "users");
    assert_eq!(rejected["file"], "bad.csv");
    assert_eq!(
        rejected["items"][1],
        serde_json::json!({"line": 3, "column": 5})
    );
    let held = by_event["held"].body.as_ref().unwrap();
    assert_eq!(held["file"], "users2.csv");
    assert!(
        held["summary"]
            .as_str()
            .unwrap()
            .contains("max_shrink_percent"),
        "{held}"
    );
    let down = by_event["target_down"].body.as_ref().unwrap();
    assert_eq!(down["target"], "lms");
    assert!(
        down["counts"]["down_seconds"].as_u64().unwrap() >= 2,
        "{down}"
    );
}

#[test]
fn emails_reach_a_real_smtp_server() {
    let Some(command) = smtp_or_skip("emails_reach_a_real_smtp_server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = SmtpServer::start(&command, dir.path());
    let mut keys = common();
    keys.set("kind", "email");
    keys.set("smtp", server.address.as_str());
    keys.set("tls", "none");
    keys.set("from", "rostersync <rostersync@example.org>");
    keys.set(
        "to",
        &["ops@example.org", "Second Ops <ops2@example.org>"][..],
    );
    let harness = harness(keys);
    let messages = scenario(&harness, &|| server.messages());
    let by_event = check_messages(&messages);
    let parked = &by_event["parked"].text;
    assert!(
        parked.contains("X-RcptTo: ops@example.org, ops2@example.org"),
        "{parked}"
    );
    assert!(parked.contains("records: 500"), "{parked}");
    assert_eq!(parked.matches("\n- users E").count(), 100, "{parked}");
}

#[test]
fn check_online_notify_sends_a_test_message_to_each() {
    let (receiver, url, _switch) = Receiver::start(0);
    let unreachable = format!("http://{}/hook", support::scrape::free_address());
    let harness = Harness::builder()
        .fake(Fake::start(TOKEN))
        .source(Source::users("users", "inbox").targets(&["lms"]))
        .target(Target::collaborator("lms").token_env("LMS_TOKEN", TOKEN))
        .notify(table(&[
            ("kind", "webhook"),
            ("url", &url),
            ("secret_env", "HOOK_SECRET"),
        ]))
        .notify(table(&[("kind", "webhook"), ("url", &unreachable)]))
        .build();
    let mut harness = harness;
    harness.set_secret("HOOK_SECRET", HOOK_SECRET);
    let (code, out, err) = harness.run(&["check", "--online", "--notify"]);
    assert_eq!(code, 1, "the second cannot be reached: {out}{err}");
    let port = url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/hook");
    assert!(out.contains("target lms (collaborator): ok"), "{out}");
    assert!(
        out.contains(&format!(
            "notify webhook http://127.0.0.1:{port}: test message sent"
        )),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("notify webhook") && l.contains("connect")),
        "{out}"
    );
    let messages = receiver.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let summary = messages[0].body.as_ref().unwrap()["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(summary.contains("test message"), "{summary}");
    assert!(!out.contains(HOOK_SECRET) && !err.contains(HOOK_SECRET));

    // Without --notify nothing is sent.
    let (code, out, _) = harness.run(&["check", "--online"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(receiver.messages().len(), 1);
}

#[test]
fn check_names_every_wrong_notify_key() {
    let harness = Harness::builder()
        .daemon("metrics", "localhost:9464")
        .source(Source::users("users", "inbox").targets(&["lms"]))
        .target(Target::wbt_file("lms", "out"))
        .notify({
            let mut keys = table(&[
                ("kind", "webhook"),
                ("url", "http://hooks.example.org/x"),
                ("smtp", "mail.example.org:25"),
            ]);
            keys.set("events", &["held", "held"][..]);
            keys
        })
        .notify({
            let mut keys = table(&[
                ("kind", "email"),
                ("smtp", "mail.example.org:25"),
                ("tls", "none"),
                ("from", "not an address"),
                ("user", "ops"),
            ]);
            keys.set("to", &[][..] as &[&str]);
            keys
        })
        .notify(table(&[
            ("kind", "email"),
            ("smtp", "mail.example.org"),
            ("evnets", "held"),
        ]))
        .build();
    let (code, out, _) = harness.run(&["check"]);
    assert_eq!(code, 2, "{out}");
    for expected in [
        "plain http",
        "smtp is for email notifications; this one is webhook",
        "event held is listed twice",
        "tls = \"none\" would send the mail (and any password) in clear to mail.example.org",
        "from: \"not an address\" is not an e-mail address",
        "to is empty",
        "user needs its password",
        "unknown field `evnets`",
        "daemon.metrics \"localhost:9464\" is not an address to listen on: IP:PORT",
    ] {
        assert!(out.contains(expected), "{expected:?} not in:\n{out}");
    }
}

/// `[[notify]]` is read at start: a reload that changes it says so in the
/// log (the running destinations stay), and one that does not says nothing.
#[test]
fn a_reload_that_changes_notify_says_it_needs_a_restart() {
    let mut keys = common();
    keys.set("kind", "webhook");
    keys.set("url", "http://127.0.0.1:9/first");
    let h = harness(keys);
    let daemon = h.start();
    daemon.wait_log("watching the inboxes", Duration::from_secs(20));
    // Unchanged: a reload says nothing of notify.
    daemon.signal("HUP");
    daemon.wait_log("config reloaded", Duration::from_secs(10));
    assert!(!daemon.log().contains("[[notify]]"), "{}", daemon.log());
    h.rewrite_config(|config| config.replace("127.0.0.1:9/first", "127.0.0.1:9/second"));
    daemon.signal("HUP");
    daemon.wait_log(
        "the [[notify]] destinations change only with a restart",
        Duration::from_secs(10),
    );
    let (exit, log) = daemon.stop();
    assert!(exit.success(), "{log}");
}
