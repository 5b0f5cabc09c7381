//! The corpus in tests/data/, through the real binary: for each file, the
//! exact output of `rostersync validate` and its exit code.

use assert_cmd::Command;

struct Case {
    file: &'static str,
    source: Option<&'static str>,
    exit: i32,
    output: &'static str,
}

const HINT: &str = "(the file is not UTF-8: set this source's encoding, e.g. \"windows-1252\" for a Western Excel export)";

fn validate(file: &str, source: Option<&str>) -> (i32, String) {
    let mut cmd = Command::cargo_bin("rostersync").unwrap();
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"))
        .env_remove("ROSTERSYNC_CONFIG")
        .args(["-c", "sources.toml", "validate", file]);
    if let Some(source) = source {
        cmd.args(["--source", source]);
    }
    let output = cmd.output().unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

fn check(case: &Case) {
    let (exit, output) = validate(case.file, case.source);
    assert_eq!(output, case.output, "output of {}", case.file);
    assert_eq!(exit, case.exit, "exit code of {}", case.file);
}

#[test]
fn excel_windows_1252_with_accents() {
    check(&Case {
        file: "excel_windows1252.csv",
        source: Some("excel"),
        exit: 0,
        output: "excel_windows1252.csv: valid: 3 users rows, 0 warning(s)\n",
    });
}

#[test]
fn a_utf8_line_in_a_windows_1252_export_is_taken_with_a_warning() {
    check(&Case {
        file: "windows1252_with_utf8_line.csv",
        source: Some("excel"),
        exit: 0,
        output: "windows1252_with_utf8_line.csv:5:1: warning: 1 line(s), this one first, read as UTF-8, not windows-1252: their accents come out wrong (\"Ã©\" for \"é\"); if the whole file is UTF-8, set this source's encoding = \"auto\"\n\
                 windows1252_with_utf8_line.csv: valid: 4 users rows, 1 warning(s)\n",
    });
}

#[test]
fn windows_1252_read_as_utf8_is_refused_with_a_hint_per_line() {
    let (exit, output) = validate("excel_windows1252.csv", None);
    assert_eq!(exit, 1);
    assert_eq!(
        output,
        format!(
            "excel_windows1252.csv:2:2: bytes 0xE8 in user_lname are not valid UTF-8 {HINT}\n\
             excel_windows1252.csv:3:2: bytes 0x9C in user_lname are not valid UTF-8\n\
             excel_windows1252.csv:4:2: bytes 0xC7 in user_lname are not valid UTF-8\n\
             excel_windows1252.csv: refused: bytes 0xE8 in user_lname are not valid UTF-8 {HINT} (and 2 more problem(s))\n"
        )
    );
}

#[test]
fn utf8_with_bom() {
    check(&Case {
        file: "utf8_bom.csv",
        source: None,
        exit: 0,
        output: "utf8_bom.csv: valid: 2 users rows, 0 warning(s)\n",
    });
}

#[test]
fn shift_jis() {
    check(&Case {
        file: "shift_jis.csv",
        source: Some("japan"),
        exit: 0,
        output: "shift_jis.csv: valid: 2 users rows, 0 warning(s)\n",
    });
}

#[test]
fn crlf_with_blank_trailing_lines() {
    check(&Case {
        file: "crlf.csv",
        source: None,
        exit: 0,
        output: "crlf.csv: valid: 2 users rows, 0 warning(s)\n",
    });
}

#[test]
fn quoted_newlines_delimiters_and_quotes() {
    check(&Case {
        file: "quoted.csv",
        source: None,
        exit: 0,
        output: "quoted.csv: valid: 2 users rows, 0 warning(s)\n",
    });
}

#[test]
fn sep_line_sets_the_delimiter_and_counts_as_a_line() {
    check(&Case {
        file: "sep_line.csv",
        source: None,
        exit: 1,
        output: "sep_line.csv:4:5: user_email \"julie.noir@example\" is not an e-mail address\n\
                 sep_line.csv:4:10: birth_date \"1987/04/31\" is not a real date: month 04 of 1987 has no day 31\n\
                 sep_line.csv: refused: 1 invalid row(s), max_invalid_rows allows 0\n",
    });
}

#[test]
fn missing_required_column() {
    check(&Case {
        file: "missing_column.csv",
        source: None,
        exit: 1,
        output: "missing_column.csv:1:1: required column user_login is missing\n\
                 missing_column.csv: refused: required column user_login is missing\n",
    });
}

#[test]
fn short_and_long_rows() {
    check(&Case {
        file: "short_long_rows.csv",
        source: None,
        exit: 1,
        output: "short_long_rows.csv:3:4: the row has 3 fields, the header has 4\n\
                 short_long_rows.csv:4:5: the row has 5 fields, the header has 4\n\
                 short_long_rows.csv: refused: the row has 3 fields, the header has 4 (and 1 more problem(s))\n",
    });
}

#[test]
fn duplicate_keys_name_both_lines() {
    check(&Case {
        file: "duplicate_keys.csv",
        source: None,
        exit: 1,
        output: "duplicate_keys.csv:2:1: user_extid \"E900\" is also on line 4\n\
                 duplicate_keys.csv:3:4: user_login \"nlambert\" is also on line 5\n\
                 duplicate_keys.csv:4:1: user_extid \"E900\" is also on line 2\n\
                 duplicate_keys.csv:5:4: user_login \"nlambert\" is also on line 3\n\
                 duplicate_keys.csv: refused: 4 invalid row(s), max_invalid_rows allows 0\n",
    });
}

#[test]
fn organisation_cycle_and_unknown_parent() {
    check(&Case {
        file: "org_cycle.csv",
        source: None,
        exit: 1,
        output: "org_cycle.csv:3:3: org_parentextid makes a loop: \"A\" → \"C\" → \"B\" → \"A\"\n\
                 org_cycle.csv:4:3: org_parentextid makes a loop: \"A\" → \"C\" → \"B\" → \"A\"\n\
                 org_cycle.csv:5:3: org_parentextid makes a loop: \"A\" → \"C\" → \"B\" → \"A\"\n\
                 org_cycle.csv:6:3: its chain of parents reaches \"A\" (line 3), which is refused\n\
                 org_cycle.csv:7:3: org_parentextid \"ZZZ\" is not in this file\n\
                 org_cycle.csv: refused: 5 invalid row(s), max_invalid_rows allows 0\n",
    });
}

#[test]
fn valid_organisations() {
    check(&Case {
        file: "orgs_valid.csv",
        source: None,
        exit: 0,
        output: "orgs_valid.csv: valid: 3 orgs rows, 0 warning(s)\n",
    });
}

#[test]
fn bad_dates() {
    check(&Case {
        file: "bad_dates.csv",
        source: None,
        exit: 1,
        output: "bad_dates.csv:2:4: birth_date \"31/12/1990\" is not a date in the form YYYY/MM/DD\n\
                 bad_dates.csv:3:4: birth_date \"1990-12-31\" is not a date in the form YYYY/MM/DD\n\
                 bad_dates.csv:3:5: user_activation_date \"2026/1/1\" is not a date in the form YYYY/MM/DD\n\
                 bad_dates.csv:4:4: birth_date \"1990/02/30\" is not a real date: month 02 of 1990 has no day 30\n\
                 bad_dates.csv:4:6: user_expiration_date \"2027/13/01\" is not a real date: there is no month 13\n\
                 bad_dates.csv: refused: 3 invalid row(s), max_invalid_rows allows 0\n",
    });
}

#[test]
fn empty_file() {
    check(&Case {
        file: "empty.csv",
        source: None,
        exit: 1,
        output: "empty.csv:1:1: the file is empty\nempty.csv: refused: the file is empty\n",
    });
}

#[test]
fn header_only_file() {
    check(&Case {
        file: "header_only.csv",
        source: None,
        exit: 1,
        output: "header_only.csv:1:1: the file has a header but no rows\n\
                 header_only.csv: refused: the file has a header but no rows\n",
    });
}

#[test]
fn binary_garbage() {
    let what = "this is a zip archive (an Excel .xlsx workbook?), not a CSV export: \
                save it as CSV (semicolon-separated) and drop that";
    let (exit, output) = validate("binary_garbage.xlsx", None);
    assert_eq!(
        output,
        format!("binary_garbage.xlsx:1:1: {what}\nbinary_garbage.xlsx: refused: {what}\n")
    );
    assert_eq!(exit, 1);
}

#[test]
fn utf16_without_a_bom_is_refused_with_the_encoding_to_set() {
    let what = "the file holds NUL bytes: it looks like UTF-16 text without a byte order mark; \
                set this source's encoding = \"utf-16le\"";
    let (exit, output) = validate("utf16le_no_bom.csv", None);
    assert_eq!(
        output,
        format!("utf16le_no_bom.csv:1:1: {what}\nutf16le_no_bom.csv: refused: {what}\n")
    );
    assert_eq!(exit, 1);
    // With that encoding set, the same bytes are read.
    check(&Case {
        file: "utf16le_no_bom.csv",
        source: Some("utf16"),
        exit: 0,
        output: "utf16le_no_bom.csv: valid: 2 users rows, 0 warning(s)\n",
    });
}

#[test]
fn a_file_above_max_file_size_is_refused_unread() {
    let what = "the file is 295 bytes, more than max_file_size allows (100 bytes): it was not read; \
                raise this source's max_file_size if such files are expected";
    let (exit, output) = validate("utf8_bom.csv", Some("tiny"));
    assert_eq!(
        output,
        format!("utf8_bom.csv:1:1: {what}\nutf8_bom.csv: refused: {what}\n")
    );
    assert_eq!(exit, 1);
}

#[test]
fn max_invalid_rows_lets_valid_rows_go_on() {
    check(&Case {
        file: "lenient.csv",
        source: Some("lenient"),
        exit: 0,
        output: "lenient.csv:3:4: user_email \"ben@@example.org\" is not an e-mail address\n\
                 lenient.csv:4:5: user_disable \"yes\" is not 0 or 1\n\
                 lenient.csv: accepted: 2 of 4 users rows go on, 2 invalid (max_invalid_rows = 5), 0 warning(s)\n",
    });
}

#[test]
fn the_same_invalid_rows_refuse_a_strict_source() {
    check(&Case {
        file: "lenient.csv",
        source: None,
        exit: 1,
        output: "lenient.csv:3:4: user_email \"ben@@example.org\" is not an e-mail address\n\
                 lenient.csv:4:5: user_disable \"yes\" is not 0 or 1\n\
                 lenient.csv: refused: 2 invalid row(s), max_invalid_rows allows 0\n",
    });
}

#[test]
fn collaborator_preset() {
    check(&Case {
        file: "collaborator.csv",
        source: Some("collab"),
        exit: 0,
        output: "collaborator.csv: valid: 3 users rows, 0 warning(s)\n",
    });
}

#[test]
fn custom_columns_with_their_own_date_format() {
    check(&Case {
        file: "payroll.csv",
        source: Some("payroll"),
        exit: 1,
        output: "payroll.csv:3:5: Né le \"1980-03-05\" is not a date in the form DD/MM/YYYY\n\
                 payroll.csv: refused: 1 invalid row(s), max_invalid_rows allows 0\n",
    });
}

#[test]
fn a_10_mb_line_is_refused_quickly_with_a_short_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.csv");
    let mut text = String::from("user_extid;user_lname;user_fname;user_login\n");
    text.push_str("E1;");
    text.push_str(&"x".repeat(10 * 1024 * 1024));
    text.push_str(";Jean;jdupont\n");
    std::fs::write(&path, text).unwrap();
    let output = Command::cargo_bin("rostersync")
        .unwrap()
        .current_dir(dir.path())
        .args(["validate", "huge.csv"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "huge.csv:2:2: user_lname is 10485760 characters long, at most 120 are allowed\n\
         huge.csv: refused: 1 invalid row(s), max_invalid_rows allows 0\n"
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn unknown_source_is_a_usage_error() {
    let output = Command::cargo_bin("rostersync")
        .unwrap()
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"))
        .args([
            "-c",
            "sources.toml",
            "validate",
            "crlf.csv",
            "--source",
            "nope",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("no source named \"nope\""), "{stderr}");
}
