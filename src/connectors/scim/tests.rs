use serde_json::json;

use super::*;
use crate::connectors::http::Reply;
use crate::projection::Fields;
use crate::retry::Failure;

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn field_names_are_attribute_paths() {
    assert_eq!(slot("userName"), Slot::Simple("userName".into()));
    assert_eq!(
        slot("name.givenName"),
        Slot::Sub("name".into(), "givenName".into())
    );
    assert_eq!(
        slot("emails.work"),
        Slot::Typed("emails".into(), "work".into())
    );
    assert_eq!(
        slot("department"),
        Slot::Extension(ENTERPRISE_SCHEMA.into(), "department".into())
    );
    assert_eq!(slot("manager"), Slot::Manager);
    assert_eq!(slot(&format!("{ENTERPRISE_SCHEMA}:manager")), Slot::Manager);
    assert_eq!(
        slot(&format!("{USER_SCHEMA}:nickName")),
        Slot::Simple("nickName".into())
    );
    assert_eq!(
        slot("urn:example:params:scim:schemas:extension:acme:2.0:User:badge"),
        Slot::Extension(
            "urn:example:params:scim:schemas:extension:acme:2.0:User".into(),
            "badge".into()
        )
    );
}

#[test]
fn a_user_resource_holds_the_core_and_enterprise_attributes() {
    let user = user_resource(
        &fields(&[
            ("userName", "ana"),
            ("externalId", "E1"),
            ("name.givenName", "Ana"),
            ("name.familyName", "Alves"),
            ("emails.work", "ana@x.fr"),
            ("phoneNumbers.mobile", "+33 6"),
            ("phoneNumbers.work", "+33 1"),
            ("title", "Engineer"),
            ("department", "R&D"),
            ("manager", "E9"),
        ]),
        true,
        Some("id-9"),
    );
    assert_eq!(
        user,
        json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
            "userName": "ana",
            "externalId": "E1",
            "name": {"givenName": "Ana", "familyName": "Alves"},
            "emails": [{"value": "ana@x.fr", "type": "work", "primary": true}],
            "phoneNumbers": [
                {"value": "+33 1", "type": "work", "primary": true},
                {"value": "+33 6", "type": "mobile", "primary": false}
            ],
            "title": "Engineer",
            "active": true,
            ENTERPRISE_SCHEMA: {"department": "R&D", "manager": {"value": "id-9"}}
        })
    );
    // Without a manager id, no manager; the extension stays for department.
    let user = user_resource(
        &fields(&[("userName", "ana"), ("manager", "E9")]),
        false,
        None,
    );
    assert_eq!(
        user,
        json!({"schemas": [USER_SCHEMA], "userName": "ana", "active": false})
    );
}

#[test]
fn patch_operations_carry_only_the_differences_and_active() {
    let acked = fields(&[
        ("userName", "ana"),
        ("name.givenName", "Ana"),
        ("name.middleName", "Maria"),
        ("emails.work", "ana@x.fr"),
        ("department", "Sales"),
        ("manager", "E9"),
    ]);
    let desired = fields(&[
        ("userName", "ana"),
        ("name.givenName", "Anna"),
        ("emails.work", "anna@x.fr"),
        ("phoneNumbers.work", "+33 1"),
        ("department", "R&D"),
        ("manager", "E8"),
    ]);
    assert!(manager_changed(&desired, &acked));
    assert_eq!(
        user_patch_ops(&desired, &acked, true, Some("id-8")),
        vec![
            json!({"op": "replace", "path": format!("{ENTERPRISE_SCHEMA}:department"), "value": "R&D"}),
            json!({"op": "replace", "path": format!("{ENTERPRISE_SCHEMA}:manager"), "value": {"value": "id-8"}}),
            json!({"op": "replace", "path": "name.givenName", "value": "Anna"}),
            json!({"op": "remove", "path": "name.middleName"}),
            json!({"op": "replace", "path": "emails", "value": [{"value": "anna@x.fr", "type": "work", "primary": true}]}),
            json!({"op": "replace", "path": "phoneNumbers", "value": [{"value": "+33 1", "type": "work", "primary": true}]}),
            json!({"op": "replace", "path": "active", "value": true}),
        ]
    );
    // A block of an unchanged user is one operation; a lost e-mail removes the list.
    assert_eq!(
        user_patch_ops(&acked, &acked, false, None),
        vec![json!({"op": "replace", "path": "active", "value": false})]
    );
    let mut without_email = acked.clone();
    without_email.remove("emails.work");
    without_email.remove("manager");
    assert!(!manager_changed(&without_email, &acked));
    assert_eq!(
        user_patch_ops(&without_email, &acked, true, None),
        vec![
            json!({"op": "remove", "path": format!("{ENTERPRISE_SCHEMA}:manager")}),
            json!({"op": "remove", "path": "emails"}),
            json!({"op": "replace", "path": "active", "value": true}),
        ]
    );
    assert_eq!(
        patch_body(vec![]),
        json!({"schemas": [PATCH_SCHEMA], "Operations": []})
    );
}

