//! `rostersync sync` end to end against the stateful Collaborator fake,
//! through the real binary: the portal's directory after each file, retries
//! through transient faults, a refused record parked alone, count mismatches
//! split to the culprit, the stop on unexpected blocks, and no token in logs.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use assert_cmd::Command;
use support::fakes::collaborator::Fake;

const TOKEN: &str = "cbr-s3cr3t-t0ken-42";

fn config(url: &str) -> String {
    format!(
        r#"
[daemon]
state_dir = "state"
log_dir = "log"

[safety]
max_block_percent = 50.0

[[source]]
name = "users"
kind = "users"
inbox = "inbox"
targets = ["lms"]

[[target]]
name = "lms"
kind = "collaborator"
url = "{url}"
token_env = "LMS_TOKEN"
batch_size = 3
timeout = "2s"
retry = {{ initial = "1ms", max_interval = "5ms", max_elapsed = "10s" }}
"#
    )
}

struct Run {
    dir: tempfile::TempDir,
    fake: Fake,
    files: u32,
}

impl Run {
    fn new() -> Run {
        let fake = Fake::start(TOKEN);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), config(&fake.url)).unwrap();
        std::fs::create_dir(dir.path().join("inbox")).unwrap();
        Run {
            dir,
            fake,
            files: 0,
        }
    }

    /// Drops a users file and syncs it; returns (exit code, stdout, stderr).
    fn sync(&mut self, rows: &[&str]) -> (i32, String, String) {
        self.files += 1;
        let mut text =
            String::from("user_extid;user_lname;user_fname;user_login;user_email;user_disable\n");
        for row in rows {
            text.push_str(row);
            text.push('\n');
        }
        let path = self
            .dir
            .path()
            .join(format!("inbox/users{}.csv", self.files));
        std::fs::write(&path, text).unwrap();
        sync(self.dir.path(), &path)
    }
}

fn sync(dir: &Path, file: &Path) -> (i32, String, String) {
    support::sync_at_trace(dir, file, ("LMS_TOKEN", TOKEN))
}

fn dir(
    entries: &[(&str, &str, &str, &str, &str)],
) -> BTreeMap<String, (String, String, String, String)> {
    entries
        .iter()
        .map(|(uid, login, name, email, status)| {
            (
                uid.to_string(),
                (
                    login.to_string(),
                    name.to_string(),
                    email.to_string(),
                    status.to_string(),
                ),
            )
        })
        .collect()
}

const ANA: &str = "E1;Alves;Ana;ana;ana@x.fr;0";
const BEN: &str = "E2;Blanc;Ben;ben;ben@x.fr;0";
const CLE: &str = "E3;Colin;Cléo;cleo;cleo@x.fr;0";
const DAN: &str = "E4;Dias;Dan;dan;dan@x.fr;0";

#[test]
fn the_portal_ends_up_holding_exactly_what_hr_says() {
    let mut run = Run::new();
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, DAN]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        run.fake.directory(),
        dir(&[
            ("E1", "ana", "Alves", "ana@x.fr", "0"),
            ("E2", "ben", "Blanc", "ben@x.fr", "0"),
            ("E3", "cleo", "Colin", "cleo@x.fr", "0"),
            ("E4", "dan", "Dias", "dan@x.fr", "0"),
        ])
    );
    assert!(
        !err.contains(TOKEN) && !out.contains(TOKEN),
        "the token leaked into the output"
    );
    // Even at trace, sled's internal lines stay out: some are written while
    // threads exit, and a line then would abort the process.
    assert!(!err.contains("sled::"), "{err}");

    // An e-mail change, a leaver, and nobody else touched.
    let requests = run.fake.requests();
    let (code, out, _) = run.sync(&[ANA, &BEN.replace("ben@x.fr", "benoit@x.fr"), CLE]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("target lms: 0 create, 1 update, 1 block, 0 unblock"),
        "{out}"
    );
    assert_eq!(
        run.fake.requests(),
        requests + 1,
        "one batch for two changes"
    );
    assert_eq!(run.fake.directory()["E2"].2, "benoit@x.fr");
    assert_eq!(run.fake.directory()["E4"].3, "1");

    // The same content again: not one request.
    let requests = run.fake.requests();
    let (code, _, _) = run.sync(&[ANA, &BEN.replace("ben@x.fr", "benoit@x.fr"), CLE]);
    assert_eq!(code, 0);
    assert_eq!(run.fake.requests(), requests);

    // Dan comes back.
    let (code, out, _) = run.sync(&[ANA, &BEN.replace("ben@x.fr", "benoit@x.fr"), CLE, DAN]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(run.fake.directory()["E4"].3, "0");
}

#[test]
fn thirty_percent_of_transient_failures_change_nothing_in_the_end() {
    let mut run = Run::new();
    run.fake.with(|p| {
        p.faults.fail_percent = 30;
        p.faults.malformed_percent = 10;
    });
    let mut rows: Vec<String> = (0..30)
        .map(|i| format!("U{i:02};Nom{i};Pré{i};login{i};u{i}@x.fr;0"))
        .collect();
    let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
    let (code, out, first_err) = run.sync(&refs);
    assert_eq!(code, 0, "{out}{first_err}");
    assert_eq!(run.fake.directory().len(), 30);
    // Half of them change; 429s with Retry-After this time.
    run.fake.with(|p| {
        p.faults.malformed_percent = 0;
        p.faults.retry_after = Some("0".into());
    });
    for row in rows.iter_mut().take(15) {
        *row = row.replace("@x.fr", "@y.fr");
    }
    let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
    let (code, out, err) = run.sync(&refs);
    assert_eq!(code, 0, "{out}{err}");
    let directory = run.fake.directory();
    assert_eq!(
        directory
            .values()
            .filter(|u| u.2.ends_with("@y.fr"))
            .count(),
        15
    );
    assert!(
        first_err.contains("retrying after a transient failure")
            && (first_err + &err)
                .matches("retrying after a transient failure")
                .count()
                >= 2,
        "too few failures were injected"
    );
}

