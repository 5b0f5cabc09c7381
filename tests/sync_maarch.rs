//! `rostersync sync` end to end against the stateful Maarch Courrier fake,
//! through the real binary: entities then users, updates, blocks, unblocks
//! and moves (entity and group changes sent as differences), the directory
//! compared exactly after each file; transient faults; a suspension refused
//! for open mail parked alone and retried; an account made by hand adopted;
//! no password in the logs.

mod support;

use std::collections::BTreeMap;

use support::fakes::maarch::{Entity, Fake, Person, User};
use support::{Builder, Harness, Source, Target};

const USER: &str = "rostersync";
const PASSWORD: &str = "M4arch-p@ss-w0rd!";

/// Maarch's fake, organisations and users in WBT files, groups and
/// entities mapped from roles and organisations, syncs at trace.
fn courrier() -> Builder<Fake> {
    courrier_with(Target::maarch("courrier").password_env("MAARCH_PASSWORD", PASSWORD))
}

/// The same with another `courrier` target (its password read otherwise).
fn courrier_with(target: Target) -> Builder<Fake> {
    Harness::builder()
        .fake(Fake::start(USER, PASSWORD))
        .safety("max_block_percent", 50.0)
        .source(Source::orgs("orgs", "inbox/orgs").targets(&["courrier"]))
        .source(Source::users("users", "inbox/users").targets(&["courrier"]))
        .target(
            target
                .user(USER)
                .fast()
                .field("groups", "roles")
                .field("entities", "org_ext_id"),
        )
        .sync_log("trace")
}

const USERS_HEADER: &str = "user_extid;user_lname;user_fname;user_login;user_email;user_phone;org_extid;user_roles;user_disable";
const ORGS_HEADER: &str = "org_extid;org_label;org_parentextid;org_disable";

type Run = support::Run<Fake>;

impl Run {
    fn new() -> Run {
        Self(courrier().build())
    }

    /// Drops a file in the source's inbox and syncs it; returns (exit code,
    /// stdout, stderr), the harness having checked that the password shows
    /// in neither.
    fn drop_file(&mut self, source: &str, header: &str, rows: &[String]) -> (i32, String, String) {
        let (code, out, err) = self.sync_rows(&format!("inbox/{source}"), source, header, rows);
        assert!(
            !err.is_empty(),
            "no trace logs: is ROSTERSYNC_LOG honoured?"
        );
        (code, out, err)
    }

    fn orgs(&mut self, rows: &[&str]) -> (i32, String, String) {
        let rows: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
        self.drop_file("orgs", ORGS_HEADER, &rows)
    }

    fn users(&mut self, rows: &[String]) -> (i32, String, String) {
        self.drop_file("users", USERS_HEADER, rows)
    }
}

const ORGS: &[&str] = &[
    "DG;Direction générale;;0",
    "DG-RH;Ressources humaines;DG;0",
    "DG-SI;Systèmes d'information;DG;0",
];

/// A WBT user row.
#[derive(Clone)]
struct Row {
    ext: &'static str,
    last: &'static str,
    first: &'static str,
    login: &'static str,
    mail: String,
    phone: &'static str,
    org: &'static str,
    roles: &'static str,
    disabled: bool,
}

impl Row {
    fn line(&self) -> String {
        format!(
            "{};{};{};{};{};{};{};{};{}",
            self.ext,
            self.last,
            self.first,
            self.login,
            self.mail,
            self.phone,
            self.org,
            self.roles,
            u8::from(self.disabled)
        )
    }

    /// What Maarch must hold for this row.
    fn person(&self) -> Person {
        let list = |v: &str| {
            let mut items: Vec<String> = v
                .split("||")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            items.sort();
            items
        };
        Person {
            first: self.first.into(),
            last: self.last.into(),
            mail: self.mail.clone(),
            phone: self.phone.into(),
            initials: String::new(),
            status: if self.disabled { "SPD" } else { "OK" }.into(),
            groups: list(self.roles),
            entities: list(self.org),
        }
    }
}

fn row(
    ext: &'static str,
    last: &'static str,
    first: &'static str,
    login: &'static str,
    org: &'static str,
    roles: &'static str,
) -> Row {
    Row {
        ext,
        last,
        first,
        login,
        mail: format!("{login}@x.fr"),
        phone: "",
        org,
        roles,
        disabled: false,
    }
}

fn staff() -> Vec<Row> {
    let mut ana = row("E1", "Alves", "Ana", "ana", "DG", "AGENT");
    ana.phone = "0102030405";
    vec![
        ana,
        row("E2", "Blanc", "Ben", "ben", "DG-SI", "AGENT||RESPONSABLE"),
        row("E3", "Colin", "Cléo", "cleo", "DG-RH", "COURRIER"),
        row("E4", "Dias", "Dan", "dan", "DG-SI", ""),
        row("E5", "Eyre", "Eve", "eve", "DG-RH", "AGENT"),
        row("E6", "Faure", "Fay", "fay", "DG", "AGENT"),
    ]
}

fn lines(rows: &[Row]) -> Vec<String> {
    rows.iter().map(Row::line).collect()
}

fn expected(rows: &[Row]) -> BTreeMap<String, Person> {
    rows.iter()
        .map(|r| (r.login.to_string(), r.person()))
        .collect()
}

fn entities(pairs: &[(&str, &str, &str)]) -> BTreeMap<String, (String, String)> {
    pairs
        .iter()
        .map(|(id, label, parent)| (id.to_string(), (label.to_string(), parent.to_string())))
        .collect()
}

