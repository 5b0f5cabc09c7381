//! Progress of long work (planning, committing, pushing a big file): a line
//! in the log every few seconds with the records done, the total and the
//! rate, so that an operator sees a million-person import move. Work that
//! ends within the first interval logs nothing. A command run on a terminal
//! ([`show_bars`]) draws a progress bar instead (indicatif), gone once the
//! work is done; the daemon and anything off a terminal keep the lines.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Set once by a command whose stderr is a terminal.
static BARS: AtomicBool = AtomicBool::new(false);

/// From now on, long work draws a bar on stderr instead of logging lines:
/// for a command a person watches, when stderr is a terminal.
pub fn show_bars() {
    BARS.store(true, Ordering::Relaxed);
}

/// How often a line is logged while work goes on.
const EVERY: Duration = Duration::from_secs(5);

/// Every bar drawn at once (several targets push side by side), one line each.
fn bars() -> &'static MultiProgress {
    static ALL: OnceLock<MultiProgress> = OnceLock::new();
    ALL.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

fn bar(what: &str, total: u64) -> Option<ProgressBar> {
    if !BARS.load(Ordering::Relaxed) {
        return None;
    }
    let style = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} records ({rate}, {eta} left)",
    )
    .ok()?
    .with_key(
        "rate",
        |state: &ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = write!(out, "{:.0}/s", state.per_sec());
        },
    );
    let bar = bars().add(ProgressBar::new(total));
    bar.set_style(style);
    bar.set_message(what.to_string());
    Some(bar)
}

pub struct Progress {
    what: String,
    total: u64,
    done: AtomicU64,
    started: Instant,
    /// When the last line was logged; `None` until the first one.
    last: Mutex<Option<Instant>>,
    /// On a terminal, the bar drawn instead of the lines.
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(what: impl Into<String>, total: u64) -> Progress {
        let what = what.into();
        Progress {
            bar: bar(&what, total),
            what,
            total,
            done: AtomicU64::new(0),
            started: Instant::now(),
            last: Mutex::new(None),
        }
    }

    /// `n` more records done; logs a line if the last one is old enough.
    pub fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
            return;
        }
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

    /// Logs the last line of work that logged any (a bar is cleared).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            return;
        }
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
