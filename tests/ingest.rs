//! Ingest as a library: the records it builds, value by value.

use rostersync::ingest::columns::Format;
use rostersync::ingest::decode::EncodingChoice;
use rostersync::ingest::problem::Severity;
use rostersync::ingest::record::{Field, RecordKind};
use rostersync::ingest::values::DateFormat;
use rostersync::ingest::{Ingested, MAX_PROBLEMS, Mode, SourceSpec, Verdict, ingest};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn users() -> SourceSpec {
    SourceSpec::wbt(RecordKind::Users)
}

fn accepted(outcome: &Ingested) {
    assert_eq!(
        outcome.verdict,
        Verdict::Accepted,
        "{:#?}",
        outcome.problems
    );
}

#[test]
fn quoted_fields_keep_delimiters_quotes_and_line_breaks() {
    let outcome = ingest(&data("quoted.csv"), &users());
    accepted(&outcome);
    let first = &outcome.records[0];
    assert_eq!(first.line, 2);
    assert_eq!(first.get(Field::LastName), Some("Dupont; de la Tour"));
    assert_eq!(
        first.get(Field::Address1),
        Some("12 rue des Lilas\nBâtiment B")
    );
    assert_eq!(first.custom("udtf1"), Some("dit \"Jeannot\""));
    // The second row starts on line 4: the first one spanned two lines.
    let second = &outcome.records[1];
    assert_eq!(second.line, 4);
    assert_eq!(second.get(Field::LastName), Some("Martin"));
    assert_eq!(second.get(Field::FirstName), Some("Claire"));
    assert_eq!(second.get(Field::Address1), Some("3, place Bellecour"));
    assert_eq!(second.custom("udtf1"), None);
}