#[test]
fn maarch_holds_exactly_what_hr_says_file_after_file() {
    let mut run = Run::new();
    let (code, out, err) = run.orgs(ORGS);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        run.fake.entities(),
        entities(&[
            ("DG", "Direction générale", ""),
            ("DG-RH", "Ressources humaines", "DG"),
            ("DG-SI", "Systèmes d'information", "DG"),
        ])
    );

    let mut rows = staff();
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("target courrier: 6 create, 0 update, 0 block, 0 unblock"),
        "{out}"
    );
    assert_eq!(run.fake.directory(), expected(&rows));

    // Updates: a new e-mail and no phone any more (the full record is sent,
    // so the phone is erased), a new last name. No membership request.
    rows[0].mail = "ana.alves@x.fr".into();
    rows[0].phone = "";
    rows[1].last = "Blanc-Roy";
    let before = run.fake.requests();
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("0 create, 2 update, 0 block, 0 unblock"),
        "{out}"
    );
    assert_eq!(run.fake.directory(), expected(&rows));
    assert_eq!(run.fake.requests(), before + 2, "one PUT per changed user");

    // A block: one suspension, nothing else.
    rows[3].disabled = true;
    let before = run.fake.requests();
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory(), expected(&rows));
    assert_eq!(run.fake.directory()["dan"].status, "SPD");
    assert_eq!(run.fake.requests(), before + 1);

    // The unblock.
    rows[3].disabled = false;
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("0 create, 0 update, 0 block, 1 unblock"),
        "{out}"
    );
    assert_eq!(run.fake.directory(), expected(&rows));

    // Ben moves to HR and changes groups: only the differences are sent.
    rows[1].org = "DG-RH";
    rows[1].roles = "AGENT||COURRIER";
    let before = run.fake.requests();
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory(), expected(&rows));
    assert_eq!(run.fake.directory()["ben"].entities, ["DG-RH"]);
    assert_eq!(
        run.fake.requests(),
        before + 4,
        "2 groups and 2 entities, no PUT"
    );
    assert_eq!(run.fake.hits("DELETE /rest/users/{id}/groups/{group}"), 1);
    assert_eq!(
        run.fake.hits("DELETE /rest/users/{id}/entities/{entity}"),
        1
    );

    // The same people in another order: not one request.
    let before = run.fake.requests();
    let mut reordered = lines(&rows);
    reordered.reverse();
    let (code, out, err) = run.users(&reordered);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.requests(), before);
    // The very same bytes again: not one request either.
    let (code, out, _) = run.users(&reordered);
    assert_eq!(code, 0, "{out}");
    assert_eq!(run.fake.requests(), before);

    // An entity renamed and moved to the top.
    let (code, out, err) = run.orgs(&[
        "DG;Direction générale;;0",
        "DG-RH;Ressources humaines;DG;0",
        "DG-SI;Numérique;;0",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        run.fake.entities(),
        entities(&[
            ("DG", "Direction générale", ""),
            ("DG-RH", "Ressources humaines", "DG"),
            ("DG-SI", "Numérique", ""),
        ])
    );
    assert_eq!(run.fake.directory(), expected(&rows));
}

/// The rows of the fault test: 24 people spread over entities and groups.
fn crowd(changed: bool) -> Vec<String> {
    let orgs = ["DG", "DG-RH", "DG-SI"];
    let groups = ["AGENT", "AGENT||RESPONSABLE", "COURRIER", ""];
    (0..24)
        .map(|i| {
            let mail = if changed && i % 2 == 0 {
                format!("u{i}@y.fr")
            } else {
                format!("u{i}@x.fr")
            };
            let org = orgs[(i + usize::from(changed && i % 3 == 0)) % 3];
            let roles = groups[(i + usize::from(changed && i % 4 == 1)) % 4];
            let disabled = u8::from(changed && i % 8 == 5);
            format!("U{i:02};Nom{i};Pré{i};u{i};{mail};;{org};{roles};{disabled}")
        })
        .collect()
}

#[test]
fn transient_faults_change_nothing_in_the_end() {
    // The same files to a healthy Maarch and to one failing 30 % of requests
    // (and answering 10 % of them unreadably after doing the work).
    let mut healthy = Run::new();
    let mut flaky = Run::new();
    flaky.fake.with(|c| {
        c.faults.fail_percent = 30;
        c.faults.malformed_percent = 10;
    });
    let mut flaky_logs = String::new();
    for run in [&mut healthy, &mut flaky] {
        let (code, out, err) = run.orgs(ORGS);
        assert_eq!(code, 0, "{out}{err}");
        let (code, out, err) = run.users(&crowd(false));
        assert_eq!(code, 0, "{out}{err}");
        flaky_logs.push_str(&err);
    }
    assert_eq!(flaky.fake.directory().len(), 24);
    assert_eq!(flaky.fake.directory(), healthy.fake.directory());

    // Changes, blocks and moves; 429s with Retry-After this time.
    flaky.fake.with(|c| c.faults.retry_after = Some("0".into()));
    for run in [&mut healthy, &mut flaky] {
        let (code, out, err) = run.users(&crowd(true));
        assert_eq!(code, 0, "{out}{err}");
        flaky_logs.push_str(&err);
    }
    let directory = flaky.fake.directory();
    assert_eq!(directory, healthy.fake.directory());
    assert_eq!(directory.values().filter(|p| p.status == "SPD").count(), 3);
    assert_eq!(directory["u0"].mail, "u0@y.fr");
    assert_eq!(directory["u3"].entities, ["DG-RH"]);
    assert_eq!(flaky.fake.entities(), healthy.fake.entities());
    assert!(
        flaky_logs.contains("retrying after a transient failure"),
        "no failure was injected?"
    );
}

#[test]
fn a_suspension_refused_for_open_mail_parks_only_that_user() {
    let mut run = Run::new();
    run.orgs(ORGS);
    let mut rows = staff();
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");

    run.fake.with(|c| {
        c.open_mail.insert("ben".into());
    });
    rows[1].disabled = true;
    rows[3].disabled = true;
    let (code, out, _) = run.users(&lines(&rows));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("0 create, 0 update, 2 block, 0 unblock, 1 parked"),
        "{out}"
    );
    assert!(
        out.contains("suspending user ben: Maarch answered HTTP 403"),
        "{out}"
    );
    assert!(
        out.contains("User is still present in listInstances"),
        "{out}"
    );
    let directory = run.fake.directory();
    assert_eq!(directory["ben"].status, "OK");
    assert_eq!(directory["dan"].status, "SPD");

    // Ben's mail is redirected; the next file retries him, with one request.
    run.fake.with(|c| c.open_mail.clear());
    let before = run.fake.requests();
    let mut reordered = lines(&rows);
    reordered.reverse();
    let (code, out, err) = run.users(&reordered);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory(), expected(&rows));
    assert_eq!(run.fake.requests(), before + 1);
}

