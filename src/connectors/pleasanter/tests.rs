use serde_json::{Value, json};

use super::labels::{Language, Layout, layout};
use super::*;
use crate::connectors::http::Reply;
use crate::connectors::{Outcome, PushItem, test_user};
use crate::model::ActionKind;
use crate::projection::Fields;
use crate::retry::Failure;
use crate::secret::Secret;

fn item(action: ActionKind, active: bool, fields: &[(&str, &str)]) -> PushItem {
    test_user("wiki", action, active, fields)
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        body: body.into(),
        retry_after: None,
    }
}

fn english() -> Layout {
    layout([
        "Login ID",
        "Name",
        "User code",
        "Email address",
        "Department code",
    ])
    .unwrap()
}

fn japanese() -> Layout {
    layout(["ログインID", "名前"]).unwrap()
}

fn refused_with(verdict: ImportVerdict) -> String {
    match verdict {
        ImportVerdict::Refused(Failure::Permanent { reason }) => reason,
        other => panic!("not a refusal: {other:?}"),
    }
}

#[test]
fn english_and_japanese_messages_give_the_counts() {
    assert_eq!(
        parse_message(": 50 entries have been added and 12 entries updated."),
        Some(ImportCounts {
            added: 50,
            updated: 12
        })
    );
    assert_eq!(
        parse_message(": 50 件追加し、12 件更新しました。"),
        Some(ImportCounts {
            added: 50,
            updated: 12
        })
    );
    // Full-width digits, thousands separators, the order reversed.
    assert_eq!(
        parse_message("１２件更新し、1,050件追加しました。"),
        Some(ImportCounts {
            added: 1050,
            updated: 12
        })
    );
    assert_eq!(
        parse_message("Updated: 3, created: 4"),
        None,
        "the words come before the numbers: nothing can be told for sure"
    );
    assert_eq!(
        parse_message("7 items added."),
        Some(ImportCounts {
            added: 7,
            updated: 0
        })
    );
    assert_eq!(parse_message("Import completed."), None);
    assert_eq!(parse_message("7 items added, 2 errors."), None);
    assert_eq!(
        parse_message("99999999999999999999999 items added and 1 items updated."),
        None
    );
}

#[test]
fn a_200_is_every_row_done_whatever_its_counts_say() {
    let acked = ImportVerdict::All(Outcome::Acked { target_id: None });
    // Unchanged rows count in neither total: a replay says 0 and 0.
    for body in [
        r#"{"Id":0,"StatusCode":200,"Message":": 2 entries have been added and 1 entries updated."}"#,
        r#"{"Id":0,"StatusCode":200,"Message":": 0 entries have been added and 0 entries updated."}"#,
        r#"{"Id":0,"StatusCode":200,"Message":"Done."}"#,
        "{\"Id\":0,\"StatusCode\":200,\"Mess",
        "",
    ] {
        assert_eq!(judge_import(&reply(200, body), 5), acked, "{body}");
    }
}

#[test]
fn a_500_is_a_refused_record_said_in_pleasanters_words_with_what_to_do() {
    let refused = |message: &str| {
        let body = json!({"Id": 0, "StatusCode": 500, "Message": message}).to_string();
        refused_with(judge_import(&reply(500, &body), 4))
    };
    let taken = refused("This login ID is already in use.");
    assert!(
        taken.starts_with("Pleasanter refused this user: \"This login ID is already in use.\" (HTTP 500): ")
            && taken.contains("unique across all tenants")
            && taken.ends_with("then `rostersync retry`"),
        "{taken}"
    );
    let address = refused("Invalid email address.[a@b]");
    assert!(
        address.contains("\"Invalid email address.[a@b]\"")
            && address.contains("fix the address in the HR file"),
        "{address}"
    );
    assert!(refused("Column:Name").contains("fix the record"));
    // Not JSON: the start of the body.
    let page = refused_with(judge_import(&reply(500, "<html>boom</html>"), 1));
    assert!(page.contains("\"<html>boom</html>\""), "{page}");
}

