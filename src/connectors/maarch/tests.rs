use serde_json::json;

use super::*;
use crate::connectors::http::Reply;
use crate::connectors::{PushItem, test_user};
use crate::model::ActionKind;
use crate::projection::Fields;
use crate::retry::Failure;
use crate::secret::Secret;

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const ANA: &[(&str, &str)] = &[
    ("userId", "ana"),
    ("firstname", "Ana"),
    ("lastname", "Alves"),
    ("mail", "ana@x.fr"),
    ("groups", "AGENT||RESP"),
    ("entities", "DSI"),
];

fn item(
    action: ActionKind,
    active: bool,
    desired: &[(&str, &str)],
    acked: Option<&[(&str, &str)]>,
) -> PushItem {
    PushItem {
        acked_fields: acked.map(fields),
        target_id: acked.map(|_| "21".into()),
        ..test_user("courrier", action, active, desired)
    }
}

#[test]
fn basic_credentials_are_base64_of_user_colon_password() {
    // RFC 7617's example.
    let secret = basic_credentials("Aladdin", &Secret::new("open sesame"));
    assert_eq!(secret.expose(), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    assert_eq!(format!("{secret:?}"), "***");
}

#[test]
fn path_segments_are_encoded() {
    assert_eq!(
        path_url(
            "https://m.example/",
            &["rest", "users", "21", "groups", "A B/C"]
        ),
        "https://m.example/rest/users/21/groups/A%20B%2FC"
    );
}

#[test]
fn required_fields_are_checked_before_any_request() {
    assert_eq!(missing_user_fields(&fields(ANA)), None);
    let mut no_name = fields(ANA);
    no_name.remove("lastname");
    assert_eq!(
        missing_user_fields(&no_name).as_deref(),
        Some("Maarch needs a last name")
    );
    no_name.remove("mail");
    assert_eq!(
        missing_user_fields(&no_name).as_deref(),
        Some("Maarch needs a last name and an e-mail address")
    );
}

#[test]
fn bodies_carry_the_full_record_without_the_lists() {
    let ana = fields(ANA);
    assert_eq!(
        user_body(&ana, true, false),
        json!({"userId": "ana", "firstname": "Ana", "lastname": "Alves", "mail": "ana@x.fr"})
    );
    assert_eq!(
        user_body(&ana, false, true),
        json!({"firstname": "Ana", "lastname": "Alves", "mail": "ana@x.fr", "status": "OK"})
    );
    assert_eq!(
        entity_body(
            &fields(&[("entity_id", "DSI"), ("entity_label", "IT")]),
            "DSI"
        ),
        json!({"entity_id": "DSI", "entity_label": "IT", "short_label": "IT", "entity_type": "Service", "parent_entity_id": ""})
    );
    assert_eq!(
        entity_body(
            &fields(&[
                ("entity_label", "IT"),
                ("parent_entity_id", "DG"),
                ("entity_type", "Direction")
            ]),
            "DSI"
        ),
        json!({"entity_id": "DSI", "entity_label": "IT", "short_label": "IT", "entity_type": "Direction", "parent_entity_id": "DG"})
    );
}

#[test]
fn list_differences() {
    assert_eq!(
        list_change(Some("A||B"), Some("B || C")),
        ListChange {
            add: vec!["C".into()],
            remove: vec!["A".into()]
        }
    );
    assert_eq!(list_change(Some("A"), Some("A")), ListChange::default());
    assert_eq!(
        list_change(None, Some("A||B")),
        ListChange {
            add: vec!["A".into(), "B".into()],
            remove: vec![]
        }
    );
    assert_eq!(
        list_change(Some("A"), None),
        ListChange {
            add: vec![],
            remove: vec!["A".into()]
        }
    );
}

#[test]
fn steps_follow_the_action_and_what_maarch_holds() {
    // A group change alone: no PUT, one add, one removal.
    let mut moved = ANA.to_vec();
    moved[4] = ("groups", "AGENT||CHEF");
    let steps = user_steps(
        &item(ActionKind::Update, true, &moved, Some(ANA)),
        &Known::Acked,
    );
    assert!(!steps.put && !steps.suspend && !steps.status_ok);
    assert_eq!(steps.groups.add, ["CHEF"]);
    assert_eq!(steps.groups.remove, ["RESP"]);
    assert_eq!(steps.entities, ListChange::default());

    // A block of an unchanged record: only the suspension.
    let steps = user_steps(
        &item(ActionKind::Block, false, ANA, Some(ANA)),
        &Known::Acked,
    );
    assert!(!steps.put && steps.suspend);

    // A block with a changed e-mail: the PUT too, without status.
    let mut changed = ANA.to_vec();
    changed[3] = ("mail", "ana@y.fr");
    let steps = user_steps(
        &item(ActionKind::Block, false, &changed, Some(ANA)),
        &Known::Acked,
    );
    assert!(steps.put && steps.suspend && !steps.status_ok);

    // An update of a blocked user keeps it blocked.
    let steps = user_steps(
        &item(ActionKind::Update, false, &changed, Some(ANA)),
        &Known::Acked,
    );
    assert!(steps.put && !steps.suspend && !steps.status_ok);

    // Unblock: the PUT with status OK, even if nothing else changed.
    let steps = user_steps(
        &item(ActionKind::Unblock, true, ANA, Some(ANA)),
        &Known::Acked,
    );
    assert!(steps.put && steps.status_ok && !steps.suspend);

    // Just created: memberships all added, nothing else.
    let steps = user_steps(&item(ActionKind::Create, true, ANA, None), &Known::Created);
    assert!(!steps.put && !steps.suspend);
    assert_eq!(steps.groups.add, ["AGENT", "RESP"]);
    assert_eq!(steps.entities.add, ["DSI"]);
    // Created disabled: suspended right away.
    assert!(user_steps(&item(ActionKind::Create, false, ANA, None), &Known::Created).suspend);

    // Found by login: the full record, status OK if it was suspended.
    let found = |status: &str| Known::Found {
        status: status.into(),
    };
    let steps = user_steps(&item(ActionKind::Create, true, ANA, None), &found("SPD"));
    assert!(steps.put && steps.status_ok && !steps.suspend);
    assert_eq!(steps.groups.add, ["AGENT", "RESP"]);
    // An absent user stays absent.
    let steps = user_steps(&item(ActionKind::Update, true, ANA, None), &found("ABS"));
    assert!(steps.put && !steps.status_ok);
    // A block found already suspended is not sent again.
    assert!(!user_steps(&item(ActionKind::Block, false, ANA, None), &found("SPD")).suspend);
    assert!(user_steps(&item(ActionKind::Block, false, ANA, None), &found("OK")).suspend);
}

#[test]
fn replies_are_read() {
    assert_eq!(parse_created_id(r#"{"id":21}"#), Ok("21".into()));
    assert_eq!(parse_created_id(r#"{"id":"21"}"#), Ok("21".into()));
    assert!(parse_created_id(r#"{"id":"x"}"#).is_err());
    assert!(parse_created_id("<html>").is_err());

    let users = parse_users(
        r#"{"users":[{"id":9,"user_id":"bboule","firstname":"Bruno","lastname":"BOULE","status":"OK","mail":"b@m.org","mode":"standard"},
                     {"id":"10","user_id":"Ana","status":"SPD"},
                     {"user_id":"noid"}]}"#,
    )
    .unwrap();
    assert_eq!(
        users,
        [
            ListedUser {
                id: "9".into(),
                login: "bboule".into(),
                status: "OK".into()
            },
            ListedUser {
                id: "10".into(),
                login: "Ana".into(),
                status: "SPD".into()
            },
        ]
    );
    assert!(parse_users("{}").is_err());
    assert!(parse_users("[").is_err());

    assert_eq!(
        pick_user(users.clone(), "bboule").map(|u| u.id),
        Some("9".into())
    );
    assert_eq!(
        pick_user(users.clone(), "ana").map(|u| u.id),
        Some("10".into())
    );
    assert_eq!(pick_user(users, "zoe"), None);
}

#[test]
fn a_missing_parent_entity_is_worth_another_try() {
    let reply = |status, body: &str| Reply {
        status,
        body: body.into(),
        retry_after: None,
    };
    assert!(matches!(
        entity_failure(&reply(400, r#"{"errors":"Parent entity not found"}"#)),
        Failure::Transient { .. }
    ));
    assert!(matches!(
        entity_failure(&reply(400, r#"{"errors":"Bad Request"}"#)),
        Failure::Permanent { .. }
    ));
    assert!(matches!(
        entity_failure(&reply(403, r#"{"errors":"Parent entity not found"}"#)),
        Failure::Permanent { .. }
    ));
}

#[test]
fn settled_memberships_are_told_from_refusals() {
    let reply = |status, body: &str| Reply {
        status,
        body: body.into(),
        retry_after: None,
    };
    assert!(membership_settled(&reply(
        400,
        r#"{"errors":"User is already linked to this group"}"#
    )));
    assert!(membership_settled(&reply(
        400,
        r#"{"errors":"L'utilisateur est déjà lié à ce groupe"}"#
    )));
    assert!(!membership_settled(&reply(
        400,
        r#"{"errors":"Group not found"}"#
    )));
    assert!(!membership_settled(&reply(403, r#"{"errors":"already"}"#)));
}