#[test]
fn an_account_made_by_hand_is_adopted_not_duplicated() {
    let mut run = Run::new();
    let id = run.fake.with(|c| {
        c.add_user(User {
            login: "ana".into(),
            firstname: "A.".into(),
            lastname: "ALVES".into(),
            mail: "old@x.fr".into(),
            initials: "AA".into(),
            mode: "standard".into(),
            status: "SPD".into(),
            groups: ["ADMINISTRATEUR".to_string()].into(),
            ..User::default()
        })
    });
    run.orgs(ORGS);
    let mut rows = staff();
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");
    let directory = run.fake.directory();
    assert_eq!(directory.len(), 6, "no duplicate");
    assert_eq!(run.fake.with(|c| c.id_of("ana")), Some(id));
    // HR's record in full (the initials HR does not give are erased),
    // active again, and HR's groups added to the ones made by hand.
    let mut ana = rows[0].person();
    ana.groups = vec!["ADMINISTRATEUR".into(), "AGENT".into()];
    assert_eq!(directory["ana"], ana);
    // Found in the list before any create: adopted, not created.
    assert_eq!(run.fake.hits("POST /rest/users"), 5);
    assert_eq!(
        run.fake.hits("GET /rest/users"),
        1,
        "one list for every lookup"
    );

    // From then on the adopted id is used directly.
    rows[0].mail = "ana.alves@x.fr".into();
    let before = run.fake.requests();
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.requests(), before + 1);
    assert_eq!(run.fake.directory()["ana"].mail, "ana.alves@x.fr");
    assert_eq!(run.fake.hits("GET /rest/users"), 1);
}

#[test]
fn a_user_without_a_last_name_is_parked_without_a_request() {
    let mut run = Run::new();
    run.orgs(ORGS);
    let mut rows = staff();
    rows[2].last = "";
    let (code, out, _) = run.users(&lines(&rows));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[parked: Maarch needs a last name]"), "{out}");
    assert_eq!(run.fake.hits("POST /rest/users"), 5);
    let mut others = expected(&rows);
    others.remove("cleo");
    assert_eq!(run.fake.directory(), others);

    // HR fills it in: the next file creates her.
    rows[2].last = "Colin";
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory(), expected(&rows));
}

#[test]
fn a_wrong_password_is_refused_without_being_shown() {
    let mut run = Run::new();
    run.set_secret("MAARCH_PASSWORD", "not-the-password");
    let (code, out, err) = run.orgs(ORGS);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("HTTP 401"), "{out}");
    // One alarm for the target, not a parked record per entity.
    assert!(out.contains("STOPPED") && !out.contains("parked"), "{out}");
    assert!(!out.contains("not-the-password") && !err.contains("not-the-password"));
    assert!(run.fake.entities().is_empty());
}

#[test]
fn check_says_when_the_credentials_are_refused() {
    let run = courrier_with(Target::maarch("courrier").password_file("password", PASSWORD)).build();
    let check = |password: &str| {
        run.secret_file("password", password);
        let connector = run.connector("courrier");
        assert_eq!(connector.batch_size(), 1);
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(connector.check())
            .map_err(|e| e.to_string())
    };
    assert_eq!(check(PASSWORD), Ok(()));
    let refused = check("wrong").unwrap_err();
    assert!(
        refused.contains("the credentials were refused (HTTP 401)"),
        "{refused}"
    );
    assert!(!refused.contains("wrong"));
}

#[test]
fn a_changed_login_waits_for_the_rename_in_maarch() {
    let mut run = Run::new();
    run.orgs(ORGS);
    let mut rows = staff();
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");

    rows[0].login = "ana.alves";
    let (code, out, _) = run.users(&lines(&rows));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "Maarch cannot change a login through its API: rename ana to ana.alves in Maarch"
        ),
        "{out}"
    );
    assert!(run.fake.directory().contains_key("ana"), "nothing created");
    assert_eq!(run.fake.directory().len(), 6);

    // Renamed by hand in Maarch: the next file finds her under the new login.
    let id = run.fake.with(|c| {
        let id = c.id_of("ana").unwrap();
        c.users.get_mut(&id).unwrap().login = "ana.alves".into();
        id
    });
    rows[0].mail = "ana.alves@x.fr".into();
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory(), expected(&rows));
    assert_eq!(run.fake.with(|c| c.id_of("ana.alves")), Some(id));
}

/// What Maarch must hold for WBT user lines: login → the person.
fn people(lines: &[String]) -> BTreeMap<String, Person> {
    let list = |v: &str| -> Vec<String> {
        let mut items: Vec<String> = v
            .split("||")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        items.sort();
        items
    };
    lines
        .iter()
        .map(|line| {
            let f: Vec<&str> = line.split(';').collect();
            let person = Person {
                first: f[2].into(),
                last: f[1].into(),
                mail: f[4].into(),
                phone: f[5].into(),
                initials: String::new(),
                status: if f[8] == "1" { "SPD" } else { "OK" }.into(),
                groups: list(f[7]),
                entities: list(f[6]),
            };
            (f[3].to_string(), person)
        })
        .collect()
}

/// The same person as an account made in Maarch by hand.
fn account(login: &str, person: &Person) -> User {
    User {
        login: login.into(),
        firstname: person.first.clone(),
        lastname: person.last.clone(),
        mail: person.mail.clone(),
        phone: person.phone.clone(),
        mode: "standard".into(),
        status: person.status.clone(),
        groups: person.groups.iter().cloned().collect(),
        entities: person.entities.iter().cloned().collect(),
        ..User::default()
    }
}

/// Maarch holding the organisations and these people already, with their
/// groups and entities, and one group made by hand for the first of them.
fn already_held(run: &Run, lines: &[String]) -> BTreeMap<String, Person> {
    let mut held = people(lines);
    let first = held.keys().next().cloned().unwrap_or_default();
    if let Some(person) = held.get_mut(&first) {
        person.groups.insert(0, "ADMINISTRATEUR".into());
    }
    run.fake.with(|c| {
        c.add_entity("DG", Entity::new("Direction générale", ""));
        c.add_entity("DG-RH", Entity::new("Ressources humaines", "DG"));
        c.add_entity("DG-SI", Entity::new("Systèmes d'information", "DG"));
        for (login, person) in &held {
            c.add_user(account(login, person));
        }
    });
    held
}

#[test]
fn a_first_sync_into_a_maarch_already_holding_the_users_and_their_groups_parks_nothing() {
    let mut run = Run::new();
    let rows: Vec<String> = crowd(false).into_iter().take(20).collect();
    let held = already_held(&run, &rows);
    let (code, out, err) = run.orgs(ORGS);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run.users(&rows);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("parked"), "{out}");
    // The exact directory: every group kept, the one made by hand too.
    assert_eq!(run.fake.directory(), held);
    assert!(
        run.fake.with(|c| c.activation_mails.is_empty()),
        "nobody created"
    );
}

