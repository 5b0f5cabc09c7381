//! What the rules' findings come to, with holders given by hand.

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;

/// Accounts held by other records, and what was claimed.
#[derive(Default)]
struct Held {
    by: HashMap<String, String>,
    claimed: Mutex<Vec<String>>,
    /// Taken by another record between the question and the claim.
    raced: Vec<String>,
}

impl Holders for Held {
    fn holder<'a>(
        &'a self,
        _: &'a RecordKey,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move { Ok(self.by.get(id).cloned()) })
    }

    fn claim<'a>(
        &'a self,
        _: &'a RecordKey,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            if self.raced.iter().any(|r| r == id) {
                return Ok(Some("E9".into()));
            }
            self.claimed.lock().unwrap().push(id.to_string());
            Ok(self.by.get(id).cloned())
        })
    }

    fn drain(&self) -> u64 {
        1
    }
}

fn me() -> RecordKey {
    RecordKey {
        target: "idp".into(),
        kind: RecordKind::Users,
        key: "E1".into(),
    }
}

fn account(id: &str, login: &str, ext_id: Option<&str>) -> Account {
    Account {
        id: id.into(),
        login: login.into(),
        ext_id: ext_id.map(str::to_string),
    }
}

fn found(rules: &[(Field, Vec<Account>)]) -> Found {
    let mut found = Found::default();
    for (rule, accounts) in rules {
        found.add(*rule, accounts.clone());
    }
    found
}

async fn decided(rules: &[(Field, Vec<Account>)], held: &Held) -> Adoption {
    decide(&me(), Some("E1"), found(rules), held).await.unwrap()
}

#[tokio::test]
async fn one_account_found_by_every_rule_is_adopted_and_claimed() {
    let held = Held::default();
    let ana = account("u-1", "ana", None);
    let adoption = decided(
        &[
            (Field::ExtId, vec![]),
            (Field::Login, vec![ana.clone()]),
            (Field::Email, vec![ana.clone()]),
        ],
        &held,
    )
    .await;
    assert_eq!(adoption, Adoption::Adopt(ana));
    assert_eq!(*held.claimed.lock().unwrap(), ["u-1"]);
    assert_eq!(
        decided(&[(Field::Login, vec![])], &held).await,
        Adoption::Create
    );
}

#[tokio::test]
async fn several_accounts_are_ambiguous_and_none_is_claimed() {
    let held = Held::default();
    // Rules pointing to different accounts.
    let adoption = decided(
        &[
            (Field::Login, vec![account("u-1", "ana", None)]),
            (Field::Email, vec![account("u-2", "a.alves", None)]),
        ],
        &held,
    )
    .await;
    let Adoption::Ambiguous(candidates) = adoption else {
        panic!("{adoption:?}");
    };
    let shown: Vec<(&str, &str, Vec<String>)> = candidates
        .iter()
        .map(|c| (c.id.as_str(), c.login.as_str(), c.matched_by.clone()))
        .collect();
    assert_eq!(
        shown,
        [
            ("u-1", "ana", vec!["login".to_string()]),
            ("u-2", "a.alves", vec!["email".to_string()])
        ]
    );
    // One rule finding two.
    let two = vec![account("u-1", "ana", None), account("u-2", "a.alves", None)];
    assert!(matches!(
        decided(&[(Field::Email, two)], &held).await,
        Adoption::Ambiguous(c) if c.len() == 2
    ));
    assert!(held.claimed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_account_someone_else_holds_is_never_taken() {
    let held = Held {
        by: HashMap::from([("u-2".to_string(), "E2".to_string())]),
        ..Held::default()
    };
    // Found by e-mail only, held by E2: left out, the record is created.
    let adoption = decided(&[(Field::Email, vec![account("u-2", "ben", None)])], &held).await;
    assert_eq!(adoption, Adoption::Create);
    // Beside a free one: the free one is the only candidate.
    let adoption = decided(
        &[
            (Field::Login, vec![account("u-1", "ana", None)]),
            (Field::Email, vec![account("u-2", "ben", None)]),
        ],
        &held,
    )
    .await;
    assert_eq!(adoption, Adoption::Adopt(account("u-1", "ana", None)));
    // Holding the login the record would be created with: parked.
    let adoption = decided(&[(Field::Login, vec![account("u-2", "ana", None)])], &held).await;
    let Adoption::Refused(reason) = adoption else {
        panic!("{adoption:?}");
    };
    assert!(
        reason.starts_with(
            "login \"ana\" is held at the target by account u-2, which is not this person's (held by E2)"
        ),
        "{reason}"
    );
    // An account carrying another person's external id is someone else's.
    let adoption = decided(
        &[(Field::Login, vec![account("u-3", "ana", Some("X99"))])],
        &held,
    )
    .await;
    assert!(
        matches!(&adoption, Adoption::Refused(r) if r.contains("the external id \"X99\" of another person")),
        "{adoption:?}"
    );
    // Its own external id (a lost acknowledgement): its own account.
    let adoption = decided(
        &[(Field::ExtId, vec![account("u-4", "ana", Some("E1"))])],
        &held,
    )
    .await;
    assert_eq!(adoption, Adoption::Adopt(account("u-4", "ana", Some("E1"))));
}

#[tokio::test]
async fn an_account_claimed_alongside_meanwhile_is_not_taken_twice() {
    let held = Held {
        raced: vec!["u-1".into()],
        ..Held::default()
    };
    let adoption = decided(&[(Field::Email, vec![account("u-1", "ana", None)])], &held).await;
    assert_eq!(adoption, Adoption::Create);
    let adoption = decided(&[(Field::Login, vec![account("u-1", "ana", None)])], &held).await;
    assert!(matches!(adoption, Adoption::Refused(r) if r.contains("(held by E9)")));
}

fn target_with(matching: &str) -> TargetConfig {
    let text = format!(
        "[[source]]\nname = \"hr\"\nkind = \"users\"\ninbox = \"in\"\ntargets = [\"t\"]\n\
         [[target]]\nname = \"t\"\nkind = \"scripted\"\n{matching}\n"
    );
    let mut config = crate::config::parse(
        &text,
        std::path::Path::new("."),
        crate::config::CheckLevel::SourcesOnly,
    )
    .unwrap_or_else(|problems| panic!("{problems:?}"));
    config.targets.remove(0)
}

#[test]
fn the_rules_are_those_of_match_the_kind_and_the_mapping_can_apply_in_order() {
    let projector = Projector::new(
        crate::projection::DefaultFields::known(
            &[("userName", Field::Login), ("mail", Field::Email)],
            &[],
        ),
        &Default::default(),
    );
    let takes = [Field::ExtId, Field::Login, Field::Email];
    let applied = |matching: &str| -> Vec<(Field, String)> {
        rules(&target_with(matching), &projector, &takes)
            .into_iter()
            .map(|rule| (rule.field, rule.target_field))
            .collect()
    };
    // The default: ext_id is not mapped here.
    assert_eq!(
        applied(""),
        [
            (Field::Login, "userName".to_string()),
            (Field::Email, "mail".to_string())
        ]
    );
    assert_eq!(
        applied("match = [\"email\", \"login\"]"),
        [
            (Field::Email, "mail".to_string()),
            (Field::Login, "userName".to_string())
        ]
    );
    assert_eq!(applied("match = []"), []);
    let only_login = rules(&target_with(""), &projector, &[Field::Login]);
    assert_eq!(only_login.len(), 1);
}
