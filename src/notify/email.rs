//! `kind = "email"`: the event as a plain-text e-mail through `smtp`
//! (lettre): STARTTLS by default (refused unless the server offers it),
//! `tls = "tls"` for implicit TLS, `tls = "none"` for a server on this
//! machine only (`check` refuses it elsewhere); `user` and its password
//! when the server wants a login.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::event::Event;
use crate::config::SmtpTls;
use crate::retry::Failure;
use crate::secret::Secret;

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// Scrubbed from any error a server answers.
    password: Option<Secret>,
}

/// `host:port`, split; `None` when it is not that.
pub fn host_port(smtp: &str) -> Option<(&str, u16)> {
    let (host, port) = smtp.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

/// The settings of an e-mail destination, checked by `check` before.
pub struct Settings<'a> {
    pub smtp: &'a str,
    pub tls: SmtpTls,
    pub from: &'a str,
    pub to: Vec<&'a str>,
    pub login: Option<(String, Secret)>,
    pub timeout: Duration,
}

impl Email {
    pub fn new(settings: Settings<'_>) -> Result<Email, String> {
        let (host, port) = host_port(settings.smtp)
            .ok_or_else(|| format!("smtp {:?} is not host:port", settings.smtp))?;
        let builder = match settings.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
            SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                host,
            )),
        }
        .map_err(|error| format!("cannot set up TLS for {host}: {error}"))?;
        let mut builder = builder.port(port).timeout(Some(settings.timeout));
        let password = settings.login.as_ref().map(|(_, p)| p.clone());
        if let Some((user, password)) = settings.login {
            builder = builder.credentials(Credentials::new(user, password.expose().to_string()));
        }
        let mailbox = |text: &str| {
            text.parse::<Mailbox>()
                .map_err(|error| format!("{text:?} is not an e-mail address: {error}"))
        };
        Ok(Email {
            transport: builder.build(),
            from: mailbox(settings.from)?,
            to: settings
                .to
                .iter()
                .map(|to| mailbox(to))
                .collect::<Result<_, _>>()?,
            password,
        })
    }

    /// Sends the event to every address; a server's refusal (5xx) is
    /// permanent, anything else (no connection, 4xx, a timeout) transient.
    pub async fn send(&self, event: &Event) -> Result<(), Failure> {
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(event.mail_subject())
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .body(event.mail_text())
            .map_err(|error| Failure::Permanent {
                reason: format!("cannot make the message: {error}"),
            })?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) => {
                let mut reason = error.to_string();
                if let Some(password) = &self.password {
                    reason = password.scrub(&reason);
                }
                if error.is_permanent() {
                    Err(Failure::Permanent { reason })
                } else {
                    Err(Failure::Transient {
                        reason,
                        retry_after: None,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_is_host_and_port() {
        assert_eq!(
            host_port("mail.example.org:587"),
            Some(("mail.example.org", 587))
        );
        assert_eq!(host_port("[::1]:25"), Some(("::1", 25)));
        assert_eq!(host_port("mail.example.org"), None);
        assert_eq!(host_port(":25"), None);
        assert_eq!(host_port("mail:smtp"), None);
    }
}
