//! `rostersync sync` end to end against the stateful Gestimum fake, through
//! the real binary: the ERP's users after each file (department change,
//! block, unblock), nothing sent for a repeated file, retries through
//! transient faults, a record over Gestimum's sizes parked alone, short
//! statistics split down to the refused line, refused credentials, and the
//! password never in the output. Also `check()` and the `dormant_column` key.

mod support;

use std::collections::BTreeMap;

use support::fakes::gestimum::Fake;
use support::{Builder, Harness, Source, Target};

const COMPANY: &str = "DEMO.Gestimum";
const USER: &str = "ROSTER";
const PASSWORD: &str = "G3st!mum-p4ss;w0rd";

/// One users source in a custom layout feeding `target` (batches of three,
/// one at a time), no fake yet.
fn erp_config(target: Target) -> Builder {
    Harness::builder()
        .safety("max_block_percent", 50.0)
        .source(
            Source::users("users", "inbox")
                .set("format", "custom")
                .targets(&["erp"])
                .column("ext_id", "Matricule")
                .column("login", "Identifiant")
                .column("department", "Service")
                .column("custom.sal_code", "Salarie")
                .column("disabled", "Sorti"),
        )
        .target(
            target
                .set("company", COMPANY)
                .user(USER)
                .set("batch_size", 3)
                .set("concurrency", 1)
                .fast(),
        )
}

/// The `erp` target, its password from `GESTIMUM_PASSWORD`.
fn erp_target() -> Target {
    Target::gestimum("erp").password_env("GESTIMUM_PASSWORD", PASSWORD)
}

/// The ERP's fake and its config; syncs at trace, never showing PASSWORD.
fn erp() -> Builder<Fake> {
    erp_config(erp_target())
        .fake(Fake::start(COMPANY, USER, PASSWORD))
        .sync_log("trace")
        .never_shows(PASSWORD)
}

type Run = support::Run<Fake>;

impl Run {
    fn new() -> Run {
        Self(erp().build())
    }

    /// Drops a users file and syncs it; returns (exit code, stdout, stderr),
    /// the harness having checked that the password (the one given and the
    /// right one) shows in neither.
    fn sync(&mut self, rows: &[&str]) -> (i32, String, String) {
        self.sync_rows(
            "inbox",
            "users",
            "Matricule;Identifiant;Service;Salarie;Sorti",
            rows,
        )
    }
}

/// USR_NAME → (USR_GROUPE, SAL_CODE, USR_DORT).
fn dir(entries: &[(&str, &str, &str, &str)]) -> BTreeMap<String, (String, String, String)> {
    entries
        .iter()
        .map(|(name, group, code, dormant)| {
            (
                name.to_string(),
                (group.to_string(), code.to_string(), dormant.to_string()),
            )
        })
        .collect()
}

const ANA: &str = "E1;ANA;ADMIN;A01;0";
const BEN: &str = "E2;BEN;VENTE;B02;0";
const CLE: &str = "E3;CLEO;ACHAT;C03;0";
const DAN: &str = "E4;DAN;VENTE;D04;0";
const EVE: &str = "E5;EVE;ACHAT;E05;0";

#[test]
fn the_erp_ends_up_holding_exactly_what_hr_says() {
    let mut run = Run::new();
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, DAN]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        run.fake.directory(),
        dir(&[
            ("ANA", "ADMIN", "A01", "0"),
            ("BEN", "VENTE", "B02", "0"),
            ("CLEO", "ACHAT", "C03", "0"),
            ("DAN", "VENTE", "D04", "0"),
        ])
    );
    assert_eq!(run.fake.requests(), 2, "four users in batches of three");
    // The journal goes to the log.
    assert!(err.contains("Nombre de lignes importées : 3"), "{err}");

    // Ben changes department, Dan leaves (disabled), nobody else is touched:
    // one import of two lines.
    let ben_moved = BEN.replace("VENTE", "COMPTA");
    let dan_gone = DAN.replace(";0", ";1");
    let (code, out, err) = run.sync(&[ANA, &ben_moved, CLE, &dan_gone]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("target erp: 0 create, 1 update, 1 block, 0 unblock"),
        "{out}"
    );
    assert_eq!(run.fake.requests(), 3);
    assert_eq!(run.fake.with(|erp| erp.imports.last().copied()), Some(2));
    let after_block = dir(&[
        ("ANA", "ADMIN", "A01", "0"),
        ("BEN", "COMPTA", "B02", "0"),
        ("CLEO", "ACHAT", "C03", "0"),
        ("DAN", "VENTE", "D04", "1"),
    ]);
    assert_eq!(run.fake.directory(), after_block);

    // The same file again, then the same content in another order (so that
    // it goes through the plan): not one request.
    let (code, out, _) = run.sync(&[ANA, &ben_moved, CLE, &dan_gone]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run.sync(&[&dan_gone, CLE, &ben_moved, ANA]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("target erp: 0 create, 0 update, 0 block, 0 unblock"),
        "{out}"
    );
    assert_eq!(run.fake.requests(), 3);
    assert_eq!(run.fake.directory(), after_block);

    // Dan comes back; Cleo's salary code is removed (sent empty, so cleared).
    let (code, out, err) = run.sync(&[ANA, &ben_moved, "E3;CLEO;ACHAT;;0", DAN]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("target erp: 0 create, 1 update, 0 block, 1 unblock"),
        "{out}"
    );
    assert_eq!(
        run.fake.directory(),
        dir(&[
            ("ANA", "ADMIN", "A01", "0"),
            ("BEN", "COMPTA", "B02", "0"),
            ("CLEO", "ACHAT", "", "0"),
            ("DAN", "VENTE", "D04", "0"),
        ])
    );

    // Ana is missing from a full file: blocked.
    let (code, out, err) = run.sync(&[&ben_moved, "E3;CLEO;ACHAT;;0", DAN]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory()["ANA"].2, "1");
}