#[test]
fn a_leaver_among_the_users_maarch_already_held_is_suspended() {
    let mut run = Run::new();
    let mut rows: Vec<String> = crowd(false).into_iter().take(20).collect();
    let mut held = already_held(&run, &rows);
    run.orgs(ORGS);
    run.users(&rows);
    // u5 leaves.
    rows[5] = rows[5].replace(";0", ";1");
    let (code, out, err) = run.users(&rows);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 block"), "{out}");
    if let Some(person) = held.get_mut("u5") {
        person.status = "SPD".into();
    }
    assert_eq!(run.fake.directory(), held);
}

#[test]
fn a_login_deleted_in_maarch_and_created_again_gets_its_new_values() {
    let mut run = Run::new();
    let old = run.fake.with(|c| {
        let id = c.add_user(User {
            login: "ana".into(),
            firstname: "A.".into(),
            lastname: "ALVES".into(),
            mail: "old@x.fr".into(),
            initials: "AA".into(),
            phone: "0999999999".into(),
            mode: "standard".into(),
            status: "OK".into(),
            groups: ["ADMINISTRATEUR".to_string()].into(),
            ..User::default()
        });
        c.delete_user("ana");
        id
    });
    run.orgs(ORGS);
    let rows = staff();
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");
    // Maarch gave the old account back; it holds HR's values now.
    assert_eq!(run.fake.with(|c| c.id_of("ana")), Some(old));
    assert_eq!(run.fake.directory(), expected(&rows));
}

/// `delete_after`: a leaver suspended, then deleted (`DEL`) by the first
/// file once blocked for the delay; Maarch's refusal (open mail) parks the
/// delete alone with what to do, and the next file deletes it.
#[test]
fn a_leaver_is_deleted_after_the_delay_and_a_refused_delete_says_why() {
    let mut run = support::Run(
        courrier_with(
            Target::maarch("courrier")
                .password_env("MAARCH_PASSWORD", PASSWORD)
                .set("delete_after", "30d"),
        )
        .build(),
    );
    run.orgs(ORGS);
    let mut rows = staff();
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");
    rows[1].disabled = true;
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory()["ben"].status, "SPD");
    let ben = run.fake.with(|c| c.id_of("ben")).unwrap();

    // Day 30 of the block; Ben still receives open mail.
    let day = chrono::Local::now().date_naive() + chrono::Days::new(30);
    run.set_secret("ROSTERSYNC_TEST_TODAY", &day.format("%Y-%m-%d").to_string());
    run.fake.with(|c| {
        c.open_mail.insert("ben".into());
    });
    let mut reordered = lines(&rows);
    reordered.reverse();
    let (code, out, _) = run.users(&reordered);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("0 create, 0 update, 0 block, 0 unblock, 1 delete, 1 parked"),
        "{out}"
    );
    assert!(
        out.contains("deleting user ben: Maarch answered HTTP 403"),
        "{out}"
    );
    assert!(
        out.contains("redirect or close that mail in Maarch"),
        "{out}"
    );
    assert_eq!(run.fake.directory()["ben"].status, "SPD");

    run.fake.with(|c| c.open_mail.clear());
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");
    assert!(!run.fake.directory().contains_key("ben"), "{out}");
    assert_eq!(
        run.fake.with(|c| c.users[&ben].status.clone()),
        "DEL",
        "Maarch keeps a deleted user, as DEL"
    );
    let mut expected_rows = staff();
    expected_rows.remove(1);
    assert_eq!(run.fake.directory(), expected(&expected_rows));
}

/// The REST user made not root, and an entity of Maarch's outside its perimeter.
fn restricted(run: &Run) {
    run.fake.with(|c| {
        c.rest.root = false;
        c.add_entity("ARCH", Entity::new("Archives", ""));
    });
}

#[test]
fn a_user_outside_the_perimeter_is_parked_saying_so_and_what_to_do() {
    let mut run = Run::new();
    restricted(&run);
    // Cléo's account is in an entity the REST user does not see.
    run.fake.with(|c| {
        let held = people(&lines(&staff()[2..3]));
        c.add_user(account("cleo", &held["cleo"]));
        let id = c.id_of("cleo").unwrap();
        c.users.get_mut(&id).unwrap().entities = ["ARCH".to_string()].into();
    });
    let (code, out, err) = run.orgs(ORGS);
    assert_eq!(code, 0, "{out}{err}");
    let mut rows = staff();
    let (code, out, _) = run.users(&lines(&rows));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("6 create") && out.contains("1 parked"),
        "{out}"
    );
    let parked = out.lines().find(|l| l.contains("E3")).unwrap_or_default();
    assert!(
        parked.contains("outside the perimeter of the REST user rostersync")
            && parked.contains("give rostersync an entity above"),
        "{parked}"
    );

    // Ben's account moved out of the perimeter by hand: his update is refused.
    run.fake.with(|c| {
        let id = c.id_of("ben").unwrap();
        c.users.get_mut(&id).unwrap().entities = ["ARCH".to_string()].into();
    });
    rows[1].mail = "ben.blanc@x.fr".into();
    let (code, out, _) = run.users(&lines(&rows));
    assert_eq!(code, 1, "{out}");
    let parked = out.lines().find(|l| l.contains("E2")).unwrap_or_default();
    assert!(
        parked.contains("UserId out of perimeter")
            && parked.contains("outside the perimeter of the REST user rostersync")
            && parked.contains("give rostersync an entity above"),
        "{parked}"
    );
}

#[test]
fn each_refused_suspension_says_why_and_what_to_do() {
    let mut run = support::Run(courrier().safety("max_block_percent", 100.0).build());
    restricted(&run);
    run.orgs(ORGS);
    let mut rows = staff();
    // HR holds the REST user's own account too.
    rows.push(row("E9", "Sync", "Rob", USER, "DG", ""));
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");
    run.fake.with(|c| {
        c.open_mail.insert("ana".into());
        c.diffusion_lists.insert("ben".into());
        let root = c.id_of("cleo").unwrap();
        c.users.get_mut(&root).unwrap().mode = "root_visible".into();
        let far = c.id_of("dan").unwrap();
        c.users.get_mut(&far).unwrap().entities = ["ARCH".to_string()].into();
    });
    for (i, row) in rows.iter_mut().enumerate() {
        row.disabled = i != 4 && i != 5;
    }
    let (code, out, _) = run.users(&lines(&rows));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("5 parked"), "{out}");
    let reason = |ext: &str| {
        out.lines()
            .find(|l| l.contains(&format!(" {ext} ")))
            .unwrap_or_default()
            .to_string()
    };
    for (ext, said, meaning) in [
        ("E1", "User is still present in listInstances", "open mail"),
        (
            "E2",
            "User is still present in listTemplates",
            "diffusion list",
        ),
        ("E3", "Service forbidden", "root user"),
        ("E4", "UserId out of perimeter", "outside the perimeter"),
        ("E9", "Can not delete yourself", "logs in as"),
    ] {
        let line = reason(ext);
        assert!(
            line.contains(said) && line.contains(meaning),
            "{ext}: {line}"
        );
        if ext != "E1" {
            assert!(!line.contains("open mail"), "{ext}: {line}");
        }
    }
    assert_eq!(run.fake.directory()["eve"].status, "OK");
    let suspended: Vec<String> = run
        .fake
        .directory()
        .into_iter()
        .filter(|(_, p)| p.status == "SPD")
        .map(|(login, _)| login)
        .collect();
    assert!(suspended.is_empty(), "{suspended:?}");
}

