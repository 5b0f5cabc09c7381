//! `kind = "webhook"`: the event's JSON POSTed to `url`, signed when a
//! secret is given: `X-Rostersync-Signature: sha256=HEX`, the HMAC-SHA256
//! of the body under the secret, which the receiver computes again.

use std::time::{Duration, SystemTime};

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use super::event::Event;
use crate::retry::{self, Failure};
use crate::secret::Secret;

pub const SIGNATURE_HEADER: &str = "X-Rostersync-Signature";

pub struct Webhook {
    client: reqwest::Client,
    url: String,
    secret: Option<Secret>,
}

/// `sha256=HEX`: the HMAC-SHA256 of `body` under `secret` (`None` only if
/// HMAC refused the key, which it does for none).
pub fn signature(secret: &Secret, body: &[u8]) -> Option<String> {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).ok()?;
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("sha256={hex}"))
}

impl Webhook {
    pub fn new(url: String, secret: Option<Secret>, timeout: Duration) -> Result<Webhook, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("rostersync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot make the HTTPS client: {error}"))?;
        Ok(Webhook {
            client,
            url,
            secret,
        })
    }

    /// POSTs the event; a reply that is not a success is a failure
    /// (transient for 408, 429 and 5xx, as for targets). Nothing of the
    /// reply's body is kept: it could echo anything.
    pub async fn send(&self, event: &Event) -> Result<(), Failure> {
        let body = event.body();
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Rostersync-Event", event.event.as_str());
        if let Some(secret) = &self.secret {
            let signed = signature(secret, &body).ok_or_else(|| Failure::Permanent {
                reason: "the secret cannot key HMAC-SHA256".into(),
            })?;
            request = request.header(SIGNATURE_HEADER, signed);
        }
        // The URL may carry a token: the error says its causes, not it.
        let reply = request
            .body(body)
            .send()
            .await
            .map_err(crate::connectors::http::transport_failure)?;
        let status = reply.status().as_u16();
        if reply.status().is_success() {
            return Ok(());
        }
        let retry_after = reply
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Err(retry::classify_status(
            status,
            retry_after.as_deref(),
            "",
            SystemTime::now(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231s_hmac_sha256() {
        // RFC 4231, test case 2.
        let secret = Secret::new("Jefe");
        assert_eq!(
            signature(&secret, b"what do ya want for nothing?").as_deref(),
            Some("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }
}