#[test]
fn groups_are_replaced_whole_and_keep_their_members() {
    let desired = fields(&[("externalId", "O1"), ("displayName", "Sales")]);
    let members = json!([{"value": "u1"}]);
    assert_eq!(
        group_resource(&desired, Some(&members)),
        json!({"schemas": [GROUP_SCHEMA], "externalId": "O1", "displayName": "Sales", "members": [{"value": "u1"}]})
    );
    let acked = fields(&[("externalId", "O1"), ("displayName", "Ventes"), ("x", "y")]);
    assert_eq!(
        group_patch_ops(&desired, Some(&acked)),
        vec![
            json!({"op": "replace", "path": "displayName", "value": "Sales"}),
            json!({"op": "replace", "path": "externalId", "value": "O1"}),
            json!({"op": "remove", "path": "x"}),
        ]
    );
}

#[test]
fn filters_escape_and_encode_their_value() {
    assert_eq!(eq_filter("externalId", "E1"), r#"externalId eq "E1""#);
    assert_eq!(
        eq_filter("userName", r#"o"neil\x"#),
        r#"userName eq "o\"neil\\x""#
    );
    assert_eq!(
        encode(r#"userName eq "a+b é&c""#),
        "userName%20eq%20%22a%2Bb%20%C3%A9%26c%22"
    );
    assert_eq!(segment("a/b c"), "a%2Fb%20c");
}

#[test]
fn list_responses_are_read_and_paged() {
    let page = parse_list(
        r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults":3,"startIndex":1,"itemsPerPage":2,
            "Resources":[{"id":"a"},{"id":"b"}]}"#,
    )
    .unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(page.per_page, 2);
    assert_eq!(next_start(&page, 0), Some(3));
    let last = parse_list(r#"{"totalResults":3,"startIndex":3,"Resources":[{"id":"c"}]}"#).unwrap();
    assert_eq!(next_start(&last, 2), None);
    // No Resources at all when nothing matches.
    let empty = parse_list(r#"{"totalResults":0}"#).unwrap();
    assert!(empty.resources.is_empty());
    assert_eq!(next_start(&empty, 0), None);
    // A page that lies about the total does not loop.
    let short = parse_list(r#"{"totalResults":5,"Resources":[]}"#).unwrap();
    assert_eq!(next_start(&short, 0), None);
    assert!(parse_list("<html>").is_err());
    assert!(parse_list(r#"{"Resources":[]}"#).is_err());
}

#[test]
fn found_resources_are_checked_and_user_names_compared_without_case() {
    let ana = json!({"id": "1", "userName": "Ana", "externalId": "E1"});
    assert!(matches(&ana, "userName", "ana", false));
    assert!(!matches(&ana, "externalId", "e1", true));
    assert!(matches(&ana, "externalid", "E1", true));
    assert_eq!(
        single(std::slice::from_ref(&ana), "users", "externalId", "E1").unwrap(),
        Some("1".into())
    );
    assert_eq!(single(&[], "users", "externalId", "E1").unwrap(), None);
    assert!(matches!(
        single(&[ana.clone(), ana], "users", "externalId", "E1"),
        Err(Failure::Permanent { .. })
    ));
}

#[test]
fn replies_are_read() {
    assert_eq!(parse_id(r#"{"id":"2819c223"}"#).unwrap(), "2819c223");
    assert!(parse_id(r#"{"id":""}"#).is_err());
    assert!(parse_id("{").is_err());
    assert!(parse_patch_supported(r#"{"patch":{"supported":true}}"#).unwrap());
    assert!(!parse_patch_supported(r#"{"patch":{"supported":false}}"#).unwrap());
    assert!(!parse_patch_supported(r#"{"bulk":{}}"#).unwrap());
    assert!(parse_patch_supported("[]").is_err());
    assert_eq!(
        error_text(
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"scimType":"uniqueness","detail":"userName taken","status":"409"}"#
        )
        .as_deref(),
        Some("userName taken (uniqueness)")
    );
    assert_eq!(error_text("oops"), None);
    let reply = Reply {
        status: 400,
        body: r#"{"detail":"bad email","status":"400"}"#.into(),
        retry_after: None,
    };
    assert_eq!(
        failure(&reply, "POST /Users"),
        Failure::Permanent {
            reason: "POST /Users: HTTP 400: bad email".into()
        }
    );
    let busy = Reply {
        status: 429,
        body: String::new(),
        retry_after: Some("3".into()),
    };
    assert!(matches!(
        failure(&busy, "GET /Users"),
        Failure::Transient {
            retry_after: Some(d),
            ..
        } if d.as_secs() == 3
    ));
}
