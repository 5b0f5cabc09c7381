//! Progress of long work (planning, committing, pushing a big file): a line
//! in the log every few seconds with the records done, the total and the
//! rate, so that an operator sees a million-person import move. Work that
//! ends within the first interval logs nothing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a line is logged while work goes on.
const EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    what: String,
    total: u64,
    done: AtomicU64,
    started: Instant,
    /// When the last line was logged; `None` until the first one.
    last: Mutex<Option<Instant>>,
}

impl Progress {
    pub fn new(what: impl Into<String>, total: u64) -> Progress {
        Progress {
            what: what.into(),
            total,
            done: AtomicU64::new(0),
            started: Instant::now(),
            last: Mutex::new(None),
        }
    }

    /// `n` more records done; logs a line if the last one is old enough.
    pub fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        // A poisoned lock only guards a timestamp.
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let since = last.unwrap_or(self.started);
        if since.elapsed() >= EVERY {
            *last = Some(Instant::now());
            drop(last);
            self.log(done);
        }
    }

    /// Logs the last line of work that logged any.
    pub fn finish(&self) {
        let logged = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some();
        if logged {
            self.log(self.done.load(Ordering::Relaxed));
        }
    }

    fn log(&self, done: u64) {
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let per_second = (done as f64 / seconds).round() as u64;
        let percent = if self.total == 0 {
            100.0
        } else {
            (done as f64 * 1000.0 / self.total as f64).round() / 10.0
        };
        tracing::info!(
            work = %self.what, done, total = self.total, percent, per_second,
            "{}: {done} of {} records ({percent} %), {per_second}/s", self.what, self.total
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_across_threads_and_logs_nothing_for_short_work() {
        let progress = Progress::new("pushing", 2_000);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        progress.advance(1);
                    }
                });
            }
        });
        assert_eq!(progress.done.load(Ordering::Relaxed), 2_000);
        assert!(progress.last.lock().unwrap().is_none(), "logged within 5 s");
    }
}
