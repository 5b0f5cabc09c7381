//! `rostersync sync` end to end against the stateful SCIM 2.0 fake, through
//! the real binary, with PATCH announced and without: the provider's users
//! (manager ids wired to the right people) and groups after each file, a
//! user already at the provider adopted on 409, transient faults, a refused
//! user parked alone, a manager missing everywhere, and no token in logs.

mod support;

use std::collections::BTreeMap;

use serde_json::json;
use support::fakes::scim::{Fake, User};
use support::{Builder, Harness, Served, Source, Target};

const TOKEN: &str = "scim-s3cr3t-t0ken-77";

/// The provider's fake (PATCH announced or not), users and organisations
/// in Collaborator's format, syncs at trace.
fn provider(patch: bool) -> Builder<Fake> {
    provider_with(
        patch,
        Target::scim("idp").token_env("IDP_TOKEN", TOKEN).fast(),
    )
}

/// The same with another `idp` target (its credential read otherwise).
fn provider_with(patch: bool, idp: Target) -> Builder<Fake> {
    Harness::builder()
        .fake(Fake::start(TOKEN, patch))
        .safety("max_block_percent", 50.0)
        .safety("max_shrink_percent", 50.0)
        .source(
            Source::users("users", "inbox")
                .set("format", "collaborator")
                .targets(&["idp"]),
        )
        .source(
            Source::orgs("orgs", "orgs")
                .set("format", "collaborator")
                .targets(&["idp"]),
        )
        .target(idp)
        .sync_log("trace")
}

const USERS_HEADER: &str =
    "uid;login;firstname;secondname;email;position;department;manager_uid;status";

type Run = support::Run<Fake>;

impl Run {
    fn new(patch: bool) -> Run {
        Self(provider(patch).build())
    }

    /// Drops a users file and syncs it; returns (exit code, stdout, stderr).
    fn users(&mut self, rows: &[impl AsRef<str>]) -> (i32, String, String) {
        self.sync_rows("inbox", "file", USERS_HEADER, rows)
    }

    fn orgs(&mut self, rows: &[impl AsRef<str>]) -> (i32, String, String) {
        self.sync_rows("orgs", "file", "uid;parent_uid;title", rows)
    }
}

/// (userName, externalId, given, family, email, title, department, manager's externalId, active)
type Row<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    bool,
);

fn directory(rows: &[Row]) -> BTreeMap<String, User> {
    rows.iter()
        .map(
            |&(login, external, given, family, email, title, department, manager, active)| {
                (
                    login.to_string(),
                    User {
                        external_id: external.into(),
                        given: given.into(),
                        family: family.into(),
                        email: email.into(),
                        title: title.into(),
                        department: department.into(),
                        manager: manager.into(),
                        active,
                    },
                )
            },
        )
        .collect()
}

// Reports sort before their managers: without dependency order in the push
// engine, they are sent first and must wait for them.
const MARA: &str = "M1;mara;Mara;Moreau;mara@x.fr;CEO;Direction;;0";
const ANA: &str = "A1;ana;Ana;Alves;ana@x.fr;Engineer;R&D;M1;0";
const BEN: &str = "A2;ben;Ben;Blanc;ben@x.fr;Sales rep;Sales;M1;0";
const CLEO: &str = "A3;cleo;Cléo;Colin;cleo@x.fr;Intern;R&D;A1;0";

fn first_directory() -> BTreeMap<String, User> {
    directory(&[
        (
            "mara",
            "M1",
            "Mara",
            "Moreau",
            "mara@x.fr",
            "CEO",
            "Direction",
            "",
            true,
        ),
        (
            "ana", "A1", "Ana", "Alves", "ana@x.fr", "Engineer", "R&D", "M1", true,
        ),
        (
            "ben",
            "A2",
            "Ben",
            "Blanc",
            "ben@x.fr",
            "Sales rep",
            "Sales",
            "M1",
            true,
        ),
        (
            "cleo",
            "A3",
            "Cléo",
            "Colin",
            "cleo@x.fr",
            "Intern",
            "R&D",
            "A1",
            true,
        ),
    ])
}

