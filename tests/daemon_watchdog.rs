//! systemd's watchdog is fed only while the file processor turns: the real
//! binary under a fake service manager (a datagram socket as
//! `NOTIFY_SOCKET`), with the processor made to stall after its first file.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[daemon]
state_dir = "state"
log_dir = "log"
grace = "1s"

[[source]]
name = "hr"
kind = "users"
inbox = "inbox"
settle = "100ms"
targets = ["wbt"]

[[target]]
name = "wbt"
kind = "wbt-file"
dir = "wbt-out"
"#;

const USERS: &str = "user_extid;user_lname;user_fname;user_login;user_email\n\
E1;Durand;Paul;pdurand;paul.durand@example.org\n";

/// The messages the daemon sent to the fake service manager during `span`.
fn messages_during(socket: &UnixDatagram, span: Duration) -> Vec<String> {
    let deadline = Instant::now() + span;
    let mut messages = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        if let Ok(read) = socket.recv(&mut buffer) {
            messages.push(String::from_utf8_lossy(&buffer[..read]).into_owned());
        }
    }
    messages
}

fn watchdogs(messages: &[String]) -> usize {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count()
}

fn start(dir: &Path, socket: &Path) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("rostersync"))
        .current_dir(dir)
        .args(["run", "-c", "config.toml"])
        .env("NOTIFY_SOCKET", socket)
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .env("ROSTERSYNC_TEST_STALL_PROCESSOR", "1")
        .env("ROSTERSYNC_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.stderr")).unwrap())
        .spawn()
        .unwrap()
}

#[test]
fn the_watchdog_starves_when_the_file_processor_stalls() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), CONFIG).unwrap();
    std::fs::create_dir(dir.path().join("inbox")).unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut child = start(dir.path(), &socket_path);
    let log = || std::fs::read_to_string(dir.path().join("daemon.stderr")).unwrap_or_default();

    let healthy = messages_during(&socket, Duration::from_secs(3));
    assert!(
        healthy.iter().any(|m| m.contains("READY=1")),
        "{healthy:?}\n{}",
        log()
    );
    assert!(
        watchdogs(&healthy) >= 3,
        "fed every half period while the processor turns: {healthy:?}"
    );

    std::fs::write(dir.path().join("inbox/users.csv"), USERS).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log().contains("systemd's watchdog is no longer fed") {
        assert!(Instant::now() < deadline, "never starved:\n{}", log());
        messages_during(&socket, Duration::from_millis(100));
    }
    assert!(log().contains("the file processor stalls"), "{}", log());
    let starved = messages_during(&socket, Duration::from_secs(2));
    assert_eq!(
        watchdogs(&starved),
        0,
        "no WATCHDOG=1 once the processor stalled: {starved:?}"
    );

    // SIGTERM still stops it cleanly.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not stop:\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}\n{}", log());
}
