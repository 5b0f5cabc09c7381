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

/// A daemon on one users source (`format`: its format's name), pushing to `target`.
fn daemon_for<F: Served>(fake: F, format: &str, target: Target) -> Harness<F> {
    let name = target.name.clone();
    Harness::builder()
        .fake(fake)
        .daemon("grace", "1s")
        .safety("max_block_percent", 100.0)
        .safety("max_shrink_percent", 100.0)
        .source(
            Source::users("users", "inbox")
                .set("format", format)
                .set("settle", "200ms")
                .targets(&[name.as_str()]),
        )
        .target(target.fast())
        .build()
}

/// A users file: `header`, then `rows`.
fn file(header: &str, rows: &[&str]) -> String {
    let mut text = format!("{header}\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text
}

/// Drops the next users file and waits until its report is complete.
fn sync<F>(harness: &Harness<F>, daemon: &Daemon, n: usize, header: &str, rows: &[&str]) {
    harness.drop_file(&format!("inbox/users{n}.csv"), &file(header, rows));
    harness.wait_archived(daemon, "inbox", n);
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
    const HEADER: &str =
        "uid;login;firstname;secondname;email;position;department;manager_uid;status";

    fn user(user_name: &str, email: &str) -> Map<String, Value> {
        json!({"schemas": [USER_SCHEMA], "userName": user_name, "active": true,
               "name": {"givenName": "Hand", "familyName": "Made"},
               "emails": [{"value": email, "type": "work"}]})
        .as_object()
        .unwrap()
        .clone()
    }

    /// With filters, and without (lookups read a scan of the provider,
    /// made again in each drain: accounts are made by hand in between).
    #[test]
    fn accounts_the_provider_holds_are_adopted_and_an_ambiguous_one_waits_for_a_person() {
        for filters in [true, false] {
            adoption(filters);
        }
    }

    fn adoption(filters: bool) {
        let fake = Fake::start(TOKEN, true);
        fake.with(|p| p.filter_supported = filters);
        let run = daemon_for(
            fake,
            "collaborator",
            Target::scim("idp").token_env("IDP_TOKEN", TOKEN),
        );
        let daemon = run.start();
        // Dan first: rostersync makes his account.
        sync(
            &run,
            &daemon,
            1,
            HEADER,
            &["D1;dan;Dan;Dupont;dan@x.fr;Clerk;Sales;;0"],
        );
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
        sync(
            &run,
            &daemon,
            2,
            HEADER,
            &[
                "A1;ana;Ana;Alves;ana@x.fr;Engineer;R&D;;0",
                "A2;ben;Ben;Blanc;ben@x.fr;Sales rep;Sales;;0",
                "A3;cleo;Cleo;Leroy;cleo@x.fr;Designer;R&D;;0",
                "D1;dan;Dan;Dupont;dan@x.fr;Clerk;Sales;;0",
                // Fred gives Dan's address: Dan's account is not his.
                "F1;fred;Fred;Faure;dan@x.fr;Clerk;Sales;;0",
            ],
        );

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

// ---------------------------------------------------------------------------
// Maarch

mod maarch {
    use super::*;
    use support::fakes::maarch::{Fake, User};

    const USER: &str = "rostersync";
    const PASSWORD: &str = "adopt-m4arch";
    const HEADER: &str = "user_extid;user_lname;user_fname;user_login;user_email;user_roles";

    fn user(login: &str, mail: &str, groups: &[&str]) -> User {
        User {
            login: login.into(),
            firstname: "Hand".into(),
            lastname: "MADE".into(),
            mail: mail.into(),
            mode: "standard".into(),
            status: "OK".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..User::default()
        }
    }

    #[test]
    fn users_maarch_holds_are_adopted_and_an_ambiguous_one_waits_for_a_person() {
        let run = daemon_for(
            Fake::start(USER, PASSWORD),
            "wbt",
            Target::maarch("courrier")
                .user(USER)
                .password_env("MAARCH_PASSWORD", PASSWORD)
                .field("groups", "roles"),
        );
        let daemon = run.start();
        sync(
            &run,
            &daemon,
            1,
            HEADER,
            &["D1;Dupont;Dan;dan;dan@x.fr;AGENT"],
        );
        let dan = run.fake.with(|c| c.id_of("dan")).unwrap();

        // Made by hand: Ana under her login (in capitals, in a group of
        // her own), Ben under another login with his address, Cleo twice.
        let (ana, ben, cleo, leroy) = run.fake.with(|c| {
            (
                c.add_user(user("ANA", "ana@old.example", &["ADMINISTRATEUR"])),
                c.add_user(user("b.blanc", "ben@x.fr", &["COURRIER"])),
                c.add_user(user("cleo", "cleo@old.example", &[])),
                c.add_user(user("c.leroy", "cleo@x.fr", &[])),
            )
        });
        sync(
            &run,
            &daemon,
            2,
            HEADER,
            &[
                "A1;Alves;Ana;ana;ana@x.fr;AGENT",
                "A2;Blanc;Ben;ben;ben@x.fr;AGENT",
                "A3;Leroy;Cleo;cleo;cleo@x.fr;AGENT",
                "D1;Dupont;Dan;dan;dan@x.fr;AGENT",
                // Fred gives Dan's address: Dan's account is not his.
                "F1;Faure;Fred;fred;dan@x.fr;AGENT",
            ],
        );

        let users = run.fake.directory();
        assert_eq!(users.len(), 6, "nothing made twice: {users:#?}");
        let id = |login: &str| run.fake.with(|c| c.id_of(login)).unwrap();
        // Adopted by login (whatever its case) and by address, updated,
        // their own groups kept beside HR's. Maarch cannot rename Ben's login.
        assert_eq!(id("ana"), ana);
        assert_eq!(
            (users["ANA"].first.as_str(), users["ANA"].mail.as_str()),
            ("Ana", "ana@x.fr")
        );
        assert_eq!(users["ANA"].groups, ["ADMINISTRATEUR", "AGENT"]);
        assert_eq!(id("b.blanc"), ben);
        assert_eq!(users["b.blanc"].first, "Ben");
        assert_eq!(users["b.blanc"].groups, ["AGENT", "COURRIER"]);
        // Dan's account stays his; Fred has his own.
        assert_eq!(id("dan"), dan);
        assert_eq!(users["dan"].first, "Dan");
        assert_eq!(users["fred"].first, "Fred");
        // Neither of Cleo's accounts was taken.
        assert_eq!(users["cleo"].first, "Hand");
        assert_eq!(users["c.leroy"].first, "Hand");

        let report = nth_report(&run, 1);
        let parked = action(&report, "courrier", "A3");
        assert_eq!(parked["status"], "parked", "{parked}");
        assert_eq!(
            parked["candidates"],
            json!([
                {"id": cleo.to_string(), "login": "cleo", "matched_by": ["login"]},
                {"id": leroy.to_string(), "login": "c.leroy", "matched_by": ["email"]},
            ])
        );
        let status = said(&run, &["status"]);
        assert!(
            status.contains(&format!(
                "ambiguous: users A3 could be {cleo} (login \"cleo\", by login) or {leroy} (login \"c.leroy\", by email)"
            )),
            "{status}"
        );
        let shown = said(&run, &["show", "A3"]);
        assert!(
            shown.contains(&format!("    {leroy}: login \"c.leroy\", found by email\n")),
            "{shown}"
        );

        // The duplicate deleted in Maarch, `retry` adopts the other.
        run.fake.with(|c| c.delete_user("c.leroy"));
        let (code, out, err) = run.run(&["retry"]);
        assert_eq!(code, 0, "{out}{err}");
        wait_until(
            Duration::from_secs(20),
            || run.fake.directory()["cleo"].first == "Cleo",
            || daemon.log(),
        );
        assert_eq!(id("cleo"), cleo);
        assert_eq!(run.fake.directory()["cleo"].groups, ["AGENT"]);
        assert!(said(&run, &["show", "A3"]).contains(&format!("target id {cleo}")));
        let (status, log) = daemon.stop();
        assert!(status.success(), "{log}");
    }
}

// ---------------------------------------------------------------------------
// Pleasanter: its API lists no e-mail addresses; accounts are found by user
// code (the external id) and login.

mod pleasanter {
    use super::*;
    use support::fakes::pleasanter::Fake;

    const KEY: &str = "adopt-pl34s4nt3r-k3y";
    const HEADER: &str =
        "user_extid;user_lname;user_fname;user_login;user_email;org_extid;user_disable";

    #[test]
    fn users_the_tenant_holds_are_adopted_and_an_ambiguous_one_waits_for_a_person() {
        let run = daemon_for(
            Fake::start(KEY),
            "wbt",
            Target::pleasanter("wiki").token_env("PLEASANTER_KEY", KEY),
        );
        // Made by hand: Ana under her login, Ben under another login with
        // his user code, Cleo twice (her login; another with her code), Dan.
        let ids = run.fake.with(|t| {
            fn hand(code: &str) -> Vec<(&'static str, &str)> {
                vec![("Name", "Hand"), ("UserCode", code)]
            }
            [
                t.add("ana", &hand(""), false),
                t.add("b.blanc", &hand("E2"), false),
                t.add("cleo", &hand(""), false),
                t.add("c.leroy", &hand("E3"), false),
                t.add("dan", &hand(""), false),
            ]
        });
        let [ana, ben, cleo, leroy, dan] = ids.map(|id| id.to_string());
        let daemon = run.start();
        sync(&run, &daemon, 1, HEADER, &["E4;Dias;Dan;dan;dan@x.fr;D1;0"]);
        // Dan leaves; Fred is given his login: the import would overwrite
        // Dan's user.
        sync(
            &run,
            &daemon,
            2,
            HEADER,
            &[
                "E1;Alves;Ana;ana;ana@x.fr;D1;0",
                "E2;Blanc;Ben;ben;ben@x.fr;D1;0",
                "E3;Leroy;Cleo;cleo;cleo@x.fr;D1;0",
                "F1;Faure;Fred;dan;fred@x.fr;D1;0",
            ],
        );

        let users = run.fake.directory();
        assert_eq!(users.len(), 5, "nothing made twice: {users:#?}");
        let id = |login: &str| run.fake.with(|t| t.users[login].id.to_string());
        assert_eq!(id("ana"), ana);
        assert_eq!(users["ana"].columns["UserCode"], "E1");
        assert_eq!(users["ana"].columns["MailAddress"], "ana@x.fr");
        // Found by its user code, renamed to Ben's login, then updated.
        assert_eq!(id("ben"), ben);
        assert_eq!(users["ben"].columns["Name"], "Blanc");
        assert!(!users.contains_key("b.blanc"));
        // Dan's user stays his, blocked; Fred is not given it.
        assert_eq!(id("dan"), dan);
        assert_eq!(users["dan"].columns["Name"], "Dias");
        assert!(users["dan"].disabled);
        // Neither of Cleo's users was taken.
        assert_eq!(users["cleo"].columns["Name"], "Hand");
        assert_eq!(users["c.leroy"].columns["Name"], "Hand");

        let report = nth_report(&run, 1);
        let parked = action(&report, "wiki", "E3");
        assert_eq!(
            parked["candidates"],
            json!([
                {"id": leroy, "login": "c.leroy", "matched_by": ["ext_id"]},
                {"id": cleo, "login": "cleo", "matched_by": ["login"]},
            ])
        );
        let fred = action(&report, "wiki", "F1");
        assert_eq!(fred["status"], "parked");
        assert!(
            fred["reason"].as_str().unwrap().starts_with(&format!(
                "login \"dan\" is held at the target by account {dan}, which is not this person's (held by E4)"
            )),
            "{fred}"
        );
        let status = said(&run, &["status"]);
        assert!(status.contains("parked 2 (1 ambiguous)"), "{status}");
        assert!(
            status.contains(&format!(
                "ambiguous: users E3 could be {leroy} (login \"c.leroy\", by ext_id) or {cleo} (login \"cleo\", by login)"
            )),
            "{status}"
        );
        assert!(
            said(&run, &["show", "E3"])
                .contains(&format!("    {cleo}: login \"cleo\", found by login\n"))
        );

        // The duplicate removed in Pleasanter, `retry` adopts the other.
        run.fake.with(|t| t.users.remove("c.leroy"));
        let (code, out, err) = run.run(&["retry"]);
        assert_eq!(code, 0, "{out}{err}");
        wait_until(
            Duration::from_secs(20),
            || {
                run.fake.directory()["cleo"]
                    .columns
                    .get("UserCode")
                    .map(String::as_str)
                    == Some("E3")
            },
            || daemon.log(),
        );
        assert_eq!(id("cleo"), cleo);
        assert_eq!(run.fake.directory().len(), 4);
        assert!(said(&run, &["show", "E3"]).contains(&format!("target id {cleo}")));
        let (status, log) = daemon.stop();
        assert!(status.success(), "{log}");
    }
}
