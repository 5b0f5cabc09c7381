//! Adopting the accounts a target already holds, end to end through the
//! daemon, for every kind that can look accounts up: accounts made by hand
//! found by login and by e-mail (or user code) are adopted and updated,
//! never duplicated, their memberships kept; a person two accounts could be
//! is parked as ambiguous with them (report, `status`, `show`) until the
//! duplicate is removed at the target and `rostersync retry` adopts the
//! other; an account another person holds is never taken.

mod support;

use std::time::Duration;

use serde_json::{Map, Value, json};
use support::*;

/// A daemon on one users source in Collaborator's format, pushing to `target`.
fn daemon_for<F: Served>(fake: F, target: Target) -> Harness<F> {
    let name = target.name.clone();
    Harness::builder()
        .fake(fake)
        .daemon("grace", "1s")
        .safety("max_block_percent", 100.0)
        .safety("max_shrink_percent", 100.0)
        .source(
            Source::users("users", "inbox")
                .set("format", "collaborator")
                .set("settle", "200ms")
                .targets(&[name.as_str()]),
        )
        .target(target.fast())
        .build()
}

const HEADER: &str = "uid;login;firstname;secondname;email;position;department;manager_uid;status";

fn file(rows: &[&str]) -> String {
    let mut text = format!("{HEADER}\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text
}

/// The report of the `n`th file archived (from 0).
fn nth_report<F>(harness: &Harness<F>, n: usize) -> Value {
    let archived = harness.archived("inbox");
    report(&harness.path(&format!("inbox/archive/{}", archived[n])))
}

/// The action of `key` at `target` in a report.
fn action<'r>(report: &'r Value, target: &str, key: &str) -> &'r Value {
    report["targets"][target]["actions"]
        .as_array()
        .and_then(|actions| actions.iter().find(|a| a["ext_id"] == key))
        .unwrap_or_else(|| panic!("no action for {key}: {report:#}"))
}

/// What `status`, `show KEY` say (exit codes checked).
fn said<F>(harness: &Harness<F>, args: &[&str]) -> String {
    let (code, out, err) = harness.run(args);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    out
}

// ---------------------------------------------------------------------------
// SCIM

mod scim {
    use super::*;
    use support::fakes::scim::{Fake, GROUP_SCHEMA, USER_SCHEMA};

    const TOKEN: &str = "adopt-scim-t0ken";

