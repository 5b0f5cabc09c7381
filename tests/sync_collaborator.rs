//! `rostersync sync` end to end against the stateful Collaborator fake,
//! through the real binary: the portal's directory after each file, retries
//! through transient faults, batches sent again after a lost answer or a
//! kill, blocks and unblocks, a refused record parked alone, the stop on
//! unexpected blocks or counts above the batch, and no token in logs. Last,
//! the fake's own counting rules.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use assert_cmd::prelude::*;
use support::fakes::collaborator::Fake;
use support::{
    Builder, Harness, Served, Source, Target, USERS_HEADER, user, users_file, wait_until,
};

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

/// The portal holding Ana, Ben, Cléo and Dan, all at work.
fn everyone_active() -> BTreeMap<String, (String, String, String, String)> {
    dir(&[
        ("E1", "ana", "Alves", "ana@x.fr", "0"),
        ("E2", "ben", "Blanc", "ben@x.fr", "0"),
        ("E3", "cleo", "Colin", "cleo@x.fr", "0"),
        ("E4", "dan", "Dias", "dan@x.fr", "0"),
    ])
}

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
        out.contains(
            "[parked: the portal refused this user: HTTP 400: {\"error\":\"login ben is reserved\"}. \
             Correct the record in HR's export or in the portal; it is sent again with the next file, \
             or at `rostersync retry --target lms`]"
        ),
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
fn a_user_the_portal_answers_500_for_is_parked_alone() {
    let mut run = Run::new();
    run.fake.with(|p| {
        p.refused_logins = vec!["ben".into()];
        p.refuse_with_500 = true;
    });
    let (code, out, _) = run.sync(&[ANA, BEN, CLE, DAN]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(", 1 parked\n"), "{out}");
    assert!(
        out.contains(
            "the portal refused this user: HTTP 500: {\"error\":\"login ben is reserved\"}"
        ),
        "{out}"
    );
    assert_eq!(
        run.fake.directory().keys().collect::<Vec<_>>(),
        ["E1", "E3", "E4"]
    );
}

/// A leaver is blocked even when the manager the file names is parked:
/// a block sends no references, so it never waits on one.
#[test]
fn a_leaver_whose_manager_is_parked_is_still_blocked() {
    const HEADER: &str =
        "user_extid;user_lname;user_fname;user_login;user_email;user_disable;user_manager_extid";
    let mut run = Run::new();
    let first = [
        "M1;Boss;Mara;mara;mara@x.fr;0;",
        "E1;Alves;Ana;ana;ana@x.fr;0;M1",
    ];
    let (code, out, err) = run.sync_rows("inbox", "users", HEADER, &first);
    assert_eq!(code, 0, "{out}{err}");
    // The manager's new login is refused; Ana leaves in the same file.
    run.fake.with(|p| p.refused_logins = vec!["taken".into()]);
    let second = [
        "M1;Boss;Mara;taken;mara@x.fr;0;",
        "E1;Alves;Ana;ana;ana@x.fr;1;M1",
    ];
    let (code, out, err) = run.sync_rows("inbox", "users", HEADER, &second);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(", 1 parked"),
        "only the manager is parked: {out}"
    );
    assert_eq!(
        run.fake.directory()["E1"].3,
        "1",
        "the leaver is still active"
    );
    assert_eq!(run.fake.directory()["M1"].0, "mara");
}

#[test]
fn counts_above_the_batch_stop_the_target_loudly() {
    let mut run = Run::new();
    // The portal says it created one user more than the batch held.
    run.fake.with(|p| p.faults.wrong_counts_percent = 100);
    let (code, out, err) = run.sync(&[ANA, BEN, CLE]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("STOPPED"), "{out}");
    assert!(err.contains("pushing to this target stopped"), "{err}");
    assert!(
        out.contains("created 4 and updated 0 for 3 users sent"),
        "{out}"
    );
    // The portal did take the batch; nothing was split to find a culprit.
    assert_eq!(run.fake.directory().len(), 3);
    assert_eq!(run.fake.hits("single"), 0);
}

#[test]
fn a_batch_whose_answer_was_lost_is_sent_again_and_nothing_is_parked() {
    let mut run = Run::new();
    // The first batch is imported but its answer never comes (the client
    // times out): the same batch goes again and changes nothing there.
    run.fake.with(|p| p.lost_answers = 1);
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, DAN]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("parked"), "{out}");
    assert_eq!(run.fake.directory(), everyone_active());
    assert_eq!(run.fake.with(|p| (p.creates, p.received)), (4, 7));
}

