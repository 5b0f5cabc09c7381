//! `[target.scope]` and `[target.fields]` templates end to end: the real
//! binary syncing files to the stateful SCIM fake, with its store in a
//! temporary folder. Who the provider holds, and how, after each file.

mod support;

use std::collections::BTreeMap;

use support::fakes::scim::Fake;
use support::{Builder, Harness, Raw, Source, Target};

const TOKEN: &str = "scim-m4pp1ng-t0ken-31";

const HEADER: &str = "uid;login;firstname;secondname;email;position;department;manager_uid;status";

/// The provider, its users from Collaborator-format files, with `idp` as given.
fn provider(idp: Target) -> Builder<Fake> {
    Harness::builder()
        .fake(Fake::start(TOKEN, true))
        .safety("max_block_percent", 50.0)
        .safety("max_shrink_percent", 50.0)
        .source(
            Source::users("users", "inbox")
                .set("format", "collaborator")
                .targets(&["idp"]),
        )
        .target(idp.token_env("IDP_TOKEN", TOKEN).fast())
}

fn idp() -> Target {
    Target::scim("idp")
}

/// `uid;login;first;last;login@x.fr;;department;;0`.
fn person(uid: &str, login: &str, first: &str, last: &str, department: &str) -> String {
    format!("{uid};{login};{first};{last};{login}@x.fr;;{department};;0")
}

/// The provider's users as (login → department, active).
fn held(fake: &Fake) -> BTreeMap<String, (String, bool)> {
    fake.directory()
        .into_iter()
        .map(|(login, user)| (login, (user.department, user.active)))
        .collect()
}

fn expect(list: &[(&str, &str, bool)]) -> BTreeMap<String, (String, bool)> {
    list.iter()
        .map(|&(login, department, active)| (login.to_string(), (department.to_string(), active)))
        .collect()
}

fn sales_and_rd(out_of_scope: &str) -> Target {
    idp().set(
        "scope",
        Raw(format!(
            r#"{{ include = ['department in ["Sales", "R&D"]'], exclude = ['custom.contract == "intern"'], out_of_scope = "{out_of_scope}" }}"#
        )),
    )
}

/// Syncs `rows` as the next file, checks it went through with `counts` at
/// the provider, and returns what `sync` printed.
fn sync_expecting(run: &mut support::Run<Fake>, rows: &[impl AsRef<str>], counts: &str) -> String {
    let (code, out, err) = run.sync_rows("inbox", "file", HEADER, rows);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("target idp: {counts}")), "{out}");
    out
}

#[test]
fn a_department_moved_out_of_scope_is_blocked_and_counts_as_leavers() {
    let mut run = support::Run(provider(sales_and_rd("block")).build());
    let staff = [
        person("A1", "ana", "Ana", "Alves", "R&D"),
        person("A2", "ben", "Ben", "Blanc", "Sales"),
        person("A3", "cleo", "Cléo", "Colin", "R&D"),
        person("A4", "dan", "Dan", "Dias", "Sales"),
        person("M1", "mara", "Mara", "Moreau", "Direction"),
    ];
    // Mara is out of scope: never created.
    sync_expecting(&mut run, &staff, "4 create, 0 update, 0 block, 0 unblock");
    assert_eq!(
        held(&run.fake),
        expect(&[
            ("ana", "R&D", true),
            ("ben", "Sales", true),
            ("cleo", "R&D", true),
            ("dan", "Sales", true)
        ])
    );

    // Cléo moves to Direction: out of scope, blocked as a leaver (the block
    // carries what HR says of her now, as a disabled record's does).
    let mut moved = staff.clone();
    // She takes her married name's address in the same file.
    moved[2] = "A3;cleo;Cléo;Colin;c.durand@x.fr;;Direction;;0".to_string();
    sync_expecting(&mut run, &moved, "0 create, 0 update, 1 block, 0 unblock");
    assert_eq!(
        held(&run.fake),
        expect(&[
            ("ana", "R&D", true),
            ("ben", "Sales", true),
            ("cleo", "Direction", false),
            ("dan", "Sales", true)
        ])
    );

    // Sales is reorganised into Direction: 2 of the 3 active people leave
    // scope at once, which the mass-block rule holds (at most 50%).
    let requests = run.fake.requests();
    moved[1] = person("A2", "ben", "Ben", "Blanc", "Direction");
    moved[3] = person("A4", "dan", "Dan", "Dias", "Direction");
    let (code, out, err) = run.sync_rows("inbox", "file", HEADER, &moved);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        out.contains("HELD by safety rule max_block_percent"),
        "{out}"
    );
    assert_eq!(
        run.fake.requests(),
        requests,
        "nothing sent while held: {out}"
    );

    // Cléo comes back in scope: unblocked, with her department.
    moved[1] = staff[1].clone();
    moved[3] = staff[3].clone();
    moved[2] = "A3;cleo;Cléo;Colin;c.durand@x.fr;;Sales;;0".to_string();
    sync_expecting(&mut run, &moved, "0 create, 0 update, 0 block, 1 unblock");
    assert_eq!(
        held(&run.fake),
        expect(&[
            ("ana", "R&D", true),
            ("ben", "Sales", true),
            ("cleo", "Sales", true),
            ("dan", "Sales", true)
        ])
    );
    assert_eq!(run.fake.directory()["cleo"].email, "c.durand@x.fr");
}

