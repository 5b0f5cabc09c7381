//! `rostersync sync` end to end against the stateful Pleasanter fake, through
//! the real binary: the tenant's users after each file (every mapped field,
//! e-mail included; create, update, block, unblock, a department move), a
//! tenant that already holds the users, a replay after a kill, records the
//! tenant refuses parked alone with what it said, a login rename, Shift-JIS
//! with Japanese labels, transient faults, a refused key, `check` offline and
//! online; and never the API key in the output at `ROSTERSYNC_LOG=trace`.

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use support::fakes::pleasanter::{Entry, Fake, Language};
use support::{Builder, Harness, Source, Target, wait_until};

const KEY: &str = "4d84b4773a58bbc3c4-pl34s4nt3r-k3y";

const HEADER: &str =
    "user_extid;user_lname;user_fname;user_login;user_email;org_extid;user_disable";

/// The tenant's fake, one users source feeding `target` (batches of four);
/// syncs at trace, never showing the tenant's key.
fn wiki_with(target: Target) -> Builder<Fake> {
    Harness::builder()
        .fake(Fake::start(KEY))
        .safety("max_block_percent", 50.0)
        .source(Source::users("users", "inbox").targets(&["wiki"]))
        .target(target.set("batch_size", 4).fast())
        .sync_log("trace")
        .never_shows(KEY)
}

/// The same, the key in `PLEASANTER_KEY`.
fn wiki() -> Builder<Fake> {
    wiki_with(Target::pleasanter("wiki").token_env("PLEASANTER_KEY", KEY))
}

type Run = support::Run<Fake>;

impl Run {
    fn new(builder: Builder<Fake>) -> Run {
        Self(builder.build())
    }

    /// Drops a users file and syncs it; returns (exit code, stdout, stderr),
    /// the harness having checked that the API key (the one given and the
    /// tenant's) shows in neither.
    fn sync(&mut self, rows: &[&str]) -> (i32, String, String) {
        self.sync_rows("inbox", "users", HEADER, rows)
    }

    /// What `retry` says of the records the store holds parked (releasing
    /// them: a look at the end of a test).
    fn parked(&self) -> String {
        let (code, out, err) = self.run(&["retry"]);
        assert_eq!(code, 0, "{out}{err}");
        out.lines().next().unwrap_or_default().to_string()
    }

    fn imports(&self) -> u64 {
        self.fake.hits("import")
    }
}

const NOTHING_PARKED: &str = "wiki: 0 parked record(s) released";

/// An expected user: (login, name, user code, mail, department, disabled).
type Expected<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, bool);