#[test]
fn values_holding_the_separator_are_quoted_and_read_back_whole() {
    let mut run = Run::new();
    let (code, out, err) = run.sync(&[r#"E1;ANA;"R;D ""X""";"A;B";0"#, BEN]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        run.fake.directory(),
        dir(&[
            ("ANA", "R;D \"X\"", "A;B", "0"),
            ("BEN", "VENTE", "B02", "0")
        ])
    );
}

#[test]
fn thirty_percent_of_transient_failures_change_nothing_in_the_end() {
    let mut run = Run::new();
    run.fake.with(|erp| {
        erp.faults.fail_percent = 30;
        erp.faults.malformed_percent = 10;
    });
    let mut rows: Vec<String> = (0..30)
        .map(|i| format!("M{i:02};USER{i:02};SERVICE{};S{i:02};0", i % 4))
        .collect();
    let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
    let (code, out, err) = run.sync(&refs);
    assert_eq!(code, 0, "{out}{err}");
    let mut expected: BTreeMap<String, (String, String, String)> = (0..30)
        .map(|i| {
            (
                format!("USER{i:02}"),
                (format!("SERVICE{}", i % 4), format!("S{i:02}"), "0".into()),
            )
        })
        .collect();
    assert_eq!(run.fake.directory(), expected);
    assert!(
        err.contains("retrying after a transient failure"),
        "no failure was injected?"
    );

    // A third change department, five leave; 429s with Retry-After this time.
    run.fake.with(|erp| {
        erp.faults.malformed_percent = 0;
        erp.faults.retry_after = Some("0".into());
    });
    for (i, row) in rows.iter_mut().enumerate().take(10) {
        *row = row.replace(&format!("SERVICE{}", i % 4), "NOUVEAU");
        expected.get_mut(&format!("USER{i:02}")).unwrap().0 = "NOUVEAU".into();
    }
    for (i, row) in rows.iter_mut().enumerate().skip(25) {
        *row = format!("{};1", &row[..row.len() - 2]);
        expected.get_mut(&format!("USER{i:02}")).unwrap().2 = "1".into();
    }
    let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
    let (code, out, err) = run.sync(&refs);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory(), expected);
}

#[test]
fn an_over_long_group_parks_only_that_record_and_the_fixed_file_retries_it() {
    let mut run = Run::new();
    let ben_long = BEN.replace("VENTE", "DIRECTION-COMMERCIALE");
    let (code, out, err) = run.sync(&[ANA, &ben_long, CLE]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("1 parked"), "{out}");
    assert!(
        out.contains(
            "USR_GROUPE \"DIRECTION-COMMERCIALE\" is 21 characters; Gestimum holds 20 at most"
        ),
        "{out}"
    );
    assert_eq!(
        run.fake.directory(),
        dir(&[("ANA", "ADMIN", "A01", "0"), ("CLEO", "ACHAT", "C03", "0")])
    );
    // Ben was never sent: one import of the two others.
    assert_eq!(run.fake.with(|erp| erp.imports.clone()), [2]);

    // HR shortens it; the next file retries Ben.
    let (code, out, err) = run.sync(&[ANA, &BEN.replace("VENTE", "DIR-COMMERCIALE"), CLE]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        run.fake.directory(),
        dir(&[
            ("ANA", "ADMIN", "A01", "0"),
            ("BEN", "DIR-COMMERCIALE", "B02", "0"),
            ("CLEO", "ACHAT", "C03", "0"),
        ])
    );
}

