//! Deleting a user (`delete_after`): `DELETE /rest/users/{id}`. Maarch
//! marks it `DEL` (no longer listed; a create of its login restores it,
//! which the create path follows with the full update). It refuses a
//! delete for the reasons it refuses a suspension (open mail, a diffusion
//! list, itself, a root user, the perimeter), shown with what to do. A
//! user Maarch no longer has is deleted already.

use super::reply::{Refusal, refused, removal_advice, said};
use super::{LOGIN, Maarch, Pushed};
use crate::connectors::PushItem;
use crate::retry::Failure;

impl Maarch {
    pub(super) async fn delete_user(&self, item: &PushItem) -> Result<Pushed, Failure> {
        let login = item.fields.get(LOGIN).map_or("", String::as_str);
        let id = match &item.target_id {
            Some(id) => Some(id.clone()),
            None => self.find_user(login).await?.map(|found| found.id),
        };
        let Some(id) = id else {
            tracing::info!(key = %item.key.key, %login, "deleting a user Maarch does not list: nothing to send");
            return Ok(Pushed::Held(String::new()));
        };
        let doing = format!("deleting user {login}");
        let request = self.http.client().delete(self.url(&["rest", "users", &id]));
        let reply = self.send(request, &doing).await?;
        let refusal = Refusal::of(&said(&reply.body));
        match reply.status {
            _ if reply.is_success() => Ok(Pushed::Held(id)),
            400 if refusal == Refusal::NotFound => {
                tracing::info!(key = %item.key.key, %login, %id, "Maarch no longer has the user: deleted already");
                Ok(Pushed::Held(id))
            }
            403 => Err(refused(
                &doing,
                &reply,
                &removal_advice(refusal, login, &self.user, "delete"),
            )),
            _ => Err(self.refusal(&doing, &reply)),
        }
    }
}
