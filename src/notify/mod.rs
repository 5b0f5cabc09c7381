//! `[[notify]]` (README, *Notifications*): what an operator must act on,
//! sent to a webhook ([`webhook`]) or by e-mail ([`email`]). The daemon
//! hands each event to [`Notifier::send`], which never waits: the event is
//! merged into its destination's [`coalesce::Coalescer`] (under a lock held
//! for the merge only) and the destination's own task is woken. That task
//! sends what is due, retrying a failed delivery with the retry policy
//! ([`crate::retry`]) and logging what it gives up; a slow or failing
//! destination delays only its own messages, never a sync. Coalescing at
//! the door bounds the memory a burst takes (subjects × listed items)
//! without a queue that could fill.
//!
//! `target_down` is watched by each destination's task: a target failing
//! (the metrics' [`crate::metrics::Metrics::failing_targets`]) with no
//! success for its `down_after` is announced once per failure.

mod coalesce;
mod email;
pub mod event;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::{NotifyConfig, NotifyKind, RetryConfig, SmtpTls};
use crate::retry::{Backoff, Failure};
pub use email::host_port as smtp_host_port;
pub use event::{Event, EventKind, Item};

/// How often a destination looks for targets down.
const DOWN_CHECK: Duration = Duration::from_secs(1);

/// Where messages go.
enum Sender {
    Webhook(webhook::Webhook),
    Email(Box<email::Email>),
}

impl Sender {
    /// The sender a `[[notify]]` describes, its secrets read.
    fn from_config(config: &NotifyConfig) -> Result<Sender, String> {
        let timeout = config.timeout.get_ref().0;
        match config.kind.get_ref() {
            NotifyKind::Webhook => {
                let url = config
                    .url
                    .as_ref()
                    .ok_or("a webhook needs url")?
                    .get_ref()
                    .clone();
                let secret = match config.secret_source() {
                    Some(source) => Some(source.load().map_err(|e| e.to_string())?),
                    None => None,
                };
                Ok(Sender::Webhook(webhook::Webhook::new(
                    url, secret, timeout,
                )?))
            }
            NotifyKind::Email => {
                let login = match (&config.user, config.password_source()) {
                    (Some(user), Some(source)) => Some((
                        user.get_ref().clone(),
                        source.load().map_err(|e| e.to_string())?,
                    )),
                    _ => None,
                };
                let settings = email::Settings {
                    smtp: config.smtp.as_ref().map_or("", |s| s.get_ref()),
                    tls: config
                        .tls
                        .as_ref()
                        .map_or(SmtpTls::Starttls, |t| *t.get_ref()),
                    from: config.from.as_ref().map_or("", |f| f.get_ref()),
                    to: config
                        .to
                        .iter()
                        .flat_map(|to| to.get_ref())
                        .map(|to| to.get_ref().as_str())
                        .collect(),
                    login,
                    timeout,
                };
                Ok(Sender::Email(Box::new(email::Email::new(settings)?)))
            }
        }
    }

    async fn send(&self, event: &Event) -> Result<(), Failure> {
        match self {
            Sender::Webhook(webhook) => webhook.send(event).await,
            Sender::Email(email) => email.send(event).await,
        }
    }
}

/// One `[[notify]]`: what it takes, what waits for it.
struct Destination {
    shown: String,
    events: Vec<EventKind>,
    down_after: Duration,
    retry: RetryConfig,
    sender: Sender,
    waiting: Mutex<coalesce::Coalescer>,
    wake: Notify,
}

/// The daemon's handle on its `[[notify]]` destinations.
#[derive(Clone, Default)]
pub struct Notifier {
    destinations: Arc<Vec<Arc<Destination>>>,
}

impl Notifier {
    /// Reads each destination's secrets and starts its task, until `stop`.
    pub fn start(
        configs: &[NotifyConfig],
        tasks: &TaskTracker,
        stop: &CancellationToken,
    ) -> Result<Notifier, String> {
        let mut destinations = Vec::new();
        for config in configs {
            let shown = config.shown();
            let sender = Sender::from_config(config).map_err(|e| format!("{shown}: {e}"))?;
            let destination = Arc::new(Destination {
                shown,
                events: config
                    .events
                    .get_ref()
                    .iter()
                    .map(|e| *e.get_ref())
                    .collect(),
                down_after: config.down_after.get_ref().0,
                retry: config.retry.clone(),
                sender,
                waiting: Mutex::new(coalesce::Coalescer::new(config.min_interval.get_ref().0)),
                wake: Notify::new(),
            });
            tasks.spawn(deliver(Arc::clone(&destination), stop.clone()));
            destinations.push(destination);
        }
        Ok(Notifier {
            destinations: Arc::new(destinations),
        })
    }