#[test]
fn a_line_gestimum_does_not_import_is_found_by_splitting_and_parked_with_the_journal() {
    let mut run = Run::new();
    run.fake.with(|erp| erp.refused_names = vec!["BEN".into()]);
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, DAN]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("1 parked"), "{out}");
    assert!(
        out.contains("Gestimum did not import the user: Ligne 2 : l'utilisateur BEN est réservé"),
        "{out}"
    );
    assert_eq!(
        run.fake.directory(),
        dir(&[
            ("ANA", "ADMIN", "A01", "0"),
            ("CLEO", "ACHAT", "C03", "0"),
            ("DAN", "VENTE", "D04", "0"),
        ])
    );
    // [ANA BEN CLEO] short by one → [ANA] + [BEN CLEO] → [BEN] + [CLEO]; then [DAN].
    assert_eq!(run.fake.with(|erp| erp.imports.clone()), [3, 1, 2, 1, 1, 1]);

    // The ERP's administrator frees the name; the next file retries Ben.
    run.fake.with(|erp| erp.refused_names.clear());
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, DAN, EVE]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory().len(), 5);
    assert_eq!(
        run.fake.directory()["BEN"],
        dir(&[("BEN", "VENTE", "B02", "0")])["BEN"]
    );
}

#[test]
fn statistics_that_under_count_are_split_down_to_single_lines() {
    let mut run = Run::new();
    run.fake.with(|erp| erp.faults.wrong_counts_percent = 100);
    let (code, out, err) = run.sync(&[ANA, BEN, CLE]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory().len(), 3);
    // [ANA BEN CLEO] → [ANA] + [BEN CLEO] → [BEN] + [CLEO].
    assert_eq!(run.fake.with(|erp| erp.imports.clone()), [3, 1, 2, 1, 1]);
}

#[test]
fn a_refused_password_stops_the_target_and_never_shows() {
    let mut run = Run::new();
    run.set_secret("GESTIMUM_PASSWORD", "wrong-Pa55word");
    // A careless server that repeats the password it was given.
    run.fake.with(|erp| erp.echo_password = true);
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, DAN]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("STOPPED"), "{out}");
    assert!(
        out.contains("Utilisateur ou mot de passe « *** » incorrect"),
        "{out}"
    );
    // One refusal is enough: no second batch tries the password again.
    assert_eq!(run.fake.requests(), 1);
    assert!(run.fake.directory().is_empty());
    // It says nothing of the records: none is parked, they wait.
    let (code, out, err) = run.run(&["retry", "--target", "erp"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("erp: 0 parked record(s) released"), "{out}");

    // The right password: everything waiting goes with the next file.
    run.set_secret("GESTIMUM_PASSWORD", PASSWORD);
    let (code, out, err) = run.sync(&[ANA, BEN, CLE, DAN, EVE]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run.fake.directory().len(), 5);
}

fn connector(url: &str, password: &str) -> rostersync::connectors::AnyConnector {
    erp_config(
        Target::gestimum("erp")
            .url(url)
            .password_file("password", password),
    )
    .build()
    .connector("erp")
}

#[test]
fn check_tries_the_credentials_with_an_empty_import() {
    let fake = Fake::start(COMPANY, USER, PASSWORD);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(connector(&fake.url, PASSWORD).check())
        .unwrap();
    assert_eq!(fake.with(|erp| erp.imports.clone()), [0]);

    let refused = runtime
        .block_on(connector(&fake.url, "not-the-password").check())
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("Gestimum refused the import into company \"DEMO.Gestimum\" as user \"ROSTER\": Utilisateur ou mot de passe incorrect"),
        "{refused}"
    );
    assert!(!refused.contains("not-the-password"));

    // Nobody listening: said plainly.
    drop(fake);
    let closed = runtime
        .block_on(connector("http://127.0.0.1:9", PASSWORD).check())
        .unwrap_err()
        .to_string();
    assert!(!closed.is_empty());
}

#[test]
fn dormant_column_is_checked() {
    /// What a case adds to the target.
    type Extra = fn(Target) -> Target;
    let cases: [(Extra, &str); 3] = [
        (
            |t| t.set("dormant_column", "USR DORT"),
            "dormant_column \"USR DORT\" is not a Gestimum column name",
        ),
        (
            |t| {
                t.set("dormant_column", "USR_INACTIF")
                    .field("USR_INACTIF", "email")
            },
            "USR_INACTIF is the dormant column (block/unblock): it cannot also be mapped in [target.fields]",
        ),
        (
            |t| t.field("USR_DORT", "email"),
            "USR_DORT is the dormant column (block/unblock): it cannot also be mapped in [target.fields]",
        ),
    ];
    for (extra, expected) in cases {
        let h = erp_config(extra(erp_target().url("http://127.0.0.1:9"))).build();
        let (code, out, err) = h.run(&["check"]);
        let out = out + &err;
        assert_eq!(code, 2, "{out}");
        assert!(out.contains(expected), "{out}");
    }
}
