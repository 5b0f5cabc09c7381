//! Daemon benchmarks (BENCHMARKS.md; `scripts/bench-daemon.sh`), ignored by
//! `cargo test`: latency from a file's completion to the first request,
//! idle cost with 2 sources and 5 targets, and a 100,000-user first import
//! through the daemon to the Collaborator fake's batch API.

mod support;

use std::time::{Duration, Instant};

use support::fakes::collaborator::Fake;
use support::*;

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Drops a file as an exporter does; returns the moment it was complete.
fn drop_file<F>(h: &Harness<F>, path: &str, text: &str) -> Instant {
    h.drop_file(path, text);
    Instant::now()
}

/// The portal's fake and one users source feeding it (`lms`).
fn one_source(fake: Fake, source: Source, lms: Target) -> Harness<Fake> {
    Harness::builder()
        .fake(fake)
        .source(source.targets(&["lms"]))
        .target(lms.token_env("LMS_TOKEN", TOKEN))
        .build()
}

#[test]
#[ignore = "benchmark: scripts/bench-daemon.sh"]
fn latency_from_completion_to_the_first_request() {
    let fake = Fake::start(TOKEN);
    let settle_ms = 500;
    let h = one_source(
        fake,
        Source::users("users", "inbox")
            .set("mode", "delta")
            .set("settle", format!("{settle_ms}ms")),
        Target::collaborator("lms"),
    );
    let daemon = h.start();
    let mut extra = Vec::new();
    for round in 1..=10 {
        let before = h.fake.requests();
        let done = drop_file(
            &h,
            &format!("inbox/users{round}.csv"),
            &users_file(&[user(round, false)]),
        );
        while h.fake.requests() == before {
            assert!(done.elapsed() < Duration::from_secs(10), "{}", daemon.log());
            std::thread::sleep(Duration::from_micros(500));
        }
        let latency = done.elapsed();
        extra.push(latency.as_millis() as i64 - settle_ms);
        std::thread::sleep(Duration::from_millis(300));
    }
    extra.sort();
    println!(
        "latency beyond settle ({settle_ms} ms), 10 files, ms: min {} median {} max {} (all: {extra:?})",
        extra[0], extra[5], extra[9]
    );
    let (status, _) = daemon.stop();
    assert!(status.success());
}

#[test]
#[ignore = "benchmark: scripts/bench-daemon.sh"]
fn idle_with_two_sources_and_five_targets() {
    let all = ["lms1", "lms2", "wbt1", "wbt2", "wbt3"];
    let mut builder = Harness::builder()
        .fake(Fake::start(TOKEN))
        .source(Source::orgs("orgs", "inbox/orgs").targets(&all))
        .source(Source::users("users", "inbox/users").targets(&all));
    for n in 1..=2 {
        builder =
            builder.target(Target::collaborator(&format!("lms{n}")).token_env("LMS_TOKEN", TOKEN));
    }
    for n in 1..=3 {
        builder = builder.target(Target::wbt_file(&format!("wbt{n}"), &format!("out{n}")));
    }
    let h = builder.build();
    let daemon = h.start();
    // A first file, so that the state and the workers are warm.
    drop_file(
        &h,
        "inbox/users/users.csv",
        &users_file(&(1..=100).map(|n| user(n, false)).collect::<Vec<_>>()),
    );
    std::thread::sleep(Duration::from_secs(5));
    let pid = daemon.child.id();
    let seconds = 60;
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(seconds));
    let ticks = cpu_ticks(pid) - before;
    let rss = proc_field(pid, "status", "VmRSS:");
    let hwm = proc_field(pid, "status", "VmHWM:");
    let threads = proc_field(pid, "status", "Threads:");
    println!(
        "idle {seconds} s: CPU {} ms ({:.3} % of one core), RSS {} KiB (peak {} KiB), {threads} threads",
        ticks * 10,
        ticks as f64 / seconds as f64,
        rss,
        hwm
    );
    let (status, _) = daemon.stop();
    assert!(status.success());
}

#[test]
#[ignore = "benchmark: scripts/bench-daemon.sh"]
fn first_import_of_100_000_users_through_the_daemon() {
    let users = 100_000;
    let h = one_source(
        Fake::start(TOKEN),
        Source::users("users", "inbox").set("settle", "500ms"),
        Target::collaborator("lms").set("batch_size", 500),
    );
    let fake = &h.fake;
    let daemon = h.start();
    let text = users_file(&(1..=users).map(|n| user(n, false)).collect::<Vec<_>>());
    let bytes = text.len();
    let done = drop_file(&h, "inbox/users.csv", &text);
    let archive = h.path("inbox/archive");
    let mut archived_at = None;
    let mut first_request = None;
    loop {
        if first_request.is_none() && fake.requests() > 0 {
            first_request = Some(done.elapsed());
        }
        if archived_at.is_none() && files(&archive).len() == 2 {
            archived_at = Some(done.elapsed());
        }
        if fake.with(|p| p.users.len()) == users {
            break;
        }
        assert!(
            done.elapsed() < Duration::from_secs(600),
            "{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let all = done.elapsed();
    let name = files(&archive)
        .into_iter()
        .find(|n| !n.ends_with(".report.json"))
        .unwrap();
    while report(&archive.join(&name))["complete"] != true {
        assert!(done.elapsed() < Duration::from_secs(700));
        std::thread::sleep(Duration::from_millis(10));
    }
    let reported = done.elapsed();
    let hwm = proc_field(daemon.child.id(), "status", "VmHWM:");
    println!(
        "{users} users ({} MB): committed and archived after {:?}, first request {:?}, all in the portal {:?} ({:.0} users/s), report complete {:?}, {} requests, daemon peak RSS {} MiB",
        bytes / 1_000_000,
        archived_at.unwrap_or_default(),
        first_request.unwrap_or_default(),
        all,
        users as f64 / all.as_secs_f64(),
        reported,
        fake.requests(),
        hwm / 1024
    );
    let (status, _) = daemon.stop();
    assert!(status.success());
}