    /// Hands an event to every destination that takes it; never waits.
    pub fn send(&self, event: Event) {
        for destination in self.destinations.iter() {
            if destination.events.contains(&event.event) {
                destination.offer(event.clone());
            }
        }
    }

    /// Whether some destination takes events of this kind (so that one is
    /// made only then).
    pub fn wants(&self, kind: EventKind) -> bool {
        self.destinations.iter().any(|d| d.events.contains(&kind))
    }
}

impl Destination {
    fn offer(&self, event: Event) {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .offer(event, Instant::now());
        self.wake.notify_one();
    }

    fn next_due(&self) -> Option<Instant> {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_due()
    }

    fn take_due(&self) -> Vec<Event> {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take_due(Instant::now())
    }
}

/// A destination's task: sends each message when due, and watches for
/// targets down when it takes `target_down`.
async fn deliver(destination: Arc<Destination>, stop: CancellationToken) {
    let watches_down = destination.events.contains(&EventKind::TargetDown);
    let mut down_check = tokio::time::interval(DOWN_CHECK);
    down_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Targets announced down, by the start of their failure.
    let mut announced: BTreeMap<String, i64> = BTreeMap::new();
    loop {
        let next = destination.next_due();
        tokio::select! {
            () = stop.cancelled() => break,
            () = destination.wake.notified() => continue,
            () = sleep_until(next) => {}
            _ = down_check.tick(), if watches_down => {
                watch_down(&destination, &mut announced);
                continue;
            }
        }
        for event in destination.take_due() {
            if !send_with_retries(&destination, &event, &stop).await {
                break;
            }
        }
    }
    let waiting = destination
        .waiting
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .waiting();
    if waiting > 0 {
        warn!(notify = %destination.shown, messages = waiting, "the daemon stops: notifications not sent yet are dropped");
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Announces the targets failing for `down_after` with no success, once
/// per failure.
fn watch_down(destination: &Destination, announced: &mut BTreeMap<String, i64>) {
    let failing = crate::metrics::get().failing_targets();
    announced.retain(|target, since| failing.iter().any(|(t, s)| t == target && s == since));
    let now = crate::sync::unix_now();
    let down_after = destination.down_after.as_secs() as i64;
    for (target, since) in failing {
        if now - since >= down_after && !announced.contains_key(&target) {
            let at = chrono::DateTime::from_timestamp(since, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            let waiting = crate::metrics::get().outbox_of(&target);
            let down_for = (now - since).max(0) as u64;
            destination.offer(Event::target_down(
                utc_now(),
                &target,
                &at,
                down_for,
                waiting,
            ));
            announced.insert(target, since);
        }
    }
}

pub fn utc_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Delivers one message, retrying transient failures with the
/// destination's `retry`; false when the daemon stopped meanwhile.
async fn send_with_retries(
    destination: &Destination,
    event: &Event,
    stop: &CancellationToken,
) -> bool {
    let mut backoff = Backoff::new(&destination.retry);
    loop {
        let failure = match destination.sender.send(event).await {
            Ok(()) => {
                info!(notify = %destination.shown, event = %event.event, "notification sent");
                return true;
            }
            Err(failure) => failure,
        };
        let delay = match &failure {
            Failure::Transient { retry_after, .. } => backoff.next_delay(*retry_after),
            Failure::Permanent { .. } => None,
        };
        let Some(delay) = delay else {
            error!(notify = %destination.shown, event = %event.event, reason = %failure.reason(), "a notification could not be sent; it is dropped");
            return true;
        };
        warn!(notify = %destination.shown, event = %event.event, reason = %failure.reason(), ?delay, "a notification could not be sent; trying again");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => return false,
        }
    }
}

/// `check --online --notify`: a test message to each destination, sent
/// once (no retry); the verdict of each, named as [`NotifyConfig::shown`].
pub async fn send_test(configs: &[NotifyConfig]) -> Vec<(String, Result<(), String>)> {
    let mut verdicts = Vec::new();
    for config in configs {
        let sent = match Sender::from_config(config) {
            Ok(sender) => sender
                .send(&Event::test(utc_now()))
                .await
                .map_err(|failure| failure.reason().to_string()),
            Err(error) => Err(error),
        };
        verdicts.push((config.shown(), sent));
    }
    verdicts
}