#[test]
fn a_redirect_is_a_server_exception_refusing_the_record() {
    let reason = refused_with(judge_import(&reply(302, ""), 3));
    assert!(
        reason.contains("a server error (HTTP 302 to its error page)")
            && reason.contains("longer than its column"),
        "{reason}"
    );
}

#[test]
fn a_refused_key_or_right_fails_every_record_and_gateways_are_transient() {
    let body = r#"{"Id":0,"StatusCode":401,"Message":"Unable to authorize."}"#;
    for status in [200, 401] {
        assert!(matches!(
            judge_import(&reply(status, body), 5),
            ImportVerdict::All(Outcome::Failed(Failure::Permanent { reason }))
                if reason.starts_with("the API key was refused (HTTP 401 \"Unable to authorize.\")")
        ));
    }
    assert!(matches!(
        judge_import(&reply(403, ""), 5),
        ImportVerdict::All(Outcome::Failed(Failure::Permanent { reason })) if reason.contains("not a tenant manager")
    ));
    for status in [408, 429, 502, 503, 504] {
        assert!(
            matches!(
                judge_import(&reply(status, "Bad Gateway"), 2),
                ImportVerdict::All(Outcome::Failed(Failure::Transient { .. }))
            ),
            "{status}"
        );
    }
    // Any other client error refuses a record, as a 500 does.
    assert!(matches!(
        judge_import(&reply(400, r#"{"StatusCode":400,"Message":"Bad request."}"#), 2),
        ImportVerdict::Refused(Failure::Permanent { reason }) if reason == "HTTP 400: Bad request."
    ));
}

#[test]
fn a_json_call_refused_with_a_500_is_permanent_and_says_what_it_was_doing() {
    let taken = reply(
        500,
        r#"{"Id":0,"StatusCode":500,"Message":"This login ID is already in use."}"#,
    );
    let failure = rename_refusal(&taken, "ana", "ben");
    assert!(
        matches!(&failure, Failure::Permanent { reason }
            if reason.starts_with("renaming Login ID \"ana\" to \"ben\": Pleasanter refused: \"This login ID is already in use.\"")
                && reason.contains("another user holds \"ben\"")),
        "{failure:?}"
    );
    let disabled = reply(
        500,
        r#"{"StatusCode":500,"Message":"You don't have permission to change \" Disabled \"."}"#,
    );
    assert!(matches!(
        refusal(&disabled, "updating"),
        Failure::Permanent { reason } if reason.starts_with("updating: Pleasanter refused this user: ")
    ));
    assert!(matches!(
        refusal(&reply(503, ""), "looking the user up"),
        Failure::Transient { .. }
    ));
}

#[test]
fn mapped_names_must_be_labels_of_one_language_with_login_id_and_name() {
    assert_eq!(
        english(),
        Layout {
            language: Language::English,
            header: [
                "Login ID",
                "Department code",
                "Email address",
                "Name",
                "User code",
                "Disabled"
            ]
            .map(String::from)
            .to_vec()
        }
    );
    let japanese = japanese();
    assert_eq!(japanese.language, Language::Japanese);
    assert_eq!(japanese.header, ["ログインID", "名前", "無効"]);

    let problems = layout(["Login ID", "Name", "Mail address"]).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with("\"Mail address\" is not a label of Pleasanter's user import")
            && problems[0].contains("Email address")
            && problems[0].contains("メールアドレス"),
        "{}",
        problems[0]
    );
    let mixed = layout(["Login ID", "Name", "メールアドレス"]).unwrap_err();
    assert!(mixed[0].contains("mixes English and Japanese"), "{mixed:?}");
    let missing = layout(["ログインID", "組織コード"]).unwrap_err();
    assert_eq!(
        missing,
        ["Pleasanter's import needs the \"名前\" column: map it in [target.fields]"]
    );
    let disabled = layout(["Login ID", "Name", "Disabled"]).unwrap_err();
    assert!(disabled[0].contains("carries block and unblock"), "{disabled:?}");
}

#[test]
fn every_batch_has_the_same_header_ending_with_disabled() {
    let mut ana = item(
        ActionKind::Create,
        true,
        &[
            ("Login ID", "ana"),
            ("Name", "Alves, \"Ana\""),
            ("Email address", "ana@x.fr"),
        ],
    );
    ana.acked_fields = Some(Fields::from([("User code".into(), "E1".into())]));
    let ben = item(
        ActionKind::Block,
        false,
        &[("Login ID", "ben"), ("Name", "Blanc")],
    );
    let csv = build_csv(&[&ana, &ben], &english(), CsvEncoding::Utf8, Formulas::Neutralise).unwrap();
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        "\"Login ID\",\"Department code\",\"Email address\",\"Name\",\"User code\",\"Disabled\"\r\n\
         \"ana\",\"\",\"ana@x.fr\",\"Alves, \"\"Ana\"\"\",\"\",\"0\"\r\n\
         \"ben\",\"\",\"\",\"Blanc\",\"\",\"1\"\r\n"
    );
    // The probe of `check`: the header alone.
    let probe = build_csv(&[], &english(), CsvEncoding::Utf8, Formulas::Neutralise).unwrap();
    assert_eq!(
        String::from_utf8(probe).unwrap(),
        "\"Login ID\",\"Department code\",\"Email address\",\"Name\",\"User code\",\"Disabled\"\r\n"
    );
}

