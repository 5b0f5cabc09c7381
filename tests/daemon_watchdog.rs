//! systemd's watchdog is fed only while the file processor turns: the real
//! binary under a fake service manager (a datagram socket as
//! `NOTIFY_SOCKET`), with the processor made to stall after its first file.

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use support::{Harness, Source, Target, wait_exit};

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

#[test]
fn the_watchdog_starves_when_the_file_processor_stalls() {
    let h = Harness::builder()
        .daemon("grace", "1s")
        .source(
            Source::users("hr", "inbox")
                .set("settle", "100ms")
                .targets(&["wbt"]),
        )
        .target(Target::wbt_file("wbt", "wbt-out"))
        .build();
    let socket_path = h.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    // Under a service manager with a 1 s watchdog, the processor made to
    // stall after its first file.
    let mut daemon = h.spawn_custom(|command| {
        command
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "1000000")
            .env_remove("WATCHDOG_PID")
            .env("ROSTERSYNC_TEST_STALL_PROCESSOR", "1")
            .env("ROSTERSYNC_LOG", "info");
    });
    let log = || daemon.log();

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

    h.write("inbox/users.csv", USERS);
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
    daemon.signal("TERM");
    let status = wait_exit(&mut daemon.child, Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", daemon.log());
}
