//! Organisations as Maarch entities, keyed by `entity_id` (the target id):
//! `POST /rest/entities` creates one (an unknown parent is accepted, left
//! dangling: parents go first by the push's own order); `PUT
//! /rest/entities/{id}` replaces it whole and erases every field it is not
//! sent, so the entity is read first (`GET /rest/entities/{id}/details`)
//! and sent back with our fields over it; `PUT /rest/entities/{id}/status`
//! disables (block) or enables (unblock) it and every entity below it.
//! `short_label` defaults to the label and `entity_type` to `Service` (both
//! can be mapped in `[target.fields]`); an entity id Maarch would refuse is
//! parked before any request.

use serde_json::{Value, json};

use crate::retry::Failure;

use super::{
    ENTITY_ID, ENTITY_LABEL, Maarch, PushItem, Refusal, advice, entity_body, entity_id_problem,
    entity_steps, merged_entity, parse_entity, refused, said, transient,
};

impl Maarch {
    pub(super) async fn sync_entity(&self, item: &PushItem) -> Result<String, Failure> {
        let id = item
            .fields
            .get(ENTITY_ID)
            .cloned()
            .unwrap_or_else(|| item.key.key.clone());
        if let Some(reason) = entity_id_problem(&id) {
            return Err(Failure::Permanent { reason });
        }
        if !item.fields.contains_key(ENTITY_LABEL) {
            return Err(Failure::Permanent {
                reason: "Maarch needs an entity label".into(),
            });
        }
        let steps = entity_steps(item);
        if steps.write {
            self.write_entity(item, &id).await?;
        }
        if let Some(enable) = steps.enable {
            self.entity_status(&id, enable).await?;
        }
        Ok(id)
    }

    /// Creates the entity, or sends it whole when Maarch holds it (made by
    /// hand, or a create replayed); creates it again when it was deleted.
    async fn write_entity(&self, item: &PushItem, id: &str) -> Result<(), Failure> {
        let body = entity_body(&item.fields, id);
        let new = item.target_id.is_none();
        if new && self.create_entity(id, &body).await? {
            return Ok(());
        }
        match self.read_entity(id).await? {
            Some(held) => {
                let whole = merged_entity(&held, &body, item.acked_fields.as_ref());
                self.put_entity(id, &whole).await
            }
            None if !new && self.create_entity(id, &body).await? => Ok(()),
            None => Err(transient(format!(
                "updating entity {id}: Maarch says it holds the entity but does not show it; rostersync tries again"
            ))),
        }
    }

    /// `true` when created, `false` when Maarch holds that id already.
    async fn create_entity(&self, id: &str, body: &Value) -> Result<bool, Failure> {
        let doing = format!("creating entity {id}");
        let request = self.http.client().post(self.url(&["rest", "entities"]));
        let reply = self.send(request.json(body), &doing).await?;
        match Refusal::of(&said(&reply.body)) {
            _ if reply.is_success() => Ok(true),
            Refusal::Exists if reply.status == 400 => Ok(false),
            _ => Err(self.entity_refusal(&doing, id, &reply)),
        }
    }

    /// The entity as Maarch holds it, `None` when it holds none of that id.
    async fn read_entity(
        &self,
        id: &str,
    ) -> Result<Option<serde_json::Map<String, Value>>, Failure> {
        let doing = format!("reading entity {id}");
        let request = self
            .http
            .client()
            .get(self.url(&["rest", "entities", id, "details"]));
        let reply = self.send(request, &doing).await?;
        if reply.is_success() {
            let entity = parse_entity(&reply.body)
                .map_err(|reason| transient(format!("{doing}: {reason}")))?;
            return Ok(Some(entity));
        }
        match Refusal::of(&said(&reply.body)) {
            Refusal::NotFound if reply.status == 400 => Ok(None),
            _ => Err(self.entity_refusal(&doing, id, &reply)),
        }
    }

    async fn put_entity(&self, id: &str, body: &Value) -> Result<(), Failure> {
        let doing = format!("updating entity {id}");
        let request = self.http.client().put(self.url(&["rest", "entities", id]));
        let reply = self.send(request.json(body), &doing).await?;
        if reply.is_success() {
            Ok(())
        } else {
            Err(self.entity_refusal(&doing, id, &reply))
        }
    }

    async fn entity_status(&self, id: &str, enable: bool) -> Result<(), Failure> {
        let (method, doing) = if enable {
            ("enable", format!("enabling entity {id}"))
        } else {
            ("disable", format!("disabling entity {id}"))
        };
        let request = self
            .http
            .client()
            .put(self.url(&["rest", "entities", id, "status"]))
            .json(&json!({ "method": method }));
        let reply = self.send(request, &doing).await?;
        match Refusal::of(&said(&reply.body)) {
            _ if reply.is_success() => Ok(()),
            // Nothing in Maarch to disable: it is as disabled as it gets.
            Refusal::NotFound if !enable && reply.status == 400 => Ok(()),
            _ => Err(self.entity_refusal(&doing, id, &reply)),
        }
    }

    fn entity_refusal(&self, doing: &str, id: &str, reply: &super::Reply) -> Failure {
        let advice = match Refusal::of(&said(&reply.body)) {
            Refusal::OutOfPerimeter => format!(
                "entity {id} is outside the perimeter of the REST user {user}, which manages only its own entities and those below them: give {user} an entity above {id} in Maarch, or make it root, then run `rostersync retry`",
                user = self.user
            ),
            Refusal::Forbidden => format!(
                "the Maarch user {} lacks the right to manage entities: give it that right in Maarch, then run `rostersync retry`",
                self.user
            ),
            _ => advice(reply.status, &self.user),
        };
        refused(doing, reply, &advice)
    }
}
