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

    // Just created: the full record (a create may restore an old one) and
    // every membership.
    let steps = user_steps(&item(ActionKind::Create, true, ANA, None), &Known::Created);
    assert!(steps.put && !steps.status_ok && !steps.suspend);
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
                status: "OK".into(),
                mail: "b@m.org".into()
            },
            ListedUser {
                id: "10".into(),
                login: "Ana".into(),
                status: "SPD".into(),
                mail: String::new()
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
    assert_eq!(pick_user(users.clone(), "zoe"), None);

    // What the match rules find: logins and addresses without case.
    let ids = |field: &str, value: &str| -> Vec<String> {
        holding(&users, field, value)
            .into_iter()
            .map(|account| account.id)
            .collect()
    };
    assert_eq!(ids(LOGIN, "ANA"), ["10"]);
    assert_eq!(ids(MAIL, "B@M.org"), ["9"]);
    assert!(ids(MAIL, "").is_empty(), "no address matches none");
    assert!(ids("phone", "b@m.org").is_empty());
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        body: body.into(),
        retry_after: None,
    }
}

#[test]
fn what_maarch_said_is_read_from_its_json_escaped_errors() {
    let escaped = r#"{"errors":"L'utilisateur est d\u00e9j\u00e0 li\u00e9 \u00e0 ce groupe"}"#;
    assert_eq!(said(escaped), "L'utilisateur est déjà lié à ce groupe");
    assert_eq!(
        said(r#"{"title":"Error","errors":"Internal server error","detail":"SQLSTATE[08006]","status":500}"#),
        "Internal server error (SQLSTATE[08006])"
    );
    assert_eq!(said("<html>\n  Bad Gateway\n</html>"), "<html> Bad Gateway </html>");
    assert_eq!(said(&"x".repeat(400)).chars().count(), 301);
    assert_eq!(
        answered(&reply(400, escaped)),
        "HTTP 400 \"L'utilisateur est déjà lié à ce groupe\" (it is linked already)"
    );
    assert_eq!(
        answered(&reply(403, r#"{"errors":"Service forbidden"}"#)),
        "HTTP 403 \"Service forbidden\""
    );
    assert_eq!(answered(&reply(502, "")), "HTTP 502");
}

#[test]
fn refusals_are_told_apart_by_maarchs_words_in_either_language() {
    for (text, refusal) in [
        ("L'utilisateur est déjà lié à ce groupe", Refusal::AlreadyLinked),
        ("User is already linked to this entity", Refusal::AlreadyLinked),
        ("L'identifiant utilisateur existe déjà", Refusal::Exists),
        ("User already exists", Refusal::Exists),
        ("UserId out of perimeter", Refusal::OutOfPerimeter),
        ("User is still present in listInstances", Refusal::OpenMail),
        ("User is still present in listTemplates", Refusal::DiffusionList),
        ("Can not delete yourself", Refusal::Yourself),
        ("Service forbidden", Refusal::Forbidden),
        ("Group not found", Refusal::NotFound),
        ("Body mail is empty or not valid", Refusal::Other),
    ] {
        assert_eq!(Refusal::of(text), refusal, "{text}");
    }
}

#[test]
fn a_refusal_keeps_its_retry_class_and_says_what_to_do() {
    let failure = refused(
        "adding user ana to group X",
        &reply(400, r#"{"errors":"Group not found"}"#),
        "create it",
    );
    assert_eq!(
        failure,
        Failure::Permanent {
            reason: "adding user ana to group X: Maarch answered HTTP 400 \"Group not found\"; create it".into()
        }
    );
    assert!(matches!(
        refused("x", &reply(500, r#"{"errors":"Internal server error"}"#), "y"),
        Failure::Transient { .. }
    ));
    let reasons: Vec<String> = [
        Refusal::OpenMail,
        Refusal::DiffusionList,
        Refusal::Yourself,
        Refusal::Forbidden,
        Refusal::OutOfPerimeter,
    ]
    .into_iter()
    .map(|refusal| suspension_advice(refusal, "ana", "rest"))
    .collect();
    assert!(reasons[0].contains("open mail"), "{}", reasons[0]);
    assert!(reasons[1].contains("diffusion list"), "{}", reasons[1]);
    assert!(reasons[2].contains("logs in as"), "{}", reasons[2]);
    assert!(reasons[3].contains("root user"), "{}", reasons[3]);
    assert!(
        reasons[4].contains("outside the perimeter of the REST user rest"),
        "{}",
        reasons[4]
    );
    assert!(reasons[1..].iter().all(|r| !r.contains("open mail")));
}

#[test]
fn settled_memberships_are_told_from_refusals() {
    let linked = reply(400, r#"{"errors":"L'utilisateur est d\u00e9j\u00e0 li\u00e9 \u00e0 ce groupe"}"#);
    assert!(membership_settled(&linked, true));
    assert!(membership_settled(
        &reply(400, r#"{"errors":"User is already linked to this group"}"#),
        true
    ));
    let missing = reply(400, r#"{"errors":"Group not found"}"#);
    assert!(!membership_settled(&missing, true));
    // Removing a link to a group that no longer exists: nothing left to remove.
    assert!(membership_settled(&missing, false));
    assert!(!membership_settled(&reply(403, r#"{"errors":"already linked"}"#), true));
    assert!(!membership_settled(&reply(403, r#"{"errors":"UserId out of perimeter"}"#), true));
}

#[test]
fn logins_and_entity_ids_are_checked_as_maarch_checks_them() {
    for good in ["ana", "ana.alves@x.fr", "a_b-c", &"x".repeat(128)] {
        assert_eq!(login_problem(good), None, "{good}");
    }
    for bad in ["", "ana alves", "anaé", "a+b", &"x".repeat(129)] {
        assert!(login_problem(bad).is_some(), "{bad}");
    }
    for good in ["DG-SI", "dg_si_2", &"X".repeat(32)] {
        assert_eq!(entity_id_problem(good), None, "{good}");
    }
    for bad in ["", "DG.SI", "DG SI", &"X".repeat(33)] {
        assert!(entity_id_problem(bad).is_some(), "{bad}");
    }
}

fn entity_item(action: ActionKind, active: bool, acked: Option<&[(&str, &str)]>) -> PushItem {
    PushItem {
        acked_fields: acked.map(fields),
        target_id: acked.map(|_| "DG-SI".into()),
        ..test_user("courrier", action, active, &[("entity_label", "SI")])
    }
}

#[test]
fn entity_steps_follow_the_action() {
    let steps = |action, active, acked| entity_steps(&entity_item(action, active, acked));
    let same: &[(&str, &str)] = &[("entity_label", "SI")];
    let other: &[(&str, &str)] = &[("entity_label", "IT")];
    let expect = |write, enable| EntitySteps { write, enable };
    assert_eq!(steps(ActionKind::Create, true, None), expect(true, None));
    assert_eq!(
        steps(ActionKind::Create, false, None),
        expect(true, Some(false))
    );
    assert_eq!(steps(ActionKind::Update, true, Some(other)), expect(true, None));
    // A block alone disables; with a change the entity is sent too.
    assert_eq!(
        steps(ActionKind::Block, false, Some(same)),
        expect(false, Some(false))
    );
    assert_eq!(
        steps(ActionKind::Block, false, Some(other)),
        expect(true, Some(false))
    );
    assert_eq!(
        steps(ActionKind::Block, false, None),
        expect(false, Some(false))
    );
    assert_eq!(
        steps(ActionKind::Unblock, true, Some(same)),
        expect(true, Some(true))
    );
}

#[test]
fn an_entity_goes_back_whole_with_our_fields_over_what_maarch_holds() {
    let held = json!({
        "id": 7, "entity_id": "DG-SI", "entity_label": "IT", "short_label": "IT",
        "entity_type": "Service", "parent_entity_id": "DG", "addressTown": "Lyon",
        "email": null, "enabled": "Y", "description": "old", "users": [{"id": 1}],
        "hasChildren": false,
    });
    let held = held.as_object().unwrap();
    let ours = json!({"entity_id": "DG-SI", "entity_label": "Numérique", "short_label": "Numérique", "entity_type": "Service", "parent_entity_id": ""});
    let acked = fields(&[("entity_label", "IT"), ("description", "old")]);
    let whole = merged_entity(held, &ours, Some(&acked));
    assert_eq!(whole["entity_label"], "Numérique");
    assert_eq!(whole["parent_entity_id"], "");
    assert_eq!(whole["addressTown"], "Lyon", "kept: set by hand");
    assert_eq!(whole["description"], "", "emptied: HR gives it no more");
    assert!(whole.get("users").is_none() && whole.get("email").is_none());
}