#[test]
fn a_daemon_killed_mid_import_sends_the_batch_again_and_parks_nothing() {
    let h = portal().build();
    h.fake.with(|p| p.lost_answers = 1);
    let rows: Vec<String> = (1..=7).map(|n| user(n, false)).collect();
    let daemon = h.start();
    h.drop_file("inbox/users.csv", &users_file(&rows));
    // Killed once the portal has imported a batch whose answer it holds.
    wait_until(
        Duration::from_secs(20),
        || h.fake.with(|p| p.lost_answers == 0),
        || format!("no batch reached the portal\n{}", daemon.log()),
    );
    daemon.kill();
    let daemon = h.start();
    h.wait_archived(&daemon, "inbox", 1);
    let (code, out, _) = h.run(&["status", "--json"]);
    assert_eq!(code, 0, "{out}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["targets"]["lms"]["outbox"], 0, "{status}");
    assert_eq!(status["targets"]["lms"]["parked"], 0, "{status}");
    let (exit, log) = daemon.stop();
    assert!(exit.success(), "{log}");
    let expected: BTreeMap<_, _> = (1..=7)
        .map(|n| {
            let login = format!("login{n}");
            let user = (
                login.clone(),
                format!("Name{n}"),
                format!("{login}@x.fr"),
                "0".into(),
            );
            (format!("E{n}"), user)
        })
        .collect();
    assert_eq!(h.fake.directory(), expected);
    let (creates, received) = h.fake.with(|p| (p.creates, p.received));
    assert_eq!(creates, 7);
    assert!(received > 7, "the held batch was not sent again");
}

#[test]
fn a_first_sync_into_a_portal_already_holding_the_users_parks_nothing() {
    // What the portal holds after a run whose acknowledgements were lost.
    let mut earlier = Run::new();
    earlier.sync(&[ANA, BEN, CLE]);
    let held = earlier.fake.with(|p| p.users.clone());
    let mut run = Run::new();
    run.fake.with(|p| p.users = held);
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, DAN]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("parked"), "{out}");
    assert_eq!(run.fake.directory(), everyone_active());
    assert_eq!(run.fake.with(|p| p.creates), 1, "only Dan is new");
}

#[test]
fn leavers_and_returners_are_blocked_and_unblocked_with_nothing_parked() {
    let mut run = support::Run(portal().safety("max_block_percent", 100.0).build());
    let (code, out, _) = run.sync(&[ANA, BEN, CLE, DAN]);
    assert_eq!(code, 0, "{out}");
    let disabled = |row: &str| row.replace(";0", ";1");
    // Dan leaves alone (a batch of one: the single import).
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, &disabled(DAN)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("0 create, 0 update, 1 block, 0 unblock; 3 unchanged\n"),
        "{out}"
    );
    assert_eq!(run.fake.directory()["E4"].3, "1");
    // Ben and Cléo leave and Dan comes back, in one batch.
    let batches = run.fake.hits("batch");
    let (code, out, err) = run.sync(&[ANA, &disabled(BEN), &disabled(CLE), DAN]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("0 create, 0 update, 2 block, 1 unblock; 1 unchanged\n"),
        "{out}"
    );
    assert_eq!(run.fake.hits("batch"), batches + 1);
    assert_eq!(
        run.fake.directory(),
        dir(&[
            ("E1", "ana", "Alves", "ana@x.fr", "0"),
            ("E2", "ben", "Blanc", "ben@x.fr", "1"),
            ("E3", "cleo", "Colin", "cleo@x.fr", "1"),
            ("E4", "dan", "Dias", "dan@x.fr", "0"),
        ])
    );
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
    assert!(
        out.contains("unblock there the users it blocked, then `rostersync retry --target lms`"),
        "{out}"
    );
}

