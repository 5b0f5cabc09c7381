//! `rostersync sync` end to end against the stateful Collaborator fake,
//! through the real binary: the portal's directory after each file, retries
//! through transient faults, a refused record parked alone, count mismatches
//! split to the culprit, the stop on unexpected blocks, and no token in logs.

mod support;

use std::collections::BTreeMap;

use assert_cmd::prelude::*;
use support::fakes::collaborator::Fake;
use support::{Builder, Harness, Source, Target, USERS_HEADER};

const TOKEN: &str = "cbr-s3cr3t-t0ken-42";

/// The portal's fake, one users source, batches of three, syncs at trace.
fn portal() -> Builder<Fake> {
    Harness::builder()
        .fake(Fake::start(TOKEN))
        .safety("max_block_percent", 50.0)
        .source(Source::users("users", "inbox").targets(&["lms"]))
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", TOKEN)
                .set("batch_size", 3)
                .fast(),
        )
        .sync_log("trace")
}

type Run = support::Run<Fake>;

impl Run {
    fn new() -> Run {
        Self(portal().build())
    }

    /// Drops a users file and syncs it; returns (exit code, stdout, stderr).
    fn sync(&mut self, rows: &[&str]) -> (i32, String, String) {
        self.sync_rows("inbox", "users", USERS_HEADER, rows)
    }
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
    run.set_secret("LMS_TOKEN", "wrong-token-value");
    let file = run.write(
        "inbox/u.csv",
        "user_extid;user_fname;user_login\nE1;Ana;ana\n",
    );
    let (code, out, err) = run.sync_file(&file);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("HTTP 401"), "{out}");
    assert!(!out.contains("wrong-token-value") && !err.contains("wrong-token-value"));
}

#[test]
fn parents_reach_the_portal_before_their_children_with_requests_in_parallel() {
    let h = portal()
        .edit_source("users", |s| s.set("kind", "orgs"))
        .edit_target("lms", |t| t.set("batch_size", 1).set("concurrency", 4))
        .build();
    // Children listed before their parents, and keys that sort the wrong way.
    let file = h.write(
        "inbox/orgs.csv",
        "org_extid;org_label;org_parentextid\n\
         A3;Team;B2\nA4;Other team;B2\nB2;Division;C1\nC1;Company;\nD0;Lab;C1\n",
    );
    let (code, out, err) = h.sync_file(&file);
    assert_eq!(code, 0, "{out}{err}");
    let orgs = h.fake.with(|p| p.orgs.keys().cloned().collect::<Vec<_>>());
    assert_eq!(orgs, ["A3", "A4", "B2", "C1", "D0"]);
    assert_eq!(
        h.fake.with(|p| p.hits.get("orgs").copied()),
        Some(5),
        "one request each, none refused"
    );
}

#[test]
fn check_online_tries_the_token_without_showing_it() {
    let run = Run::new();
    let check = |token: &str| {
        let (code, out, err) = run.run_with(
            &["check", "--online"],
            &[("LMS_TOKEN", token), ("ROSTERSYNC_LOG", "trace")],
        );
        let text = out + &err;
        assert!(!text.contains(token), "the token leaked: {text}");
        (code, text)
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
    run.command()
        .args(["check", "-c", "config.toml"])
        .assert()
        .success()
        .stdout("ok\n");
    assert_eq!(run.fake.requests(), requests);
}
