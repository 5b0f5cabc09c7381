//! `max_change_percent` through the daemon: an export whose name columns
//! were swapped is held with the field, its share and a sample in its plan,
//! nothing reaches the target, and `approve` applies it.

mod support;

use std::time::Duration;

use support::fakes::collaborator::Fake;
use support::{Harness, Source, Target, files, users_file, wait_until};

const TOKEN: &str = "cbr-s3cr3t-t0ken-42";

/// `E{n};{last};{first};login{n};login{n}@x.fr;0`.
fn person(n: usize, last: &str, first: &str) -> String {
    format!("E{n};{last};{first};login{n};login{n}@x.fr;0")
}

#[test]
fn swapped_name_columns_are_held_then_applied_once_approved() {
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
                .fast(),
        )
        .build();
    let daemon = h.start();
    let names = |n: usize| (format!("Name{n}"), format!("First{n}"));
    let rows: Vec<String> = (1..=10)
        .map(|n| {
            let (last, first) = names(n);
            person(n, &last, &first)
        })
        .collect();
    h.drop_file("inbox/users1.csv", &users_file(&rows));
    h.wait_archived(&daemon, "inbox", 1);
    let requests = h.fake.requests();

    let swapped: Vec<String> = (1..=10)
        .map(|n| {
            let (last, first) = names(n);
            person(n, &first, &last)
        })
        .collect();
    h.drop_file("inbox/users2.csv", &users_file(&swapped));
    wait_until(
        Duration::from_secs(20),
        || files(&h.path("inbox/held")).len() == 3,
        || daemon.log(),
    );
    let held = files(&h.path("inbox/held"));
    let plan = std::fs::read_to_string(h.path(&format!("inbox/held/{}", held[2]))).unwrap();
    assert!(
        plan.contains(
            "HELD by safety rule max_change_percent: the file changes first_name for 100.0% of \
             the source's records, max_change_percent is 50; e.g. E1: \"First1\" → \"Name1\"; \
             E10: \"First10\" → \"Name10\"; E2: \"First2\" → \"Name2\"\n"
        ),
        "{plan}"
    );
    assert!(
        plan.contains("and by safety rule max_change_percent: the file changes last_name"),
        "{plan}"
    );
    assert_eq!(h.fake.requests(), requests, "nothing reached the target");
    let surname = |uid: &str| h.fake.directory()[uid].1.clone();
    assert_eq!(surname("E1"), "Name1");

    let (code, out, err) = h.run(&["approve", &format!("inbox/held/{}", held[0])]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("approved"), "{out}");
    h.wait_archived(&daemon, "inbox", 2);
    wait_until(
        Duration::from_secs(20),
        || (1..=10).all(|n| surname(&format!("E{n}")) == format!("First{n}")),
        || format!("{:?}\n{}", h.fake.directory(), daemon.log()),
    );
    assert!(files(&h.path("inbox/held")).is_empty());
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}