/// A refused token stops the target once: nothing is parked, the records
/// wait, and go once the token is fixed.
#[test]
fn a_wrong_token_stops_the_target_once_parks_nothing_and_never_shows() {
    let mut run = Run::new();
    run.set_secret("LMS_TOKEN", "wrong-token-value");
    let file = run.write(
        "inbox/u.csv",
        "user_extid;user_fname;user_login\nE1;Ana;ana\nE2;Ben;ben\n",
    );
    let (code, out, err) = run.sync_file(&file);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("the portal refused the token (HTTP 401")
            && out.contains("nothing more is sent to this target, and what waits keeps waiting"),
        "{out}"
    );
    assert!(!out.contains("parked"), "{out}");
    assert!(!out.contains("wrong-token-value") && !err.contains("wrong-token-value"));
    assert!(run.fake.with(|p| p.users.is_empty()));
    // The token fixed, the next file takes both the waiting users and its own.
    run.set_secret("LMS_TOKEN", TOKEN);
    let file = run.write(
        "inbox/u2.csv",
        "user_extid;user_fname;user_login\nE1;Ana;ana\nE2;Ben;ben\nE3;Cleo;cleo\n",
    );
    let (code, out, err) = run.sync_file(&file);
    assert_eq!(code, 0, "{out}{err}");
    let users = run
        .fake
        .with(|p| p.users.keys().cloned().collect::<Vec<_>>());
    assert_eq!(users, ["E1", "E2", "E3"]);
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
    // The failure names where the target was asked.
    let at = run
        .fake
        .base_url()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    assert!(
        text.contains(&format!(
            "target lms (collaborator) at {at}: the token was refused (HTTP 401)"
        )),
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

/// The fake on its own, over HTTP: it must count as the real portal does,
/// each rule with its test, since the connector is only as right as this.
/// A token with the characters each encoding changes (`/ + =`).
const ECHOED: &str = "cbr/s3cr3t+t0ken=42/ab";

/// The token as a server could send it back: as is, JSON-escaped (PHP's
/// `\/`), URL-encoded, and in base64, alone or with its `Bearer`.
fn token_forms() -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let mut forms = vec![
        ECHOED.to_string(),
        ECHOED.replace('/', "\\/"),
        url::form_urlencoded::byte_serialize(ECHOED.as_bytes()).collect(),
    ];
    for value in [ECHOED.to_string(), format!("Bearer {ECHOED}")] {
        forms.push(STANDARD.encode(&value));
        forms.push(URL_SAFE_NO_PAD.encode(&value));
    }
    forms
}

/// Every file under `dir`, with its bytes.
fn every_file(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(every_file(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path, bytes));
        }
    }
    found
}

/// A portal whose error pages repeat the request's headers (the fake
/// kernel's echo), the token in `LMS_TOKEN`.
fn echoing_portal() -> Builder<Fake> {
    Harness::builder()
        .fake(Fake::start(ECHOED))
        .safety("max_block_percent", 50.0)
        .source(
            Source::users("users", "inbox")
                .set("settle", "100ms")
                .targets(&["lms"]),
        )
        .target(
            Target::collaborator("lms")
                .token_env("LMS_TOKEN", ECHOED)
                .set("batch_size", 3)
                .set("timeout", "2s")
                .retry("1ms", "5ms", "200ms"),
        )
        .sync_log("trace")
}

/// Fails the test if the token, in any of [`token_forms`], is in a file
/// under the harness's folder (config, inbox, archive, reports, log, the
/// state directory's store) or in one of `outputs`.
fn assert_no_token(run: &Run, outputs: Vec<String>) {
    let mut written = every_file(run.root());
    assert!(
        written
            .iter()
            .any(|(path, _)| path.starts_with(run.path("state"))),
        "no state directory"
    );
    written.extend(
        outputs
            .into_iter()
            .map(|o| ("output".into(), o.into_bytes())),
    );
    for (path, bytes) in written {
        for form in token_forms() {
            assert!(
                !bytes.windows(form.len()).any(|w| w == form.as_bytes()),
                "{} holds the token as {form:?}",
                path.display()
            );
        }
    }
}

/// Refusals (400) and outages (503) whose pages repeat the token, and
/// `check --online` against them: the token shows, in no encoding, in any
/// output or log line, `status`, `show`, or file of the state directory.
#[test]
fn a_token_the_portal_echoes_never_shows_in_outputs_or_the_store() {
    let mut run = support::Run(echoing_portal().build());
    let mut outputs = Vec::new();
    // Refused: the batch split down to single imports, each parked.
    run.fake.with(|p| p.faults.echo_headers = Some(400));
    let (code, out, err) = run.sync(&[ANA, BEN]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("x-cbr-authorization: Bearer ***"), "{out}");
    outputs.push(out + &err);
    // An outage: retried, then parked as still failing.
    run.fake.with(|p| p.faults.echo_headers = Some(503));
    let (code, out, err) = run.sync(&[ANA, BEN, CLE]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("HTTP 503"), "{out}");
    outputs.push(out + &err);
    for args in [&["status"][..], &["show", "E1"], &["show", "E3"]] {
        let (_, out, err) = run.run_with(args, &[("ROSTERSYNC_LOG", "trace")]);
        outputs.push(out + &err);
    }
    assert!(
        outputs[2..].iter().any(|o| o.contains("Bearer ***")),
        "{outputs:?}"
    );
    let (code, out, err) = run.run_with(&["check", "--online"], &[("ROSTERSYNC_LOG", "trace")]);
    assert_eq!(code, 1, "{out}{err}");
    let at = run
        .fake
        .base_url()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    assert!(
        out.contains(&format!("target lms (collaborator) at {at}: HTTP 503")),
        "{out}"
    );
    assert!(out.contains("Bearer ***"), "{out}");
    outputs.push(out + &err);
    assert_no_token(&run, outputs);
}

