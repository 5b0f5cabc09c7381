//! A report of a file with more actions than `report_actions`: counts whole,
//! the first actions of each kind listed, and every action with where it
//! stands in the `.actions.jsonl` the report names.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Harness, Source, Target, user, users_file, wait_until};

/// The report in an archive folder, once one is written.
fn report_in(archive: &Path) -> Option<PathBuf> {
    std::fs::read_dir(archive)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.to_string_lossy().ends_with(".report.json"))
}

fn read(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_big_report_lists_the_first_actions_and_names_a_file_with_every_one() {
    let h = Harness::builder()
        .daemon("report_actions", 5)
        .source(
            Source::users("hr", "inbox")
                .set("settle", "100ms")
                .targets(&["wbt"]),
        )
        .target(Target::wbt_file("wbt", "wbt-out"))
        .build();
    let daemon = h.start();
    let rows: Vec<String> = (1..=40).map(|n| user(n, false)).collect();
    h.drop_file("inbox/users.csv", &users_file(&rows));
    let report_path = || report_in(&h.path("inbox/archive"));
    wait_until(
        Duration::from_secs(30),
        || report_path().is_some_and(|path| read(&path)["complete"] == true),
        || {
            let report = report_path().map(|path| read(&path));
            format!("no complete report: {report:?}\n{}", daemon.log())
        },
    );
    let report = read(&report_path().unwrap());
    let wbt = &report["targets"]["wbt"];
    assert_eq!(wbt["create"], 40, "{report}");
    assert_eq!(wbt["actions"].as_array().unwrap().len(), 5, "{report}");
    let name = report["actions_file"]
        .as_str()
        .expect("the report names its actions file");
    assert!(name.ends_with("_users.csv.actions.jsonl"), "{name}");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(h.path(&format!("inbox/archive/{name}")))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
    assert_eq!(lines.len(), 40);
    assert!(
        lines
            .iter()
            .all(|l| l["target"] == "wbt" && l["action"] == "create" && l["status"] == "done"),
        "{lines:?}"
    );
    // What each action is and where it stands; the changed fields are the report's.
    assert_eq!(lines[0]["ext_id"], "E1", "{}", lines[0]);
    assert_eq!(lines[0]["changes"], serde_json::json!({}), "{}", lines[0]);
    // Nothing is left in the state folder for it.
    assert!(!h.path("state/commits/hr.actions.jsonl").exists());
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

/// A target that refuses rostersync's token raises one alarm: the report
/// says the target stopped, `status` says why, nothing is parked, and the
/// records wait. With the token file fixed and a reload, they go.
#[test]
fn a_refused_token_stops_the_target_once_and_a_reload_with_the_fixed_token_sends_what_waits() {
    use support::fakes::collaborator::Fake;
    const TOKEN: &str = "cbr-s3cr3t-t0ken-42";
    let h = Harness::builder()
        .fake(Fake::start(TOKEN))
        .source(
            Source::users("hr", "inbox")
                .set("settle", "100ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_file("lms.token", "not-the-token")
                .fast(),
        )
        .build();
    let daemon = h.start();
    let rows: Vec<String> = (1..=5).map(|n| user(n, false)).collect();
    h.drop_file("inbox/users.csv", &users_file(&rows));
    let report_path = || report_in(&h.path("inbox/archive"));
    wait_until(
        Duration::from_secs(30),
        || report_path().is_some_and(|path| read(&path)["targets"]["lms"]["stopped"].is_string()),
        || {
            format!(
                "no stop in the report: {:?}\n{}",
                report_path().map(|p| read(&p)),
                daemon.log()
            )
        },
    );
    let report = read(&report_path().unwrap());
    let lms = &report["targets"]["lms"];
    assert!(
        lms["stopped"].as_str().unwrap().contains("HTTP 401"),
        "{report}"
    );
    assert_eq!(lms["parked"], 0, "{report}");
    assert_eq!(report["complete"], false, "{report}");
    let (_, status, _) = h.run(&["status"]);
    assert!(
        status.contains("stopped: the portal refused the token (HTTP 401"),
        "{status}"
    );
    assert!(!status.contains("not-the-token") && !daemon.log().contains("not-the-token"));
    assert!(h.fake.with(|p| p.users.is_empty()));
    // The token fixed and the config reloaded: the waiting records go, and
    // the report completes without the stop.
    h.secret_file("lms.token", TOKEN);
    daemon.signal("HUP");
    wait_until(
        Duration::from_secs(30),
        || report_path().is_some_and(|path| read(&path)["complete"] == true),
        || {
            format!(
                "no complete report: {:?}\n{}",
                report_path().map(|p| read(&p)),
                daemon.log()
            )
        },
    );
    let report = read(&report_path().unwrap());
    assert!(report["targets"]["lms"]["stopped"].is_null(), "{report}");
    assert_eq!(h.fake.with(|p| p.users.len()), 5);
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_report_lists_what_ingest_let_through() {
    let h = Harness::builder()
        .source(
            Source::users("hr", "inbox")
                .set("settle", "100ms")
                .set("max_invalid_rows", 1)
                .targets(&["wbt"]),
        )
        .target(Target::wbt_file("wbt", "wbt-out"))
        .build();
    let daemon = h.start();
    // An unknown column, and one row whose login is missing.
    let text = "user_extid;user_lname;user_fname;user_login;user_email;user_disable;badge\n\
                E1;Name1;First1;login1;login1@x.fr;0;7\n\
                E2;Name2;First2;;login2@x.fr;0;8\n";
    h.drop_file("inbox/users.csv", text);
    let report_path = || report_in(&h.path("inbox/archive"));
    wait_until(
        Duration::from_secs(30),
        || report_path().is_some_and(|path| read(&path)["complete"] == true),
        || format!("no complete report\n{}", daemon.log()),
    );
    let report = read(&report_path().unwrap());
    let problems: Vec<&str> = report["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems in {report}"))
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("1:7: warning: column \"badge\" is not a known column"),
        "{problems:?}"
    );
    assert!(problems[1].starts_with("3:"), "{problems:?}");
    assert!(problems[1].contains("user_login"), "{problems:?}");
    assert_eq!(report["targets"]["wbt"]["create"], 1, "{report}");
}