#[test]
fn windows_1252_accents_and_ligatures_arrive_intact() {
    let mut spec = users();
    spec.encoding = EncodingChoice::from_label("windows-1252").unwrap();
    let outcome = ingest(&data("excel_windows1252.csv"), &spec);
    accepted(&outcome);
    let names: Vec<_> = outcome
        .records
        .iter()
        .map(|r| {
            (
                r.get(Field::LastName).unwrap(),
                r.get(Field::FirstName).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("Lefèvre", "Hélène"),
            ("Bœuf", "François"),
            ("Çelik", "Zoé")
        ]
    );
    assert_eq!(outcome.encoding, "windows-1252");
    // The trailing ";;;;" row Excel leaves is blank, not a row.
    assert_eq!(outcome.rows, 3);
}

#[test]
fn shift_jis_names() {
    let mut spec = users();
    spec.encoding = EncodingChoice::from_label("shift_jis").unwrap();
    let outcome = ingest(&data("shift_jis.csv"), &spec);
    accepted(&outcome);
    assert_eq!(outcome.records[1].get(Field::LastName), Some("佐藤"));
    assert_eq!(outcome.records[1].get(Field::ManagerExtId), Some("J001"));
}

#[test]
fn utf16_with_bom() {
    let text = "user_extid;user_fname;user_login\r\nE1;Zoë;zoe\r\n";
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let outcome = ingest(&bytes, &users());
    accepted(&outcome);
    assert_eq!(outcome.records[0].get(Field::FirstName), Some("Zoë"));
    assert_eq!(outcome.encoding, "UTF-16LE");
}

#[test]
fn values_are_normalised() {
    let text = "user_extid;user_fname;user_login;birth_date;user_culture;user_roles;user_hourly_cost;user_disable\n\
                E1;Ana;ana;1990/12/31;FR-fr;a || b;12,5;1\n";
    let outcome = ingest(text.as_bytes(), &users());
    accepted(&outcome);
    let r = &outcome.records[0];
    assert_eq!(r.get(Field::BirthDate), Some("1990-12-31"));
    assert_eq!(
        r.date(Field::BirthDate),
        chrono::NaiveDate::from_ymd_opt(1990, 12, 31)
    );
    assert_eq!(r.get(Field::Culture), Some("fr-FR"));
    assert_eq!(r.list(Field::Roles).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(r.get(Field::HourlyCost), Some("12.5"));
    assert!(r.disabled());
    assert_eq!(r.key(), "E1");
}

#[test]
fn headers_match_whatever_their_case_and_spaces() {
    let text = " USER_EXTID ;User_FName;user_login\nE1;Ana;ana\n";
    let outcome = ingest(text.as_bytes(), &users());
    accepted(&outcome);
    assert_eq!(outcome.records[0].get(Field::FirstName), Some("Ana"));
}

#[test]
fn unknown_columns_are_warned_about_and_ignored() {
    let text = "user_extid;user_fname;user_login;user_emial\nE1;Ana;ana;a@b.fr\n";
    let outcome = ingest(text.as_bytes(), &users());
    accepted(&outcome);
    assert_eq!(outcome.problems.len(), 1);
    assert_eq!(outcome.problems[0].severity, Severity::Warning);
    assert_eq!(
        (outcome.problems[0].line, outcome.problems[0].column),
        (1, 4)
    );
    assert_eq!(outcome.records[0].get(Field::Email), None);
}

#[test]
fn collaborator_status_gender_and_dates() {
    let mut spec = users();
    spec.format = Format::Collaborator;
    spec.dates = DateFormat::new("%d.%m.%Y").unwrap();
    let outcome = ingest(&data("collaborator.csv"), &spec);
    accepted(&outcome);
    let [clarke, mitchell, dickens] = &outcome.records[..] else {
        panic!("three records expected");
    };
    assert_eq!(clarke.get(Field::BirthDate), Some("1972-05-30"));
    assert_eq!(clarke.get(Field::Gender), Some("M"));
    assert_eq!(clarke.get(Field::OrgExtId), Some("a1206747582"));
    assert_eq!(clarke.custom("tags"), Some("кадровий резерв"));
    // Status 3 (sick leave) is still an active account; 1 (dismissed) is not.
    assert!(!mitchell.disabled());
    assert_eq!(mitchell.get(Field::Gender), Some("F"));
    assert!(dickens.disabled());
}

#[test]
fn a_login_keyed_source_needs_no_ext_id() {
    let mut spec = users();
    spec.key = Field::Login;
    let text = "user_fname;user_login\nAna;ana\nBen;ben\nAna;ana\n";
    let outcome = ingest(text.as_bytes(), &spec);
    assert!(!outcome.accepted());
    let lines: Vec<_> = outcome.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [2, 4]);
}

#[test]
fn delta_organisations_may_name_parents_the_targets_know() {
    let mut spec = SourceSpec::wbt(RecordKind::Orgs);
    spec.mode = Mode::Delta;
    let text = "org_label;org_extid;org_parentextid\nNew team;T9;HQ\n";
    let outcome = ingest(text.as_bytes(), &spec);
    accepted(&outcome);
    assert_eq!(outcome.problems[0].severity, Severity::Warning);
}

#[test]
fn children_of_a_refused_organisation_are_refused_too() {
    let mut spec = SourceSpec::wbt(RecordKind::Orgs);
    spec.max_invalid_rows = 10;
    let text = "org_label;org_extid;org_parentextid;org_culture\n\
                Root;R;;fr-FR\n\
                Bad;B;R;french\n\
                Child;C;B;fr-FR\n\
                Grandchild;G;C;fr-FR\n\
                Sibling;S;R;fr-FR\n";
    let outcome = ingest(text.as_bytes(), &spec);
    accepted(&outcome);
    let kept: Vec<_> = outcome.records.iter().map(|r| r.key()).collect();
    assert_eq!(kept, ["R", "S"]);
    assert_eq!(outcome.invalid_rows, 3);
    let messages: Vec<_> = outcome
        .problems
        .iter()
        .map(|p| (p.line, p.message.as_str()))
        .collect();
    assert_eq!(
        messages,
        [
            (3, "org_culture \"french\" is not a culture code like fr-FR"),
            (4, "org_parentextid \"B\" is on line 3, which is refused"),
            (
                5,
                "its chain of parents reaches \"C\" (line 4), which is refused"
            ),
        ]
    );
}

#[test]
fn a_self_parent_is_a_loop() {
    let spec = SourceSpec::wbt(RecordKind::Orgs);
    let text = "org_label;org_extid;org_parentextid\nSelf;S;S\n";
    let outcome = ingest(text.as_bytes(), &spec);
    assert!(!outcome.accepted());
    assert_eq!(
        outcome.problems[0].message,
        "org_parentextid makes a loop: \"S\" → \"S\""
    );
}

#[test]
fn passwords_stay_out_of_debug_output_and_messages() {
    let text = "user_extid;user_fname;user_login;user_password\nE1;Ana;ana;Tr0ub4dor&3\n";
    let outcome = ingest(text.as_bytes(), &users());
    accepted(&outcome);
    let record = &outcome.records[0];
    assert_eq!(record.get(Field::Password), Some("Tr0ub4dor&3"));
    let debug = format!("{:?}", outcome);
    assert!(!debug.contains("Tr0ub4dor"), "{debug}");
    assert!(debug.contains("\"password\": \"***\""), "{debug}");

    let long = "x".repeat(121);
    let text = format!("user_extid;user_fname;user_login;user_password\nE1;Ana;ana;{long}\n");
    let outcome = ingest(text.as_bytes(), &users());
    assert!(!format!("{outcome:?}").contains(&long));
}

#[test]
fn problems_are_capped_and_counted() {
    let mut text = String::from("user_extid;user_fname;user_login;user_disable\n");
    for i in 0..(MAX_PROBLEMS + 500) {
        text.push_str(&format!("E{i};Ana;ana{i};maybe\n"));
    }
    let outcome = ingest(text.as_bytes(), &users());
    assert!(!outcome.accepted());
    assert_eq!(outcome.problems.len(), MAX_PROBLEMS);
    assert_eq!(outcome.problems_not_listed, 500);
    assert_eq!(outcome.invalid_rows, MAX_PROBLEMS + 500);
}

#[test]
fn a_single_column_header_hints_at_the_delimiter() {
    let text = "user_extid user_fname user_login\nE1 Ana ana\n";
    let outcome = ingest(text.as_bytes(), &users());
    assert!(!outcome.accepted());
    assert!(
        outcome.problems[0]
            .message
            .contains("the header has a single column; delimiter ';', none of ; , tab | found"),
        "{}",
        outcome.problems[0].message
    );
}

#[test]
fn an_unclosed_quote_is_pointed_at() {
    let text = "user_extid;user_fname;user_login\nE1;\"Ana;ana\nE2;Ben;ben\n";
    let outcome = ingest(text.as_bytes(), &users());
    assert!(!outcome.accepted());
    assert!(
        outcome.problems[0]
            .message
            .contains("is a quote left open?"),
        "{:?}",
        outcome.problems
    );
}

#[test]
fn nul_bytes_refuse_the_file() {
    let text = b"user_extid;user_fname;user_login\nE1;A\0na;ana\n";
    let outcome = ingest(text, &users());
    assert!(!outcome.accepted());
    assert_eq!(outcome.problems[0].line, 2);
}

#[test]
fn blank_lines_do_not_shift_line_numbers() {
    let text = "user_extid;user_fname;user_login\r\n\r\n\r\nE1;;x\r\n\nE2;Ben;\n";
    let outcome = ingest(text.as_bytes(), &users());
    let places: Vec<_> = outcome
        .problems
        .iter()
        .map(|p| (p.line, p.column))
        .collect();
    assert_eq!(places, [(4, 2), (6, 3)]);
}

#[test]
fn a_second_bom_means_joined_files() {
    let text = "\u{feff}user_extid;user_fname;user_login\nE1;Ana;ana\n\u{feff}user_extid;user_fname;user_login\n";
    let outcome = ingest(text.as_bytes(), &users());
    assert!(!outcome.accepted());
    assert_eq!(outcome.problems[0].line, 3);
    assert!(outcome.problems[0].message.contains("two exports joined"));
}