/// The columns Pleasanter holds for a user, by their API names.
fn columns(name: &str, code: &str, mail: &str, dept: &str) -> BTreeMap<String, String> {
    [
        ("Name", name),
        ("UserCode", code),
        ("MailAddress", mail),
        ("DeptCode", dept),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn directory(users: &[Expected<'_>]) -> BTreeMap<String, Entry> {
    users
        .iter()
        .map(|&(login, name, code, mail, dept, disabled)| {
            let columns = columns(name, code, mail, dept);
            (login.to_string(), Entry { columns, disabled })
        })
        .collect()
}

const ANA: &str = "E1;Alves;Ana;ana;ana@x.fr;D1;0";
const BEN: &str = "E2;Blanc;Ben;ben;ben@x.fr;D1;0";
const CLE: &str = "E3;Colin;Cléo;cleo;cleo@x.fr;D2;0";
const DAN: &str = "E4;Dias;Dan;dan;dan@x.fr;D2;0";
const EVE_INACTIVE: &str = "E5;Eyre;Eve;eve;eve@x.fr;D2;1";

/// What the tenant holds once ANA to EVE_INACTIVE are in.
fn five() -> Vec<Expected<'static>> {
    vec![
        ("ana", "Alves", "E1", "ana@x.fr", "D1", false),
        ("ben", "Blanc", "E2", "ben@x.fr", "D1", false),
        ("cleo", "Colin", "E3", "cleo@x.fr", "D2", false),
        ("dan", "Dias", "E4", "dan@x.fr", "D2", false),
        ("eve", "Eyre", "E5", "eve@x.fr", "D2", true),
    ]
}

#[test]
fn the_tenant_holds_every_mapped_field_email_included_after_each_file() {
    // New users disabled in the file are created disabled.
    let mut run = Run::new(wiki().edit_source("users", |s| s.set("create_disabled", true)));
    // First import: four users, and one created already disabled.
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, DAN, EVE_INACTIVE]);
    assert_eq!(code, 0, "{out}{err}");
    let mut expected = five();
    assert_eq!(run.fake.directory(), directory(&expected));
    assert_eq!(
        run.fake.with(|t| t.encodings.clone()),
        ["UTF-8", "UTF-8"],
        "two imports for five users in batches of four, Eve disabled in hers"
    );

    // An e-mail change and a leaver (Dan is no longer in the file).
    let ben = BEN.replace("ben@x.fr", "benoit@x.fr");
    let (code, out, err) = run.sync(&[ANA, &ben, CLE, EVE_INACTIVE]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("target wiki: 0 create, 1 update, 1 block, 0 unblock"),
        "{out}"
    );
    expected[1].3 = "benoit@x.fr";
    expected[3].5 = true;
    assert_eq!(run.fake.directory(), directory(&expected));

    // The same content again: not one request.
    let requests = run.fake.requests();
    let (code, out, _) = run.sync(&[ANA, &ben, CLE, EVE_INACTIVE]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(run.fake.requests(), requests, "{out}");

    // Dan comes back with a new address.
    let dan = DAN.replace("dan@x.fr", "daniel@x.fr");
    let (code, out, err) = run.sync(&[ANA, &ben, CLE, &dan, EVE_INACTIVE]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 unblock"), "{out}");
    expected[3].3 = "daniel@x.fr";
    expected[3].5 = false;
    assert_eq!(run.fake.directory(), directory(&expected));

    // Ana moves to department D3; Eve is enabled as she is.
    let ana = ANA.replace(";D1;", ";D3;");
    let eve = EVE_INACTIVE.replace(";1", ";0");
    let imports = run.imports();
    let (code, out, err) = run.sync(&[&ana, &ben, CLE, &dan, &eve]);
    assert_eq!(code, 0, "{out}{err}");
    expected[0].4 = "D3";
    expected[4].5 = false;
    assert_eq!(run.fake.directory(), directory(&expected));
    assert_eq!(
        run.imports(),
        imports + 1,
        "one import for the move and the unblock"
    );
    // Only the first file's creates looked users up (by user code and login).
    assert_eq!(
        (run.fake.hits("get"), run.fake.hits("update")),
        (2 * 5, 0),
        "block and unblock travel in the import"
    );
}

/// `delete_after`: a leaver disabled by the import, then deleted once
/// blocked for the delay (its `UserId` found by its exact login: imports
/// give none); a key that may not delete parks the delete saying so.
#[test]
fn a_leaver_is_deleted_after_the_delay_found_by_its_login() {
    let mut run = Run::new(wiki_with(
        Target::pleasanter("wiki")
            .token_env("PLEASANTER_KEY", KEY)
            .set("delete_after", "30d"),
    ));
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, DAN]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run.sync(&[ANA, BEN, CLE]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(run.fake.directory()["dan"].disabled);

    let day = chrono::Local::now().date_naive() + chrono::Days::new(30);
    run.set_secret("ROSTERSYNC_TEST_TODAY", &day.format("%Y-%m-%d").to_string());
    run.fake.with(|t| t.manager = false);
    let (code, out, _) = run.sync(&[CLE, BEN, ANA]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 delete, 1 parked"), "{out}");
    assert!(out.contains("deleting user \"dan\""), "{out}");
    assert!(run.fake.directory().contains_key("dan"));

    run.fake.with(|t| t.manager = true);
    let (code, out, err) = run.sync(&[BEN, ANA, CLE]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.with(|t| t.deleted.clone()), ["dan"]);
    let mut expected = five();
    expected.truncate(3);
    assert_eq!(run.fake.directory(), directory(&expected));
    assert_eq!(run.parked(), NOTHING_PARKED);
}

#[test]
fn a_tenant_already_holding_the_users_takes_them_blocks_and_unblocks_with_nothing_parked() {
    let mut run = Run::new(wiki().edit_source("users", |s| s.set("create_disabled", true)));
    let ids: Vec<u64> = run.fake.with(|t| {
        five()
            .iter()
            .map(|&(login, name, code, mail, dept, disabled)| {
                let columns = columns(name, code, mail, dept);
                let columns: Vec<(&str, &str)> = columns
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                t.add(login, &columns, disabled)
            })
            .collect()
    });
    // rostersync's first sync: every row is one Pleasanter already holds as is.
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, DAN, EVE_INACTIVE]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("parked"), "{out}");
    let mut expected = five();
    assert_eq!(run.fake.directory(), directory(&expected));
    assert_eq!(
        run.fake
            .with(|t| t.users.values().map(|u| u.id).collect::<Vec<_>>()),
        ids,
        "no user made twice"
    );

    // Dan leaves, Eve comes back.
    let eve = EVE_INACTIVE.replace(";1", ";0");
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, &eve]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 block, 1 unblock"), "{out}");
    expected[3].5 = true;
    expected[4].5 = false;
    assert_eq!(run.fake.directory(), directory(&expected));
    // The first file looked each user up (by user code and login) and
    // adopted it; nothing since.
    assert_eq!((run.fake.hits("get"), run.fake.hits("update")), (2 * 5, 0));
    assert_eq!(run.parked(), NOTHING_PARKED);
}

