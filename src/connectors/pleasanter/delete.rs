//! Deleting a user (`delete_after`): `POST /api/users/{UserId}/delete`
//! with the key, the `UserId` the connector holds or the one the exact
//! login finds (users the import made have none here). A user the tenant
//! no longer holds (404, or no user with the login) is deleted already.

use super::reply::{effective_status, refusal};
use super::request::delete_body;
use super::{Outcome, Pleasanter, PushItem};

impl Pleasanter {
    pub(super) async fn delete(&self, item: &PushItem) -> Outcome {
        let login = item
            .fields
            .get(self.layout.login())
            .map(|login| self.formulas.text(login))
            .unwrap_or_default();
        let user_id = match &item.target_id {
            Some(id) => Some(id.clone()),
            None => match self.find_user_id(&login).await {
                Ok(found) => found,
                Err(failure) => return Outcome::Failed(failure),
            },
        };
        let Some(user_id) = user_id else {
            tracing::info!(key = %item.key.key, %login, "deleting a user Pleasanter does not hold: nothing to send");
            return Outcome::Acked { target_id: None };
        };
        let path = format!("/api/users/{user_id}/delete");
        let body = delete_body(self.key.expose());
        let reply = match self
            .send(self.http.client().post(self.http.url(&path)).json(&body))
            .await
        {
            Ok(reply) => reply,
            Err(failure) => return Outcome::Failed(failure),
        };
        match effective_status(&reply) {
            200..=299 => Outcome::Acked { target_id: None },
            404 => {
                tracing::info!(key = %item.key.key, %login, %user_id, "Pleasanter no longer holds the user: deleted already");
                Outcome::Acked { target_id: None }
            }
            _ => Outcome::Failed(refusal(&reply, &format!("deleting user {login:?}"))),
        }
    }
}
