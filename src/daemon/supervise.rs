//! Supervision of the daemon's long-lived tasks: one that panics, or ends
//! while the daemon is not stopping, is logged and started again (after a
//! pause that grows while it keeps failing), as Lemmy's federation manager
//! restarts its workers. A task that ends on purpose (a worker whose target
//! left the config) returns [`Ended::OnPurpose`] and is not restarted.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info};

/// How a task's run ended, when it ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its work is over: not restarted.
    OnPurpose,
    /// It stopped for the daemon's shutdown, or for no good reason: restarted
    /// unless the daemon is stopping.
    Returned,
}

impl From<()> for Ended {
    fn from((): ()) -> Ended {
        Ended::Returned
    }
}

/// The first pause before a restart; doubled on each failure in a row, up
/// to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// A run that lasted this long resets the pause.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Runs `make()` as a task on `tasks` until `cancel`, restarting it when it
/// panics or returns while the daemon is not stopping.
pub fn spawn<F, Fut, R>(tasks: &TaskTracker, cancel: CancellationToken, name: String, mut make: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: Into<Ended> + Send + 'static,
{
    let inner = tasks.clone();
    tasks.spawn(async move {
        let mut pause = FIRST_PAUSE;
        loop {
            let started = Instant::now();
            let run = inner.spawn(make());
            let why = match run.await {
                Ok(ended) => match ended.into() {
                    Ended::OnPurpose => return,
                    Ended::Returned if cancel.is_cancelled() => return,
                    Ended::Returned => "it ended".to_string(),
                },
                Err(joined) if joined.is_panic() => "it panicked".to_string(),
                Err(joined) => format!("it was cut short ({joined})"),
            };
            if cancel.is_cancelled() {
                return;
            }
            if started.elapsed() >= HEALTHY_RUN {
                pause = FIRST_PAUSE;
            }
            error!(task = %name, "a daemon task stopped unexpectedly ({why}); starting it again in {pause:?}");
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(MAX_PAUSE);
            info!(task = %name, "daemon task started again");
        }
    });
}

/// The file processor's sign of life. systemd's watchdog is fed only while
/// it is recent, so a processor that died or stopped turning gets the daemon
/// restarted by systemd.
pub struct Heartbeat {
    since: Instant,
    /// Milliseconds from `since` to the last beat.
    last: AtomicU64,
}

/// How often a beat comes while the processor works on one thing.
const BUSY_BEAT: Duration = Duration::from_secs(1);
/// The least silence that counts as a stall: the watchdog is fed while the
/// heartbeat is younger than systemd's period or this, whichever is longer
/// (the processor beats every second while it waits or works).
pub const STALLED_AFTER: Duration = Duration::from_secs(3);

impl Heartbeat {
    pub fn new() -> Heartbeat {
        Heartbeat {
            since: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    pub fn beat(&self) {
        let millis = self.since.elapsed().as_millis() as u64;
        self.last.store(millis, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.since.elapsed().saturating_sub(last)
    }

    /// Awaits `work`, beating meanwhile: a long file is work, not a hang.
    pub async fn while_busy<F: Future>(&self, work: F) -> F::Output {
        tokio::pin!(work);
        let mut beat = tokio::time::interval(BUSY_BEAT);
        loop {
            tokio::select! {
                output = &mut work => return output,
                _ = beat.tick() => self.beat(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    fn counting() -> Arc<AtomicUsize> {
        Arc::new(AtomicUsize::new(0))
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_is_started_again_with_a_growing_pause() {
        let (tasks, cancel) = (TaskTracker::new(), CancellationToken::new());
        let runs = counting();
        let seen = Arc::clone(&runs);
        let stop = cancel.clone();
        spawn(&tasks, cancel.clone(), "t".into(), move || {
            let runs = Arc::clone(&seen);
            let stop = stop.clone();
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) < 3 {
                    panic!("boom");
                }
                stop.cancelled().await;
            }
        });
        let start = Instant::now();
        while runs.load(Ordering::SeqCst) < 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // 1 s, 2 s, 4 s of pause between the four runs.
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(7) && waited < Duration::from_secs(8),
            "{waited:?}"
        );
        cancel.cancel();
        tasks.close();
        tasks.wait().await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            4,
            "not restarted once stopping"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_returns_is_restarted_unless_on_purpose_or_stopping() {
        let (tasks, cancel) = (TaskTracker::new(), CancellationToken::new());
        let runs = counting();
        let seen = Arc::clone(&runs);
        spawn(&tasks, cancel.clone(), "t".into(), move || {
            let runs = Arc::clone(&seen);
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    Ended::Returned
                } else {
                    Ended::OnPurpose
                }
            }
        });
        tasks.close();
        tasks.wait().await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);

        // Returning because the daemon stops: no restart.
        let (tasks, cancel) = (TaskTracker::new(), CancellationToken::new());
        let runs = counting();
        let seen = Arc::clone(&runs);
        let stop = cancel.clone();
        spawn(&tasks, cancel, "t".into(), move || {
            let runs = Arc::clone(&seen);
            let stop = stop.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                stop.cancel();
            }
        });
        tasks.close();
        tasks.wait().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_heartbeat_ages_unless_beaten_and_beats_while_busy() {
        let heart = Heartbeat::new();
        heart.beat();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(heart.age(), Duration::from_secs(10));
        heart
            .while_busy(tokio::time::sleep(Duration::from_millis(5_500)))
            .await;
        assert!(
            heart.age() <= Duration::from_millis(500),
            "{:?}",
            heart.age()
        );
    }
}