#[test]
fn formula_like_values_go_as_quoted_text_and_phones_as_they_are() {
    let mut layout = english();
    layout.header.insert(1, "Body".into());
    let ana = item(
        ActionKind::Create,
        true,
        &[
            ("Login ID", "ana"),
            ("Name", "=cmd|' /C calc'!A0"),
            ("Body", "+33 1 23 45 67 89"),
        ],
    );
    let row = |formulas| {
        let csv = build_csv(&[&ana], &layout, CsvEncoding::Utf8, formulas).unwrap();
        String::from_utf8(csv).unwrap().lines().nth(1).unwrap().to_string()
    };
    assert_eq!(
        row(Formulas::Neutralise),
        r#""ana","+33 1 23 45 67 89","","","'=cmd|' /C calc'!A0","","0""#
    );
    assert_eq!(
        row(Formulas::Keep),
        r#""ana","+33 1 23 45 67 89","","","=cmd|' /C calc'!A0","","0""#
    );
    // The quote counts in Pleasanter's lengths: 32 characters become 33.
    let code = format!("-{}", "9".repeat(30) + "x");
    let long = item(
        ActionKind::Create,
        true,
        &[("Login ID", "ana"), ("Name", "Alves"), ("User code", &code)],
    );
    let reason = check_record(&long, &english(), CsvEncoding::Utf8, Formulas::Neutralise)
        .unwrap_err()
        .to_string();
    assert!(reason.starts_with("User code is 33 characters long"), "{reason}");
    assert_eq!(
        check_record(&long, &english(), CsvEncoding::Utf8, Formulas::Keep),
        Ok(())
    );
}

#[test]
fn values_over_pleasanters_limits_are_refused_before_sending() {
    let layout = english();
    let check = |column: &str, value: String| {
        let mut fields = vec![("Login ID", "ana"), ("Name", "Alves")];
        fields.retain(|(c, _)| *c != column);
        let mut record = item(ActionKind::Create, true, &fields);
        record.fields.insert(column.into(), value);
        check_record(&record, &layout, CsvEncoding::Utf8, Formulas::Neutralise).map_err(|e| e.to_string())
    };
    for (column, limit) in [
        ("Login ID", 256),
        ("Name", 128),
        ("User code", 32),
        ("Email address", 2048),
    ] {
        assert_eq!(check(column, "a".repeat(limit)), Ok(()), "{column}");
        assert_eq!(
            check(column, "a".repeat(limit + 1)),
            Err(format!(
                "{column} is {} characters long; Pleasanter takes {limit} at most: shorten it in the HR file",
                limit + 1
            ))
        );
    }
    // Counted in UTF-16 units, as Pleasanter does: 𠮷 is two.
    assert!(check("Name", "𠮷".repeat(65)).is_err());
    assert_eq!(check("Department code", "d".repeat(5000)), Ok(()));
}