#[test]
fn a_replay_after_a_kill_ends_with_the_exact_directory_and_nothing_parked() {
    let mut run = Run::new(wiki().edit_source("users", |s| s.set("create_disabled", true)));
    // The imports are done, their replies never come: the process is killed meanwhile.
    run.fake.with(|t| t.late_reply_ms = 60_000);
    let name = run.numbered("inbox", "users");
    let file = run.write(
        &name,
        &support::csv(HEADER, &[ANA, BEN, CLE, DAN, EVE_INACTIVE]),
    );
    let mut sync = run
        .command()
        .args(["sync", "-c", "config.toml"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(20),
        || run.fake.directory().len() == 5,
        || format!("the tenant holds {:?}", run.fake.directory().keys()),
    );
    sync.kill().unwrap();
    sync.wait().unwrap();
    let expected = directory(&five());
    assert_eq!(run.fake.directory(), expected);

    // The next file replays the same import, unchanged rows and all.
    run.fake.with(|t| t.late_reply_ms = 0);
    let rows_before = run.fake.with(|t| t.rows_received);
    let (code, out, err) = run.sync(&[EVE_INACTIVE, DAN, CLE, BEN, ANA]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        run.fake.with(|t| t.rows_received) - rows_before,
        5,
        "the five rows replayed"
    );
    assert_eq!(run.fake.directory(), expected);
    // Acknowledged: the same content again sends nothing.
    let requests = run.fake.requests();
    let (code, out, _) = run.sync(&[DAN, EVE_INACTIVE, ANA, BEN, CLE]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(run.fake.requests(), requests, "{out}");
    assert_eq!(run.parked(), NOTHING_PARKED);
}

#[test]
fn counts_below_the_rows_sent_are_no_refusal() {
    let mut run = Run::new(wiki());
    run.fake.with(|t| t.faults.wrong_counts_percent = 100);
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, DAN]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory().len(), 4);
    assert_eq!(run.imports(), 1, "nothing split");
}