    fn user(user_name: &str, email: &str) -> Map<String, Value> {
        json!({"schemas": [USER_SCHEMA], "userName": user_name, "active": true,
               "name": {"givenName": "Hand", "familyName": "Made"},
               "emails": [{"value": email, "type": "work"}]})
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn accounts_the_provider_holds_are_adopted_and_an_ambiguous_one_waits_for_a_person() {
        let run = daemon_for(
            Fake::start(TOKEN, true),
            Target::scim("idp").token_env("IDP_TOKEN", TOKEN),
        );
        let daemon = run.start();
        // Dan first: rostersync makes his account.
        run.drop_file(
            "inbox/users1.csv",
            &file(&["D1;dan;Dan;Dupont;dan@x.fr;Clerk;Sales;;0"]),
        );
        run.wait_archived(&daemon, "inbox", 1);
        let dan = run.fake.user("dan").unwrap()["id"].clone();

        // Made by hand: Ana under her login, Ben under another login with
        // his address, Cleo twice (her login; another one with her
        // address), both first ones in a group.
        let ana = run.fake.add_user(user("ana", "ana@old.example"));
        let ben = run.fake.add_user(user("b.blanc", "ben@x.fr"));
        let cleo = run.fake.add_user(user("cleo", "cleo@old.example"));
        let leroy = run.fake.add_user(user("c.leroy", "cleo@x.fr"));
        run.fake.with(|p| {
            let group = json!({"schemas": [GROUP_SCHEMA], "id": "g-staff", "displayName": "staff",
                               "members": [{"value": ana}, {"value": ben}]});
            p.groups
                .insert("g-staff".into(), group.as_object().unwrap().clone());
        });
        run.drop_file(
            "inbox/users2.csv",
            &file(&[
                "A1;ana;Ana;Alves;ana@x.fr;Engineer;R&D;;0",
                "A2;ben;Ben;Blanc;ben@x.fr;Sales rep;Sales;;0",
                "A3;cleo;Cleo;Leroy;cleo@x.fr;Designer;R&D;;0",
                "D1;dan;Dan;Dupont;dan@x.fr;Clerk;Sales;;0",
                // Fred gives Dan's address: Dan's account is not his.
                "F1;fred;Fred;Faure;dan@x.fr;Clerk;Sales;;0",
            ]),
        );
        run.wait_archived(&daemon, "inbox", 2);

        let users = run.fake.directory();
        assert_eq!(users.len(), 6, "nothing made twice: {users:#?}");
        // Adopted (by login, by e-mail) and updated, under their own ids.
        assert_eq!(
            (
                users["ana"].external_id.as_str(),
                users["ana"].email.as_str()
            ),
            ("A1", "ana@x.fr")
        );
        assert_eq!(run.fake.user("ana").unwrap()["id"], json!(ana));
        assert_eq!(run.fake.user("ben").unwrap()["id"], json!(ben), "renamed");
        assert_eq!(users["ben"].external_id, "A2");
        assert!(!users.contains_key("b.blanc"));
        // Dan's account stays his; Fred has his own.
        assert_eq!(run.fake.user("dan").unwrap()["id"], dan);
        assert_eq!(users["dan"].external_id, "D1");
        assert_eq!(users["fred"].external_id, "F1");
        // Neither of Cleo's accounts was taken.
        assert_eq!(users["cleo"].external_id, "");
        assert_eq!(users["c.leroy"].external_id, "");
        // Memberships as they were.
        let members = run.fake.with(|p| p.groups["g-staff"]["members"].clone());
        assert_eq!(members, json!([{"value": ana}, {"value": ben}]));

        // The ambiguous one, in the report, `status` and `show`.
        let report = nth_report(&run, 1);
        let parked = action(&report, "idp", "A3");
        assert_eq!(parked["status"], "parked", "{parked}");
        assert_eq!(
            parked["candidates"],
            json!([
                {"id": cleo, "login": "cleo", "matched_by": ["login"]},
                {"id": leroy, "login": "c.leroy", "matched_by": ["email"]},
            ])
        );
        assert!(
            parked["reason"]
                .as_str()
                .unwrap()
                .starts_with("ambiguous: 2 accounts at the target could be this person's"),
            "{parked}"
        );
        assert_eq!(action(&report, "idp", "A1")["status"], "done");
        assert_eq!(report["targets"]["idp"]["parked"], 1);
        let status = said(&run, &["status"]);
        assert!(status.contains("parked 1 (1 ambiguous)"), "{status}");
        assert!(
            status.contains(&format!(
                "ambiguous: users A3 could be {cleo} (login \"cleo\", by login) or {leroy} (login \"c.leroy\", by email)"
            )),
            "{status}"
        );
        let shown = said(&run, &["show", "A3"]);
        assert!(
            shown.contains(&format!(
                "  accounts at the target that could be this record's (none taken):\n    {cleo}: login \"cleo\", found by login\n    {leroy}: login \"c.leroy\", found by email\n"
            )),
            "{shown}"
        );

        // The duplicate removed at the provider, `retry` adopts the other.
        run.fake.with(|p| p.users.remove(&leroy));
        let (code, out, err) = run.run(&["retry", "--target", "idp"]);
        assert_eq!(code, 0, "{out}{err}");
        wait_until(
            Duration::from_secs(20),
            || run.fake.directory()["cleo"].external_id == "A3",
            || daemon.log(),
        );
        assert_eq!(run.fake.user("cleo").unwrap()["id"], json!(cleo));
        assert_eq!(run.fake.directory().len(), 5);
        let shown = said(&run, &["show", "A3"]);
        assert!(shown.contains(&format!("target id {cleo}")), "{shown}");
        assert!(!shown.contains("parked"), "{shown}");
        assert!(!said(&run, &["status"]).contains("ambiguous"));
        let (status, log) = daemon.stop();
        assert!(status.success(), "{log}");
    }
}
