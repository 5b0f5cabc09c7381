//! `rostersync run` end to end: the real binary on temp inboxes, pushing to
//! the stateful Collaborator fake. Files written slowly, marker files, bad
//! files, held files and their approval, duplicates, `status` and `show`
//! while the daemon runs, SIGTERM and SIGHUP.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Deref;
use std::path::Path;
use std::time::{Duration, Instant};

use support::fakes::collaborator::Fake;
use support::*;

/// The portal's fake, one users source (`ready` as given, settling in
/// 300 ms), batches of 50.
fn lms(ready: &str) -> Builder<Fake> {
    Harness::builder()
        .fake(Fake::start(TOKEN))
        .daemon("grace", "1s")
        .safety("max_block_percent", 50.0)
        .safety("max_shrink_percent", 100.0)
        .source(
            Source::users("users", "inbox")
                .set("settle", "300ms")
                .set("ready", ready)
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .set("batch_size", 50)
                .fast(),
        )
}

struct Setup(Harness<Fake>);

impl Deref for Setup {
    type Target = Harness<Fake>;
    fn deref(&self) -> &Harness<Fake> {
        &self.0
    }
}

impl Setup {
    fn new(ready: &str) -> Setup {
        Setup(lms(ready).build())
    }

    /// Drops a file into the inbox the way a careful exporter does: written
    /// under a temporary name, then renamed.
    fn drop_file(&self, name: &str, text: &str) {
        self.0.drop_file(&format!("inbox/{name}"), text);
    }

    fn archived(&self) -> Vec<String> {
        self.0.archived("inbox")
    }

    /// Waits until `n` files are archived and their reports complete.
    fn wait_archived(&self, daemon: &Daemon, n: usize) -> Vec<String> {
        self.0.wait_archived(daemon, "inbox", n)
    }

    /// uid → (login, status) at the fake portal.
    fn portal(&self) -> BTreeMap<String, (String, String)> {
        self.fake
            .directory()
            .into_iter()
            .map(|(uid, (login, _, _, status))| (uid, (login, status)))
            .collect()
    }
}

fn expected(users: &[(usize, &str)]) -> BTreeMap<String, (String, String)> {
    users
        .iter()
        .map(|(n, status)| (format!("E{n}"), (format!("login{n}"), status.to_string())))
        .collect()
}

#[test]
fn a_file_written_slowly_in_pieces_is_taken_once_complete() {
    let setup = Setup::new("stable");
    let daemon = setup.start();
    let text = users_file(&(1..=6).map(|n| user(n, false)).collect::<Vec<_>>());
    let mut file = std::fs::File::create(setup.path("inbox/users.csv")).unwrap();
    // Pieces every 150 ms (less than `settle`), cutting lines in the middle.
    for piece in text.as_bytes().chunks(text.len() / 5 + 1) {
        file.write_all(piece).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(setup.fake.requests(), 0, "a partial file was taken");
        assert!(setup.archived().is_empty(), "a partial file was taken");
    }
    drop(file);
    let archived = setup.wait_archived(&daemon, 1);
    assert_eq!(archived.len(), 1, "{archived:?}");
    assert!(archived[0].ends_with("Z_users.csv"), "{archived:?}");
    assert_eq!(
        setup.portal(),
        expected(&[(1, "0"), (2, "0"), (3, "0"), (4, "0"), (5, "0"), (6, "0")])
    );
    let report = report(&setup.path(&format!("inbox/archive/{}", archived[0])));
    assert_eq!(report["targets"]["lms"]["create"], 6);
    assert_eq!(report["targets"]["lms"]["actions"][0]["status"], "done");
    assert!(files(&setup.path("inbox")).is_empty(), "the inbox is empty");
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert_eq!(
        log.matches("file processed").count(),
        1,
        "one summary line per file:\n{log}"
    );
    assert!(!log.contains(TOKEN), "the token leaked into the log");
}