#[test]
fn out_of_scope_ignore_leaves_the_target_alone() {
    let mut run = support::Run(provider(sales_and_rd("ignore")).build());
    let staff = [
        person("A1", "ana", "Ana", "Alves", "R&D"),
        person("A2", "ben", "Ben", "Blanc", "Sales"),
        person("M1", "mara", "Mara", "Moreau", "Direction"),
    ];
    sync_expecting(&mut run, &staff, "2 create, 0 update, 0 block, 0 unblock");

    // Ben moves to Direction and changes e-mail: the provider keeps him as he was.
    let requests = run.fake.requests();
    let moved = [
        staff[0].clone(),
        "A2;ben;Ben;Blanc;benoit@x.fr;;Direction;;0".to_string(),
        staff[2].clone(),
    ];
    let out = sync_expecting(&mut run, &moved, "0 create, 0 update, 0 block, 0 unblock");
    assert_eq!(run.fake.requests(), requests, "{out}");
    let ben = &run.fake.directory()["ben"];
    assert_eq!(
        (ben.email.as_str(), ben.department.as_str(), ben.active),
        ("ben@x.fr", "Sales", true)
    );
    assert_eq!(held(&run.fake).len(), 2);

    // Back in Sales, with the address he took meanwhile: the provider gets
    // it, though the file before held it already (PATCH sends what differs
    // from what the provider holds, not from the last file).
    let back = [
        staff[0].clone(),
        "A2;ben;Ben;Blanc;benoit@x.fr;;Sales;;0".to_string(),
        staff[2].clone(),
    ];
    sync_expecting(&mut run, &back, "0 create, 1 update, 0 block, 0 unblock");
    let ben = &run.fake.directory()["ben"];
    assert_eq!(
        (ben.email.as_str(), ben.department.as_str()),
        ("benoit@x.fr", "Sales")
    );
}

/// `emails.work` made of the names, folded to ASCII.
fn templated_mail() -> Target {
    idp().field(
        "emails.work",
        "{{ first_name | ascii | lower }}.{{ last_name | ascii | lower | replace(' ', '-') }}@corp.example",
    )
}

#[test]
fn an_email_template_gives_the_provider_its_value() {
    let mut run = support::Run(provider(templated_mail()).build());
    let staff = [
        "Z1;zoe;Zoë;Åberg;zoe@x.fr;;R&D;;0",
        "A1;ana;Ana;De La Cruz;ana@x.fr;;Sales;;0",
    ];
    let (code, out, err) = run.sync_rows("inbox", "file", HEADER, &staff);
    assert_eq!(code, 0, "{out}{err}");
    let mails: BTreeMap<String, String> = run
        .fake
        .directory()
        .into_iter()
        .map(|(login, user)| (login, user.email))
        .collect();
    assert_eq!(
        mails,
        BTreeMap::from([
            ("ana".to_string(), "ana.de-la-cruz@corp.example".to_string()),
            ("zoe".to_string(), "zoe.aberg@corp.example".to_string()),
        ])
    );
    // Zoë marries: her address follows her new name, nothing else is sent.
    let (code, out, err) = run.sync_rows(
        "inbox",
        "file",
        HEADER,
        &["Z1;zoe;Zoë;Öst;zoe@x.fr;;R&D;;0", staff[1]],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("target idp: 0 create, 1 update, 0 block, 0 unblock"),
        "{out}"
    );
    assert_eq!(run.fake.directory()["zoe"].email, "zoe.ost@corp.example");
    assert_eq!(run.fake.directory()["zoe"].given, "Zoë");
}

/// The keys of the users parked at `idp`, from the store the binary left.
fn parked(run: &support::Run<Fake>) -> Vec<String> {
    let store = support::open_store(&run.path("state/db"));
    store
        .parked("idp", rostersync::ingest::record::RecordKind::Users)
        .map(|item| item.unwrap().0)
        .collect()
}

