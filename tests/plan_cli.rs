//! `rostersync plan` through the real binary: table, JSON, held exit code,
//! and that it changes nothing.

mod support;

use std::path::Path;

use support::{Builder, Harness, Source, Target};

/// One users source feeding a Collaborator and a Gestimum target that
/// `plan` never reaches.
fn hr() -> Builder {
    Harness::builder()
        .source(Source::users("hr", "inbox").targets(&["lms", "erp"]))
        .target(
            Target::collaborator("lms")
                .url("https://lms.example.org")
                .set("token_env", "LMS_TOKEN"),
        )
        .target(
            Target::gestimum("erp")
                .url("https://erp.example.org")
                .user("sync")
                .set("password_env", "ERP_PASSWORD"),
        )
}

fn setup() -> Harness {
    hr().build()
}

fn users(count: usize) -> String {
    let mut text = String::from("user_extid;user_lname;user_fname;user_login;user_email\n");
    for i in 0..count {
        text.push_str(&format!("E{i:03};Nom{i};Pré{i};login{i};u{i}@x.fr\n"));
    }
    text
}

/// `rostersync plan FILE EXTRA... -c config.toml`: (exit code, stdout).
fn plan(h: &Harness, file: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["plan", file];
    args.extend_from_slice(extra);
    let (code, out, _) = h.run(&args);
    (code, out)
}

#[test]
fn a_first_plan_lists_creates_and_creates_no_state() {
    let dir = setup();
    dir.write("inbox/users.csv", &users(12));
    let (code, out) = plan(&dir, "inbox/users.csv", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("plan for users.csv (source hr, 12 rows)\n"),
        "{out}"
    );
    assert!(
        out.contains("target lms: 12 create, 0 update, 0 block, 0 unblock"),
        "{out}"
    );
    assert!(
        out.contains("target erp: 12 create, 0 update, 0 block, 0 unblock"),
        "{out}"
    );
    assert!(
        out.contains("  create   E000  email: ∅ → \"u0@x.fr\""),
        "{out}"
    );
    assert!(out.contains("  … and 2 more create"), "{out}");
    assert!(!dir.path("state").exists(), "a dry run created the state");
}

#[test]
fn json_gives_every_action_in_the_report_shape() {
    let dir = setup();
    dir.write("inbox/users.csv", &users(12));
    let (code, out) = plan(&dir, "inbox/users.csv", &["--json"]);
    assert_eq!(code, 0);
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["source"], "hr");
    assert_eq!(plan["file"], "users.csv");
    assert!(plan["held"].is_null());
    let lms = &plan["targets"]["lms"];
    assert_eq!(lms["create"], 12);
    assert_eq!(lms["parked"], 0);
    let actions = lms["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 12);
    assert_eq!(actions[11]["action"], "create");
    assert_eq!(actions[11]["kind"], "users");
    assert_eq!(actions[11]["ext_id"], "E011");
    assert_eq!(
        actions[11]["changes"]["email"],
        serde_json::json!([null, "u11@x.fr"])
    );
}

#[test]
fn a_mass_block_is_held_with_exit_3_and_changes_nothing() {
    let dir = setup();
    dir.write("inbox/all.csv", &users(40));
    dir.write("inbox/few.csv", &users(4));
    // The state after a first import, built with the library.
    {
        let mut world = support::World::new();
        let hr = support::source(
            "hr",
            rostersync::ingest::record::RecordKind::Users,
            rostersync::ingest::Mode::Full,
        );
        world.store = support::open_store(&dir.path("state/db"));
        world.targets = vec![
            support::target("lms", rostersync::config::TargetKind::Collaborator),
            support::target("erp", rostersync::config::TargetKind::Gestimum),
        ];
        world.sync(&hr, &users(40));
    }
    let before = snapshot(&dir.path("state/db"));
    let (code, out) = plan(&dir, "inbox/few.csv", &[]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("HELD by safety rule max_shrink_percent: the file has 90.0% fewer rows than the last accepted one, max_shrink_percent is 30"),
        "{out}"
    );
    // Every rule broken is named, and every row accounted for.
    assert!(
        out.contains("  and by safety rule max_block_percent: the plan blocks 90.0% of the source's active records on target erp, max_block_percent is 10"),
        "{out}"
    );
    assert!(
        out.contains("target lms: 0 create, 0 update, 36 block, 0 unblock; 4 unchanged\n"),
        "{out}"
    );
    assert_eq!(snapshot(&dir.path("state/db")), before);
}

#[test]
fn a_new_row_that_is_not_created_is_said_so() {
    let dir = setup();
    dir.write(
        "inbox/users.csv",
        "user_extid;user_lname;user_fname;user_login;user_email;user_disable\n\
         E1;Nom1;Pré1;login1;u1@x.fr;0\n\
         E2;Nom2;Pré2;login2;u2@x.fr;1\n",
    );
    let (code, out) = plan(&dir, "inbox/users.csv", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("target lms: 1 create, 0 update, 0 block, 0 unblock\n  1 new row(s) not created: inactive"),
        "{out}"
    );
    let (_, json) = plan(&dir, "inbox/users.csv", &["--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["targets"]["lms"]["not_created"], 1, "{json}");
    assert_eq!(json["targets"]["lms"]["unchanged"], 0, "{json}");
}

/// Every key and value of the store, to compare before and after.
fn snapshot(db: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = support::open_sled(db);
    let tree = db.open_tree("state").unwrap();
    tree.iter()
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

#[test]
fn a_file_outside_every_inbox_needs_source_when_there_are_several() {
    let dir = hr()
        .source(Source::orgs("hr2", "inbox2").targets(&["lms"]))
        .build();
    dir.write("elsewhere.csv", &users(2));
    let (code, _, err) = dir.run(&["plan", "elsewhere.csv"]);
    assert_eq!(code, 2);
    assert!(err.contains("--source"));
    let (code, _) = plan(&dir, "elsewhere.csv", &["--source", "hr"]);
    assert_eq!(code, 0);
}

#[test]
fn plan_person_shows_only_that_records_actions_per_target() {
    let dir = setup();
    dir.write("inbox/users.csv", &users(12));
    let (code, out) = plan(&dir, "inbox/users.csv", &["--person", "E011"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("plan for users.csv (source hr, 12 rows), E011 only\n"),
        "{out}"
    );
    let actions: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("  ") || l.starts_with("target"))
        .collect();
    assert_eq!(actions.len(), 4, "{out}");
    assert_eq!(actions[0], "target erp:");
    assert!(actions[1].starts_with("  create   E011  "), "{out}");
    assert_eq!(actions[2], "target lms:");
    assert!(
        actions[3].starts_with("  create   E011  ") && actions[3].contains("\"u11@x.fr\""),
        "{out}"
    );
    assert!(!out.contains("E010"), "{out}");

    let (code, out) = plan(&dir, "inbox/users.csv", &["--person", "E999"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("  nothing to do\n").count(), 2, "{out}");

    let (code, out) = plan(&dir, "inbox/users.csv", &["--person", "E003", "--json"]);
    assert_eq!(code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["person"], "E003");
    let lms = json["targets"]["lms"].as_array().unwrap();
    assert_eq!(lms.len(), 1, "{json}");
    assert_eq!(
        (&lms[0]["action"], &lms[0]["ext_id"]),
        (&"create".into(), &"E003".into())
    );
    assert_eq!(lms[0]["changes"]["email"][1], "u3@x.fr");
    assert!(!dir.path("state/db").exists(), "plan created state");
}
