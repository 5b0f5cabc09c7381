//! Users: found (by the id the provider gave, or adopted by the `match`
//! rules), created, updated with only what rostersync owns (PATCH, or PUT
//! of the provider's resource with our changes merged in, If-Match where
//! it has versions), with their manager looked up once.

use reqwest::Method;
use serde_json::{Map, Value};

use super::reply::{
    Written, error_text, external_id, failure, no_target, parse_id, permanent, single, transient,
    written,
};
use super::request::{
    manager_changed, merged_user, patch_body, segment, user_patch_ops, user_resource, view,
};
use super::{Base, Ended, Memory, Pushed, Scim, WRITES, Want, lookup, version};
use crate::connectors::PushItem;
use crate::connectors::adopt::{self, Adoption, Found, Holders};
use crate::model::ActionKind;
use crate::retry::Failure;

impl Scim {
    /// Makes the provider hold the user (its provider id when it has one),
    /// adopting the one it holds already when the `match` rules find it.
    pub(super) async fn user(&self, item: &PushItem, holders: &dyn Holders) -> Result<Pushed, Failure> {
        if item.action == ActionKind::Delete {
            return self.delete_user(item).await;
        }
        if item.action != ActionKind::Block && !item.fields.contains_key("userName") {
            return Err(permanent(
                "the user has no userName (SCIM requires one): map the login, or give it in the file",
            ));
        }
        let provider = self.provider().await?;
        if provider.users.no_active && !item.active {
            return Err(permanent(
                "the provider's User schema has no `active`: it cannot hold a blocked user; block it there by hand",
            ));
        }
        let want = Want {
            item,
            fields: provider.users.shape(&item.fields),
            acked: item.acked_fields.as_ref().map(|a| provider.users.shape(a)),
        };
        if let Some(id) = &item.target_id {
            if self.update_user(&want, id, true).await? == Written::Done {
                return Ok(Pushed::Held(Some(id.clone())));
            }
            // 404 on a known id: removed, or recreated under another id,
            // found again as a record without an id is.
            self.forget("/Users", id).await;
        }
        // A new record, a lost acknowledgement, or a user made at the provider.
        match self.adopt(item, holders).await? {
            Adoption::Adopt(account) => {
                tracing::info!(key = %item.key.key, id = %account.id, "the provider holds the user already: adopting it");
                match self.update_user(&want, &account.id, false).await? {
                    Written::Done => Ok(Pushed::Held(Some(account.id))),
                    Written::Gone => Err(transient(format!(
                        "user {} vanished from the provider while being adopted",
                        account.id
                    ))),
                }
            }
            Adoption::Ambiguous(candidates) => Ok(Pushed::Ambiguous(candidates)),
            Adoption::Refused(reason) => Err(permanent(reason)),
            Adoption::Create if item.action == ActionKind::Block => {
                tracing::info!(key = %item.key.key, "blocking a user the provider does not hold: nothing to send");
                Ok(Pushed::Held(None))
            }
            Adoption::Create => self
                .create_user(&want, holders)
                .await
                .map(|id| Pushed::Held(Some(id))),
        }
    }

    /// What the target's `match` rules find at the provider for the user.
    pub(super) async fn adopt(&self, item: &PushItem, holders: &dyn Holders) -> Result<Adoption, Failure> {
        let mut found = Found::default();
        for rule in &self.rules {
            let Some(value) = item.fields.get(&rule.target_field).filter(|v| !v.is_empty()) else {
                continue;
            };
            let Some(attribute) = lookup::filter_attribute(&rule.target_field) else {
                continue;
            };
            let listed = self.find("/Users", &attribute, value, false).await?;
            found.add(
                rule.field,
                listed
                    .iter()
                    .filter(|resource| lookup::answers(resource, &rule.target_field, value))
                    .filter_map(lookup::account),
            );
        }
        if found.is_empty() {
            return Ok(Adoption::Create);
        }
        let mine = item.fields.get("externalId").map(String::as_str);
        adopt::decide(&item.key, mine, found, holders).await
    }