#[test]
fn shift_jis_encodes_japanese_and_names_the_field_it_cannot_encode() {
    let layout = japanese();
    let taro = item(
        ActionKind::Create,
        true,
        &[("ログインID", "yamada"), ("名前", "山田 太郎")],
    );
    assert_eq!(check_record(&taro, &layout, CsvEncoding::ShiftJis, Formulas::Neutralise), Ok(()));
    let csv = build_csv(&[&taro], &layout, CsvEncoding::ShiftJis, Formulas::Neutralise).unwrap();
    let (text, _, errors) = encoding_rs::SHIFT_JIS.decode(&csv);
    assert!(!errors);
    assert_eq!(
        text,
        "\"ログインID\",\"名前\",\"無効\"\r\n\"yamada\",\"山田 太郎\",\"0\"\r\n"
    );
    assert_ne!(csv, text.as_bytes(), "the bytes are Shift-JIS, not UTF-8");

    let yoshio = item(
        ActionKind::Create,
        true,
        &[("ログインID", "yoshi"), ("名前", "𠮷田 義男")],
    );
    let reason = check_record(&yoshio, &layout, CsvEncoding::ShiftJis, Formulas::Neutralise)
        .unwrap_err()
        .to_string();
    assert!(
        reason.contains("名前") && reason.contains("U+20BB7"),
        "{reason}"
    );
    assert_eq!(check_record(&yoshio, &layout, CsvEncoding::Utf8, Formulas::Neutralise), Ok(()));

    let nobody = item(ActionKind::Create, true, &[("名前", "山田")]);
    assert!(
        check_record(&nobody, &layout, CsvEncoding::Utf8, Formulas::Neutralise)
            .unwrap_err()
            .to_string()
            .contains("ログインID")
    );
}

#[test]
fn parameters_carry_the_version_the_key_and_the_encoding() {
    let parameters: Value =
        serde_json::from_str(&import_parameters("k3y", CsvEncoding::ShiftJis)).unwrap();
    assert_eq!(
        parameters,
        json!({"ApiVersion": 1.1, "ApiKey": "k3y", "Encoding": "Shift-JIS"})
    );
    assert_eq!(CsvEncoding::from_config(None), Ok(CsvEncoding::Utf8));
    assert_eq!(
        CsvEncoding::from_config(Some("Shift_JIS")),
        Ok(CsvEncoding::ShiftJis)
    );
    assert!(CsvEncoding::from_config(Some("latin1")).is_err());
}

#[test]
fn a_user_is_looked_up_by_its_exact_login() {
    assert_eq!(
        get_users_body("k3y", "LoginId", "ana", 200),
        json!({"ApiVersion": 1.1, "ApiKey": "k3y", "Offset": 200,
               "View": {"ColumnFilterHash": {"LoginId": "ana"},
                        "ColumnFilterSearchTypes": {"LoginId": "ExactMatch"}}})
    );
    assert_eq!(
        rename_body("k3y", "ana.alves"),
        json!({"ApiVersion": 1.1, "ApiKey": "k3y", "LoginId": "ana.alves"})
    );
}

#[test]
fn user_pages_give_ids_by_login() {
    let page = parse_users_page(
        r#"{"StatusCode":200,"Response":{"Offset":0,"PageSize":200,"TotalCount":3,
            "Data":[{"UserId":7,"LoginId":"banana","UserCode":""},{"UserId":"9","LoginId":"ana","UserCode":"E1"},{"LoginId":"x"}]}}"#,
    )
    .unwrap();
    let user = |login: &str, id: &str, code: Option<&str>| PageUser {
        login: login.into(),
        id: id.into(),
        code: code.map(str::to_string),
    };
    assert_eq!(
        page,
        UsersPage {
            users: vec![user("banana", "7", None), user("ana", "9", Some("E1"))],
            total: 3
        }
    );
    assert!(parse_users_page("{}").is_err());
    assert!(parse_users_page("nope").is_err());
}