#[test]
fn an_entity_update_keeps_the_fields_maarch_holds() {
    let mut run = Run::new();
    let (code, out, err) = run.orgs(ORGS);
    assert_eq!(code, 0, "{out}{err}");
    // Filled in by hand in Maarch: HR does not hold these.
    let by_hand = [
        ("addressTown", "Lyon"),
        ("email", "si@x.fr"),
        ("business_id", "12345678900012"),
    ];
    run.fake.with(|c| {
        let entity = c.entities.get_mut("DG-SI").unwrap();
        for (name, value) in by_hand {
            entity.fields.insert(name.into(), value.into());
        }
    });
    let (code, out, err) = run.orgs(&[
        "DG;Direction générale;;0",
        "DG-RH;Ressources humaines;DG;0",
        "DG-SI;Numérique;;0",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let held = run.fake.entity("DG-SI").unwrap();
    assert_eq!((held.get("entity_label"), held.parent()), ("Numérique", ""));
    for (name, value) in by_hand {
        assert_eq!(held.get(name), value, "{name}");
    }
}

#[test]
fn a_removed_organisation_is_disabled_and_enabled_again_when_it_returns() {
    let mut run = support::Run(courrier().safety("max_shrink_percent", 50.0).build());
    let (code, out, err) = run.orgs(ORGS);
    assert_eq!(code, 0, "{out}{err}");
    let disabled = |run: &Run| {
        run.fake.with(|c| {
            c.entities
                .iter()
                .filter(|(_, e)| e.disabled)
                .map(|(id, _)| id.clone())
                .collect::<Vec<_>>()
        })
    };
    let (code, out, err) = run.orgs(&ORGS[..2]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 block") && !out.contains("parked"), "{out}");
    assert_eq!(disabled(&run), ["DG-SI"]);
    let (code, out, err) = run.orgs(ORGS);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 unblock"), "{out}");
    assert!(disabled(&run).is_empty());
    assert_eq!(run.fake.hits("PUT /rest/entities/{id}/status"), 2);
}

#[test]
fn a_leaver_is_suspended_even_when_a_group_change_is_refused() {
    let mut run = Run::new();
    run.orgs(ORGS);
    let mut rows = staff();
    run.users(&lines(&rows));
    // Dan leaves, and HR gives him a group Maarch does not have.
    rows[3].disabled = true;
    rows[3].roles = "ARCHIVISTE";
    let (code, out, _) = run.users(&lines(&rows));
    assert_eq!(code, 1, "{out}");
    let parked = out.lines().find(|l| l.contains("E4")).unwrap_or_default();
    assert!(
        parked.contains("group ARCHIVISTE does not exist in Maarch"),
        "{parked}"
    );
    assert_eq!(run.fake.directory()["dan"].status, "SPD");
}

#[test]
fn ids_maarch_would_refuse_are_parked_with_its_rule_unsent() {
    let mut run = Run::new();
    let (code, out, _) = run.orgs(&["DG;Direction générale;;0", "DG.SI;Numérique;DG;0"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "Maarch takes entity ids of 1 to 32 letters, digits, _ and - only, not \"DG.SI\""
        ),
        "{out}"
    );
    let mut rows = staff();
    rows[0].login = "ana+alves";
    let (code, out, _) = run.users(&lines(&rows));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "Maarch takes logins of 1 to 128 letters, digits and _ . @ - only, not \"ana+alves\""
        ),
        "{out}"
    );
    assert_eq!(run.fake.hits("POST /rest/entities"), 1);
    assert_eq!(run.fake.hits("POST /rest/users"), 5);
}

#[test]
fn a_login_maarch_holds_in_another_case_is_adopted() {
    let mut run = Run::new();
    let id = run
        .fake
        .with(|c| c.add_user(account("ANA", &expected(&staff()[..1])["ana"])));
    run.orgs(ORGS);
    let rows = staff();
    let (code, out, err) = run.users(&lines(&rows));
    assert_eq!(code, 0, "{out}{err}");
    let directory = run.fake.directory();
    assert_eq!(directory.len(), 6, "no duplicate");
    assert_eq!(directory["ANA"], rows[0].person());
    assert_eq!(run.fake.with(|c| c.id_of("ana")), Some(id));
}

/// Every file under `dir`, read as bytes.
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

#[test]
fn credentials_maarch_echoes_never_show_in_logs_reasons_or_reports() {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let mut run = support::Run(courrier().never_shows(&basic).build());
    run.orgs(ORGS);
    run.fake.with(|c| c.echo_headers = true);
    // The harness fails the test if the password or its base64 shows.
    let (code, out, _) = run.users(&lines(&staff()));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("6 parked") && out.contains("Bad Request"),
        "{out}"
    );
    let (_, status, _) = run.run(&["status"]);
    let mut written = every_file(run.root());
    written.push(("rostersync status".into(), status.into_bytes()));
    for (path, bytes) in written {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&basic) && !text.contains(PASSWORD),
            "{} holds the credentials",
            path.display()
        );
    }
}

/// The fake's rules, each against the fake alone.
mod the_fake_maarch {
    use serde_json::{Value, json};

    use super::support::fakes::maarch::{
        ALREADY_IN_ENTITY, ALREADY_IN_GROUP, DIFFUSION_LIST, ENTITY_EXISTS, Entity, FORBIDDEN,
        OPEN_MAIL, OUT_OF_PERIMETER, USER_EXISTS, YOURSELF, php_json,
    };
    use super::{Fake, PASSWORD, USER, User};