#[test]
fn a_record_pleasanter_refuses_is_parked_with_what_it_said_and_the_rest_of_its_batch_lands() {
    let mut run = Run::new(wiki());
    run.fake.with(|t| {
        t.other_tenants = vec!["ben".into()];
        t.exception_logins = vec!["fay".into()];
    });
    let gus = format!("G{};Gomes;Gus;gus;gus@x.fr;D1;0", "1".repeat(32));
    let (code, out, err) = run.sync(&[
        ANA,
        BEN,
        // An address the HR file takes and Pleasanter does not.
        "E3;Colin;Élodie;elodie;élodie@x.fr;D2;0",
        DAN,
        "E5;Eyre;Eve;eve;eve@x.fr;D2;0",
        "E6;Faure;Fay;fay;fay@x.fr;D1;0",
        // A user code over Pleasanter's 32 characters: never sent.
        &gus,
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("4 parked"), "{out}");
    for said in [
        "\"This login ID is already in use.\"",
        "unique across all tenants",
        "\"Invalid email address.[élodie@x.fr]\"",
        "fix the address in the HR file",
        "a server error",
        "User code is 33 characters long; Pleasanter takes 32 at most",
    ] {
        assert!(out.contains(said), "{said}: {out}");
    }
    assert_eq!(
        run.fake.directory().keys().collect::<Vec<_>>(),
        ["ana", "dan", "eve"]
    );
    assert_eq!(run.fake.hits("errors"), 0, "no redirect followed");
}

#[test]
fn a_login_change_renames_the_user_found_by_its_exact_login() {
    let mut run = Run::new(wiki());
    run.fake.with(|t| {
        // Logins that hold "ana" and sort before it, over pages of two: a
        // partial match would find it on the second page only.
        t.page_size = 2;
        for login in ["a.ana", "aana", "anabel", "banana"] {
            t.add(login, &[("Name", login)], false);
        }
    });
    let (code, out, err) = run.sync(&[ANA, BEN]);
    assert_eq!(code, 0, "{out}{err}");
    let id = run.fake.with(|t| t.users["ana"].id);
    let looked_up = run.fake.hits("get");
    let ana = ANA.replace(";ana;", ";ana.alves;");
    let (code, out, err) = run.sync(&[&ana, BEN]);
    assert_eq!(code, 0, "{out}{err}");
    let directory = run.fake.directory();
    assert!(!directory.contains_key("ana"), "{directory:?}");
    assert_eq!(
        directory["ana.alves"].columns,
        columns("Alves", "E1", "ana@x.fr", "D1")
    );
    assert_eq!(run.fake.with(|t| t.users["ana.alves"].id), id);
    assert_eq!(
        (run.fake.hits("get") - looked_up, run.fake.hits("update")),
        (1, 1),
        "one exact lookup, one rename"
    );
}

/// A login a spreadsheet would run is imported with its quote: the tenant
/// holds `'-ana`, and a rename finds the user by that login, not a second one.
#[test]
fn a_formula_like_login_is_imported_as_text_and_renamed_as_pleasanter_holds_it() {
    let mut run = Run::new(wiki());
    let hostile = ANA
        .replace(";ana;", ";-ana;")
        .replace("Alves", "=cmd|' /C calc'!A0");
    let (code, out, err) = run.sync(&[&hostile, BEN]);
    assert_eq!(code, 0, "{out}{err}");
    let directory = run.fake.directory();
    assert_eq!(directory["'-ana"].columns["Name"], "'=cmd|' /C calc'!A0");
    let renamed = hostile.replace(";-ana;", ";-ana.alves;");
    let (code, out, err) = run.sync(&[&renamed, BEN]);
    assert_eq!(code, 0, "{out}{err}");
    let logins: Vec<String> = run.fake.directory().into_keys().collect();
    assert_eq!(logins, ["'-ana.alves", "ben"]);
}

#[test]
fn japanese_labels_go_in_shift_jis_and_a_name_that_cannot_is_parked_alone() {
    let mut run = Run::new(wiki().edit_target("wiki", |t| {
        t.set("encoding", "shift_jis")
            .field("Login ID", "")
            .field("Name", "")
            .field("User code", "")
            .field("Email address", "")
            .field("Department code", "")
            .field("ログインID", "login")
            .field("名前", "last_name")
            .field("ユーザコード", "ext_id")
            .field("メールアドレス", "email")
            .field("組織コード", "org_ext_id")
    }));
    run.fake.with(|t| t.language = Language::Japanese);
    let (code, out, err) = run.sync(&[
        "J1;山田 太郎;太郎;yamada;yamada@example.jp;営業部;0",
        "J2;佐藤 花子;花子;sato;sato@example.jp;総務部;0",
        // 𠮷 (U+20BB7) has no Shift-JIS code.
        "J3;𠮷田 義男;義男;yoshida;yoshida@example.jp;営業部;0",
        "J4;髙橋 一郎;一郎;takahashi;takahashi@example.jp;開発部;0",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("1 parked"), "{out}");
    assert!(out.contains("名前") && out.contains("U+20BB7"), "{out}");
    let japanese = |name: &str, code: &str, mail: &str, dept: &str| Entry {
        columns: columns(name, code, mail, dept),
        disabled: false,
    };
    assert_eq!(
        run.fake.directory(),
        BTreeMap::from([
            (
                "sato".to_string(),
                japanese("佐藤 花子", "J2", "sato@example.jp", "総務部")
            ),
            (
                "takahashi".to_string(),
                japanese("髙橋 一郎", "J4", "takahashi@example.jp", "開発部")
            ),
            (
                "yamada".to_string(),
                japanese("山田 太郎", "J1", "yamada@example.jp", "営業部")
            ),
        ])
    );
    assert!(
        run.fake
            .with(|t| t.encodings.iter().all(|e| e == "Shift-JIS"))
    );

    // HR writes the name in common characters: the next file gets Yoshida in;
    // Sato leaves (無効 in the import).
    let (code, out, err) = run.sync(&[
        "J1;山田 太郎;太郎;yamada;yamada@example.jp;営業部;0",
        "J2;佐藤 花子;花子;sato;sato@example.jp;総務部;1",
        "J3;吉田 義男;義男;yoshida;yoshida@example.jp;営業部;0",
        "J4;髙橋 一郎;一郎;takahashi;takahashi@example.jp;開発部;0",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let directory = run.fake.directory();
    assert_eq!(
        directory["yoshida"],
        japanese("吉田 義男", "J3", "yoshida@example.jp", "営業部")
    );
    assert!(directory["sato"].disabled);
    assert_eq!(directory.len(), 4);
}

#[test]
fn thirty_percent_of_transient_failures_change_nothing_in_the_end() {
    let mut clean = Run::new(wiki());
    let mut faulty = Run::new(wiki());
    faulty.fake.with(|t| {
        t.faults.fail_percent = 30;
        t.faults.malformed_percent = 10;
        t.faults.wrong_counts_percent = 10;
    });
    let mut rows: Vec<String> = (0..30)
        .map(|i| format!("U{i:02};Nom{i};Pré{i};login{i};u{i}@x.fr;D{};0", i % 3))
        .collect();
    let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
    let (code, out, err) = clean.sync(&refs);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = faulty.sync(&refs);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(faulty.fake.directory(), clean.fake.directory());
    assert!(
        err.contains("retrying after a transient failure"),
        "no failure was injected?"
    );

    // Half of them change, three leave, 429s with Retry-After this time.
    faulty
        .fake
        .with(|t| t.faults.retry_after = Some("0".into()));
    for row in rows.iter_mut().take(15) {
        *row = row.replace("@x.fr", "@y.fr");
    }
    rows.truncate(27);
    let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
    let (code, out, err) = clean.sync(&refs);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = faulty.sync(&refs);
    assert_eq!(code, 0, "{out}{err}");
    let directory = faulty.fake.directory();
    assert_eq!(directory, clean.fake.directory());
    assert_eq!(directory.values().filter(|u| u.disabled).count(), 3);
    assert_eq!(
        directory
            .values()
            .filter(|u| u.columns["MailAddress"].ends_with("@y.fr"))
            .count(),
        15
    );
}

#[test]
fn a_refused_key_parks_with_a_clear_reason_and_never_shows() {
    let mut run = Run::new(wiki());
    run.set_secret("PLEASANTER_KEY", "wrong-api-key-value");
    // One batch of four, each a create the tenant is asked about first.
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, DAN]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("the API key was refused (HTTP 401"), "{out}");
    // One alarm for the target, not a parked record per person.
    assert!(out.contains("STOPPED") && !out.contains("parked"), "{out}");
    assert!(run.fake.directory().is_empty());
    // The first lookup refused, the others are not tried with the same key.
    assert_eq!(run.fake.requests(), 1);
}

#[test]
fn check_names_the_headers_that_are_no_labels() {
    let run = Run::new(wiki().edit_target("wiki", |t| {
        t.field("Mail address", "email").field("Email address", "")
    }));
    let (code, out, err) = run.run(&["check"]);
    assert_ne!(code, 0, "{out}{err}");
    let said = format!("{out}{err}");
    assert!(
        said.contains("\"Mail address\" is not a label of Pleasanter's user import")
            && said.contains("Email address"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_probes_the_key_with_an_empty_import() {
    let h = wiki_with(Target::pleasanter("wiki").token_file("key", KEY)).build();
    let check = |key: &str| {
        h.secret_file("key", key);
        let connector = h.connector("wiki");
        async move { connector.check().await.map_err(|e| e.to_string()) }
    };
    assert_eq!(check(KEY).await, Ok(()));
    assert_eq!(h.fake.hits("import"), 1);
    assert!(h.fake.directory().is_empty());

    let refused = check("not-the-key").await.unwrap_err();
    assert!(
        refused.contains("the API key was refused (HTTP 401"),
        "{refused}"
    );
    assert!(!refused.contains("not-the-key"));

    h.fake.with(|t| t.manager = false);
    let refused = check(KEY).await.unwrap_err();
    assert!(refused.contains("not a tenant manager"), "{refused}");

    // The key's user reads Japanese: the English labels would all be dropped.
    h.fake.with(|t| {
        t.manager = true;
        t.language = Language::Japanese;
    });
    let wrong = check(KEY).await.unwrap_err();
    assert!(
        wrong.contains("answers in Japanese") && wrong.contains("ログインID"),
        "{wrong}"
    );
}