#[test]
fn a_changed_login_is_renamed_first() {
    let mut update = item(ActionKind::Update, true, &[("Login ID", "ana.alves")]);
    assert_eq!(renamed(&update, "Login ID"), None, "never acknowledged");
    update.acked_fields = Some(Fields::from([("Login ID".into(), "ana".into())]));
    assert_eq!(renamed(&update, "Login ID"), Some(("ana", "ana.alves")));
    update.acked_fields = Some(Fields::from([("Login ID".into(), "ana.alves".into())]));
    assert_eq!(renamed(&update, "Login ID"), None);
}

#[test]
fn the_probe_says_whether_the_key_may_import_and_in_which_language() {
    let answer = |status: u16, message: &str| {
        reply(
            status,
            &json!({"Id": 0, "StatusCode": status, "Message": message}).to_string(),
        )
    };
    let english = Language::English;
    let japanese = Language::Japanese;
    assert_eq!(
        judge_probe(&answer(500, "Please select a file."), english),
        Ok(())
    );
    assert_eq!(
        judge_probe(&answer(500, "ファイルを選択してください。"), japanese),
        Ok(())
    );
    assert!(matches!(
        judge_probe(&answer(401, "Unable to authorize."), english),
        Err(CheckError::Refused(reason)) if reason.starts_with("the API key was refused (HTTP 401")
    ));
    assert!(matches!(
        judge_probe(&answer(403, ""), english),
        Err(CheckError::Refused(reason)) if reason.contains("not a tenant manager")
    ));
    assert!(matches!(
        judge_probe(&answer(500, "Please select a file."), japanese),
        Err(CheckError::Failed(reason))
            if reason.starts_with("Pleasanter answers in English") && reason.contains("Email address")
    ));
    assert!(matches!(
        judge_probe(&answer(500, "Bitte wählen Sie eine Datei aus."), english),
        Err(CheckError::Unexpected(reason)) if reason.contains("English and Japanese")
    ));
    assert!(matches!(
        judge_probe(&answer(503, ""), english),
        Err(CheckError::Failed(_))
    ));
}

/// A 200 holding an error that repeats the key past the 300 characters a
/// reason keeps: scrubbed before it is cut, no part of the key is left.
#[test]
fn an_error_in_a_200_is_scrubbed_before_its_reason_is_cut_short() {
    let key = Secret::new("4d84b4773a58bbc3c4-pl34s4nt3r-k3y");
    let message = format!("{} ApiKey {}", "a".repeat(285), key.expose());
    let reply = Reply {
        status: 200,
        body: json!({"StatusCode": 400, "Message": message}).to_string(),
        retry_after: None,
    };
    let ImportVerdict::Refused(failure) = judge_import(&scrub_inner_error(reply, &key), 2) else {
        panic!("not refused");
    };
    assert!(failure.reason().contains("ApiKey ***"), "{failure:?}");
    // A success stays whole.
    let done = Reply {
        status: 200,
        body: format!("{{\"StatusCode\":200,\"Message\":\"{}\"}}", key.expose()),
        retry_after: None,
    };
    assert_eq!(scrub_inner_error(done.clone(), &key).body, done.body);
}

#[test]
fn the_key_is_scrubbed_from_reasons() {
    let outcome = scrub_outcome(
        Outcome::Failed(Failure::Permanent {
            reason: "HTTP 400: bad ApiKey k3y-s3cret".into(),
        }),
        &Secret::new("k3y-s3cret"),
    );
    assert_eq!(
        outcome,
        Outcome::Failed(Failure::Permanent {
            reason: "HTTP 400: bad ApiKey ***".into()
        })
    );
}
