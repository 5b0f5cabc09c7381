//! Organisations as SCIM Groups: created, found by externalId (or
//! displayName), updated with only the attributes rostersync owns.

use reqwest::Method;
use serde_json::json;

use super::reply::{Written, error_text, failure, parse_id, permanent, single, transient, written};
use super::request::{group_patch_ops, group_resource, patch_body, segment};
use super::{Scim, WRITES, version};
use crate::connectors::PushItem;
use crate::model::ActionKind;
use crate::projection::Fields;
use crate::retry::Failure;

impl Scim {
    pub(super) async fn group(&self, item: &PushItem) -> Result<Option<String>, Failure> {
        if item.action == ActionKind::Block {
            // SCIM groups have no active state; deleting would drop memberships.
            tracing::info!(key = %item.key.key, "SCIM groups cannot be blocked: the group is left in place at the provider");
            return Ok(item.target_id.clone());
        }
        if !item.fields.contains_key("displayName") {
            return Err(permanent(
                "the organisation has no displayName (SCIM requires one): map its label",
            ));
        }
        let wire = &self.provider().await?.groups;
        let fields = wire.shape(&item.fields);
        let acked = item.acked_fields.as_ref().map(|a| wire.shape(a));
        let known = item.target_id.clone();
        let id = match (&known, item.action) {
            (Some(id), _) => Some(id.clone()),
            (None, ActionKind::Create) => None,
            (None, _) => self.find_group(item).await?,
        };
        if let Some(id) = id {
            if self.update_group(&fields, acked.as_ref(), &id).await? == Written::Done {
                return Ok(Some(id));
            }
            self.forget("/Groups", &id).await;
            if known.is_some()
                && let Some(other) = self.find_group(item).await?.filter(|o| *o != id)
            {
                return match self.update_group(&fields, acked.as_ref(), &other).await? {
                    Written::Done => Ok(Some(other)),
                    Written::Gone => Err(transient(format!(
                        "group {other} vanished from the provider while being updated"
                    ))),
                };
            }
        }
        // A provider that requires members takes a group with none.
        let members = wire.members.then(|| json!([]));
        let body = group_resource(&fields, members.as_ref(), wire);
        let reply = self.call(Method::POST, "/Groups", Some(&body)).await?;
        if reply.is_success() {
            let id = parse_id(&reply.body)
                .map_err(|reason| transient(format!("POST /Groups: {reason}")))?;
            self.index_created("/Groups", &id, &fields).await;
            return Ok(Some(id));
        }
        if reply.status != 409 {
            return Err(failure(&reply, "POST /Groups"));
        }
        let found = match self.find_group(item).await? {
            Some(id) => Some(id),
            // A provider that keeps displayName unique: the group of that name is ours.
            None => match item.fields.get("displayName") {
                Some(name) => {
                    let found = self.find("/Groups", "displayName", name, true).await?;
                    single(&found, "groups", "displayName", name)?
                }
                None => None,
            },
        };
        let Some(id) = found else {
            return Err(permanent(format!(
                "the provider refuses the group as a duplicate ({}) but holds none with its externalId or displayName",
                error_text(&reply.body).unwrap_or_else(|| "HTTP 409".into())
            )));
        };
        match self.update_group(&fields, acked.as_ref(), &id).await? {
            Written::Done => Ok(Some(id)),
            Written::Gone => Err(transient(format!(
                "group {id} vanished from the provider while being taken over"
            ))),
        }
    }

    pub(super) async fn find_group(&self, item: &PushItem) -> Result<Option<String>, Failure> {
        let Some(external_id) = item.fields.get("externalId") else {
            return Ok(None);
        };
        let found = self.find("/Groups", "externalId", external_id, false).await?;
        single(&found, "groups", "externalId", external_id)
    }

    /// PATCH (replace) of the group's attributes, its members untouched; or
    /// a PUT of it with the members it has. Read first where ETags are
    /// announced, and again on a 412.
    pub(super) async fn update_group(
        &self,
        fields: &Fields,
        acked: Option<&Fields>,
        id: &str,
    ) -> Result<Written, Failure> {
        let provider = self.provider().await?;
        let features = provider.features;
        let path = format!("/Groups/{}", segment(id));
        let patch = || patch_body(group_patch_ops(fields, acked));
        if features.patch && !features.etag {
            let reply = self.call(Method::PATCH, &path, Some(&patch())).await?;
            return written(&reply, &format!("PATCH /Groups/{id}"));
        }
        for _ in 0..WRITES {
            let Some(current) = self.read(&path, "group").await? else {
                return Ok(Written::Gone);
            };
            let if_match = version(&current).filter(|_| features.etag);
            let (method, body) = if features.patch {
                (Method::PATCH, patch())
            } else {
                // A PUT replaces the whole group: keep the members it has.
                let members = current.get("members").cloned();
                let members = members.or_else(|| provider.groups.members.then(|| json!([])));
                (Method::PUT, group_resource(fields, members.as_ref(), &provider.groups))
            };
            let what = format!("{method} /Groups/{id}");
            let reply = self.call_if(method, &path, Some(&body), if_match.as_deref()).await?;
            if reply.status != 412 {
                return written(&reply, &what);
            }
        }
        Err(transient(format!(
            "/Groups/{id}: the group changed at the provider between each of {WRITES} reads and writes"
        )))
    }
}
