//! `rostersync sync` end to end against the stateful Pleasanter fake, through
//! the real binary: the tenant's users after each file (create, update,
//! block, unblock, a department move), nothing sent for a file that changes
//! nothing, Shift-JIS with Japanese column names and names (a character
//! Shift-JIS cannot carry parks that user alone), transient faults, a refused
//! record split down to itself, a refused key; and never the API key in the
//! output at `ROSTERSYNC_LOG=trace`.

mod support;

use std::collections::BTreeMap;

use support::fakes::pleasanter::{Entry, Fake, japanese_columns};
use support::{Builder, Harness, Source, Target};

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
}

/// An expected user: (login, name, user code, mail, department, disabled).
type Expected<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, bool);

fn directory(users: &[Expected<'_>]) -> BTreeMap<String, Entry> {
    users
        .iter()
        .map(|&(login, name, code, mail, dept, disabled)| {
            let columns = [
                ("Name", name),
                ("User code", code),
                ("Mail address", mail),
                ("Department code", dept),
            ]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            (login.to_string(), Entry { columns, disabled })
        })
        .collect()
}

const ANA: &str = "E1;Alves;Ana;ana;ana@x.fr;D1;0";
const BEN: &str = "E2;Blanc;Ben;ben;ben@x.fr;D1;0";
const CLE: &str = "E3;Colin;Cléo;cleo;cleo@x.fr;D2;0";
const DAN: &str = "E4;Dias;Dan;dan;dan@x.fr;D2;0";
const EVE_INACTIVE: &str = "E5;Eyre;Eve;eve;eve@x.fr;D2;1";

#[test]
fn the_tenant_ends_up_holding_exactly_what_hr_says() {
    // New users disabled in the file are created disabled.
    let mut run = Run::new(wiki().edit_source("users", |s| s.set("create_disabled", true)));
    // First import: four users, and one created already disabled.
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, DAN, EVE_INACTIVE]);
    assert_eq!(code, 0, "{out}{err}");
    let mut expected = vec![
        ("ana", "Alves", "E1", "ana@x.fr", "D1", false),
        ("ben", "Blanc", "E2", "ben@x.fr", "D1", false),
        ("cleo", "Colin", "E3", "cleo@x.fr", "D2", false),
        ("dan", "Dias", "E4", "dan@x.fr", "D2", false),
        ("eve", "Eyre", "E5", "eve@x.fr", "D2", true),
    ];
    assert_eq!(run.fake.directory(), directory(&expected));
    assert_eq!(
        run.fake.with(|t| t.encodings.clone()),
        ["UTF-8", "UTF-8"],
        "two imports for five users in batches of four"
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

    // Dan comes back with a new address: an import, then Disabled false.
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
    let imports = run.fake.with(|t| t.hits.get("import").copied());
    let (code, out, err) = run.sync(&[&ana, &ben, CLE, &dan, &eve]);
    assert_eq!(code, 0, "{out}{err}");
    expected[0].4 = "D3";
    expected[4].5 = false;
    assert_eq!(run.fake.directory(), directory(&expected));
    assert_eq!(
        run.fake.with(|t| t.hits.get("import").copied()),
        imports.map(|n| n + 1),
        "one import for the move; Eve's unblock changes no field and needs none"
    );
}

#[test]
fn japanese_names_go_in_shift_jis_and_one_that_cannot_is_parked_alone() {
    let mut run = Run::new(wiki().edit_target("wiki", |t| {
        t.set("encoding", "shift_jis")
            .field("Login ID", "")
            .field("Name", "")
            .field("User code", "")
            .field("Mail address", "")
            .field("Department code", "")
            .field("ログインID", "login")
            .field("名前", "last_name")
            .field("ユーザコード", "ext_id")
            .field("メールアドレス", "email")
            .field("組織コード", "org_ext_id")
    }));
    run.fake.with(|t| {
        t.columns = japanese_columns();
        t.japanese = true;
    });
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
        columns: [
            ("名前", name),
            ("ユーザコード", code),
            ("メールアドレス", mail),
            ("組織コード", dept),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
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
    // Sato leaves (blocked through the JSON API, found by login).
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
        t.page_size = 3; // blocks look users up over several pages
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
            .filter(|u| u.columns["Mail address"].ends_with("@y.fr"))
            .count(),
        15
    );
}

#[test]
fn a_refused_record_is_split_down_to_and_parked_alone() {
    let mut run = Run::new(wiki());
    run.fake.with(|t| t.refused_logins = vec!["ben".into()]);
    let (code, out, _) = run.sync(&[ANA, BEN, CLE, DAN]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 parked"), "{out}");
    assert!(out.contains("Row 2: ben cannot be used."), "{out}");
    assert_eq!(
        run.fake.directory().keys().collect::<Vec<_>>(),
        ["ana", "cleo", "dan"]
    );

    // Counts that fall short are split too, down to single imports.
    run.fake.with(|t| {
        t.refused_logins.clear();
        t.faults.wrong_counts_percent = 100;
    });
    let before = run
        .fake
        .with(|t| t.hits.get("import").copied().unwrap_or(0));
    let (code, out, _) = run.sync(&[ANA, BEN, CLE, DAN, "E6;Faure;Fay;fay;fay@x.fr;D1;0"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(run.fake.directory().len(), 5);
    let imports = run
        .fake
        .with(|t| t.hits.get("import").copied().unwrap_or(0))
        - before;
    assert_eq!(
        imports, 3,
        "a batch of two, then each alone (replays are harmless)"
    );
}

#[test]
fn a_refused_key_parks_with_a_clear_reason_and_never_shows() {
    let mut run = Run::new(wiki());
    run.set_secret("PLEASANTER_KEY", "wrong-api-key-value");
    let (code, out, err) = run.sync(&[ANA, BEN]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("the API key was refused (HTTP 401)"), "{out}");
    assert!(run.fake.directory().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn check_tries_the_key() {
    let h = wiki_with(Target::pleasanter("wiki").token_file("key", KEY)).build();
    for (key, ok) in [(KEY, true), ("not-the-key", false)] {
        h.secret_file("key", key);
        let connector = h.connector("wiki");
        let result = connector.check().await.map_err(|e| e.to_string());
        if ok {
            assert_eq!(result, Ok(()));
        } else {
            let message = result.unwrap_err();
            assert!(message.contains("API key was refused"), "{message}");
            assert!(!message.contains("not-the-key"));
        }
    }
}
