//! `rostersync sync` end to end against the stateful Maarch Courrier fake,
//! through the real binary: entities then users, updates, blocks, unblocks
//! and moves (entity and group changes sent as differences), the directory
//! compared exactly after each file; transient faults; a suspension refused
//! for open mail parked alone and retried; an account made by hand adopted;
//! no password in the logs.

mod support;

use std::collections::BTreeMap;

use support::fakes::maarch::{Fake, Person, User};
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
    assert!(out.contains("Maarch refused to suspend ben"), "{out}");
    assert!(out.contains("still has mail in progress"), "{out}");
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
    assert_eq!(run.fake.hits("POST /rest/users"), 6);
    assert_eq!(run.fake.hits("GET /rest/users"), 1);

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
