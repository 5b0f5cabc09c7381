//! The setup of the tests about held files: the Collaborator fake, one users
//! source in `inbox` settling in 200 ms, and safety limits that hold a file
//! blocking more than half of the people (a shrink alone holds nothing).

use std::time::Duration;

use super::fakes::collaborator::Fake;
use super::harness::{Daemon, Harness, Source, Target, files, user, users_file, wait_until};

/// The harness, its target `lms` reached with `token` from `LMS_TOKEN`.
pub fn harness(token: &str) -> Harness<Fake> {
    Harness::builder()
        .fake(Fake::start(token))
        .safety("max_block_percent", 50.0)
        .safety("max_shrink_percent", 100.0)
        .source(
            Source::users("users", "inbox")
                .set("settle", "200ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", token)
                .fast(),
        )
        .build()
}

/// Four people accepted from `first`, then `second` with only the first of
/// them (three blocks of four): held. Returns the held file's path from the
/// harness's folder (`inbox/held/<name>`).
pub fn hold_a_file(h: &Harness<Fake>, daemon: &Daemon, first: &str, second: &str) -> String {
    let all: Vec<String> = (1..=4).map(|n| user(n, false)).collect();
    h.drop_file(&format!("inbox/{first}"), &users_file(&all));
    h.wait_archived(daemon, "inbox", 1);
    h.drop_file(&format!("inbox/{second}"), &users_file(&all[..1]));
    wait_until(
        Duration::from_secs(20),
        || files(&h.path("inbox/held")).len() == 3,
        || daemon.log(),
    );
    let held = files(&h.path("inbox/held"))
        .into_iter()
        .find(|name| name.ends_with(second))
        .expect("the held file");
    format!("inbox/held/{held}")
}