#[test]
fn marker_mode_waits_for_the_marker() {
    let setup = Setup::new("marker");
    let daemon = setup.start();
    std::fs::write(
        setup.path("inbox/users.csv"),
        users_file(&[user(1, false), user(2, false)]),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(setup.archived().is_empty(), "taken without its marker");
    assert_eq!(setup.fake.requests(), 0);
    std::fs::write(setup.path("inbox/users.csv.done"), "").unwrap();
    setup.wait_archived(&daemon, 1);
    assert_eq!(setup.portal(), expected(&[(1, "0"), (2, "0")]));
    assert!(
        files(&setup.path("inbox")).is_empty(),
        "the marker goes with the file"
    );
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_bad_file_is_rejected_with_its_errors_and_nothing_is_pushed() {
    let setup = Setup::new("stable");
    // Present before the daemon starts: taken on start.
    setup.drop_file(
        "bad.csv",
        &users_file(&[user(1, false), "E2;;First2;login2;not-an-email;0".into()]),
    );
    setup.drop_file("~$lock.csv", "not a drop");
    setup.drop_file(".hidden.csv", "not a drop");
    let daemon = setup.start();
    wait_until(
        Duration::from_secs(20),
        || files(&setup.path("inbox/rejected")).len() == 2,
        || daemon.log(),
    );
    let rejected = files(&setup.path("inbox/rejected"));
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    let errors =
        std::fs::read_to_string(setup.path(&format!("inbox/rejected/{}", rejected[1]))).unwrap();
    assert!(rejected[1].ends_with("_bad.csv.errors.txt"), "{rejected:?}");
    assert!(errors.contains("bad.csv:3:"), "{errors}");
    assert!(errors.contains("refused"), "{errors}");
    assert_eq!(setup.fake.requests(), 0);
    // Hidden and lock files are never taken.
    assert_eq!(files(&setup.path("inbox")), [".hidden.csv", "~$lock.csv"]);
    let (code, out, _) = setup.run(&["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("users: last file bad.csv: rejected"), "{out}");
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_mass_block_is_held_until_approved_then_applied() {
    let setup = Setup::new("stable");
    let daemon = setup.start();
    let all: Vec<String> = (1..=4).map(|n| user(n, false)).collect();
    setup.drop_file("users1.csv", &users_file(&all));
    setup.wait_archived(&daemon, 1);
    let requests = setup.fake.requests();

    // Only E1 left: 3 of 4 blocked, above max_block_percent = 50.
    setup.drop_file("users2.csv", &users_file(&all[..1]));
    wait_until(
        Duration::from_secs(20),
        || files(&setup.path("inbox/held")).len() == 3,
        || daemon.log(),
    );
    let held = files(&setup.path("inbox/held"));
    assert!(held[0].ends_with("_users2.csv"), "{held:?}");
    assert!(held[1].ends_with(".plan.json") && held[2].ends_with(".plan.txt"));
    let plan = std::fs::read_to_string(setup.path(&format!("inbox/held/{}", held[2]))).unwrap();
    assert!(
        plan.contains("HELD by safety rule max_block_percent"),
        "{plan}"
    );
    assert!(plan.contains("0 create, 0 update, 3 block"), "{plan}");
    assert_eq!(
        setup.fake.requests(),
        requests,
        "nothing reached the target"
    );

    let (code, out, err) = setup.run(&["approve", &format!("inbox/held/{}", held[0])]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("approved"), "{out}");
    setup.wait_archived(&daemon, 2);
    assert_eq!(
        setup.portal(),
        expected(&[(1, "0"), (2, "1"), (3, "1"), (4, "1")])
    );
    assert!(files(&setup.path("inbox/held")).is_empty());
    let archived = setup.archived();
    assert!(archived[1].ends_with("_users2.csv"), "{archived:?}");
    let report = report(&setup.path(&format!("inbox/archive/{}", archived[1])));
    assert_eq!(report["file"], "users2.csv");
    assert_eq!(report["targets"]["lms"]["block"], 3);
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn status_show_and_duplicates_while_the_daemon_runs() {
    let setup = Setup::new("stable");
    let daemon = setup.start();
    let text = users_file(&[user(1, false), user(2, false)]);
    setup.drop_file("users.csv", &text);
    setup.wait_archived(&daemon, 1);
    let requests = setup.fake.requests();

    // The same bytes again: archived as a duplicate, nothing pushed.
    setup.drop_file("users-again.csv", &text);
    setup.wait_archived(&daemon, 2);
    let archived = setup.archived();
    let duplicate = report(&setup.path(&format!("inbox/archive/{}", archived[1])));
    assert_eq!(duplicate["duplicate"], true, "{duplicate}");
    assert_eq!(setup.fake.requests(), requests);

    // The daemon holds the store: these go through its socket.
    let (code, out, err) = setup.run(&["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("running (pid"), "{out}");
    assert!(out.contains("files today"), "{out}");
    assert!(
        out.contains("users: last file users-again.csv: duplicate"),
        "{out}"
    );
    assert!(out.contains("lms: outbox 0, parked 0, last push"), "{out}");
    let (code, out, _) = setup.run(&["status", "--json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["files_today"], 2);
    assert_eq!(status["targets"]["lms"]["outbox"], 0);

    let (code, out, err) = setup.run(&["show", "E1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("lms users E1 (source users):"), "{out}");
    assert!(out.contains("acknowledged: active at"), "{out}");
    assert!(out.contains("login = \"login1\""), "{out}");
    let (code, out, _) = setup.run(&["show", "E99"]);
    assert_eq!(code, 1, "{out}");

    // `plan` and `retry` while it runs.
    std::fs::write(
        setup.path("next.csv"),
        users_file(&[user(1, false), user(2, false), user(3, false)]),
    )
    .unwrap();
    let (code, out, err) = setup.run(&["plan", "next.csv", "--source", "users"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("target lms: 1 create, 0 update"), "{out}");
    // A plan too big for one answer streams through the socket in pieces,
    // and says what the same plan says without a daemon.
    let many: Vec<String> = (1..=800).map(|n| user(n, false)).collect();
    std::fs::write(setup.path("many.csv"), users_file(&many)).unwrap();
    let (code, streamed, err) = setup.run(&["plan", "many.csv", "--source", "users", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(streamed.len() > 2 * 64 * 1024, "{} bytes", streamed.len());
    let plan: serde_json::Value = serde_json::from_str(&streamed).unwrap();
    let actions = plan["targets"]["lms"]["actions"].as_array().unwrap();
    let lms = &plan["targets"]["lms"];
    assert_eq!(lms["create"], 798, "{lms}");
    let counted: u64 = ["create", "update", "block", "unblock"]
        .iter()
        .map(|kind| lms[kind].as_u64().unwrap())
        .sum();
    assert_eq!(
        actions.len() as u64,
        counted,
        "every action, not the first few"
    );
    assert!(
        actions
            .iter()
            .all(|a| a["changes"].as_object().is_some_and(|c| !c.is_empty()))
    );
    let (code, out, _) = setup.run(&["retry"]);
    assert_eq!(code, 0);
    assert!(out.contains("lms: 0 parked record(s) released"), "{out}");

    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    // Without a daemon, the commands read the state themselves.
    let (code, out, _) = setup.run(&["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("rostersync stopped"), "{out}");
    let (code, out, _) = setup.run(&["show", "E2"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("acknowledged: active"), "{out}");
    let socket = setup.path("state/control.sock");
    assert!(!socket.exists(), "the socket is removed on exit");
}

#[test]
fn sigterm_lets_pushes_finish_and_a_restart_completes_the_rest() {
    let setup = Setup::new("stable");
    // Slow answers: the push is under way when SIGTERM arrives.
    setup.fake.with(|p| p.faults.slow_ms = 150);
    let daemon = setup.start();
    let all: Vec<String> = (1..=400).map(|n| user(n, false)).collect();
    setup.drop_file("users.csv", &users_file(&all));
    wait_until(
        Duration::from_secs(20),
        || setup.fake.requests() >= 2,
        || daemon.log(),
    );
    let (status, log) = daemon.stop();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("SIGTERM: stopping"), "{log}");
    assert!(setup.path("log/status.json").exists());
    // The file was committed before the push: it is archived, not re-read.
    assert_eq!(setup.archived().len(), 1);

    setup.fake.with(|p| p.faults.slow_ms = 0);
    let daemon = setup.start();
    setup.wait_archived(&daemon, 1);
    let want: Vec<(usize, &str)> = (1..=400).map(|n| (n, "0")).collect();
    assert_eq!(setup.portal(), expected(&want));
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn sighup_reloads_a_good_config_and_refuses_a_bad_one() {
    let setup = Setup::new("stable");
    let daemon = setup.start();
    let good = setup.config();

    // A bad config: refused, the running one stays.
    setup
        .rewrite_config(|good| good.replace("settle = \"300ms\"", "settle = \"300ms\"\nsetle = 1"));
    daemon.signal("HUP");
    daemon.wait_log("config reload refused", Duration::from_secs(10));
    assert!(daemon.log().contains("setle"), "{}", daemon.log());
    setup.drop_file("users1.csv", &users_file(&[user(1, false)]));
    setup.wait_archived(&daemon, 1);

    // A good one with a second source: its inbox is watched from then on.
    let more = Source::users("more", "inbox2")
        .set("mode", "delta")
        .set("settle", "300ms")
        .targets(&["lms"]);
    setup.rewrite_config(|_| good.clone() + "\n" + &more.toml());
    std::fs::create_dir(setup.path("inbox2")).unwrap();
    daemon.signal("HUP");
    daemon.wait_log("config reloaded", Duration::from_secs(10));
    std::fs::write(
        setup.path("inbox2/delta.csv"),
        users_file(&[user(2, false)]),
    )
    .unwrap();
    wait_until(
        Duration::from_secs(20),
        || setup.portal().len() == 2,
        || daemon.log(),
    );
    // The reporter may still be rewriting the report (a hidden temporary
    // file beside it) once the portal has the user: wait until it is done.
    setup.0.wait_archived(&daemon, "inbox2", 1);
    assert_eq!(files(&setup.path("inbox2/archive")).len(), 2);
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn poll_mode_takes_files_too() {
    let setup = Setup(
        lms("stable")
            .edit_source("users", |s| s.set("poll", true))
            .build(),
    );
    let daemon = setup.start();
    setup.drop_file("users.csv", &users_file(&[user(1, false)]));
    setup.wait_archived(&daemon, 1);
    assert_eq!(setup.portal(), expected(&[(1, "0")]));
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

/// README: `scripts/demo.sh` runs the daemon on a copy of the example
/// (its inboxes and `config.example.toml`, paths moved into the copy), with
/// the wbt-file target, no server needed. `--seed` makes the same copy here.
#[test]
fn the_readme_demo_archives_the_example_files_with_their_reports() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let demo = Harness::bare();
    let dir = &demo.dir;
    let seeded = std::process::Command::new(repo.join("scripts/demo.sh"))
        .arg("--seed")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(seeded.success(), "scripts/demo.sh --seed failed");
    let daemon = demo.start();
    let archive = |inbox: &str| files(&dir.path().join("inbox").join(inbox).join("archive"));
    wait_until(
        Duration::from_secs(20),
        || archive("orgs").len() == 2 && archive("users").len() == 2,
        || daemon.log(),
    );
    let reports: Vec<String> = archive("users")
        .into_iter()
        .filter(|n| n.ends_with(".report.json"))
        .collect();
    assert_eq!(reports.len(), 1);
    wait_until(
        Duration::from_secs(10),
        // Organisations go level by level (parents first), one file each.
        || {
            let out = files(&dir.path().join("wbt-out"));
            out.iter().any(|n| n.starts_with("orgs_"))
                && out.iter().any(|n| n.starts_with("users_"))
        },
        || daemon.log(),
    );
    assert!(dir.path().join("log/status.json").exists());
    let logs = files(&dir.path().join("log"));
    assert!(
        logs.iter()
            .any(|n| n.starts_with("rostersync.") && n.ends_with(".log")),
        "{logs:?}"
    );
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn approve_without_a_daemon_applies_and_pushes_like_sync() {
    let setup = Setup::new("stable");
    let daemon = setup.start();
    let all: Vec<String> = (1..=4).map(|n| user(n, false)).collect();
    setup.drop_file("users1.csv", &users_file(&all));
    setup.wait_archived(&daemon, 1);
    setup.drop_file("users2.csv", &users_file(&all[..1]));
    wait_until(
        Duration::from_secs(20),
        || files(&setup.path("inbox/held")).len() == 3,
        || daemon.log(),
    );
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    let held = files(&setup.path("inbox/held"))[0].clone();
    let requests = setup.fake.requests();

    // No daemon: `approve` opens the store itself, commits, pushes, files away.
    let (code, out, err) = setup.run(&["approve", &format!("inbox/held/{held}")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("users2.csv: approved → "), "{out}");
    assert!(out.contains("0 create, 0 update, 3 block"), "{out}");
    assert!(setup.fake.requests() > requests, "nothing was pushed");
    assert_eq!(
        setup.portal(),
        expected(&[(1, "0"), (2, "1"), (3, "1"), (4, "1")])
    );
    assert!(files(&setup.path("inbox/held")).is_empty());
    let archived = setup.archived();
    assert_eq!(archived.len(), 2, "{archived:?}");
    assert!(archived[1].ends_with("Z_users2.csv"), "{archived:?}");
    let report = report(&setup.path(&format!("inbox/archive/{}", archived[1])));
    assert_eq!(report["complete"], true, "{report}");
    assert_eq!(report["targets"]["lms"]["block"], 3);
    let actions = report["targets"]["lms"]["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 3);
    assert!(actions.iter().all(|a| a["status"] == "done"), "{report}");
    let (code, out, _) = setup.run(&["show", "E2"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("acknowledged: blocked"), "{out}");
    // The store was released: the daemon starts on it again.
    let daemon = setup.start();
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn json_logs_are_one_object_per_line_with_the_fields() {
    let setup = Setup(lms("stable").daemon("log_format", "json").build());
    let daemon = setup.start();
    // A disabled new person is not created: the counts say so.
    setup.drop_file(
        "users.csv",
        &users_file(&[user(1, false), user(2, false), user(3, true)]),
    );
    setup.wait_archived(&daemon, 1);
    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{stderr}");

    let logs: Vec<String> = files(&setup.path("log"))
        .into_iter()
        .filter(|n| n.starts_with("rostersync.") && n.ends_with(".log"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let text = std::fs::read_to_string(setup.path("log").join(&logs[0])).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(lines.len() >= 4, "{text}");
    for line in &lines {
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    let processed: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("file processed"))
        })
        .collect();
    assert_eq!(processed.len(), 1, "{text}");
    let fields = &processed[0]["fields"];
    assert_eq!(processed[0]["level"], "INFO");
    assert_eq!(fields["source"], "users", "{fields}");
    assert_eq!(fields["file"], "users.csv", "{fields}");
    assert_eq!(fields["outcome"], "archived", "{fields}");
    assert_eq!(fields["rows"], 3, "{fields}");
    // Each target's own counts: summed, they would count a person per target.
    assert_eq!(
        fields["targets"], "lms: 2 create, 0 update, 0 block, 0 unblock, 1 not created",
        "{fields}"
    );
    assert!(
        fields["moved_to"]
            .as_str()
            .is_some_and(|m| m.contains("archive") && m.ends_with("Z_users.csv")),
        "{fields}"
    );
    assert!(fields["ms"].is_u64(), "{fields}");
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    assert!(messages.contains(&"watching the inboxes"), "{messages:?}");
    assert!(messages.contains(&"stopped"), "{messages:?}");
    assert!(!text.contains(TOKEN), "the token leaked into the log");
    // stderr stays text for a person.
    assert!(stderr.contains("file processed"), "{stderr}");
    assert!(!stderr.trim_start().starts_with('{'), "{stderr}");
}

#[test]
fn the_daily_date_re_plan_activates_and_expires_records() {
    let setup = Setup::new("stable");
    let day = [("ROSTERSYNC_TEST_TODAY", "2030-01-10")];
    let daemon = setup.spawn_with(&day);
    daemon.wait_log("watching the inboxes", Duration::from_secs(20));
    // E2 starts on the 11th; the 10th is E3's last day.
    setup.drop_file(
        "users.csv",
        "user_extid;user_lname;user_fname;user_login;user_email;user_activation_date;user_expiration_date\n\
         E1;Name1;First1;login1;login1@x.fr;;\n\
         E2;Name2;First2;login2;login2@x.fr;2030/01/11;\n\
         E3;Name3;First3;login3;login3@x.fr;;2030/01/10\n",
    );
    setup.wait_archived(&daemon, 1);
    // A new record not active yet is not created.
    assert_eq!(setup.portal(), expected(&[(1, "0"), (3, "0")]));
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert_eq!(
        std::fs::read_to_string(setup.path("state/dates.last")).unwrap(),
        "2030-01-10\n"
    );

    // The next day: E2 is created, E3 blocked, without any new file.
    let day = [("ROSTERSYNC_TEST_TODAY", "2030-01-11")];
    let daemon = setup.spawn_with(&day);
    daemon.wait_log("dates re-planned", Duration::from_secs(20));
    wait_until(
        Duration::from_secs(20),
        || setup.portal() == expected(&[(1, "0"), (2, "0"), (3, "1")]),
        || format!("{:?}\n{}", setup.portal(), daemon.log()),
    );
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert_eq!(
        std::fs::read_to_string(setup.path("state/dates.last")).unwrap(),
        "2030-01-11\n"
    );
    assert_eq!(setup.archived().len(), 1, "no file was needed");
}

#[test]
fn a_stop_cuts_requests_still_in_flight_after_the_grace_period() {
    let setup = Setup(
        lms("stable")
            .daemon("grace", "300ms")
            .edit_target("lms", |t| t.set("timeout", "30s"))
            .build(),
    );
    // The portal answers after 4 s: the first request is in flight at the stop.
    setup.fake.with(|p| p.faults.slow_ms = 4_000);
    let daemon = setup.start();
    setup.drop_file(
        "users.csv",
        &users_file(&[user(1, false), user(2, false), user(3, false)]),
    );
    wait_until(
        Duration::from_secs(20),
        || setup.fake.requests() >= 1,
        || daemon.log(),
    );
    let asked = Instant::now();
    let (status, log) = daemon.stop();
    let took = asked.elapsed();
    assert!(status.success(), "{log}");
    assert!(
        took < Duration::from_millis(2_500),
        "stopping took {took:?}, more than grace = 300ms allows\n{log}"
    );
    assert!(log.contains("cut after the grace period"), "{log}");
    // Committed before the push: archived, its records kept for the next start.
    assert_eq!(setup.archived().len(), 1);
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(setup.path("log/status.json")).unwrap()).unwrap();
    assert_eq!(status["running"], false, "{status}");
    assert_eq!(status["targets"]["lms"]["outbox"], 3, "{status}");
}

#[test]
fn the_inboxes_are_rescanned_every_rescan_even_without_events() {
    let setup = Setup(lms("stable").daemon("rescan", "200ms").build());
    // The inbox is a link, as a mount point would be: once it points
    // elsewhere, the watch on the old folder sees nothing of the new one.
    std::fs::remove_dir(setup.path("inbox")).unwrap();
    for folder in ["share1", "share2"] {
        std::fs::create_dir(setup.path(folder)).unwrap();
    }
    std::os::unix::fs::symlink("share1", setup.path("inbox")).unwrap();
    let daemon = setup.start();
    std::os::unix::fs::symlink("share2", setup.path("inbox.new")).unwrap();
    std::fs::rename(setup.path("inbox.new"), setup.path("inbox")).unwrap();
    let dropped = Instant::now();
    setup.drop_file("users.csv", &users_file(&[user(1, false)]));
    // Well before the default 10 s rescan.
    wait_until(
        Duration::from_secs(5),
        || setup.archived().len() == 1,
        || format!("not taken after {:?}\n{}", dropped.elapsed(), daemon.log()),
    );
    // Its report complete (no temporary file beside it any more).
    setup.wait_archived(&daemon, 1);
    assert_eq!(files(&setup.path("share2/archive")).len(), 2);
    assert_eq!(setup.portal(), expected(&[(1, "0")]));
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_waiting_processor_scans_no_more_often_than_rescan_says() {
    // The processor beats every second for the watchdog; a beat is not a
    // reason to look at the inboxes again. An inbox that cannot be read says
    // so at each scan: with `rescan = "30s"`, a scan at start and those the
    // removal's events cause in eight seconds, not one every second.
    let h = Harness::builder()
        .daemon("rescan", "30s")
        .source(Source::users("hr", "gone").targets(&["wbt"]))
        .target(Target::wbt_file("wbt", "wbt-out"))
        .build();
    let daemon = h.start();
    // The eight seconds count from a daemon that watches (a loaded machine
    // can take seconds to start it).
    daemon.wait_log("watching the inboxes", Duration::from_secs(30));
    std::fs::remove_dir_all(h.path("gone")).unwrap();
    std::thread::sleep(Duration::from_secs(8));
    let (_, log) = daemon.stop();
    // The removal itself may wake it up a few times (the folder's own
    // events, coalesced differently under load): a scan every second would
    // be 8 or more.
    let scans = log.matches("cannot read the inbox").count();
    assert!(scans <= 5, "{scans} scans in 8 s:\n{log}");
}

#[test]
fn sync_while_the_daemon_holds_the_store_says_so_once() {
    let setup = Setup::new("stable");
    let daemon = setup.start();
    daemon.wait_log("watching the inboxes", Duration::from_secs(20));
    let file = setup.write("elsewhere.csv", &users_file(&[user(1, false)]));
    let (code, out, err) = setup.run(&["sync", "--source", "users", &file.to_string_lossy()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("is the daemon running?")
            && err.ends_with("state store: locked by another process\n"),
        "{err}"
    );
    // Each cause once, and none of sled's inner wording.
    assert!(
        !err.contains("acquire lock") && err.matches("state store").count() == 1,
        "{err}"
    );
    assert!(setup.fake.directory().is_empty());
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}