    /// One request with the credentials: (HTTP status, raw body).
    fn call(fake: &Fake, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        call_as(fake, PASSWORD, method, path, body)
    }

    /// One request with this password.
    fn call_as(
        fake: &Fake,
        password: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = reqwest::Client::new()
                .request(method, format!("{}{path}", fake.url))
                .basic_auth(USER, Some(password));
            if let Some(body) = body {
                request = request.json(&body);
            }
            let reply = request.send().await.unwrap();
            let status = reply.status().as_u16();
            (status, reply.text().await.unwrap())
        })
    }

    /// The `errors` text of an answer, decoded.
    fn errors(body: &str) -> String {
        let value: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{body}"));
        value["errors"].as_str().unwrap_or_default().to_string()
    }

    fn create(fake: &Fake, login: &str) -> (u16, String) {
        let body = json!({"userId": login, "firstname": "Ana", "lastname": "Alves", "mail": format!("{login}@x.fr")});
        call(fake, "POST", "/rest/users", Some(body))
    }

    fn created(fake: &Fake, login: &str) -> u64 {
        let (status, body) = create(fake, login);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["id"]
            .as_u64()
            .unwrap()
    }

    fn listed(fake: &Fake) -> Vec<String> {
        let (status, body) = call(fake, "GET", "/rest/users", None);
        assert_eq!(status, 200, "{body}");
        let value: Value = serde_json::from_str(&body).unwrap();
        value["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["user_id"].as_str().unwrap().to_string())
            .collect()
    }

    fn user(login: &str, entities: &[&str]) -> User {
        User {
            login: login.into(),
            firstname: "Zoé".into(),
            lastname: "Zola".into(),
            mail: format!("{login}@x.fr"),
            mode: "standard".into(),
            status: "OK".into(),
            entities: entities.iter().map(|e| e.to_string()).collect(),
            ..User::default()
        }
    }

    fn full_record(first: &str) -> Value {
        json!({"firstname": first, "lastname": "Alves", "mail": "ana@x.fr"})
    }

    #[test]
    fn errors_are_french_texts_json_escaped_as_php_writes_them() {
        let fake = Fake::start(USER, PASSWORD);
        let id = created(&fake, "ana");
        let path = format!("/rest/users/{id}/groups");
        let body = Some(json!({"groupId": "AGENT"}));
        assert_eq!(call(&fake, "POST", &path, body.clone()).0, 200);
        let (status, raw) = call(&fake, "POST", &path, body);
        assert_eq!(status, 400);
        assert_eq!(
            raw,
            r#"{"errors":"L'utilisateur est d\u00e9j\u00e0 li\u00e9 \u00e0 ce groupe"}"#
        );
        assert_eq!(errors(&raw), ALREADY_IN_GROUP);
        assert_eq!(php_json(&json!("a/é😀")), r#""a\/\u00e9\ud83d\ude00""#);
    }

    #[test]
    fn a_wrong_password_is_a_401_in_maarchs_words() {
        let fake = Fake::start(USER, PASSWORD);
        let (status, body) = call_as(&fake, "wrong", "GET", "/rest/users", None);
        assert_eq!(
            (status, errors(&body)),
            (401, "Authentication Failed".into())
        );
    }

    #[test]
    fn logins_are_unique_whatever_their_case() {
        let fake = Fake::start(USER, PASSWORD);
        created(&fake, "t.alpha");
        let (status, body) = create(&fake, "T.ALPHA");
        assert_eq!((status, errors(&body)), (400, USER_EXISTS.into()));
        assert_eq!(listed(&fake), ["t.alpha"]);
        assert!(fake.with(|c| c.id_of("T.Alpha")).is_some());
    }

    #[test]
    fn a_create_checks_the_login_the_names_and_the_mail() {
        let fake = Fake::start(USER, PASSWORD);
        for (body, refusal) in [
            (
                json!({"userId": "ana alves", "firstname": "A", "lastname": "B", "mail": "a@x.fr"}),
                "Body userId is empty, not a string or not valid",
            ),
            (
                json!({"userId": "ana", "firstname": "A", "lastname": "", "mail": "a@x.fr"}),
                "Body lastname is empty or not a string",
            ),
            (
                json!({"userId": "ana", "firstname": "A", "lastname": "B", "mail": "ana"}),
                "Body mail is empty or not valid",
            ),
        ] {
            let (status, reply) = call(&fake, "POST", "/rest/users", Some(body));
            assert_eq!((status, errors(&reply)), (400, refusal.into()));
        }
        assert!(fake.directory().is_empty());
    }

    #[test]
    fn a_create_of_a_deleted_login_restores_the_old_record_and_ignores_the_body() {
        let fake = Fake::start(USER, PASSWORD);
        let old = fake.with(|c| {
            let id = c.add_user(User {
                groups: ["AGENT".to_string()].into(),
                ..user("ana", &[])
            });
            c.delete_user("ana");
            id
        });
        assert!(listed(&fake).is_empty(), "a deleted user is not listed");
        assert_eq!(created(&fake, "ANA"), old);
        let held = fake.with(|c| c.users[&old].clone());
        assert_eq!(
            (held.status.as_str(), held.firstname.as_str()),
            ("OK", "Zoé")
        );
        assert!(held.groups.is_empty(), "a deletion drops the groups");
        assert_eq!(listed(&fake), ["ana"]);
    }

    #[test]
    fn every_create_queues_an_activation_mail() {
        let fake = Fake::start(USER, PASSWORD);
        created(&fake, "ana");
        create(&fake, "ana");
        fake.with(|c| c.delete_user("ana"));
        created(&fake, "ana");
        assert_eq!(fake.with(|c| c.activation_mails.clone()), ["ana", "ana"]);
    }

    #[test]
    fn a_rest_user_that_is_not_root_sees_and_changes_only_its_perimeter() {
        let fake = Fake::start(USER, PASSWORD);
        let outside = fake.with(|c| {
            c.add_entity("DG", Entity::new("Direction", ""));
            c.add_entity("DG-RH", Entity::new("RH", "DG"));
            c.add_entity("RH-PAIE", Entity::new("Paie", "DG-RH"));
            c.add_entity("ARCH", Entity::new("Archives", ""));
            c.rest.root = false;
            c.rest.entities = ["DG-RH".to_string()].into();
            c.add_user(user("below", &["RH-PAIE"]));
            c.add_user(user("none", &[]));
            c.add_user(user("mixed", &["ARCH", "DG-RH"]));
            c.add_user(user("outside", &["ARCH"]))
        });
        assert_eq!(listed(&fake), ["below", "none", "mixed"]);
        let (status, body) = create(&fake, "outside");
        assert_eq!((status, errors(&body)), (400, USER_EXISTS.into()));
        for (method, path, body) in [
            (
                "PUT",
                format!("/rest/users/{outside}"),
                Some(full_record("O")),
            ),
            ("PUT", format!("/rest/users/{outside}/suspend"), None),
            (
                "POST",
                format!("/rest/users/{outside}/groups"),
                Some(json!({"groupId": "AGENT"})),
            ),
            (
                "DELETE",
                format!("/rest/users/{outside}/entities/ARCH"),
                None,
            ),
        ] {
            let (status, reply) = call(&fake, method, &path, body);
            assert_eq!(
                (status, errors(&reply)),
                (403, OUT_OF_PERIMETER.into()),
                "{method} {path}"
            );
        }
        assert_eq!(fake.directory()["outside"].status, "OK");
        // Root sees everyone.
        fake.with(|c| c.rest.root = true);
        assert_eq!(listed(&fake).len(), 4);
    }

    #[test]
    fn an_update_replaces_the_whole_record_and_applies_only_status_ok() {
        let fake = Fake::start(USER, PASSWORD);
        let id = fake.with(|c| {
            c.add_user(User {
                initials: "AA".into(),
                phone: "0102030405".into(),
                status: "SPD".into(),
                ..user("ana", &[])
            })
        });
        let path = format!("/rest/users/{id}");
        let body =
            json!({"userId": "other", "firstname": "Ana", "lastname": "Alves", "status": "ABS"});
        assert_eq!(call(&fake, "PUT", &path, Some(body)).0, 204);
        let held = fake.with(|c| c.users[&id].clone());
        assert_eq!(held.login, "ana", "no rename");
        assert_eq!(held.status, "SPD", "only OK is applied");
        assert_eq!(
            (held.mail, held.initials, held.phone),
            ("".into(), "".into(), "".into())
        );
        // Without the right to manage personal data, phone is left alone.
        fake.with(|c| {
            c.rest.personal_data = false;
            c.users.get_mut(&id).unwrap().phone = "0102030405".into();
        });
        let mut body = full_record("Ana");
        body["status"] = json!("OK");
        assert_eq!(call(&fake, "PUT", &path, Some(body)).0, 204);
        let held = fake.with(|c| c.users[&id].clone());
        assert_eq!(
            (held.status.as_str(), held.phone.as_str()),
            ("OK", "0102030405")
        );
        let (status, reply) = call(&fake, "PUT", &path, Some(json!({"firstname": "Ana"})));
        assert_eq!(
            (status, errors(&reply)),
            (400, "Body lastname is empty or not a string".into())
        );
    }

    #[test]
    fn a_link_already_there_is_a_400_and_the_removal_of_an_absent_one_a_200() {
        let fake = Fake::start(USER, PASSWORD);
        fake.with(|c| c.add_entity("DG", Entity::new("Direction", "")));
        let id = created(&fake, "ana");
        for (list, key, value, already, unknown) in [
            (
                "groups",
                "groupId",
                "AGENT",
                ALREADY_IN_GROUP,
                "Group not found",
            ),
            (
                "entities",
                "entityId",
                "DG",
                ALREADY_IN_ENTITY,
                "Entity not found",
            ),
        ] {
            let path = format!("/rest/users/{id}/{list}");
            let (status, reply) = call(&fake, "POST", &path, Some(json!({key: value})));
            assert_eq!(status, 200, "{reply}");
            let listed: Value = serde_json::from_str(&reply).unwrap();
            assert_eq!(listed[list], json!([value]));
            let (status, reply) = call(&fake, "POST", &path, Some(json!({key: value})));
            assert_eq!((status, errors(&reply)), (400, already.into()));
            let (status, reply) = call(&fake, "POST", &path, Some(json!({key: "NOPE"})));
            assert_eq!((status, errors(&reply)), (400, unknown.into()));
            for _ in 0..2 {
                assert_eq!(
                    call(&fake, "DELETE", &format!("{path}/{value}"), None).0,
                    200
                );
            }
            let (status, reply) = call(&fake, "DELETE", &format!("{path}/NOPE"), None);
            assert_eq!((status, errors(&reply)), (400, unknown.into()));
        }
        assert!(fake.directory()["ana"].groups.is_empty());
    }

    #[test]
    fn a_group_the_rest_user_may_not_assign_is_a_403() {
        let fake = Fake::start(USER, PASSWORD);
        fake.with(|c| c.rest.unassignable.insert("ADMINISTRATEUR".into()));
        let id = created(&fake, "ana");
        let (status, reply) = call(
            &fake,
            "POST",
            &format!("/rest/users/{id}/groups"),
            Some(json!({"groupId": "ADMINISTRATEUR"})),
        );
        assert_eq!((status, errors(&reply)), (403, FORBIDDEN.into()));
    }

    #[test]
    fn a_suspension_is_refused_for_five_reasons_each_in_its_own_words() {
        let fake = Fake::start(USER, PASSWORD);
        let ids = fake.with(|c| {
            c.add_entity("DG", Entity::new("Direction", ""));
            c.add_entity("ARCH", Entity::new("Archives", ""));
            c.rest.root = false;
            c.rest.entities = ["DG".to_string()].into();
            c.open_mail.insert("mail".into());
            c.diffusion_lists.insert("list".into());
            [
                c.add_user(user("mail", &["DG"])),
                c.add_user(user("list", &["DG"])),
                c.add_user(user(USER, &["DG"])),
                c.add_user(User {
                    mode: "root_visible".into(),
                    ..user("root", &["DG"])
                }),
                c.add_user(user("far", &["ARCH"])),
                c.add_user(user("free", &["DG"])),
            ]
        });
        let suspend = |id: u64| {
            let (status, body) = call(&fake, "PUT", &format!("/rest/users/{id}/suspend"), None);
            (status, if body.is_empty() { body } else { errors(&body) })
        };
        let refusals: Vec<(u16, String)> = ids[..5].iter().map(|id| suspend(*id)).collect();
        let expected = [
            OPEN_MAIL,
            DIFFUSION_LIST,
            YOURSELF,
            FORBIDDEN,
            OUT_OF_PERIMETER,
        ];
        assert_eq!(
            refusals,
            expected.map(|text| (403, text.to_string())).to_vec()
        );
        assert_eq!(suspend(ids[5]), (204, String::new()));
        assert_eq!(
            suspend(ids[5]),
            (204, String::new()),
            "again when suspended"
        );
        assert_eq!(fake.directory()["free"].status, "SPD");
    }

    fn entity_body(id: &str, parent: &str) -> Value {
        json!({"entity_id": id, "entity_label": id, "short_label": id, "entity_type": "Service", "parent_entity_id": parent})
    }

    #[test]
    fn an_entity_with_an_unknown_parent_is_accepted_and_a_duplicate_refused_in_french() {
        let fake = Fake::start(USER, PASSWORD);
        let (status, body) = call(
            &fake,
            "POST",
            "/rest/entities",
            Some(entity_body("DG-SI", "DG")),
        );
        assert_eq!(status, 200, "{body}");
        let reply: Value = serde_json::from_str(&body).unwrap();
        assert!(
            reply["id"].is_u64() && reply["entities"] == json!(["DG-SI"]),
            "{reply}"
        );
        assert_eq!(fake.entities()["DG-SI"].1, "DG", "left dangling");
        let (status, raw) = call(
            &fake,
            "POST",
            "/rest/entities",
            Some(entity_body("DG-SI", "")),
        );
        assert_eq!((status, errors(&raw)), (400, ENTITY_EXISTS.into()));
        assert!(raw.contains(r"existe d\u00e9j\u00e0"), "{raw}");
    }

    #[test]
    fn entity_ids_are_words_and_dashes_of_at_most_32_characters() {
        let fake = Fake::start(USER, PASSWORD);
        for id in ["DG SI", "DG.SI", &"X".repeat(33)] {
            let (status, reply) = call(&fake, "POST", "/rest/entities", Some(entity_body(id, "")));
            assert_eq!(
                (status, errors(&reply)),
                (
                    400,
                    "Body entity_id is empty, not a string or not valid".into()
                ),
                "{id}"
            );
        }
        let longest = "X".repeat(32);
        assert_eq!(
            call(
                &fake,
                "POST",
                "/rest/entities",
                Some(entity_body(&longest, ""))
            )
            .0,
            200
        );
    }

    #[test]
    fn an_entity_update_erases_the_fields_it_is_not_sent() {
        let fake = Fake::start(USER, PASSWORD);
        fake.with(|c| {
            let mut entity = Entity::new("Numérique", "");
            entity.fields.insert("addressTown".into(), "Lyon".into());
            entity.fields.insert("email".into(), "si@x.fr".into());
            c.add_entity("DG-SI", entity);
        });
        let (status, body) = call(&fake, "GET", "/rest/entities/DG-SI/details", None);
        assert_eq!(status, 200, "{body}");
        let details: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(details["entity"]["addressTown"], "Lyon");
        assert_eq!(details["entity"]["enabled"], "Y");
        assert_eq!(details["entity"]["business_id"], Value::Null);
        let mut sent = entity_body("DG-SI", "");
        sent["entity_label"] = json!("SI");
        assert_eq!(
            call(&fake, "PUT", "/rest/entities/DG-SI", Some(sent)).0,
            200
        );
        let held = fake.entity("DG-SI").unwrap();
        assert_eq!(held.get("entity_label"), "SI");
        assert_eq!((held.get("addressTown"), held.get("email")), ("", ""));
        let (status, reply) = call(
            &fake,
            "PUT",
            "/rest/entities/NOPE",
            Some(entity_body("NOPE", "")),
        );
        assert_eq!((status, errors(&reply)), (400, "Entity not found".into()));
    }

    #[test]
    fn an_entity_status_reaches_every_entity_below_it() {
        let fake = Fake::start(USER, PASSWORD);
        fake.with(|c| {
            c.add_entity("DG", Entity::new("Direction", ""));
            c.add_entity("DG-SI", Entity::new("SI", "DG"));
            c.add_entity("SI-DEV", Entity::new("Dev", "DG-SI"));
        });
        let status = |id: &str, method: &str| {
            call(
                &fake,
                "PUT",
                &format!("/rest/entities/{id}/status"),
                Some(json!({"method": method})),
            )
            .0
        };
        let disabled = || {
            fake.with(|c| {
                c.entities
                    .iter()
                    .filter(|(_, e)| e.disabled)
                    .map(|(id, _)| id.clone())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(status("DG-SI", "disable"), 200);
        assert_eq!(disabled(), ["DG-SI", "SI-DEV"]);
        assert_eq!(status("DG", "enable"), 200);
        assert!(disabled().is_empty());
        assert_eq!(status("NOPE", "disable"), 400);
    }

    #[test]
    fn echo_headers_shows_the_credentials_in_a_refused_create() {
        let fake = Fake::start(USER, PASSWORD);
        fake.with(|c| c.echo_headers = true);
        let (status, body) = create(&fake, "ana");
        assert_eq!(status, 400);
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        assert!(
            body.contains(&format!("authorization: Basic {basic}")),
            "{body}"
        );
    }
}

/// Only the store says whose a Maarch user is: a create refused because
/// the login exists never takes over the user another record holds (found
/// on the 400 with `match = []`, or by the login rule).
#[test]
fn a_user_another_record_holds_is_not_taken_over() {
    for matching in ["[]", "[\"login\"]"] {
        let courrier = Target::maarch("courrier")
            .password_env("MAARCH_PASSWORD", PASSWORD)
            .set("match", support::Raw(matching.into()));
        let mut run = support::Run(courrier_with(courrier).build());
        let row = |ext: &str, first: &str, login: &str| {
            format!("{ext};Moreau;{first};{login};{login}.{ext}@x.fr;;;;0")
        };
        let (code, out, err) = run.users(&[
            row("M1", "Mara", "mara"),
            row("B1", "Ben", "ben"),
            row("C1", "Cleo", "cleo"),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        // Mara leaves (suspended, her account kept); Max is given her login.
        let (code, out, _) = run.users(&[
            row("B1", "Ben", "ben"),
            row("C1", "Cleo", "cleo"),
            row("X1", "Max", "mara"),
        ]);
        assert_eq!(code, 1, "{matching}: {out}");
        assert!(out.contains("M1"), "{matching}: {out}");
        let users = run.fake.directory();
        assert_eq!(users.len(), 3, "{users:?}");
        assert_eq!(users["mara"].first, "Mara", "{matching}: taken over");
        assert_eq!(users["mara"].status, "SPD");
    }
}