    pub(super) async fn create_user(&self, want: &Want<'_>, holders: &dyn Holders) -> Result<String, Failure> {
        let item = want.item;
        let wire = &self.provider().await?.users;
        let manager = self.manager_id(item, true).await?;
        let body = user_resource(&want.fields, item.active, manager.as_deref(), wire);
        let reply = self.call(Method::POST, "/Users", Some(&body)).await?;
        if reply.is_success() {
            let id = parse_id(&reply.body).map_err(|reason| {
                // Created, but without a readable id: a replay gets a 409 and adopts it.
                transient(format!("POST /Users: {reason}"))
            })?;
            self.index_created("/Users", &id, &want.fields).await;
            // Made for this record: no other record of the drain takes it.
            if let Ok(Some(other)) = holders.claim(&item.key, &id).await {
                tracing::warn!(key = %item.key.key, %id, %other, "the provider gave a new user the id of another record's");
            }
            return Ok(id);
        }
        if reply.status != 409 {
            return Err(failure(&reply, "POST /Users"));
        }
        // The user exists: a replayed create, or one made at the provider.
        let said = || error_text(&reply.body).unwrap_or_else(|| "HTTP 409".into());
        let Some(id) = self.find_user(item, true).await? else {
            return Err(permanent(format!(
                "the provider refuses the user as a duplicate ({}) but holds no user with its externalId or userName",
                said()
            )));
        };
        let held = holders.claim(&item.key, &id).await;
        if let Some(other) = held.map_err(transient)? {
            return Err(permanent(format!(
                "the provider refuses the user as a duplicate ({}): its user {id} with that \
                 externalId or userName is {other}'s: free the login there or correct it in the \
                 file, then run `rostersync retry`",
                said()
            )));
        }
        tracing::info!(key = %item.key.key, %id, "the user exists at the provider: updating it");
        match self.update_user(want, &id, false).await? {
            Written::Done => Ok(id),
            Written::Gone => Err(transient(format!(
                "user {id} vanished from the provider while being taken over"
            ))),
        }
    }

    /// Brings the user at `id` to the desired state. With `known` (the id
    /// the provider confirmed) and PATCH without ETags: a PATCH of the
    /// differences from what was confirmed, one request. Otherwise the user
    /// is read first, and the write (PATCH of the differences from what it
    /// holds, else PUT of it with our fields merged in) carries `If-Match`
    /// where the provider announces ETags. A 412 (changed since read) reads
    /// it again; a PATCH whose value filter finds nothing (`noTarget`: the
    /// provider lost a value we set) is computed again from a read.
    pub(super) async fn update_user(&self, want: &Want<'_>, id: &str, known: bool) -> Result<Written, Failure> {
        let provider = self.provider().await?;
        let features = provider.features;
        let wire = &provider.users;
        let item = want.item;
        let path = format!("/Users/{}", segment(id));
        let mut base = match &want.acked {
            Some(acked) if known && features.patch && !features.etag => Base::Acked(acked),
            _ => Base::Unread,
        };
        for _ in 0..WRITES {
            if matches!(base, Base::Unread) {
                match self.read(&path, "user").await? {
                    Some(current) => base = Base::Read(current),
                    None => return Ok(Written::Gone),
                }
            }
            let (method, body, if_match) = match &base {
                Base::Acked(acked) => {
                    let needed = manager_changed(&want.fields, acked);
                    let manager = self.manager_id(item, needed).await?;
                    let ops = user_patch_ops(&want.fields, acked, item.active, manager.as_deref(), wire);
                    (Method::PATCH, patch_body(ops), None)
                }
                Base::Read(current) => {
                    let manager = self.manager_id(item, true).await?;
                    let if_match = version(current).filter(|_| features.etag);
                    let body = if features.patch {
                        let mut desired = want.fields.clone();
                        if let Some(id) = &manager {
                            // The provider holds the manager's id: compare ids.
                            desired.insert("manager".into(), id.clone());
                        }
                        let held = view(current, &provider.owned);
                        patch_body(user_patch_ops(&desired, &held, item.active, manager.as_deref(), wire))
                    } else {
                        merged_user(current, &want.fields, &provider.owned, item.active, manager.as_deref(), wire)
                    };
                    let method = if features.patch { Method::PATCH } else { Method::PUT };
                    (method, body, if_match)
                }
                Base::Unread => continue,
            };
            let what = format!("{method} /Users/{id}");
            let reply = self.call_if(method, &path, Some(&body), if_match.as_deref()).await?;
            match reply.status {
                412 => {
                    tracing::info!(key = %item.key.key, %id, "the user changed at the provider since it was read: reading it again");
                    base = Base::Unread;
                }
                400 if matches!(base, Base::Acked(_)) && no_target(&reply.body) => {
                    tracing::info!(key = %item.key.key, %id, "the provider lost a value rostersync set: reading the user");
                    base = Base::Unread;
                }
                _ => return written(&reply, &what),
            }
        }
        Err(transient(format!(
            "/Users/{id}: the user changed at the provider between each of {WRITES} reads and writes"
        )))
    }

