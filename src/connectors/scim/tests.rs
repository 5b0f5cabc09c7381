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
        &Wire::default(),
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
        &Wire::default(),
    );
    assert_eq!(
        user,
        json!({"schemas": [USER_SCHEMA], "userName": "ana", "active": false})
    );
}

#[test]
fn patch_operations_carry_only_the_differences_and_active() {
    let wire = Wire::default();
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
        user_patch_ops(&desired, &acked, true, Some("id-8"), &wire),
        vec![
            json!({"op": "replace", "path": format!("{ENTERPRISE_SCHEMA}:department"), "value": "R&D"}),
            json!({"op": "replace", "path": "emails[type eq \"work\"].value", "value": "anna@x.fr"}),
            json!({"op": "replace", "path": format!("{ENTERPRISE_SCHEMA}:manager"), "value": {"value": "id-8"}}),
            json!({"op": "replace", "path": "name.givenName", "value": "Anna"}),
            json!({"op": "remove", "path": "name.middleName"}),
            json!({"op": "add", "path": "phoneNumbers", "value": [{"value": "+33 1", "type": "work"}]}),
            json!({"op": "replace", "path": "active", "value": true}),
        ]
    );
    // A block of an unchanged user is one operation; a lost e-mail removes the list.
    assert_eq!(
        user_patch_ops(&acked, &acked, false, None, &wire),
        vec![json!({"op": "replace", "path": "active", "value": false})]
    );
    let mut without_email = acked.clone();
    without_email.remove("emails.work");
    without_email.remove("manager");
    assert!(!manager_changed(&without_email, &acked));
    assert_eq!(
        user_patch_ops(&without_email, &acked, true, None, &wire),
        vec![
            json!({"op": "remove", "path": "emails[type eq \"work\"]"}),
            json!({"op": "remove", "path": format!("{ENTERPRISE_SCHEMA}:manager")}),
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
        group_resource(&desired, Some(&members), &Wire::default()),
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
fn a_page_at_the_end_of_the_numbers_has_no_next_page() {
    // The provider's startIndex, as large as a u64 goes: no page after it,
    // rather than an overflow (a panic, or a wrap back to page 0).
    let far = parse_list(
        r#"{"totalResults":5,"startIndex":18446744073709551615,"Resources":[{"id":"a"}]}"#,
    )
    .unwrap();
    assert_eq!(far.start, u64::MAX);
    assert_eq!(next_start(&far, 0), None);
    let near = parse_list(
        r#"{"totalResults":5,"startIndex":18446744073709551614,"Resources":[{"id":"a"}]}"#,
    )
    .unwrap();
    assert_eq!(next_start(&near, 0), Some(u64::MAX));
}

#[test]
fn a_scan_stops_where_the_providers_paging_cannot_be_followed() {
    let page = |start: u64| {
        parse_list(&format!(
            r#"{{"totalResults":18446744073709551615,"startIndex":{start},"Resources":[{{"id":"a"}}]}}"#
        ))
        .unwrap()
    };
    // Moving forward: the next page.
    assert_eq!(scan_next(&page(1), 1, 0, 1), Ok(Some(2)));
    // A provider that ignores startIndex answers page 1 again and again.
    let stuck = scan_next(&page(1), 5, 4, 5).unwrap_err();
    assert!(stuck.contains("does not move forward"), "{stuck}");
    // One whose total never comes: stopped after MAX_SCAN_PAGES.
    let endless = scan_next(&page(MAX_SCAN_PAGES), MAX_SCAN_PAGES, MAX_SCAN_PAGES - 1, MAX_SCAN_PAGES)
        .unwrap_err();
    assert!(endless.contains("did not end after 100000 pages"), "{endless}");
    // The last page ends the scan.
    let last = parse_list(r#"{"totalResults":2,"startIndex":2,"Resources":[{"id":"b"}]}"#).unwrap();
    assert_eq!(scan_next(&last, 2, 1, 2), Ok(None));
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
    assert!(
        no_target(r#"{"status":"400","scimType":"noTarget","detail":"no value of 'emails'"}"#)
    );
    assert!(!no_target(r#"{"status":"400","scimType":"invalidValue"}"#));
    assert!(!no_target("<html>"));
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

#[test]
fn the_service_provider_config_says_what_the_provider_supports() {
    let features = parse_features(
        r#"{"patch":{"supported":true},"filter":{"supported":false,"maxResults":1000},
            "etag":{"supported":true}}"#,
    )
    .unwrap();
    assert_eq!(
        features,
        Features {
            patch: true,
            filter: false,
            etag: true,
            max_results: Some(1000)
        }
    );
    // Filters are believed missing only when said so.
    let bare = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]}"#;
    assert_eq!(parse_features(bare).unwrap(), Features::default());
    // An empty object describes nothing: read again, never kept.
    assert!(parse_features("{}").is_err());
    assert!(parse_features("[]").is_err());
}

#[test]
fn discovery_lists_are_list_responses_or_arrays_never_an_empty_object() {
    let schema = json!({"id": USER_SCHEMA});
    let listed = json!({"totalResults": 1, "Resources": [schema.clone()]}).to_string();
    assert_eq!(
        parse_resources(&listed).unwrap(),
        std::slice::from_ref(&schema)
    );
    assert_eq!(parse_resources(&json!([schema.clone()]).to_string()).unwrap(), [schema]);
    assert!(parse_resources(r#"{"totalResults":0}"#).unwrap().is_empty());
    assert!(parse_resources("{}").is_err());
    assert!(parse_resources(r#"{"Resources":{}}"#).is_err());
}

/// A strict provider's `/Schemas`: no honorific prefix, no `primary` on
/// e-mails, `name.formatted` required; the enterprise extension without
/// manager.
fn strict_schemas() -> Vec<serde_json::Value> {
    let attribute = |name: &str, required: bool, subs: &[(&str, bool)]| {
        json!({"name": name, "required": required,
               "subAttributes": subs.iter().map(|(n, r)| json!({"name": n, "required": r})).collect::<Vec<_>>()})
    };
    vec![
        json!({"id": USER_SCHEMA, "attributes": [
            attribute("userName", true, &[]),
            attribute("name", false, &[("formatted", true), ("givenName", false), ("familyName", false), ("middleName", false)]),
            attribute("title", false, &[]),
            attribute("active", false, &[]),
            attribute("emails", false, &[("value", false), ("type", false)]),
            attribute("phoneNumbers", false, &[("value", false), ("type", false), ("primary", false)]),
        ]}),
        json!({"id": ENTERPRISE_SCHEMA, "attributes": [attribute("department", false, &[])]}),
        json!({"id": GROUP_SCHEMA, "attributes": [
            attribute("displayName", true, &[]),
            attribute("members", true, &[("value", false)]),
        ]}),
    ]
}

fn default_user_fields() -> Vec<String> {
    let projector = crate::projection::Projector::new(
        <Scim as crate::connectors::Connector>::default_fields(),
        &Default::default(),
    );
    projector
        .target_fields(crate::ingest::record::RecordKind::Users)
        .map(str::to_string)
        .collect()
}

#[test]
fn a_strict_schema_trims_the_mapping_and_fills_what_it_requires() {
    let types = vec![json!({"schema": USER_SCHEMA,
        "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": false}]})];
    let schema = ResourceSchema::of(&strict_schemas(), Some(&types), USER_SCHEMA).unwrap();
    let mapped = default_user_fields();
    let wire = schema.wire(&mapped);
    let dropped: Vec<&str> = wire.dropped.iter().map(String::as_str).collect();
    assert_eq!(
        dropped,
        ["manager", "name.honorificPrefix", "preferredLanguage"]
    );
    assert!(wire.unmet.is_empty() && !wire.no_active);
    assert!(!wire.primary("emails") && wire.primary("phoneNumbers"));
    let shaped = wire.shape(&fields(&[
        ("userName", "ana"),
        ("name.givenName", "Ana"),
        ("name.familyName", "Alves"),
        ("name.honorificPrefix", "Mme"),
        ("emails.work", "ana@x.fr"),
        ("department", "R&D"),
        ("manager", "M1"),
    ]));
    assert_eq!(
        shaped,
        fields(&[
            ("userName", "ana"),
            ("name.formatted", "Ana Alves"),
            ("name.givenName", "Ana"),
            ("name.familyName", "Alves"),
            ("emails.work", "ana@x.fr"),
            ("department", "R&D"),
        ])
    );
    assert!(wire.owned(&mapped).contains(&"name.formatted".to_string()));
    // Created without `primary` on the e-mail, which the provider does not declare.
    assert_eq!(
        user_resource(&shaped, true, None, &wire)["emails"],
        json!([{"value": "ana@x.fr", "type": "work"}])
    );
    // Without /ResourceTypes the extensions served are allowed; a Group
    // that requires members is said so.
    let groups = ResourceSchema::of(&strict_schemas(), None, GROUP_SCHEMA).unwrap();
    let wire = groups.wire(&["externalId".into(), "displayName".into()]);
    assert!(wire.members && wire.dropped.is_empty() && wire.unmet.is_empty());
    // A required attribute nothing gives is named.
    let wire = schema.wire(&["externalId".to_string()]);
    assert_eq!(wire.unmet, ["username"]);
}

#[test]
fn a_provider_without_schemas_takes_every_mapped_field() {
    let wire = Wire::default();
    let all = fields(&[("name.honorificPrefix", "Mme"), ("manager", "M1")]);
    assert_eq!(wire.shape(&all), all);
    assert!(wire.primary("emails"));
    assert_eq!(ResourceSchema::of(&[], None, USER_SCHEMA), None);
}

/// Ana as a provider holds her: a home address besides the work one,
/// a nickname set there by hand, a manager.
fn held_ana() -> serde_json::Map<String, serde_json::Value> {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
        "id": "u-1",
        "meta": {"version": "W/\"7\""},
        "userName": "ana",
        "nickName": "Nana",
        "title": "Engineer",
        "emails": [
            {"value": "ana@home.fr", "type": "home"},
            {"value": "ana@x.fr", "type": "work", "primary": true}
        ],
        ENTERPRISE_SCHEMA: {"department": "R&D", "manager": {"value": "u-9"}},
        "active": true,
    })
    .as_object()
    .unwrap()
    .clone()
}

#[test]
fn a_read_resource_is_seen_through_the_fields_rostersync_owns() {
    let owned: Vec<String> = ["userName", "title", "emails.work", "department", "manager", "name.givenName"]
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(
        view(&held_ana(), &owned),
        fields(&[
            ("userName", "ana"),
            ("title", "Engineer"),
            ("emails.work", "ana@x.fr"),
            ("department", "R&D"),
            ("manager", "u-9"),
        ])
    );
}

#[test]
fn a_put_keeps_what_the_provider_holds_beyond_the_owned_fields() {
    let owned: Vec<String> = ["userName", "title", "emails.work", "department", "manager"]
        .iter()
        .map(|f| f.to_string())
        .collect();
    let desired = fields(&[("userName", "ana"), ("emails.work", "anna@x.fr"), ("manager", "M8")]);
    let merged = merged_user(&held_ana(), &desired, &owned, false, Some("u-8"), &Wire::default());
    assert_eq!(
        merged,
        json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
            "id": "u-1",
            "userName": "ana",
            "nickName": "Nana",
            "emails": [
                {"value": "ana@home.fr", "type": "home"},
                {"value": "anna@x.fr", "type": "work", "primary": true}
            ],
            ENTERPRISE_SCHEMA: {"manager": {"value": "u-8"}},
            "active": false,
        })
    );
    // Nothing of the extension left: it leaves `schemas` too.
    let merged = merged_user(&held_ana(), &fields(&[("userName", "ana")]), &owned, true, None, &Wire::default());
    assert_eq!(merged["schemas"], json!([USER_SCHEMA]));
    assert_eq!(merged["emails"], json!([{"value": "ana@home.fr", "type": "home"}]));
}

#[test]
fn an_index_finds_resources_as_a_filter_would() {
    let mut index = Index::new("userName");
    index.add(&json!({"id": "u-1", "userName": "Ana", "externalId": "A1"}));
    index.add(&json!({"id": "u-2", "username": "ben"}));
    index.add(&json!({"userName": "no id"}));
    assert_eq!(index.len(), 2);
    assert_eq!(index.find("externalId", "A1")[0]["id"], "u-1");
    assert!(index.find("externalId", "a1").is_empty());
    assert_eq!(index.find("userName", "ANA")[0]["id"], "u-1");
    assert_eq!(index.find("userName", "Ben")[0]["id"], "u-2");
    index.forget("u-1");
    assert!(index.find("userName", "ana").is_empty());
}

#[test]
fn a_schema_without_active_or_with_a_required_display_name_shapes_the_user() {
    let schemas = vec![json!({"id": USER_SCHEMA, "attributes": [
        {"name": "userName", "required": true},
        {"name": "displayName", "required": true},
        {"name": "name", "subAttributes": [{"name": "givenName"}, {"name": "familyName"}]},
    ]})];
    let schema = ResourceSchema::of(&schemas, None, USER_SCHEMA).unwrap();
    let mapped: Vec<String> = ["userName", "name.givenName", "name.familyName"]
        .iter()
        .map(|f| f.to_string())
        .collect();
    let wire = schema.wire(&mapped);
    assert!(wire.no_active && wire.unmet.is_empty());
    let shaped = wire.shape(&fields(&[("userName", "ana"), ("name.givenName", "Ana"), ("name.familyName", "Alves")]));
    assert_eq!(shaped["displayName"], "Ana Alves");
    // `active` is neither created nor patched there.
    let user = user_resource(&shaped, true, None, &wire);
    assert!(user.get("active").is_none(), "{user}");
    assert_eq!(user_patch_ops(&shaped, &shaped, true, None, &wire), Vec::<serde_json::Value>::new());
    // A record without any part of its name gets none made up.
    assert!(!wire.shape(&fields(&[("userName", "ana")])).contains_key("displayName"));
}

#[test]
fn a_match_rule_filters_on_its_attribute_and_checks_the_type_of_an_address() {
    assert_eq!(
        lookup::filter_attribute("emails.work").as_deref(),
        Some("emails.value")
    );
    assert_eq!(
        lookup::filter_attribute("userName").as_deref(),
        Some("userName")
    );
    assert_eq!(lookup::filter_attribute("manager"), None);
    let user = json!({"id": "u-1", "userName": "Ana", "externalId": "E1", "emails": [
        {"value": "Ana@X.fr", "type": "work"},
        {"value": "ana@home.example", "type": "home"},
        {"value": "a@untyped.example"}
    ]});
    assert!(matches(&user, "emails.value", "ana@home.example", false));
    assert!(lookup::answers(&user, "emails.work", "ana@x.fr"), "without case");
    assert!(
        !lookup::answers(&user, "emails.work", "ana@home.example"),
        "another type is another field"
    );
    assert!(lookup::answers(&user, "emails.work", "a@untyped.example"));
    assert!(lookup::answers(&user, "userName", "ana"));
    assert!(!lookup::answers(&user, "externalId", "e1"), "externalId is exact");
    assert_eq!(
        lookup::account(&user),
        Some(crate::connectors::adopt::Account {
            id: "u-1".into(),
            login: "Ana".into(),
            ext_id: Some("E1".into())
        })
    );
    assert_eq!(lookup::account(&json!({"userName": "x"})), None);
}

#[test]
fn an_index_finds_users_by_their_addresses() {
    let mut index = Index::new("userName");
    index.add(&json!({"id": "u-1", "userName": "ana", "emails": [{"value": "Ana@X.fr", "type": "work"}]}));
    index.add(&json!({"id": "u-2", "userName": "ben"}));
    let found = index.find("emails.value", "ana@x.fr");
    assert_eq!(found.len(), 1);
    assert!(lookup::answers(&found[0], "emails.work", "ana@x.fr"));
    assert!(index.find("emails.value", "ben@x.fr").is_empty());
}
