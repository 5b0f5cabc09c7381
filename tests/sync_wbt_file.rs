//! `rostersync sync` end to end with the wbt-file target, through the real
//! binary: a fake WBT Manager applies the files written, in order, and its
//! directory must equal the expected one after every file.

mod support;

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use rostersync::ingest::record::{Field, RecordKind};
use rostersync::ingest::{Mode, SourceSpec, ingest};
use support::{Harness, Source, Target};

struct Setup {
    h: Harness,
    applied: Vec<PathBuf>,
    /// The fake WBT Manager's directory: ext_id → (login, name, email, org, disabled).
    users: BTreeMap<String, (String, String, String, String, bool)>,
    orgs: BTreeMap<String, (String, String, bool)>,
}

impl Deref for Setup {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.h
    }
}

impl Setup {
    /// Organisations and users feeding one wbt-file target, `wbt-import`.
    fn new() -> Setup {
        Setup::with_target(|target| target)
    }

    /// The same, the target's settings changed by `edit`.
    fn with_target(edit: impl FnOnce(Target) -> Target) -> Setup {
        let h = Harness::builder()
            .safety("max_block_percent", 50.0)
            .source(Source::orgs("orgs", "inbox/orgs").targets(&["wbt"]))
            .source(Source::users("users", "inbox/users").targets(&["wbt"]))
            .target(edit(
                Target::wbt_file("wbt", "wbt-import").retry("5ms", "10ms", "50ms"),
            ))
            .build();
        Setup {
            h,
            applied: Vec::new(),
            users: BTreeMap::new(),
            orgs: BTreeMap::new(),
        }
    }

    /// Drops a file in an inbox, syncs it and has WBT Manager apply what
    /// was written: (exit code, stdout).
    fn sync(&mut self, inbox: &str, name: &str, text: &str) -> (i32, String) {
        let path = self.h.write(&format!("inbox/{inbox}/{name}"), text);
        let (code, out, _) = self.h.sync_file(&path);
        self.apply_new_files();
        (code, out)
    }

    /// What WBT Manager does: import each new file, upserting by external id.
    fn apply_new_files(&mut self) {
        let out = self.dir.path().join("wbt-import");
        let Ok(entries) = std::fs::read_dir(&out) else {
            return;
        };
        let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            if self.applied.contains(&file) {
                continue;
            }
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "a temporary file was left: {name}");
            let kind = if name.starts_with("orgs_") {
                RecordKind::Orgs
            } else {
                RecordKind::Users
            };
            let bytes = std::fs::read(&file).unwrap();
            // WBT imports files one after another: a parent may come from an
            // earlier file, so each is read as a delta and checked against
            // what was imported before it.
            let mut spec = SourceSpec::wbt(kind);
            spec.mode = Mode::Delta;
            let outcome = ingest(&bytes, &spec);
            assert!(outcome.accepted(), "{name}: {:?}", outcome.problems);
            if kind == RecordKind::Orgs {
                for r in &outcome.records {
                    let parent = r.get(Field::ParentExtId).unwrap_or("");
                    let known = parent.is_empty()
                        || self.orgs.contains_key(parent)
                        || outcome
                            .records
                            .iter()
                            .any(|o| o.get(Field::ExtId) == Some(parent));
                    assert!(known, "{name}: parent {parent} not imported yet");
                }
            }
            for r in &outcome.records {
                let get = |f| r.get(f).unwrap_or("").to_string();
                match kind {
                    RecordKind::Users => {
                        self.users.insert(
                            get(Field::ExtId),
                            (
                                get(Field::Login),
                                get(Field::LastName),
                                get(Field::Email),
                                get(Field::OrgExtId),
                                r.disabled(),
                            ),
                        );
                    }
                    RecordKind::Orgs => {
                        self.orgs.insert(
                            get(Field::ExtId),
                            (get(Field::Label), get(Field::ParentExtId), r.disabled()),
                        );
                    }
                }
            }
            self.applied.push(file);
        }
    }

    /// Every cell of every file written, as a spreadsheet splits them.
    fn cells_written(&self) -> Vec<String> {
        let mut cells = Vec::new();
        for file in &self.applied {
            let bytes = std::fs::read(file).unwrap();
            let text = String::from_utf8(bytes).unwrap();
            let text = text.trim_start_matches('\u{feff}');
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(b';')
                .has_headers(false)
                .from_reader(text.as_bytes());
            for row in reader.records() {
                cells.extend(row.unwrap().iter().map(str::to_string));
            }
        }
        cells
    }

    fn files_written(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("wbt-import")).map_or(0, |d| d.count())
    }
}

