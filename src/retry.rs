//! The retry policy, in one place: which failures are worth another try,
//! and how long to wait. Exponential backoff with jitter comes from the
//! `backoff` crate; a server's `Retry-After` is honoured when it asks for more.

use std::time::{Duration, SystemTime};

use backoff::backoff::Backoff as _;

use crate::config::RetryConfig;

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth another try (connect error, timeout, 429, 5xx), possibly not before `retry_after`.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Trying again will not help (other 4xx, a refused record): park it with the reason.
    Permanent { reason: String },
}

impl Failure {
    /// The same failure with its reason rewritten (a secret scrubbed out).
    pub fn map_reason(self, rewrite: impl FnOnce(&str) -> String) -> Failure {
        match self {
            Failure::Transient {
                reason,
                retry_after,
            } => Failure::Transient {
                reason: rewrite(&reason),
                retry_after,
            },
            Failure::Permanent { reason } => Failure::Permanent {
                reason: rewrite(&reason),
            },
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Failure::Transient { reason, .. } | Failure::Permanent { reason } => reason,
        }
    }
}

/// Classifies an HTTP status that is not a success. `retry_after` is the
/// reply's `Retry-After` header, if any; `body` the start of its body.
pub fn classify_status(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    now: SystemTime,
) -> Failure {
    let reason = if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", shorten(body))
    };
    match status {
        429 | 500..=599 | 408 => Failure::Transient {
            reason,
            retry_after: retry_after.and_then(|value| parse_retry_after(value, now)),
        },
        _ => Failure::Permanent { reason },
    }
}

/// Classifies an error that got no HTTP reply at all: refused or dropped
/// connections and timeouts are transient; anything else (a bad certificate,
/// a malformed URL) needs a person.
pub fn classify_transport(is_connect: bool, is_timeout: bool, description: &str) -> Failure {
    if is_connect || is_timeout {
        Failure::Transient {
            reason: description.to_string(),
            retry_after: None,
        }
    } else {
        Failure::Permanent {
            reason: description.to_string(),
        }
    }
}

/// `Retry-After` as delta-seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2026 07:28:00 GMT`); a date in the past means now.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn shorten(text: &str) -> String {
    const MAX: usize = 300;
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The delays between attempts of one push, from a target's `retry` settings.
pub struct Backoff {
    inner: backoff::exponential::ExponentialBackoff<TokioClock>,
    max_interval: Duration,
}

/// `max_elapsed` is measured on tokio's clock, the one the push engine
/// sleeps on: the system's own, except in tests that pause time.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl backoff::Clock for TokioClock {
    fn now(&self) -> std::time::Instant {
        tokio::time::Instant::now().into_std()
    }
}

impl Backoff {
    pub fn new(config: &RetryConfig) -> Backoff {
        let mut inner = backoff::exponential::ExponentialBackoffBuilder::<TokioClock>::new()
            .with_initial_interval(config.initial.0)
            .with_max_interval(config.max_interval.0)
            .with_max_elapsed_time(Some(config.max_elapsed.0))
            .build();
        inner.start_time = backoff::Clock::now(&TokioClock);
        Backoff {
            inner,
            max_interval: config.max_interval.0,
        }
    }

    /// How long to wait before the next attempt; `None` once `max_elapsed`
    /// has passed (the record is then parked as still failing, and retried
    /// with the next file or `rostersync retry`). A `Retry-After` longer than
    /// the computed delay wins, up to `max_interval`.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        let computed = self.inner.next_backoff()?;
        Some(match retry_after {
            Some(asked) if asked > computed => asked.min(self.max_interval.max(computed)),
            _ => computed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    fn config(initial: u64, max_interval: u64, max_elapsed: u64) -> RetryConfig {
        RetryConfig {
            initial: HumanDuration(Duration::from_millis(initial)),
            max_interval: HumanDuration(Duration::from_millis(max_interval)),
            max_elapsed: HumanDuration(Duration::from_millis(max_elapsed)),
        }
    }

    #[test]
    fn statuses_are_transient_or_permanent() {
        let now = SystemTime::now();
        for status in [429, 500, 502, 503, 504, 408] {
            assert!(
                matches!(
                    classify_status(status, None, "", now),
                    Failure::Transient { .. }
                ),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 409, 422] {
            assert!(
                matches!(
                    classify_status(status, None, "", now),
                    Failure::Permanent { .. }
                ),
                "{status}"
            );
        }
        let failure = classify_status(400, None, "{\"error\":\"login exists\"}", now);
        assert_eq!(failure.reason(), "HTTP 400: {\"error\":\"login exists\"}");
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        let failure = classify_status(429, Some("7"), "", now);
        assert_eq!(
            failure,
            Failure::Transient {
                reason: "HTTP 429".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn delays_grow_with_jitter_and_stop_after_max_elapsed() {
        let mut backoff = Backoff::new(&config(100, 1_000, 60_000));
        let first = backoff.next_delay(None).unwrap();
        // initial ± 50 % jitter
        assert!(
            first >= Duration::from_millis(50) && first <= Duration::from_millis(150),
            "{first:?}"
        );
        let delays: Vec<Duration> = (0..10).map(|_| backoff.next_delay(None).unwrap()).collect();
        assert!(
            delays.iter().all(|d| *d <= Duration::from_millis(1_500)),
            "{delays:?}"
        );
        assert!(delays[9] >= Duration::from_millis(500), "{delays:?}");

        let mut short = Backoff::new(&config(1, 1, 1));
        tokio::time::advance(Duration::from_millis(5)).await;
        assert_eq!(short.next_delay(None), None);
    }

    #[test]
    fn a_longer_retry_after_wins_up_to_max_interval() {
        let mut backoff = Backoff::new(&config(10, 2_000, 60_000));
        assert_eq!(
            backoff.next_delay(Some(Duration::from_secs(1))),
            Some(Duration::from_secs(1))
        );
        let capped = backoff.next_delay(Some(Duration::from_secs(3600))).unwrap();
        assert_eq!(capped, Duration::from_secs(2));
    }
}
