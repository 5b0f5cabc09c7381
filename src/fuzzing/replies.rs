//! A server's reply ([`super::reply`]) through each connector's reading
//! of it: every parser and verdict of the kind is given the same reply, as
//! any of its requests could get it.

use serde_json::{Map, Value, json};

use crate::connectors::http::Reply;
use crate::connectors::{Outcome, PushItem, Verdict};
use crate::connectors::{collaborator as collab, gestimum as gest, maarch as mrch};
use crate::connectors::{pleasanter as plsn, scim as scm};
use crate::ingest::record::RecordKind;
use crate::model::{ActionKind, RecordKey};
use crate::projection::{Fields, ProjectionHash};

use super::{Broken, reply};

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn user(key: &str, active: bool, pairs: &[(&str, &str)]) -> PushItem {
    PushItem {
        key: RecordKey {
            target: "t".into(),
            kind: RecordKind::Users,
            key: key.into(),
        },
        action: ActionKind::Update,
        active,
        fields: fields(pairs),
        hash: ProjectionHash([0; 16]),
        acked_fields: None,
        target_id: None,
    }
}

fn acks(verdict: &Verdict) -> bool {
    matches!(
        verdict,
        Verdict::All(Outcome::Acked { .. }) | Verdict::Halt(Outcome::Acked { .. }, _)
    )
}

/// An error reply never acknowledges a record.
fn not_acked_on_error(reply: &Reply, acked: bool, what: &str) -> Result<(), Broken> {
    if acked && !reply.is_success() {
        return Err(format!("{what}: HTTP {} acknowledged", reply.status));
    }
    Ok(())
}

/// Collaborator: the counts of a batch or single import, its refusals.
pub fn collaborator(data: &[u8]) -> Result<(), Broken> {
    let reply = reply(data);
    let _ = collab::parse_counts(&reply.body);
    let _ = reply.failure();
    let batch = [
        user("E1", true, &[("uid", "E1"), ("login", "ana")]),
        user("E2", true, &[("uid", "E2"), ("login", "bo")]),
        user("E3", false, &[("uid", "E3"), ("login", "cy")]),
    ];
    let sent: Vec<&PushItem> = batch.iter().collect();
    for part in [&sent[..], &sent[..1], &sent[2..]] {
        let verdict = collab::batch_verdict(part, &reply, "lms");
        not_acked_on_error(&reply, acks(&verdict), "batch")?;
    }
    let verdict = collab::single_verdict(&batch[2], &reply, "lms");
    not_acked_on_error(&reply, acks(&verdict), "single")
}

/// Gestimum: an import's reply, its counts and journal.
pub fn gestimum(data: &[u8]) -> Result<(), Broken> {
    let reply = reply(data);
    let _ = reply.failure();
    let Ok(parsed) = gest::parse_reply(&reply.body) else {
        return Ok(());
    };
    for line in &parsed.journal {
        let _ = gest::is_routine(line);
    }
    let _ = gest::journal_details(&parsed.journal);
    let _ = parsed.refusal();
    for sent in [1, 3] {
        let consistent = gest::check_counts(sent, &parsed) == gest::CountCheck::Consistent;
        if consistent && parsed.not_imported.unwrap_or(0) > 0 {
            return Err(format!("{sent} line(s) all imported, yet {parsed:?}"));
        }
    }
    Ok(())
}

/// Pleasanter: user pages, an import's message and status (outer and in
/// its body), the probe of `check --online`, a refused rename.
pub fn pleasanter(data: &[u8]) -> Result<(), Broken> {
    let reply = reply(data);
    let _ = plsn::parse_users_page(&reply.body);
    let _ = plsn::parse_message(&reply.body);
    for sent in [1, 3] {
        let acked = matches!(
            plsn::judge_import(&reply, sent),
            plsn::ImportVerdict::All(Outcome::Acked { .. })
        );
        not_acked_on_error(&reply, acked, "import")?;
    }
    for language in [plsn::Language::English, plsn::Language::Japanese] {
        let _ = plsn::judge_probe(&reply, language);
    }
    let _ = plsn::rename_refusal(&reply, "ana", "ana.roy");
    Ok(())
}

/// Maarch: created ids, the user list and the adoption over it, an
/// entity merged with ours, what a refusal said and meant.
pub fn maarch(data: &[u8]) -> Result<(), Broken> {
    let reply = reply(data);
    let body = &reply.body;
    let _ = mrch::parse_created_id(body);
    if let Ok(users) = mrch::parse_users(body) {
        let _ = mrch::pick_user(users.clone(), "ana");
        let _ = mrch::holding(&users, mrch::LOGIN, "Ana");
        let _ = mrch::holding(&users, mrch::MAIL, "ana@example.org");
    }
    if let Ok(entity) = mrch::parse_entity(body) {
        let ours = json!({"entity_label": "Achats", "short_label": "ACH"});
        let acked = fields(&[("entity_label", "Achat"), ("email", "achats@example.org")]);
        let _ = mrch::merged_entity(&entity, &ours, Some(&acked));
    }
    let said = mrch::said(body);
    if said.chars().count() > 301 || said.contains('\n') {
        return Err(format!("said more than one short line: {said:?}"));
    }
    let refusal = mrch::Refusal::of(&said);
    let _ = mrch::suspension_advice(refusal, "ana", "rest");
    let _ = mrch::answered(&reply);
    let _ = mrch::refused(
        "updating user ana",
        &reply,
        &mrch::advice(reply.status, "rest"),
    );
    for add in [true, false] {
        if mrch::membership_settled(&reply, add) && reply.status != 400 {
            return Err(format!("a link settled by HTTP {}", reply.status));
        }
    }
    Ok(())
}