fn user(
    id: &str,
    login: &str,
    name: &str,
    email: &str,
    org: &str,
    disabled: bool,
) -> (String, (String, String, String, String, bool)) {
    (
        id.into(),
        (
            login.into(),
            name.into(),
            email.into(),
            org.into(),
            disabled,
        ),
    )
}

const USERS: &str =
    "user_extid;user_lname;user_fname;user_login;user_email;org_extid;user_disable\n";

#[test]
fn files_drive_the_wbt_directory_to_exactly_what_hr_says() {
    let mut s = Setup::new();
    let (code, out) = s.sync(
        "orgs",
        "orgs1.csv",
        "org_label;org_extid;org_parentextid\nSiège;HQ;\nVentes;SALES;HQ\nIT;IT;HQ\n",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(s.orgs.len(), 3);

    let first = format!(
        "{USERS}E1;Alves;Ana;ana;ana@x.fr;SALES;0\nE2;Blanc;Ben;ben;ben@x.fr;SALES;0\nE3;Colin;Cléo;cleo;cleo@x.fr;IT;0\nE4;Dias;Dan;dan;dan@x.fr;IT;0\n"
    );
    let (code, out) = s.sync("users", "u1.csv", &first);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("target wbt: 4 create, 0 update, 0 block, 0 unblock"),
        "{out}"
    );
    assert_eq!(
        s.users,
        BTreeMap::from([
            user("E1", "ana", "Alves", "ana@x.fr", "SALES", false),
            user("E2", "ben", "Blanc", "ben@x.fr", "SALES", false),
            user("E3", "cleo", "Colin", "cleo@x.fr", "IT", false),
            user("E4", "dan", "Dias", "dan@x.fr", "IT", false),
        ])
    );

    // Ben changes e-mail, Cléo moves to Sales, Dan leaves.
    let second = format!(
        "{USERS}E1;Alves;Ana;ana;ana@x.fr;SALES;0\nE2;Blanc;Ben;ben;benoit@x.fr;SALES;0\nE3;Colin;Cléo;cleo;cleo@x.fr;SALES;0\n"
    );
    let (code, out) = s.sync("users", "u2.csv", &second);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("target wbt: 0 create, 2 update, 1 block, 0 unblock"),
        "{out}"
    );
    assert_eq!(
        s.users["E2"],
        (
            "ben".into(),
            "Blanc".into(),
            "benoit@x.fr".into(),
            "SALES".into(),
            false
        )
    );
    assert_eq!(s.users["E3"].3, "SALES");
    assert!(s.users["E4"].4, "Dan is blocked");

    // The same file again: nothing sent, no file written.
    let before = s.files_written();
    let (code, out) = s.sync("users", "u2-again.csv", &second);
    assert_eq!(code, 0, "{out}");
    assert_eq!(s.files_written(), before);

    // Dan is rehired.
    let third = format!("{second}E4;Dias;Dan;dan;dan@x.fr;IT;0\n");
    let (code, out) = s.sync("users", "u3.csv", &third);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("0 create, 0 update, 0 block, 1 unblock"),
        "{out}"
    );
    assert!(!s.users["E4"].4, "Dan is back");
}

/// An export an attacker wrote names and labels in: formulas, a DDE call,
/// and a phone number that must stay as it is.
const HOSTILE_ORGS: &str =
    "org_label;org_extid\n\"=HYPERLINK(\"\"http://x.example/\"\";\"\"Pay\"\")\";HQ\n";
const HOSTILE_USERS: &str = "user_extid;user_lname;user_fname;user_login;user_phone;user_cellphone;org_extid\n\
    E1;=cmd|' /C calc'!A0;@SUM(1+1)*cmd|' /C calc'!A0;ana;+33 1 23 45 67 89;-2+3+cmd|' /C calc'!A0;HQ\n\
    E2;+cmd|' /C calc'!A0;Ben;ben;+1 (555) 123-4567;\"\t=1+1\";HQ\n";

/// Whether a spreadsheet opening the file would evaluate this cell: it
/// starts like a formula and holds more than digits and number signs.
fn evaluable(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r'])
        && !cell
            .chars()
            .all(|c| c.is_ascii_digit() || " +-.,()".contains(c))
}