#[test]
fn a_template_failing_on_a_record_parks_that_record_only() {
    let mut run = support::Run(provider(templated_mail()).build());
    // Ben has no last name: his address cannot be made.
    let staff = [
        "A1;ana;Ana;Alves;ana@x.fr;;R&D;;0",
        "A2;ben;Ben;;ben@x.fr;;Sales;;0",
        "A3;cleo;Cléo;Colin;cleo@x.fr;;R&D;;0",
    ];
    // The plan says so before anything is sent.
    run.write("preview.csv", &format!("{HEADER}\n{}\n", staff.join("\n")));
    let (code, out, err) = run.run(&["plan", "preview.csv"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("target idp: 2 create, 0 update, 0 block, 0 unblock, 1 parked"),
        "{out}"
    );
    assert!(
        out.contains(r#"[parked: mapping: target "idp", [target.fields] emails.work, record "A2""#),
        "{out}"
    );

    let (code, out, err) = run.sync_rows("inbox", "file", HEADER, &staff);
    assert_eq!(code, 1, "a parked record fails the sync: {out}{err}");
    assert!(
        out.contains("target idp: 2 create, 0 update, 0 block, 0 unblock, 1 parked"),
        "{out}"
    );
    assert!(
        out.contains(r#"mapping: target "idp", [target.fields] emails.work, record "A2": no value for last_name"#),
        "{out}"
    );
    let logins: Vec<String> = run.fake.directory().into_keys().collect();
    assert_eq!(logins, ["ana", "cleo"]);
    assert_eq!(parked(&run), ["A2"]);

    // HR fills his last name in: the next file releases and creates him.
    let fixed = [staff[0], "A2;ben;Ben;Blanc;ben@x.fr;;Sales;;0", staff[2]];
    sync_expecting(&mut run, &fixed, "1 create, 0 update, 0 block, 0 unblock");
    assert_eq!(run.fake.directory()["ben"].email, "ben.blanc@corp.example");
    assert!(parked(&run).is_empty());
}

#[test]
fn check_names_the_template_and_the_expression_that_do_not_compile() {
    let run = provider(
        idp()
            .field("emails.work", "{{ first_name | lower }@corp.example")
            .set(
                "scope",
                Raw(r#"{ include = ['department in ["Sales"'] }"#.into()),
            ),
    )
    .build();
    let (code, out, err) = run.run(&["check"]);
    assert_ne!(code, 0, "{out}{err}");
    let said = format!("{out}{err}");
    assert!(
        said.contains(r#"target "idp": [target.fields] emails.work: the template does not compile, at 1:23: syntax error"#),
        "{said}"
    );
    assert!(
        said.contains(r#"target "idp": [target.scope] include[0] does not compile, at 1:"#),
        "{said}"
    );
}

#[test]
fn the_daemon_reports_the_record_a_template_failed_on_as_parked() {
    let h = provider(templated_mail())
        .edit_source("users", |source| source.set("settle", "100ms"))
        .build();
    let daemon = h.start();
    let rows = [
        "A1;ana;Ana;Alves;ana@x.fr;;R&D;;0",
        "A2;ben;Ben;;ben@x.fr;;Sales;;0",
    ];
    h.drop_file(
        "inbox/users.csv",
        &format!("{HEADER}\n{}\n", rows.join("\n")),
    );
    let report_path = || {
        std::fs::read_dir(h.path("inbox/archive"))
            .ok()?
            .flatten()
            .map(|entry| entry.path())
            .find(|path| path.to_string_lossy().ends_with(".report.json"))
    };
    let read = |path: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    support::wait_until(
        std::time::Duration::from_secs(30),
        || report_path().is_some_and(|path| read(&path)["complete"] == true),
        || format!("no complete report\n{}", daemon.log()),
    );
    let report = read(&report_path().unwrap());
    let idp = &report["targets"]["idp"];
    assert_eq!(
        (idp["create"].as_u64(), idp["parked"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    let ben = idp["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|action| action["ext_id"] == "A2")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(ben["status"], "parked", "{ben}");
    assert!(
        ben["reason"]
            .as_str()
            .unwrap()
            .starts_with(r#"mapping: target "idp", [target.fields] emails.work, record "A2""#),
        "{ben}"
    );
    let (_, status, _) = h.run(&["status"]);
    assert!(status.contains("parked 1"), "{status}");
    assert_eq!(h.fake.directory().into_keys().collect::<Vec<_>>(), ["ana"]);
    let (exit, log) = daemon.stop();
    assert!(exit.success(), "{log}");
}
