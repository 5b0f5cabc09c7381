//! A reload that fixes a target's config is used at once: while a target
//! refuses connections, `status` says why its records wait (not an older,
//! unrelated error); a SIGHUP with the right URL cuts the wait before the
//! next retry, and the records reach the target long before the old retry
//! policy would have tried again.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::fakes::collaborator::Fake;
use support::*;

/// A loopback address nothing listens on: connections to it are refused.
fn refusing_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}")
}

#[test]
fn a_reload_with_the_right_url_is_used_at_the_next_attempt_not_after_the_retry_budget() {
    let wrong = refusing_url();
    let h = Harness::builder()
        .fake(Fake::start(TOKEN))
        .source(
            Source::users("users", "inbox")
                .set("settle", "200ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .url(&wrong)
                .set("timeout", "2s")
                // The next retry would come after ten minutes.
                .retry("10min", "10min", "1h"),
        )
        .build();
    let daemon = h.start();
    let people: Vec<String> = (1..=3).map(|n| user(n, false)).collect();
    h.drop_file("inbox/users.csv", &users_file(&people));

    // Why the records wait, while they wait.
    let last_error = || {
        let (_, out, _) = h.run(&["status", "--json"]);
        serde_json::from_str::<Value>(&out).ok().and_then(|status| {
            status["targets"]["lms"]["last_error"]
                .as_str()
                .map(str::to_string)
        })
    };
    wait_until(
        Duration::from_secs(20),
        || {
            last_error().is_some_and(|error| {
                error.contains("3 record(s) tried again in") && error.contains("transient failure")
            })
        },
        || format!("{:?}\n{}", last_error(), daemon.log()),
    );
    assert!(h.fake.directory().is_empty());

    let right = h.fake.base_url().unwrap().to_string();
    h.rewrite_config(|config| config.replace(&wrong, &right));
    daemon.signal("HUP");
    daemon.wait_log("config reloaded", Duration::from_secs(10));
    wait_until(
        Duration::from_secs(30),
        || h.fake.directory().len() == 3,
        || daemon.log(),
    );
    h.wait_archived(&daemon, "inbox", 1);
    wait_until(
        Duration::from_secs(10),
        || last_error().is_none(),
        || format!("{:?}", last_error()),
    );
    let (exit, log) = daemon.stop();
    assert!(exit.success(), "{log}");
}