#[test]
fn a_hostile_export_leaves_no_cell_a_spreadsheet_evaluates_and_phones_unchanged() {
    let mut s = Setup::new();
    let (code, out) = s.sync("orgs", "orgs.csv", HOSTILE_ORGS);
    assert_eq!(code, 0, "{out}");
    let (code, out) = s.sync("users", "users.csv", HOSTILE_USERS);
    assert_eq!(code, 0, "{out}");
    let cells = s.cells_written();
    let evaluated: Vec<&String> = cells.iter().filter(|c| evaluable(c)).collect();
    assert!(evaluated.is_empty(), "{evaluated:?}");
    assert!(
        cells.iter().any(|c| c == "'=cmd|' /C calc'!A0"),
        "{cells:?}"
    );
    assert_eq!(s.orgs["HQ"].0, "'=HYPERLINK(\"http://x.example/\";\"Pay\")");
    for phone in ["+33 1 23 45 67 89", "+1 (555) 123-4567"] {
        assert!(cells.iter().any(|c| c == phone), "{phone} in {cells:?}");
    }
}

#[test]
fn neutralise_formulas_false_writes_values_as_they_are() {
    let mut s = Setup::with_target(|target| target.set("neutralise_formulas", false));
    let (code, out) = s.sync("orgs", "orgs.csv", HOSTILE_ORGS);
    assert_eq!(code, 0, "{out}");
    let (code, out) = s.sync("users", "users.csv", HOSTILE_USERS);
    assert_eq!(code, 0, "{out}");
    let cells = s.cells_written();
    assert!(cells.iter().any(|c| c == "=cmd|' /C calc'!A0"), "{cells:?}");
    assert_eq!(s.orgs["HQ"].0, "=HYPERLINK(\"http://x.example/\";\"Pay\")");
}

#[test]
fn a_target_that_cannot_be_written_parks_records_and_the_next_file_retries_them() {
    let mut s = Setup::new();
    // The import folder is a link to a share that is not mounted.
    let blocked = s.dir.path().join("wbt-import");
    std::os::unix::fs::symlink("/nonexistent/share/wbt", &blocked).unwrap();
    let file = format!("{USERS}E1;Alves;Ana;ana;ana@x.fr;SALES;0\n");
    let (code, out) = s.sync("users", "u1.csv", &file);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 parked"), "{out}");
    assert!(
        out.contains("[parked: still failing when the retry budget ran out: cannot write in"),
        "{out}"
    );

    std::fs::remove_file(&blocked).unwrap();
    let (code, out) = s.sync(
        "users",
        "u2.csv",
        &format!("{file}E2;Blanc;Ben;ben;ben@x.fr;SALES;0\n"),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        s.users.len(),
        2,
        "the parked record went with the next file"
    );
}

#[test]
fn a_held_file_changes_nothing_and_exits_3() {
    let mut s = Setup::new();
    let mut file = USERS.to_string();
    for i in 0..10 {
        file.push_str(&format!("E{i};Nom;Pré;login{i};u{i}@x.fr;HQ;0\n"));
    }
    s.sync("users", "all.csv", &file);
    let written = s.files_written();
    let (code, out) = s.sync(
        "users",
        "few.csv",
        &format!("{USERS}E0;Nom;Pré;login0;u0@x.fr;HQ;0\n"),
    );
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("HELD by safety rule max_shrink_percent"),
        "{out}"
    );
    assert_eq!(s.files_written(), written);
}

#[test]
fn a_refused_file_changes_nothing_and_exits_1() {
    let mut s = Setup::new();
    let (code, out) = s.sync(
        "users",
        "bad.csv",
        &format!("{USERS}E1;Alves;Ana;ana;not-an-email;SALES;0\n"),
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("bad.csv:2:5: user_email \"not-an-email\" is not an e-mail address"),
        "{out}"
    );
    assert_eq!(s.files_written(), 0);
    assert!(!Path::new(&s.dir.path().join("wbt-import")).exists());
}

#[test]
fn a_file_above_max_file_size_is_refused_by_sync_without_being_read() {
    let h = Harness::builder()
        .source(
            Source::users("users", "inbox/users")
                .set("max_file_size", "1KiB")
                .targets(&["wbt"]),
        )
        .target(Target::wbt_file("wbt", "wbt-import"))
        .build();
    let rows: String = (1..=100)
        .map(|n| format!("E{n};Name{n};First{n};login{n};login{n}@x.fr;SALES;0\n"))
        .collect();
    let path = h.write("inbox/users/big.csv", &format!("{USERS}{rows}"));
    let (code, out, err) = h.sync_file(&path);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("more than max_file_size allows (1 KiB): it was not read"),
        "{out}{err}"
    );
    assert!(!h.path("wbt-import").exists());
}