/// The same through the daemon: its log, its reports and `status` while
/// it runs.
#[test]
fn a_token_the_portal_echoes_never_shows_in_the_daemon_s_log_reports_or_status() {
    let run = support::Run(echoing_portal().build());
    run.fake.with(|p| p.faults.echo_headers = Some(400));
    let daemon = run.spawn_with(&[("ROSTERSYNC_LOG", "trace")]);
    daemon.wait_log("watching the inboxes", Duration::from_secs(20));
    run.drop_file("inbox/users.csv", &users_file(&[ANA.into(), BEN.into()]));
    run.wait_archived(&daemon, "inbox", 1);
    let (_, status, err) = run.run(&["status"]);
    let (_, log) = daemon.stop();
    assert!(log.contains("Bearer ***"), "{log}");
    let reports: Vec<String> = every_file(&run.path("inbox/archive"))
        .into_iter()
        .map(|(_, bytes)| String::from_utf8_lossy(&bytes).into_owned())
        .collect();
    assert!(
        reports.iter().any(|r| r.contains("Bearer ***")),
        "{reports:?}"
    );
    assert_no_token(&run, vec![status + &err, log]);
}

mod the_fake_portal {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::{Fake, TOKEN};

    /// POSTs `body` to `path` with the token, a 1 s timeout:
    /// (HTTP status, JSON answer), or `None` when no answer came in time.
    fn post(fake: &Fake, path: &str, body: &Value) -> Option<(u16, Value)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let reply = reqwest::Client::new()
                .post(format!("{}{path}", fake.url))
                .header("x-cbr-authorization", format!("Bearer {TOKEN}"))
                .timeout(Duration::from_secs(1))
                .json(body)
                .send()
                .await
                .ok()?;
            let status = reply.status().as_u16();
            let text = reply.text().await.ok()?;
            Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
        })
    }

    /// (created, updated, blocked, unblocked) of a 200 answer to `path`.
    fn counts(fake: &Fake, path: &str, body: Value) -> (u64, u64, u64, u64) {
        let (status, reply) = post(fake, path, &body).expect("an answer");
        assert_eq!(status, 200, "{reply}");
        let count = |name: &str| reply[name].as_u64().unwrap_or_else(|| panic!("{reply}"));
        (
            count("created_count"),
            count("updated_count"),
            count("blocked_count"),
            count("unblocked_count"),
        )
    }

    fn batch(fake: &Fake, users: &[Value]) -> (u64, u64, u64, u64) {
        counts(fake, "/api/v2/users-import/batch", json!(users))
    }

    fn single(fake: &Fake, user: Value) -> (u64, u64, u64, u64) {
        counts(fake, "/api/v2/users-import/single", user)
    }

    fn user(uid: &str, email: &str, status: &str) -> Value {
        json!({"uid": uid, "login": uid.to_lowercase(), "email": email, "status": status})
    }

    fn status(fake: &Fake, uid: &str) -> String {
        fake.directory()[uid].3.clone()
    }

    #[test]
    fn new_users_count_as_created() {
        let fake = Fake::start(TOKEN);
        let users = [user("E1", "a@x.fr", "0"), user("E2", "b@x.fr", "1")];
        assert_eq!(batch(&fake, &users), (2, 0, 0, 0));
        // Created dismissed is a creation, not a block.
        assert_eq!(status(&fake, "E2"), "1");
    }

    #[test]
    fn a_batch_sent_again_as_it_was_counts_nothing() {
        let fake = Fake::start(TOKEN);
        let users = [user("E1", "a@x.fr", "0"), user("E2", "b@x.fr", "1")];
        batch(&fake, &users);
        let held = fake.directory();
        assert_eq!(batch(&fake, &users), (0, 0, 0, 0));
        assert_eq!(fake.directory(), held);
    }

    #[test]
    fn only_a_user_whose_fields_changed_counts_as_updated() {
        let fake = Fake::start(TOKEN);
        batch(
            &fake,
            &[user("E1", "a@x.fr", "0"), user("E2", "b@x.fr", "0")],
        );
        let sent = [user("E1", "a@x.fr", "0"), user("E2", "b2@x.fr", "0")];
        assert_eq!(batch(&fake, &sent), (0, 1, 0, 0));
        assert_eq!(fake.directory()["E2"].2, "b2@x.fr");
    }

    #[test]
    fn a_block_counts_only_as_blocked() {
        let fake = Fake::start(TOKEN);
        batch(
            &fake,
            &[user("E1", "a@x.fr", "0"), user("E2", "b@x.fr", "0")],
        );
        let sent = [user("E1", "a@x.fr", "1"), user("E2", "b2@x.fr", "1")];
        // E1 only blocked; E2 blocked and, its e-mail changed, updated too.
        assert_eq!(batch(&fake, &sent), (0, 1, 2, 0));
        assert_eq!(
            (status(&fake, "E1"), status(&fake, "E2")),
            ("1".into(), "1".into())
        );
        // Blocking a dismissed user again changes nothing.
        assert_eq!(batch(&fake, &sent), (0, 0, 0, 0));
    }

    #[test]
    fn an_unblock_counts_only_as_unblocked() {
        let fake = Fake::start(TOKEN);
        batch(&fake, &[user("E1", "a@x.fr", "1")]);
        assert_eq!(batch(&fake, &[user("E1", "a@x.fr", "0")]), (0, 0, 0, 1));
        assert_eq!(status(&fake, "E1"), "0");
    }

    #[test]
    fn the_single_import_counts_the_same_way() {
        let fake = Fake::start(TOKEN);
        assert_eq!(single(&fake, user("E1", "a@x.fr", "0")), (1, 0, 0, 0));
        assert_eq!(single(&fake, user("E1", "a@x.fr", "0")), (0, 0, 0, 0));
        assert_eq!(single(&fake, user("E1", "a@x.fr", "1")), (0, 0, 1, 0));
        assert_eq!(single(&fake, user("E1", "a2@x.fr", "0")), (0, 1, 0, 1));
    }

    #[test]
    fn with_block_missing_on_the_users_absent_from_a_batch_are_blocked_and_counted() {
        let fake = Fake::start(TOKEN);
        batch(
            &fake,
            &[user("E1", "a@x.fr", "0"), user("E2", "b@x.fr", "0")],
        );
        fake.with(|p| p.block_missing = true);
        assert_eq!(batch(&fake, &[user("E1", "a@x.fr", "0")]), (0, 0, 1, 0));
        assert_eq!(status(&fake, "E2"), "1");
    }

    #[test]
    fn a_refused_login_refuses_the_whole_batch_with_400_or_500() {
        let fake = Fake::start(TOKEN);
        fake.with(|p| p.refused_logins = vec!["e2".into()]);
        let users = json!([user("E1", "a@x.fr", "0"), user("E2", "b@x.fr", "0")]);
        let (status, reply) = post(&fake, "/api/v2/users-import/batch", &users).unwrap();
        assert_eq!(
            (status, reply),
            (400, json!({"error": "login e2 is reserved"}))
        );
        fake.with(|p| p.refuse_with_500 = true);
        let (status, _) = post(&fake, "/api/v2/users-import/batch", &users).unwrap();
        assert_eq!(status, 500);
        assert!(fake.directory().is_empty());
    }

    #[test]
    fn wrong_counts_count_more_users_than_the_batch_held() {
        let fake = Fake::start(TOKEN);
        fake.with(|p| p.faults.wrong_counts_percent = 100);
        assert_eq!(batch(&fake, &[user("E1", "a@x.fr", "0")]).0, 2);
    }

    #[test]
    fn a_lost_answer_comes_too_late_but_the_import_happened() {
        let fake = Fake::start(TOKEN);
        fake.with(|p| p.lost_answers = 1);
        let users = json!([user("E1", "a@x.fr", "0")]);
        assert_eq!(post(&fake, "/api/v2/users-import/batch", &users), None);
        assert_eq!(fake.directory().len(), 1);
        // Only the next one: the one after is answered.
        assert_eq!(batch(&fake, &[user("E1", "a@x.fr", "0")]), (0, 0, 0, 0));
    }
}