#[test]
fn a_refused_record_is_parked_alone_and_retried_with_the_next_file() {
    let mut run = Run::new();
    run.fake.with(|p| p.refused_logins = vec!["ben".into()]);
    let (code, out, _) = run.sync(&[ANA, BEN, CLE, DAN]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 parked"), "{out}");
    assert!(
        out.contains("[parked: HTTP 400: {\"error\":\"login ben is reserved\"}]"),
        "{out}"
    );
    let directory = run.fake.directory();
    assert_eq!(directory.keys().collect::<Vec<_>>(), ["E1", "E3", "E4"]);
    // The batch was split down to Ben alone.
    assert!(
        run.fake
            .with(|p| p.hits.get("single").copied().unwrap_or(0))
            >= 1
    );

    // The portal's administrator frees the login; the next file retries Ben.
    run.fake.with(|p| p.refused_logins.clear());
    let (code, out, _) = run.sync(&[ANA, BEN, CLE, DAN, "E5;Eyre;Eve;eve;eve@x.fr;0"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(run.fake.directory().len(), 5);
}

#[test]
fn counts_that_do_not_add_up_are_split_down_to_single_imports() {
    let mut run = Run::new();
    run.fake.with(|p| p.faults.wrong_counts_percent = 100);
    let (code, out, _) = run.sync(&[ANA, BEN, CLE]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(run.fake.directory().len(), 3);
    assert_eq!(run.fake.with(|p| p.hits.get("single").copied()), Some(3));
}

#[test]
fn a_portal_that_blocks_missing_users_stops_the_target_loudly() {
    let mut run = Run::new();
    run.sync(&[ANA, BEN, CLE, DAN]);
    run.fake.with(|p| p.block_missing = true);
    // Two changes, so that they go as one batch (a single record goes to the
    // single endpoint, which never blocks anyone else).
    let (code, out, err) = run.sync(&[
        ANA,
        &BEN.replace("ben@x.fr", "benoit@x.fr"),
        &CLE.replace("cleo@x.fr", "cleo.colin@x.fr"),
        DAN,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("STOPPED"), "{out}");
    assert!(err.contains("pushing to this target stopped"), "{err}");
    assert!(err.contains("don't block missing users"), "{err}");
}

#[test]
fn a_wrong_token_is_refused_and_parks_without_showing_the_token() {
    let mut run = Run::new();
    let output = Command::cargo_bin("rostersync")
        .unwrap()
        .current_dir(run.dir.path())
        .env("LMS_TOKEN", "wrong-token-value")
        .env("ROSTERSYNC_LOG", "trace")
        .args(["sync", "-c", "config.toml"])
        .arg({
            std::fs::write(
                run.dir.path().join("inbox/u.csv"),
                "user_extid;user_fname;user_login\nE1;Ana;ana\n",
            )
            .unwrap();
            run.dir.path().join("inbox/u.csv")
        })
        .output()
        .unwrap();
    run.files += 1;
    let out = String::from_utf8(output.stdout).unwrap();
    let err = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{out}{err}");
    assert!(out.contains("HTTP 401"), "{out}");
    assert!(!out.contains("wrong-token-value") && !err.contains("wrong-token-value"));
}

#[test]
fn parents_reach_the_portal_before_their_children_with_requests_in_parallel() {
    let fake = Fake::start(TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let config = config(&fake.url)
        .replace("kind = \"users\"", "kind = \"orgs\"")
        .replace("batch_size = 3", "batch_size = 1\nconcurrency = 4");
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    std::fs::create_dir(dir.path().join("inbox")).unwrap();
    // Children listed before their parents, and keys that sort the wrong way.
    let file = dir.path().join("inbox/orgs.csv");
    std::fs::write(
        &file,
        "org_extid;org_label;org_parentextid\n\
         A3;Team;B2\nA4;Other team;B2\nB2;Division;C1\nC1;Company;\nD0;Lab;C1\n",
    )
    .unwrap();
    let (code, out, err) = sync(dir.path(), &file);
    assert_eq!(code, 0, "{out}{err}");
    let orgs = fake.with(|p| p.orgs.keys().cloned().collect::<Vec<_>>());
    assert_eq!(orgs, ["A3", "A4", "B2", "C1", "D0"]);
    assert_eq!(
        fake.with(|p| p.hits.get("orgs").copied()),
        Some(5),
        "one request each, none refused"
    );
}

#[test]
fn check_online_tries_the_token_without_showing_it() {
    let run = Run::new();
    let check = |token: &str| {
        let output = Command::cargo_bin("rostersync")
            .unwrap()
            .current_dir(run.dir.path())
            .env("LMS_TOKEN", token)
            .env("ROSTERSYNC_LOG", "trace")
            .args(["check", "--online", "-c", "config.toml"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(!text.contains(token), "the token leaked: {text}");
        (output.status.code().unwrap(), text)
    };
    let (code, text) = check(TOKEN);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("target lms (collaborator): ok"), "{text}");

    let (code, text) = check("not-the-right-token");
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("target lms (collaborator): the token was refused (HTTP 401)"),
        "{text}"
    );
    // A config check without --online never reaches the target.
    let requests = run.fake.requests();
    Command::cargo_bin("rostersync")
        .unwrap()
        .current_dir(run.dir.path())
        .env("LMS_TOKEN", TOKEN)
        .args(["check", "-c", "config.toml"])
        .assert()
        .success()
        .stdout("ok\n");
    assert_eq!(run.fake.requests(), requests);
}
