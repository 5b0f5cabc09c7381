//! The checks of `[[notify]]`: each kind's keys and no other's, a webhook
//! URL as a target's (https, or plain http to this machine), the SMTP
//! server, addresses, TLS, and secrets read the way targets' are.

use std::collections::HashSet;
use std::ops::Range;

use toml::Spanned;

use super::{Checker, check_secret_file, check_url};
use crate::config::{NotifyConfig, NotifyKind, SmtpTls};
use crate::notify::EventKind;

pub(super) fn check_notify(c: &mut Checker<'_>, notify: &NotifyConfig) {
    let kind = *notify.kind.get_ref();
    let here = notify.kind.span();
    let webhook_keys = [
        ("url", notify.url.as_ref().map(Spanned::span)),
        ("secret_env", notify.secret_env.as_ref().map(Spanned::span)),
        (
            "secret_file",
            notify.secret_file.as_ref().map(Spanned::span),
        ),
        (
            "secret_credential",
            notify.secret_credential.as_ref().map(Spanned::span),
        ),
    ];
    let email_keys = [
        ("smtp", notify.smtp.as_ref().map(Spanned::span)),
        ("from", notify.from.as_ref().map(Spanned::span)),
        ("to", notify.to.as_ref().map(Spanned::span)),
        ("tls", notify.tls.as_ref().map(Spanned::span)),
        ("user", notify.user.as_ref().map(Spanned::span)),
        (
            "password_env",
            notify.password_env.as_ref().map(Spanned::span),
        ),
        (
            "password_file",
            notify.password_file.as_ref().map(Spanned::span),
        ),
        (
            "password_credential",
            notify.password_credential.as_ref().map(Spanned::span),
        ),
    ];
    let (others, other) = match kind {
        NotifyKind::Webhook => (&email_keys[..], NotifyKind::Email),
        NotifyKind::Email => (&webhook_keys[..], NotifyKind::Webhook),
    };
    for (key, span) in others {
        if let Some(span) = span {
            c.at(
                span.clone(),
                format!("{key} is for {other} notifications; this one is {kind}"),
            );
        }
    }
    match kind {
        NotifyKind::Webhook => check_webhook(c, notify, here.clone()),
        NotifyKind::Email => check_email(c, notify, here.clone()),
    }
    check_events(c, notify);
    if notify.down_after.get_ref().0.is_zero() {
        c.at(
            notify.down_after.span(),
            "down_after must be above 0 (how long a target fails before it is announced down)",
        );
    }
    if notify.timeout.get_ref().0.is_zero() {
        c.at(notify.timeout.span(), "timeout must be above 0");
    }
    if notify.retry.initial > notify.retry.max_interval {
        c.at(here, "retry.initial is longer than retry.max_interval");
    }
}

fn check_events(c: &mut Checker<'_>, notify: &NotifyConfig) {
    let events = &notify.events;
    if events.get_ref().is_empty() {
        let all: Vec<&str> = EventKind::DEFAULT
            .iter()
            .chain([&EventKind::Daily])
            .map(|e| e.as_str())
            .collect();
        c.at(
            events.span(),
            format!("events is empty: name some of {}", all.join(", ")),
        );
    }
    let mut seen = HashSet::new();
    for event in events.get_ref() {
        if !seen.insert(*event.get_ref()) {
            c.at(
                event.span(),
                format!("event {} is listed twice", event.get_ref()),
            );
        }
    }
}

fn check_webhook(c: &mut Checker<'_>, notify: &NotifyConfig, here: Range<usize>) {
    match &notify.url {
        Some(url) => check_url(c, url),
        None => c.at(here, "a webhook notification needs url"),
    }
    let secrets: Vec<Range<usize>> = [
        notify.secret_env.as_ref().map(Spanned::span),
        notify.secret_file.as_ref().map(Spanned::span),
        notify.secret_credential.as_ref().map(Spanned::span),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(second) = secrets.get(1) {
        c.at(
            second.clone(),
            "give the secret one way only: secret_env, secret_file or secret_credential",
        );
    }
    check_secret_keys(c, &notify.secret_env, &notify.secret_file, "secret");
}

fn check_email(c: &mut Checker<'_>, notify: &NotifyConfig, here: Range<usize>) {
    match &notify.smtp {
        None => c.at(
            here.clone(),
            "an email notification needs smtp = \"host:port\"",
        ),
        Some(smtp) => match crate::notify::smtp_host_port(smtp.get_ref()) {
            None => c.at(
                smtp.span(),
                format!(
                    "smtp {:?} is not host:port (e.g. \"mail.example.org:587\")",
                    smtp.get_ref()
                ),
            ),
            Some((host, _)) => {
                let none = notify
                    .tls
                    .as_ref()
                    .filter(|t| *t.get_ref() == SmtpTls::None);
                if let Some(tls) = none
                    && !is_loopback(host)
                {
                    c.at(
                        tls.span(),
                        format!(
                            "tls = \"none\" would send the mail (and any password) in clear to {host}: it is for a server on this machine only (127.0.0.1, ::1, localhost); use starttls or tls"
                        ),
                    );
                }
            }
        },
    }
    match &notify.from {
        None => c.at(here.clone(), "an email notification needs from"),
        Some(from) => check_address(c, from, "from"),
    }
    match &notify.to {
        None => c.at(here.clone(), "an email notification needs to = [\"...\"]"),
        Some(to) if to.get_ref().is_empty() => {
            c.at(to.span(), "to is empty: name at least one address")
        }
        Some(to) => {
            for address in to.get_ref() {
                check_address(c, address, "to");
            }
        }
    }
    let passwords: Vec<Range<usize>> = [
        notify.password_env.as_ref().map(Spanned::span),
        notify.password_file.as_ref().map(Spanned::span),
        notify.password_credential.as_ref().map(Spanned::span),
    ]
    .into_iter()
    .flatten()
    .collect();
    match (&notify.user, passwords.first()) {
        (Some(user), None) => c.at(
            user.span(),
            "user needs its password: password_env, password_file or password_credential",
        ),
        (None, Some(password)) => c.at(password.clone(), "a password needs its user"),
        _ => {}
    }
    if let Some(second) = passwords.get(1) {
        c.at(
            second.clone(),
            "give the password one way only: password_env, password_file or password_credential",
        );
    }
    check_secret_keys(c, &notify.password_env, &notify.password_file, "password");
}

fn check_address(c: &mut Checker<'_>, address: &Spanned<String>, key: &str) {
    if address
        .get_ref()
        .parse::<lettre::message::Mailbox>()
        .is_err()
    {
        c.at(
            address.span(),
            format!(
                "{key}: {:?} is not an e-mail address (\"ops@example.org\" or \"Ops <ops@example.org>\")",
                address.get_ref()
            ),
        );
    }
}

/// `NAME_env` set, `NAME_file` not readable by others.
fn check_secret_keys(
    c: &mut Checker<'_>,
    env: &Option<Spanned<String>>,
    file: &Option<Spanned<std::path::PathBuf>>,
    what: &str,
) {
    if let Some(env) = env
        && std::env::var_os(env.get_ref()).is_none()
    {
        c.at(
            env.span(),
            format!(
                "{what}_env: environment variable {} is not set",
                env.get_ref()
            ),
        );
    }
    if let Some(file) = file {
        check_secret_file(c, file, &format!("{what}_file"));
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
