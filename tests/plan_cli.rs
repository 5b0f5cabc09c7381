//! `rostersync plan` through the real binary: table, JSON, held exit code,
//! and that it changes nothing.

mod support;

use std::path::Path;

use assert_cmd::Command;

const CONFIG: &str = r#"
[daemon]
state_dir = "state"
log_dir = "log"

[[source]]
name = "hr"
kind = "users"
inbox = "inbox"
targets = ["lms", "erp"]

[[target]]
name = "lms"
kind = "collaborator"
url = "https://lms.example.org"
token_env = "LMS_TOKEN"

[[target]]
name = "erp"
kind = "gestimum"
url = "https://erp.example.org"
user = "sync"
password_env = "ERP_PASSWORD"
"#;

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), CONFIG).unwrap();
    std::fs::create_dir(dir.path().join("inbox")).unwrap();
    dir
}

fn users(count: usize) -> String {
    let mut text = String::from("user_extid;user_lname;user_fname;user_login;user_email\n");
    for i in 0..count {
        text.push_str(&format!("E{i:03};Nom{i};Pré{i};login{i};u{i}@x.fr\n"));
    }
    text
}

fn plan(dir: &Path, file: &str, extra: &[&str]) -> (i32, String) {
    let output = Command::cargo_bin("rostersync")
        .unwrap()
        .current_dir(dir)
        .args(["plan", "-c", "config.toml", file])
        .args(extra)
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

#[test]
fn a_first_plan_lists_creates_and_creates_no_state() {
    let dir = setup();
    std::fs::write(dir.path().join("inbox/users.csv"), users(12)).unwrap();
    let (code, out) = plan(dir.path(), "inbox/users.csv", &[]);
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
    assert!(
        !dir.path().join("state").exists(),
        "a dry run created the state"
    );
}

#[test]
fn json_gives_every_action_in_the_report_shape() {
    let dir = setup();
    std::fs::write(dir.path().join("inbox/users.csv"), users(12)).unwrap();
    let (code, out) = plan(dir.path(), "inbox/users.csv", &["--json"]);
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
    std::fs::write(dir.path().join("inbox/all.csv"), users(40)).unwrap();
    std::fs::write(dir.path().join("inbox/few.csv"), users(4)).unwrap();
    // The state after a first import, built with the library.
    {
        let mut world = support::World::new();
        let hr = support::source(
            "hr",
            rostersync::ingest::record::RecordKind::Users,
            rostersync::ingest::Mode::Full,
        );
        world.store = support::open_store(&dir.path().join("state/db"));
        world.targets = vec![
            support::target("lms", rostersync::config::TargetKind::Collaborator),
            support::target("erp", rostersync::config::TargetKind::Gestimum),
        ];
        world.sync(&hr, &users(40));
    }
    let before = snapshot(&dir.path().join("state/db"));
    let (code, out) = plan(dir.path(), "inbox/few.csv", &[]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("HELD by safety rule max_shrink_percent: the file has 90.0% fewer rows than the last accepted one, max_shrink_percent is 30"),
        "{out}"
    );
    assert!(
        out.contains("target lms: 0 create, 0 update, 36 block, 0 unblock"),
        "{out}"
    );
    assert_eq!(snapshot(&dir.path().join("state/db")), before);
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
    let dir = setup();
    let config = CONFIG.to_string()
        + "\n[[source]]\nname = \"hr2\"\nkind = \"orgs\"\ninbox = \"inbox2\"\ntargets = [\"lms\"]\n";
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    std::fs::write(dir.path().join("elsewhere.csv"), users(2)).unwrap();
    let output = Command::cargo_bin("rostersync")
        .unwrap()
        .current_dir(dir.path())
        .args(["plan", "-c", "config.toml", "elsewhere.csv"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--source"));
    let (code, _) = plan(dir.path(), "elsewhere.csv", &["--source", "hr"]);
    assert_eq!(code, 0);
}
