//! Deleting a user (`delete_after`): `DELETE /Users/{id}` (RFC 7644
//! §3.6), the id the provider gave, or the one its `externalId` finds. A
//! provider that no longer holds the user (404, or nothing found) has done
//! what was asked: the delete is confirmed.

use reqwest::Method;

use super::reply::{external_id, failure};
use super::request::segment;
use super::{Pushed, Scim, lookup};
use crate::connectors::PushItem;
use crate::retry::Failure;

impl Scim {
    pub(super) async fn delete_user(&self, item: &PushItem) -> Result<Pushed, Failure> {
        let id = match &item.target_id {
            Some(id) => Some(id.clone()),
            None => {
                let ext_id = external_id(item);
                self.find("/Users", "externalId", &ext_id, true)
                    .await?
                    .iter()
                    .filter(|resource| lookup::answers(resource, "externalId", &ext_id))
                    .find_map(lookup::account)
                    .map(|account| account.id)
            }
        };
        let Some(id) = id else {
            tracing::info!(key = %item.key.key, "deleting a user the provider does not hold: nothing to send");
            return Ok(Pushed::Held(None));
        };
        let path = format!("/Users/{}", segment(&id));
        let reply = self.call(Method::DELETE, &path, None).await?;
        self.forget("/Users", &id).await;
        match reply.status {
            404 => {
                tracing::info!(key = %item.key.key, %id, "the provider no longer holds the user: deleted already");
                Ok(Pushed::Held(None))
            }
            _ if reply.is_success() => Ok(Pushed::Held(None)),
            _ => Err(failure(&reply, &format!("DELETE /Users/{id}"))),
        }
    }
}