/// Target fields of every kind SCIM places (simple, sub-attribute, typed
/// value, enterprise, manager, another extension).
const SCIM_MAPPED: [&str; 10] = [
    "userName",
    "externalId",
    "displayName",
    "name.givenName",
    "name.familyName",
    "emails.work",
    "phoneNumbers.mobile",
    "department",
    "manager",
    "urn:example:params:scim:schemas:extension:badge:2.0:User:badge",
];

/// SCIM: failures and errors, the discovery documents and the schema
/// trimming they drive, list pages and the index and lookups over them,
/// a created id, a resource read and the PATCH or PUT made from it.
pub fn scim(data: &[u8]) -> Result<(), Broken> {
    let reply = reply(data);
    let body = &reply.body;
    let _ = scm::failure(&reply, "GET /Users");
    let _ = scm::written(&reply, "PUT /Users/1");
    let _ = scm::refused_token(&reply, "GET /ServiceProviderConfig");
    let _ = (
        scm::error_text(body),
        scm::no_target(body),
        scm::parse_id(body),
    );
    let _ = scm::parse_features(body);
    let mapped: Vec<String> = SCIM_MAPPED.iter().map(|f| f.to_string()).collect();
    let desired = fields(&[
        ("userName", "ana"),
        ("externalId", "E1"),
        ("name.givenName", "Ana"),
        ("emails.work", "ana@example.org"),
        ("manager", "E2"),
    ]);
    let mut wires = vec![scm::Wire::default()];
    if let Ok(resources) = scm::parse_resources(body) {
        for core in [scm::USER_SCHEMA, scm::GROUP_SCHEMA] {
            for types in [None, Some(&resources[..])] {
                if let Some(schema) = scm::ResourceSchema::of(&resources, types, core) {
                    wires.push(schema.wire(&mapped));
                }
            }
        }
    }
    for wire in &wires {
        let shaped = wire.shape(&desired);
        let _ = scm::user_resource(&shaped, true, Some("m1"), wire);
        let _ = scm::group_resource(&shaped, None, wire);
    }
    if let Ok(page) = scm::parse_list(body) {
        list_page(&page)?;
    }
    if let Ok(Value::Object(resource)) = serde_json::from_str::<Value>(body) {
        for wire in &wires {
            resource_read(&resource, &desired, &mapped, wire)?;
        }
    }
    Ok(())
}

/// A ListResponse page: the next page asked for, the index of a provider
/// without filters, the lookups adoption makes.
fn list_page(page: &scm::ListPage) -> Result<(), Broken> {
    let got = page.resources.len() as u64;
    for seen in [0, got, page.total.saturating_sub(got)] {
        // The next page starts after this one: the scan moves on.
        if let Some(next) = scm::next_start(page, seen)
            && next <= page.start
        {
            return Err(format!(
                "after the page at {}, the page at {next}",
                page.start
            ));
        }
    }
    let mut index = scm::Index::new("userName");
    for resource in &page.resources {
        index.add(resource);
        let _ = scm::lookup::account(resource);
        for (field, value) in [
            ("emails.work", "Ana@Example.org"),
            ("userName", "ANA"),
            ("department", "Sales"),
            ("externalId", "E1"),
        ] {
            let _ = scm::lookup::answers(resource, field, value);
        }
    }
    for (attribute, value) in [
        ("externalId", "E1"),
        ("userName", "ana"),
        ("emails.value", "ana@example.org"),
        ("title", "Boss"),
    ] {
        let found = index.find(attribute, value);
        let _ = scm::single(&found, "users", attribute, value);
    }
    let _ = scm::single(&page.resources, "users", "userName", "ana");
    if let Some(first) = page.resources.first().and_then(|r| r.get("id")?.as_str()) {
        index.forget(first);
    }
    Ok(())
}

/// A user as read from the provider: what it holds of ours, and the PATCH
/// and PUT made from it (the PUT lists its core schema).
fn resource_read(
    resource: &Map<String, Value>,
    desired: &Fields,
    mapped: &[String],
    wire: &scm::Wire,
) -> Result<(), Broken> {
    let owned = wire.owned(mapped);
    let held = scm::view(resource, &owned);
    let _ = scm::user_patch_ops(desired, &held, false, Some("m1"), wire);
    let put = scm::merged_user(resource, desired, &owned, true, Some("m1"), wire);
    // Attribute names and schema URNs compare without case (RFC 7643 §2.1).
    let lists_core = put
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("schemas")))
        .and_then(|(_, schemas)| schemas.as_array())
        .is_some_and(|schemas| {
            schemas
                .iter()
                .filter_map(Value::as_str)
                .any(|s| s.eq_ignore_ascii_case(scm::USER_SCHEMA))
        });
    if !lists_core {
        return Err(format!("a PUT without its core schema: {put}"));
    }
    Ok(())
}