/// The whole life of a small directory: import, update, block, move,
/// nothing new, unblock, a manager removed; and organisations as groups.
fn lifecycle(patch: bool) {
    let mut run = Run::new(patch);

    let (code, out, err) = run.orgs(&["O1;;Direction", "O2;O1;R&D", "O3;O1;Sales"]);
    assert_eq!(code, 0, "{out}{err}");
    let groups = |list: &[(&str, &str)]| -> BTreeMap<String, (String, usize)> {
        list.iter()
            .map(|(e, n)| (e.to_string(), (n.to_string(), 0)))
            .collect()
    };
    assert_eq!(
        run.fake.group_directory(),
        groups(&[("O1", "Direction"), ("O2", "R&D"), ("O3", "Sales")])
    );

    let (code, out, err) = run.users(&[ANA, BEN, CLEO, MARA]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory(), first_directory());

    // Ana changes e-mail and title; Cléo moves to Sales under Ben; Ben's
    // status says dismissed.
    let ana2 = "A1;ana;Ana;Alves;anna@x.fr;Lead engineer;R&D;M1;0";
    let ben_gone = "A2;ben;Ben;Blanc;ben@x.fr;Sales rep;Sales;M1;1";
    let cleo2 = "A3;cleo;Cléo;Colin;cleo@x.fr;Intern;Sales;A2;0";
    let (code, out, err) = run.users(&[ana2, ben_gone, cleo2, MARA]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("target idp: 0 create, 2 update, 1 block, 0 unblock"),
        "{out}"
    );
    let mut expected = first_directory();
    let ana = expected.get_mut("ana").unwrap();
    ana.email = "anna@x.fr".into();
    ana.title = "Lead engineer".into();
    expected.get_mut("ben").unwrap().active = false;
    let cleo = expected.get_mut("cleo").unwrap();
    cleo.department = "Sales".into();
    cleo.manager = "A2".into();
    assert_eq!(run.fake.directory(), expected);

    // The same content in another order: not one request.
    let requests = run.fake.requests();
    let (code, out, _) = run.users(&[MARA, cleo2, ben_gone, ana2]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(run.fake.requests(), requests, "{out}");

    // Ben comes back; Cléo loses her manager.
    let cleo3 = "A3;cleo;Cléo;Colin;cleo@x.fr;Intern;Sales;;0";
    let (code, out, err) = run.users(&[ana2, BEN, cleo3, MARA]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("target idp: 0 create, 1 update, 0 block, 1 unblock"),
        "{out}"
    );
    expected.get_mut("ben").unwrap().active = true;
    expected.get_mut("cleo").unwrap().manager = String::new();
    assert_eq!(run.fake.directory(), expected);

    // Groups: one renamed, one gone from the file (left in place: SCIM
    // groups have no active state), and with members that must survive.
    run.fake.with(|p| {
        for group in p.groups.values_mut() {
            group.insert("members".into(), json!([{"value": "u-0001"}]));
        }
    });
    let (code, out, err) = run.orgs(&["O1;;Direction", "O2;O1;Research"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("target idp: 0 create, 1 update, 1 block, 0 unblock"),
        "{out}"
    );
    assert_eq!(
        run.fake.group_directory(),
        BTreeMap::from([
            ("O1".to_string(), ("Direction".to_string(), 1)),
            ("O2".to_string(), ("Research".to_string(), 1)),
            ("O3".to_string(), ("Sales".to_string(), 1)),
        ])
    );

    // PATCH where the provider announces it, PUT otherwise.
    let (patches, puts) = (
        run.fake.hits("PATCH /Users") + run.fake.hits("PATCH /Groups"),
        run.fake.hits("PUT /Users") + run.fake.hits("PUT /Groups"),
    );
    if patch {
        assert!(patches >= 4 && puts == 0, "{patches} PATCH, {puts} PUT");
    } else {
        assert!(patches == 0 && puts >= 4, "{patches} PATCH, {puts} PUT");
    }
    // The provider described itself once per run that sent something (five).
    for endpoint in ["ServiceProviderConfig", "Schemas", "ResourceTypes"] {
        assert_eq!(run.fake.hits(&format!("GET /{endpoint}")), 5, "{endpoint}");
    }
}

#[test]
fn the_provider_ends_up_holding_exactly_what_hr_says_with_patch() {
    lifecycle(true);
}

#[test]
fn the_provider_ends_up_holding_exactly_what_hr_says_with_put_only() {
    lifecycle(false);
}

#[test]
fn a_user_already_at_the_provider_is_adopted_not_duplicated() {
    for patch in [true, false] {
        let mut run = Run::new(patch);
        // Made by hand at the provider, same login in capitals, no externalId.
        run.fake.add_user(
            json!({"schemas": [support::fakes::scim::USER_SCHEMA], "userName": "ANA",
                   "name": {"givenName": "A."}, "active": false})
            .as_object()
            .unwrap()
            .clone(),
        );
        // A group of the same name, too.
        run.fake.with(|p| {
            p.groups.insert(
                "g-manual".into(),
                json!({"schemas": [support::fakes::scim::GROUP_SCHEMA], "id": "g-manual",
                       "displayName": "direction", "members": [{"value": "x"}]})
                .as_object()
                .unwrap()
                .clone(),
            );
        });
        let (code, out, err) = run.orgs(&["O1;;Direction"]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(
            run.fake.group_directory(),
            BTreeMap::from([("O1".to_string(), ("Direction".to_string(), 1))])
        );

        let (code, out, err) = run.users(&[ANA, BEN, CLEO, MARA]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(run.fake.directory(), first_directory());
        assert_eq!(
            run.fake.hits("POST /Users"),
            3,
            "ana found by login and adopted, three created"
        );

        // The adopted user is then updated like any other.
        let (code, out, err) = run.users(&[
            "A1;ana;Ana;Alves;ana@y.fr;Engineer;R&D;M1;0",
            BEN,
            CLEO,
            MARA,
        ]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(run.fake.directory()["ana"].email, "ana@y.fr");
        assert_eq!(run.fake.directory().len(), 4);
    }
}

/// A record parked beyond the actions a report lists still counts: `sync`
/// exits 1 and says how many were parked (it once counted only the listed ones).
#[test]
fn a_parked_record_the_report_does_not_list_still_fails_the_sync() {
    let mut run = support::Run(provider(true).daemon("report_actions", 1).build());
    run.fake.add_user(
        json!({"schemas": [support::fakes::scim::USER_SCHEMA], "userName": "cleo",
               "externalId": "X99", "active": true})
        .as_object()
        .unwrap()
        .clone(),
    );
    let (code, out, _) = run.users(&[ANA, BEN, CLEO, MARA]);
    assert_eq!(code, 1, "{out}");
    assert!(
        !out.contains("A3"),
        "the parked record is listed after all: {out}"
    );
    assert!(out.contains("1 parked"), "{out}");
    assert_eq!(run.fake.directory().len(), 4);
}

#[test]
fn a_login_held_by_another_person_is_not_taken_over() {
    let mut run = Run::new(true);
    run.fake.add_user(
        json!({"schemas": [support::fakes::scim::USER_SCHEMA], "userName": "ben",
               "externalId": "X99", "active": true})
        .as_object()
        .unwrap()
        .clone(),
    );
    let (code, out, _) = run.users(&[ANA, BEN, CLEO, MARA]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "login \"ben\" is held at the target by account u-0001, which is not this person's \
             (it carries the external id \"X99\" of another person)"
        ),
        "{out}"
    );
    assert_eq!(run.fake.directory()["ben"].external_id, "X99");
    assert_eq!(run.fake.directory().len(), 4);
}

/// Without externalIds at the provider, only the store says whose a user
/// is: a create refused as a duplicate never takes over the user another
/// record holds (found on the 409 with `match = []`, or by the login rule).
#[test]
fn a_user_another_record_holds_is_not_taken_over_on_a_duplicate() {
    const MAX: &str = "X1;mara;Max;Martin;max@x.fr;Clerk;Sales;;0";
    for matching in ["[]", "[\"login\"]"] {
        let idp = Target::scim("idp")
            .token_env("IDP_TOKEN", TOKEN)
            .fast()
            .field("externalId", "")
            .field("manager", "")
            .set("match", support::Raw(matching.into()));
        let mut run = support::Run(provider_with(true, idp).build());
        let (code, out, err) = run.users(&[MARA, BEN, CLEO]);
        assert_eq!(code, 0, "{out}{err}");
        // Mara leaves (blocked, her account kept); Max is given her login.
        let (code, out, _) = run.users(&[BEN, CLEO, MAX]);
        assert_eq!(code, 1, "{matching}: {out}");
        assert!(out.contains("M1"), "{matching}: {out}");
        let users = run.fake.directory();
        assert_eq!(users.len(), 3, "{users:?}");
        assert_eq!(users["mara"].given, "Mara", "{matching}: taken over");
        assert!(!users["mara"].active);
    }
}

#[test]
fn thirty_percent_of_transient_failures_change_nothing_in_the_end() {
    for patch in [true, false] {
        let mut run = Run::new(patch);
        run.fake.with(|p| {
            p.faults.fail_percent = 30;
            p.faults.malformed_percent = 10;
        });
        let (code, out, err) = run.users(&[ANA, BEN, CLEO, MARA]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(run.fake.directory(), first_directory(), "{err}");
        assert!(
            err.contains("retrying after a transient failure"),
            "no failure was injected?"
        );

        // 429s with Retry-After this time, on a file that moves people.
        run.fake.with(|p| {
            p.faults.malformed_percent = 0;
            p.faults.retry_after = Some("0".into());
        });
        let cleo2 = "A3;cleo;Cléo;Colin;cleo@x.fr;Intern;Sales;A2;0";
        let ben_gone = "A2;ben;Ben;Blanc;ben@x.fr;Sales rep;Sales;M1;1";
        let (code, out, err) = run.users(&[ANA, ben_gone, cleo2, MARA]);
        assert_eq!(code, 0, "{out}{err}");
        let mut expected = first_directory();
        expected.get_mut("ben").unwrap().active = false;
        let cleo = expected.get_mut("cleo").unwrap();
        cleo.department = "Sales".into();
        cleo.manager = "A2".into();
        assert_eq!(run.fake.directory(), expected);
    }
}

#[test]
fn lookups_page_through_a_provider_that_ignores_filters() {
    let mut run = Run::new(true);
    let (code, out, err) = run.users(&[ANA, BEN, CLEO, MARA]);
    assert_eq!(code, 0, "{out}{err}");
    // The store is lost: every user is created again, refused as a
    // duplicate, and looked up, from a provider that answers filters with
    // all its users, one per page.
    run.fake.with(|p| {
        p.max_results = 1;
        p.ignore_filter = true;
    });
    std::fs::remove_dir_all(run.dir.path().join("state")).unwrap();
    let gets = run.fake.hits("GET /Users");
    let (code, out, err) = run.users(&[ANA, BEN, CLEO, MARA]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory(), first_directory());
    assert!(
        run.fake.hits("GET /Users") - gets >= 4 * 4,
        "each lookup reads four pages"
    );
    // Ben moves: the new manager is found among all users too.
    let ben2 = "A2;ben;Ben;Blanc;ben@x.fr;Sales rep;Sales;A1;0";
    let (code, out, err) = run.users(&[ANA, ben2, CLEO, MARA]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory()["ben"].manager, "A1");
}

#[test]
fn a_user_removed_at_the_provider_is_recreated_on_the_next_change() {
    for patch in [true, false] {
        let mut run = Run::new(patch);
        let (code, out, err) = run.users(&[ANA, BEN, CLEO, MARA]);
        assert_eq!(code, 0, "{out}{err}");
        // An administrator deletes Cléo at the provider.
        run.fake
            .with(|p| p.users.retain(|_, u| u["userName"] != "cleo"));
        let cleo2 = "A3;cleo;Cléo;Colin;cleo@x.fr;Intern;Sales;A2;0";
        let (code, out, err) = run.users(&[ANA, BEN, cleo2, MARA]);
        assert_eq!(code, 0, "{out}{err}");
        let mut expected = first_directory();
        let cleo = expected.get_mut("cleo").unwrap();
        cleo.department = "Sales".into();
        cleo.manager = "A2".into();
        assert_eq!(run.fake.directory(), expected);
        // Her new id is kept: the next change goes to it directly.
        let posts = run.fake.hits("POST /Users");
        let cleo3 = "A3;cleo;Cléo;Colin;cleo@y.fr;Intern;Sales;A2;0";
        let (code, out, err) = run.users(&[ANA, BEN, cleo3, MARA]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(run.fake.directory()["cleo"].email, "cleo@y.fr");
        assert_eq!(run.fake.hits("POST /Users"), posts);
    }
}

#[test]
fn a_refused_user_is_parked_alone_and_retried_with_the_next_file() {
    let mut run = Run::new(true);
    run.fake.with(|p| p.refused_user_names = vec!["ben".into()]);
    let (code, out, _) = run.users(&[ANA, BEN, CLEO, MARA]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 parked"), "{out}");
    assert!(
        out.contains("POST /Users: HTTP 400: userName ben is reserved by policy (invalidValue)"),
        "{out}"
    );
    let mut expected = first_directory();
    expected.remove("ben");
    assert_eq!(run.fake.directory(), expected);

    // The provider's administrator lifts the rule; the next file retries Ben.
    run.fake.with(|p| p.refused_user_names.clear());
    let (code, out, err) = run.users(&[ANA, BEN, CLEO, MARA, "A4;dan;Dan;Dias;dan@x.fr;;;;0"]);
    assert_eq!(code, 0, "{out}{err}");
    let mut expected = first_directory();
    expected.insert(
        "dan".into(),
        User {
            external_id: "A4".into(),
            given: "Dan".into(),
            family: "Dias".into(),
            email: "dan@x.fr".into(),
            active: true,
            ..User::default()
        },
    );
    assert_eq!(run.fake.directory(), expected);
}

#[test]
fn a_manager_missing_everywhere_parks_the_report_with_the_reason() {
    let mut run = Run::new(true);
    let (code, out, _) = run.users(&[MARA, "A5;eve;Eve;Eyre;eve@x.fr;;;Z9;0"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("manager \"Z9\" is neither at the provider nor among the records sent"),
        "{out}"
    );
    assert_eq!(run.fake.directory().keys().collect::<Vec<_>>(), ["mara"]);
}

#[test]
fn a_wrong_token_is_refused_without_showing_the_token() {
    let mut run = Run::new(true);
    run.set_secret("IDP_TOKEN", "wrong-token-value");
    let file = run.write("inbox/u.csv", &format!("{USERS_HEADER}\n{MARA}\n"));
    let (code, out, err) = run.sync_file(&file);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("HTTP 401"), "{out}");
    // One alarm for the target, not a parked record per person.
    assert!(out.contains("STOPPED") && !out.contains("parked"), "{out}");
    assert!(!out.contains("wrong-token-value") && !err.contains("wrong-token-value"));
    assert!(run.fake.directory().is_empty());
}

#[test]
fn check_reads_the_configuration_and_tries_the_token() {
    let h = provider_with(false, Target::scim("idp").token_file("token", TOKEN).fast()).build();
    let checked = |token: &str| {
        h.secret_file("token", token);
        let connector = h.connector("idp");
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(connector.check())
            .map_err(|e| e.to_string())
    };
    assert_eq!(checked(TOKEN), Ok(()));
    assert_eq!(h.fake.hits("GET /ServiceProviderConfig"), 1);
    assert_eq!(h.fake.hits("GET /Users"), 1);
    let refused = checked("nope").unwrap_err();
    assert!(
        refused.contains("the token was refused (HTTP 401)"),
        "{refused}"
    );
}

/// A run against a fake already set up (strict, no filters, ETags...).
fn run_on(fake: Fake) -> Run {
    support::Run(provider(true).fake(fake).build())
}

/// The directory a strict provider ends up with: no manager (its
/// enterprise extension does not declare one).
fn without_managers(mut directory: BTreeMap<String, User>) -> BTreeMap<String, User> {
    for user in directory.values_mut() {
        user.manager = String::new();
    }
    directory
}

#[test]
fn a_strict_provider_reaches_the_expected_directory_with_the_default_mapping() {
    for patch in [true, false] {
        let mut run = run_on(Fake::strict(TOKEN, patch));
        let (code, out, err) = run.orgs(&["O1;;Direction", "O2;O1;R&D"]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(run.fake.group_directory().len(), 2);

        let (code, out, err) = run.users(&[ANA, BEN, CLEO, MARA]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(run.fake.directory(), without_managers(first_directory()));
        // Said once, at the start: what of the mapping the provider does not take.
        let said = "the provider does not declare the mapped user fields manager, name.honorificPrefix: they are not sent";
        assert_eq!(err.matches(said).count(), 1, "{err}");
        // What it requires is made from the name's parts.
        assert_eq!(
            run.fake.user("cleo").unwrap()["name"]["formatted"],
            "Cléo Colin"
        );

        // Updates, a block, then the unblock.
        let ana2 = "A1;ana;Ana;Alves;anna@x.fr;Lead engineer;R&D;M1;0";
        let ben_gone = "A2;ben;Ben;Blanc;ben@x.fr;Sales rep;Sales;M1;1";
        let cleo2 = "A3;cleo;Cléo;Lefèvre;cleo@x.fr;Intern;R&D;A1;0";
        let (code, out, err) = run.users(&[ana2, ben_gone, cleo2, MARA]);
        assert_eq!(code, 0, "{out}{err}");
        let mut expected = without_managers(first_directory());
        let ana = expected.get_mut("ana").unwrap();
        ana.email = "anna@x.fr".into();
        ana.title = "Lead engineer".into();
        expected.get_mut("ben").unwrap().active = false;
        expected.get_mut("cleo").unwrap().family = "Lefèvre".into();
        assert_eq!(run.fake.directory(), expected);
        assert_eq!(
            run.fake.user("cleo").unwrap()["name"]["formatted"],
            "Cléo Lefèvre"
        );

        let (code, out, err) = run.users(&[ana2, BEN, cleo2, MARA]);
        assert_eq!(code, 0, "{out}{err}");
        expected.get_mut("ben").unwrap().active = true;
        assert_eq!(run.fake.directory(), expected);
    }
}

#[test]
fn check_online_names_the_mapped_fields_the_provider_does_not_declare() {
    let h = provider(true).fake(Fake::strict(TOKEN, true)).build();
    let (code, out, _) = h.run(&["check", "--online"]);
    assert_eq!(code, 1, "{out}");
    let at = h.fake.base_url().unwrap().trim_end_matches('/').to_string();
    assert!(
        out.contains(&format!(
            "target idp (scim) at {at}: the provider does not declare the mapped user fields manager, \
             name.honorificPrefix: they are not sent (say so in [target.fields] with `manager = \"\"`"
        )),
        "{out}"
    );
    // Once the mapping leaves them out, the check passes.
    let idp = Target::scim("idp")
        .token_env("IDP_TOKEN", TOKEN)
        .field("manager", "")
        .field("name.honorificPrefix", "");
    let h = provider_with(true, idp)
        .fake(Fake::strict(TOKEN, true))
        .build();
    let (code, out, _) = h.run(&["check", "--online"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("target idp (scim): ok"), "{out}");
}

/// Ana as an administrator made her at the provider: no externalId, her
/// login in capitals, a home address besides the work one.
fn hand_made_ana(fake: &Fake) {
    fake.add_user(
        json!({"schemas": [support::fakes::scim::USER_SCHEMA], "userName": "ANA",
               "name": {"formatted": "A. Alves", "givenName": "A."},
               "emails": [{"value": "ana@home.fr", "type": "home"},
                          {"value": "old@x.fr", "type": "work"}],
               "active": true})
        .as_object()
        .unwrap()
        .clone(),
    );
}

fn emails_of(fake: &Fake, user_name: &str) -> serde_json::Value {
    fake.user(user_name).unwrap()["emails"].clone()
}

#[test]
fn a_second_email_the_provider_holds_is_kept() {
    for patch in [true, false] {
        let mut run = Run::new(patch);
        hand_made_ana(&run.fake);
        // Adopted on the first sync.
        let (code, out, err) = run.users(&[ANA, BEN, CLEO, MARA]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(run.fake.directory(), first_directory());
        assert_eq!(
            emails_of(&run.fake, "ana"),
            json!([{"value": "ana@home.fr", "type": "home"}, {"value": "ana@x.fr", "type": "work"}]),
            "patch {patch}"
        );
        // Changed, then removed from HR's file: only the work address moves.
        let ana2 = "A1;ana;Ana;Alves;anna@x.fr;Engineer;R&D;M1;0";
        let (code, out, err) = run.users(&[ana2, BEN, CLEO, MARA]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(
            emails_of(&run.fake, "ana"),
            json!([{"value": "ana@home.fr", "type": "home"}, {"value": "anna@x.fr", "type": "work"}])
        );
        let ana3 = "A1;ana;Ana;Alves;;Engineer;R&D;M1;0";
        let (code, out, err) = run.users(&[ana3, BEN, CLEO, MARA]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(
            emails_of(&run.fake, "ana"),
            json!([{"value": "ana@home.fr", "type": "home"}])
        );
    }
}

#[test]
fn a_stale_etag_is_read_again_and_the_change_applied() {
    for patch in [true, false] {
        let fake = Fake::start(TOKEN, patch);
        fake.with(|p| p.etag_supported = true);
        let mut run = run_on(fake);
        let (code, out, err) = run.users(&[ANA, BEN, CLEO, MARA]);
        assert_eq!(code, 0, "{out}{err}");
        // An administrator edits Ana between rostersync's read and its write.
        run.fake.with(|p| p.edits_by_hand = 1);
        let ana2 = "A1;ana;Ana;Alves;ana@x.fr;Lead engineer;R&D;M1;0";
        let (code, out, err) = run.users(&[ana2, BEN, CLEO, MARA]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(run.fake.with(|p| p.stale_writes), 1, "patch {patch}");
        let ana = run.fake.user("ana").unwrap();
        assert_eq!(ana["title"], "Lead engineer");
        assert_eq!(ana["nickName"], "set by hand", "the edit was lost");
    }
}

#[test]
fn without_filter_support_lookups_read_one_scan() {
    let fake = Fake::start(TOKEN, true);
    fake.with(|p| {
        p.filter_supported = false;
        p.max_results = 2;
    });
    hand_made_ana(&fake);
    let mut run = run_on(fake);
    let (code, out, err) = run.users(&[ANA, BEN, CLEO, MARA]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory(), first_directory());
    // Ana's 409 needed a lookup: one scan, whatever the provider then held.
    let scanned = "the provider has no filters: lookups read one scan of it";
    assert_eq!(err.matches(scanned).count(), 1, "{err}");
    let scans = run.fake.hits("GET /Users");

    // The store is lost: every create is a 409, all found in one scan of
    // the four users, two per page.
    std::fs::remove_dir_all(run.dir.path().join("state")).unwrap();
    let ben2 = "A2;ben;Ben;Blanc;ben@y.fr;Sales rep;Sales;M1;0";
    let (code, out, err) = run.users(&[ANA, ben2, CLEO, MARA]);
    assert_eq!(code, 0, "{out}{err}");
    let mut expected = first_directory();
    expected.get_mut("ben").unwrap().email = "ben@y.fr".into();
    assert_eq!(run.fake.directory(), expected);
    assert_eq!(err.matches(scanned).count(), 1, "{err}");
    assert_eq!(run.fake.hits("GET /Users") - scans, 2, "{err}");
}

#[test]
fn a_manager_is_looked_up_once_not_for_every_report() {
    let mut run = Run::new(true);
    let managers: Vec<String> = (1..=3)
        .map(|m| format!("M{m};boss{m};Boss;B{m};b{m}@x.fr;Head;Sales;;0"))
        .collect();
    let (code, out, err) = run.users(&managers);
    assert_eq!(code, 0, "{out}{err}");
    // Another run: twelve new reports of the three managers.
    let mut rows = managers.clone();
    rows.extend(
        (1..=12).map(|r| format!("R{r};rep{r};Rep;R{r};r{r}@x.fr;Rep;Sales;M{};0", 1 + r % 3)),
    );
    let lookups = run.fake.hits("GET /Users");
    let (code, out, err) = run.users(&rows);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory().len(), 15);
    assert_eq!(run.fake.directory()["rep4"].manager, "M2");
    // One lookup per manager; and before each report is created, one per
    // `match` rule (externalId, userName, e-mail) to adopt it if it is there.
    assert_eq!(run.fake.hits("GET /Users") - lookups, 3 + 12 * 3);
}

/// Every file of the run's folder (reports, logs, the store) as text.
fn every_file(root: &std::path::Path) -> String {
    let mut text = String::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
            }
        }
    }
    text
}

#[test]
fn a_token_the_provider_echoes_shows_nowhere() {
    let fake = Fake::start(TOKEN, true);
    fake.with(|p| {
        p.echo_authorization = true;
        p.refused_user_names = vec!["ben".into()];
    });
    let mut run = run_on(fake);
    let (code, out, _) = run.users(&[ANA, BEN, CLEO, MARA]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("userName ben is reserved by policy (request with Authorization: Bearer ***)"),
        "{out}"
    );
    // A wrong token, echoed in the 401.
    run.set_secret("IDP_TOKEN", "wrong-token-value");
    let (code, out, _) = run.users(&[ANA, BEN, CLEO, MARA, "A4;dan;Dan;Dias;dan@x.fr;;;;0"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("HTTP 401"), "{out}");
    let everything = every_file(run.dir.path());
    assert!(
        everything.contains("reserved by policy"),
        "the reasons are somewhere"
    );
    assert!(!everything.contains(TOKEN) && !everything.contains("wrong-token-value"));
}

#[test]
fn a_provider_without_active_takes_users_and_parks_their_blocks() {
    let fake = Fake::strict(TOKEN, true);
    fake.with(|p| {
        let attributes = p.schemas[0]["attributes"].as_array_mut().unwrap();
        attributes.retain(|a| a["name"] != "active");
    });
    let mut run = run_on(fake);
    let (code, out, err) = run.users(&[ANA, MARA]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory().len(), 2);
    assert!(
        err.contains("the provider's User schema has no `active`: blocks cannot be sent there"),
        "{err}"
    );
    let ana_gone = "A1;ana;Ana;Alves;ana@x.fr;Engineer;R&D;M1;1";
    let (code, out, _) = run.users(&[ana_gone, MARA]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("the provider's User schema has no `active`: it cannot hold a blocked user"),
        "{out}"
    );
}
