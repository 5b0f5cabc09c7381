//! What the caller of a drain tells it, and learns from it, while it runs:
//! a reload interrupts its waits between retries (the new config is used at
//! the next attempt, not once the old retry budget has run out), and each
//! wait is told as it begins (`status` shows why a target's records wait,
//! not an older, unrelated error).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub struct DrainControl {
    interrupt: CancellationToken,
    retrying: Box<dyn Fn(&str) + Send + Sync>,
}

impl DrainControl {
    /// `interrupt` cut the drain's waits; `retrying` hears why it waits.
    pub fn new(
        interrupt: CancellationToken,
        retrying: impl Fn(&str) + Send + Sync + 'static,
    ) -> DrainControl {
        DrainControl {
            interrupt,
            retrying: Box::new(retrying),
        }
    }

    /// A drain that runs to its end, told nothing (`rostersync sync`).
    pub fn unattended() -> DrainControl {
        DrainControl::new(CancellationToken::new(), |_| {})
    }

    pub(super) fn interrupted(&self) -> bool {
        self.interrupt.is_cancelled()
    }

    /// Waits `delay` before a retry, saying why; false when interrupted.
    pub(super) async fn wait(&self, delay: Duration, why: &str) -> bool {
        (self.retrying)(why);
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = self.interrupt.cancelled() => false,
        }
    }
}
