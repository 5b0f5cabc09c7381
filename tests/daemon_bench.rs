//! Daemon benchmarks (BENCHMARKS.md; `scripts/bench-daemon.sh`), ignored by
//! `cargo test`: latency from a file's completion to the first request,
//! idle cost with 2 sources and 5 targets, and a 100,000-user first import
//! through the daemon to the Collaborator fake's batch API.

mod daemon_support;
mod support;

use std::time::{Duration, Instant};

use daemon_support::*;
use support::fakes::collaborator::Fake;

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

fn setup(config: &str, inboxes: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    for inbox in inboxes {
        std::fs::create_dir_all(dir.path().join(inbox)).unwrap();
    }
    dir
}

fn drop_file(dir: &std::path::Path, path: &str, text: &str) -> Instant {
    let temporary = dir.join(format!("{path}.tmp"));
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(temporary, dir.join(path)).unwrap();
    Instant::now()
}

#[test]
#[ignore = "benchmark: scripts/bench-daemon.sh"]
fn latency_from_completion_to_the_first_request() {
    let fake = Fake::start(TOKEN);
    let settle_ms = 500;
    let dir = setup(
        &format!(
            r#"
[daemon]
state_dir = "state"
log_dir = "log"
[[source]]
name = "users"
kind = "users"
inbox = "inbox"
mode = "delta"
settle = "{settle_ms}ms"
targets = ["lms"]
[[target]]
name = "lms"
kind = "collaborator"
url = "{}"
token_env = "LMS_TOKEN"
"#,
            fake.url
        ),
        &["inbox"],
    );
    let daemon = Daemon::start(dir.path());
    let mut extra = Vec::new();
    for round in 1..=10 {
        let before = fake.requests();
        let done = drop_file(
            dir.path(),
            &format!("inbox/users{round}.csv"),
            &users_file(&[user(round, false)]),
        );
        while fake.requests() == before {
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
    let fake = Fake::start(TOKEN);
    let mut config = String::from(
        r#"
[daemon]
state_dir = "state"
log_dir = "log"
[[source]]
name = "orgs"
kind = "orgs"
inbox = "inbox/orgs"
targets = ["lms1", "lms2", "wbt1", "wbt2", "wbt3"]
[[source]]
name = "users"
kind = "users"
inbox = "inbox/users"
targets = ["lms1", "lms2", "wbt1", "wbt2", "wbt3"]
"#,
    );
    for n in 1..=2 {
        config.push_str(&format!(
            "[[target]]\nname = \"lms{n}\"\nkind = \"collaborator\"\nurl = \"{}\"\ntoken_env = \"LMS_TOKEN\"\n",
            fake.url
        ));
    }
    for n in 1..=3 {
        config.push_str(&format!(
            "[[target]]\nname = \"wbt{n}\"\nkind = \"wbt-file\"\ndir = \"out{n}\"\n"
        ));
    }
    let dir = setup(&config, &["inbox/orgs", "inbox/users"]);
    let daemon = Daemon::start(dir.path());
    // A first file, so that the state and the workers are warm.
    drop_file(
        dir.path(),
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
    let fake = Fake::start(TOKEN);
    let dir = setup(
        &format!(
            r#"
[daemon]
state_dir = "state"
log_dir = "log"
[[source]]
name = "users"
kind = "users"
inbox = "inbox"
settle = "500ms"
targets = ["lms"]
[[target]]
name = "lms"
kind = "collaborator"
url = "{}"
token_env = "LMS_TOKEN"
batch_size = 500
"#,
            fake.url
        ),
        &["inbox"],
    );
    let daemon = Daemon::start(dir.path());
    let text = users_file(&(1..=users).map(|n| user(n, false)).collect::<Vec<_>>());
    let bytes = text.len();
    let done = drop_file(dir.path(), "inbox/users.csv", &text);
    let archive = dir.path().join("inbox/archive");
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
