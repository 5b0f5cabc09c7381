use serde_json::{Value, json};

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

#[test]
fn english_and_japanese_messages_give_the_counts() {
    assert_eq!(
        parse_message("50 items added and 12 items updated."),
        Some(ImportCounts {
            added: 50,
            updated: 12
        })
    );
    assert_eq!(
        parse_message("50 件追加し、12 件更新しました。"),
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
        parse_message("3 users updated, 4 new users"),
        Some(ImportCounts {
            added: 4,
            updated: 3
        })
    );
    assert_eq!(
        parse_message("7 items added."),
        Some(ImportCounts {
            added: 7,
            updated: 0
        })
    );
    assert_eq!(parse_message("Import completed."), None);
    assert_eq!(parse_message("2 rows, 3 columns"), None);
    assert_eq!(parse_message("7 items added, 2 errors."), None);
    assert_eq!(
        parse_message("99999999999999999999999 items added and 1 items updated."),
        None
    );
}

#[test]
fn import_replies_are_judged_against_what_was_sent() {
    let ok = r#"{"Id":0,"StatusCode":200,"Message":"2 items added and 1 items updated."}"#;
    assert_eq!(
        judge_import(&reply(200, ok), 3),
        ImportVerdict::All(Outcome::Acked { target_id: None })
    );
    assert_eq!(
        judge_import(&reply(200, ok), 4),
        ImportVerdict::Split("2 items added and 1 items updated.".into())
    );
    // Unreadable: transient, replaying is harmless.
    for body in [
        "<html>",
        r#"{"Id":0,"StatusCode":200,"Message":"Done."}"#,
        "{}",
    ] {
        assert!(
            matches!(
                judge_import(&reply(200, body), 1),
                ImportVerdict::All(Outcome::Failed(Failure::Transient { .. }))
            ),
            "{body}"
        );
    }
    // A refused key fails every record at once, without splitting.
    let refused = r#"{"Id":0,"StatusCode":401,"Message":"Authentication failed."}"#;
    for status in [200, 401] {
        assert!(matches!(
            judge_import(&reply(status, refused), 5),
            ImportVerdict::All(Outcome::Failed(Failure::Permanent { reason })) if reason.contains("API key was refused")
        ));
    }
    // A refused import is split to find the record; 5xx is transient.
    assert!(matches!(
        judge_import(&reply(400, r#"{"StatusCode":400,"Message":"Row 2: Name is required."}"#), 2),
        ImportVerdict::Refused(Failure::Permanent { reason }) if reason == "HTTP 400: Row 2: Name is required."
    ));
    assert!(matches!(
        judge_import(&reply(503, ""), 2),
        ImportVerdict::All(Outcome::Failed(Failure::Transient { .. }))
    ));
}

#[test]
fn the_csv_has_the_display_names_and_quotes_every_value() {
    let mut ana = item(
        ActionKind::Create,
        true,
        &[
            ("Login ID", "ana"),
            ("Name", "Alves, \"Ana\""),
            ("Mail address", "ana@x.fr"),
        ],
    );
    ana.acked_fields = Some(Fields::from([("User code".into(), "E1".into())]));
    let ben = item(
        ActionKind::Update,
        true,
        &[
            ("Login ID", "ben"),
            ("Name", "Blanc"),
            ("Department code", "D2"),
        ],
    );
    let csv = build_csv(&[&ana, &ben], "Login ID", CsvEncoding::Utf8).unwrap();
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        "\"Login ID\",\"Department code\",\"Mail address\",\"Name\",\"User code\"\r\n\
         \"ana\",\"\",\"ana@x.fr\",\"Alves, \"\"Ana\"\"\",\"\"\r\n\
         \"ben\",\"D2\",\"\",\"Blanc\",\"\"\r\n"
    );
}

#[test]
fn shift_jis_encodes_japanese_and_names_the_field_it_cannot_encode() {
    let taro = item(
        ActionKind::Create,
        true,
        &[("ログインID", "yamada"), ("名前", "山田 太郎")],
    );
    assert_eq!(
        check_record(&taro, "ログインID", CsvEncoding::ShiftJis),
        Ok(())
    );
    let csv = build_csv(&[&taro], "ログインID", CsvEncoding::ShiftJis).unwrap();
    let (text, _, errors) = encoding_rs::SHIFT_JIS.decode(&csv);
    assert!(!errors);
    assert_eq!(
        text,
        "\"ログインID\",\"名前\"\r\n\"yamada\",\"山田 太郎\"\r\n"
    );
    assert_ne!(csv, text.as_bytes(), "the bytes are Shift-JIS, not UTF-8");

    let yoshio = item(
        ActionKind::Create,
        true,
        &[("ログインID", "yoshi"), ("名前", "𠮷田 義男")],
    );
    let reason = check_record(&yoshio, "ログインID", CsvEncoding::ShiftJis)
        .unwrap_err()
        .to_string();
    assert!(
        reason.contains("名前") && reason.contains("U+20BB7"),
        "{reason}"
    );
    assert_eq!(
        check_record(&yoshio, "ログインID", CsvEncoding::Utf8),
        Ok(())
    );

    let nobody = item(ActionKind::Create, true, &[("名前", "山田")]);
    assert!(
        check_record(&nobody, "ログインID", CsvEncoding::Utf8)
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
    assert_eq!(
        get_users_body("k3y", Some("ana"), 200),
        json!({"ApiVersion": 1.1, "ApiKey": "k3y", "Offset": 200,
               "View": {"ColumnFilterHash": {"LoginId": "ana"}}})
    );
}

#[test]
fn user_pages_give_ids_by_login() {
    let page = parse_users_page(
        r#"{"StatusCode":200,"Response":{"Offset":0,"PageSize":200,"TotalCount":3,
            "Data":[{"UserId":7,"LoginId":"banana"},{"UserId":"9","LoginId":"ana"},{"LoginId":"x"}]}}"#,
    )
    .unwrap();
    assert_eq!(
        page,
        UsersPage {
            users: vec![("banana".into(), "7".into()), ("ana".into(), "9".into())],
            total: 3
        }
    );
    assert!(parse_users_page("{}").is_err());
    assert!(parse_users_page("nope").is_err());
}

#[test]
fn actions_map_to_an_import_and_the_disabled_flag() {
    let fields = [("Login ID", "ana")];
    let create_inactive = item(ActionKind::Create, false, &fields);
    assert!(needs_import(&create_inactive));
    assert_eq!(disabled_change(&create_inactive), Some(true));
    assert_eq!(
        disabled_change(&item(ActionKind::Create, true, &fields)),
        None
    );
    assert_eq!(
        disabled_change(&item(ActionKind::Update, true, &fields)),
        None
    );

    let mut block = item(ActionKind::Block, false, &fields);
    block.acked_fields = Some(block.fields.clone());
    assert!(!needs_import(&block));
    assert_eq!(disabled_change(&block), Some(true));

    let mut unblock = item(ActionKind::Unblock, true, &fields);
    unblock.acked_fields = Some(Fields::from([("Login ID".into(), "ana.old".into())]));
    assert!(
        needs_import(&unblock),
        "an unblock with changed fields imports first"
    );
    assert_eq!(disabled_change(&unblock), Some(false));
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