    /// The resource at `path` as the provider holds it; `None` on a 404.
    pub(super) async fn read(&self, path: &str, what: &str) -> Result<Option<Map<String, Value>>, Failure> {
        let reply = self.call(Method::GET, path, None).await?;
        if reply.status == 404 {
            return Ok(None);
        }
        if !reply.is_success() {
            return Err(failure(&reply, &format!("GET {path}")));
        }
        match serde_json::from_str(&reply.body) {
            Ok(Value::Object(resource)) => Ok(Some(resource)),
            _ => Err(transient(format!("GET {path}: the reply is not a {what}"))),
        }
    }

    /// The provider's id of the user: by externalId, else by userName (when
    /// the resource found has no externalId of another person). `fresh`:
    /// the provider said it holds the user (a 409).
    pub(super) async fn find_user(&self, item: &PushItem, fresh: bool) -> Result<Option<String>, Failure> {
        if let Some(external_id) = item.fields.get("externalId") {
            let found = self.find("/Users", "externalId", external_id, false).await?;
            if let Some(id) = single(&found, "users", "externalId", external_id)? {
                return Ok(Some(id));
            }
        }
        let Some(user_name) = item.fields.get("userName") else {
            return Ok(None);
        };
        let found = self.find("/Users", "userName", user_name, fresh).await?;
        let Some(id) = single(&found, "users", "userName", user_name)? else {
            return Ok(None);
        };
        let holder = found
            .first()
            .and_then(|r| r.get("externalId"))
            .and_then(Value::as_str)
            .unwrap_or("");
        match item.fields.get("externalId") {
            Some(mine) if !holder.is_empty() && holder != mine => Err(permanent(format!(
                "userName {user_name:?} is held at the provider by another person (externalId {holder:?}): \
                 free it there or fix the login"
            ))),
            _ => Ok(Some(id)),
        }
    }

    /// The provider's id of the user's manager, when the user has one, the
    /// provider takes it and `needed` (the request carries it). Found once,
    /// then remembered.
    pub(super) async fn manager_id(&self, item: &PushItem, needed: bool) -> Result<Option<String>, Failure> {
        if !self.provider().await?.users.shape(&item.fields).contains_key("manager") {
            return Ok(None);
        }
        let Some(manager) = item.fields.get("manager").filter(|_| needed) else {
            return Ok(None);
        };
        let known = || self.lock().ids.get(manager).cloned();
        if let Some(id) = known() {
            return Ok(Some(id));
        }
        let _one_at_a_time = self.state.manager_lookup.lock().await;
        if let Some(id) = known() {
            return Ok(Some(id));
        }
        let found = self.find("/Users", "externalId", manager, false).await?;
        if let Some(id) = single(&found, "users", "externalId", manager)? {
            self.lock().ids.insert(manager.clone(), id.clone());
            return Ok(Some(id));
        }
        let me = external_id(item);
        let mut memory = self.lock();
        let reason = match memory.last.get(manager) {
            Some(Ended::Permanent) => {
                return Err(permanent(format!(
                    "manager {manager:?} is not at the provider: its own record was refused"
                )));
            }
            Some(Ended::Acked) => {
                return Err(permanent(format!(
                    "manager {manager:?} is not at the provider (blocked while absent from it)"
                )));
            }
            Some(Ended::Transient) => {
                format!("manager {manager:?} is not at the provider yet (being sent)")
            }
            None if memory.waited.get(&me).is_some_and(|m| m == manager) => {
                memory.waited.remove(&me);
                return Err(permanent(format!(
                    "manager {manager:?} is neither at the provider nor among the records sent: \
                     create it there or fix the file"
                )));
            }
            None => {
                memory.waited.insert(me, manager.clone());
                format!(
                    "manager {manager:?} is not at the provider yet: tried again after the other records"
                )
            }
        };
        Err(transient(reason))
    }

    pub(super) fn remember(&self, item: &PushItem, result: &Result<Pushed, Failure>) {
        let me = external_id(item);
        let mut memory = self.lock();
        let ended = match result {
            Ok(Pushed::Held(id)) => {
                match id {
                    Some(id) => memory.ids.insert(me.clone(), id.clone()),
                    None => memory.ids.remove(&me),
                };
                Ended::Acked
            }
            // Not at the provider, and waiting for a person: as refused.
            Ok(Pushed::Ambiguous(_)) => Ended::Permanent,
            Err(Failure::Transient { .. }) => Ended::Transient,
            Err(Failure::Permanent { .. }) => Ended::Permanent,
        };
        if ended != Ended::Transient {
            memory.waited.remove(&me);
        }
        memory.last.insert(me, ended);
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        // The memory holds no invariant a panic could break halfway.
        self.state
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
