//! When a destination gets a message: events of one subject (kind, and
//! source or target) gather for [`GATHER`] after the first, so a burst is
//! one message, and go out at most once per `min_interval`; what comes
//! meanwhile waits and merges into the next. Pure: time is given.
//! Memory is bounded by the subjects (kinds × sources and targets), each
//! message's items being capped.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::event::{Event, Subject};

/// How long the first event of a subject waits for the rest of its burst.
pub const GATHER: Duration = Duration::from_secs(2);

pub struct Coalescer {
    min_interval: Duration,
    /// Events not sent yet, merged per subject, and since when they wait.
    pending: BTreeMap<Subject, (Event, Instant)>,
    /// When each subject's last message went.
    sent: BTreeMap<Subject, Instant>,
}

impl Coalescer {
    pub fn new(min_interval: Duration) -> Coalescer {
        Coalescer {
            min_interval,
            pending: BTreeMap::new(),
            sent: BTreeMap::new(),
        }
    }

    pub fn offer(&mut self, event: Event, now: Instant) {
        match self.pending.get_mut(&event.subject()) {
            Some((waiting, _)) => waiting.merge(event),
            None => {
                self.pending.insert(event.subject(), (event, now));
            }
        }
    }

    fn due_at(&self, subject: &Subject, since: Instant) -> Instant {
        let gathered = since + GATHER;
        match self.sent.get(subject) {
            Some(sent) => gathered.max(*sent + self.min_interval),
            None => gathered,
        }
    }

    /// When the next message is due, if any waits.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending
            .iter()
            .map(|(subject, (_, since))| self.due_at(subject, *since))
            .min()
    }

    /// The messages due at `now`, each counted as sent then.
    pub fn take_due(&mut self, now: Instant) -> Vec<Event> {
        let due: Vec<Subject> = self
            .pending
            .iter()
            .filter(|(subject, (_, since))| self.due_at(subject, *since) <= now)
            .map(|(subject, _)| subject.clone())
            .collect();
        due.into_iter()
            .filter_map(|subject| {
                let (event, _) = self.pending.remove(&subject)?;
                self.sent.insert(subject, now);
                Some(event)
            })
            .collect()
    }

    /// Events that wait, as the daemon stops.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecordKind;
    use crate::notify::event::Item;

    fn parked(target: &str, n: u64) -> Event {
        let items = (0..n)
            .map(|i| Item::record(RecordKind::Users, &format!("E{i}")))
            .collect();
        Event::parked("t".into(), target, n, items)
    }

    #[test]
    fn a_burst_is_one_message_and_the_next_waits_for_min_interval() {
        let start = Instant::now();
        let mut coalescer = Coalescer::new(Duration::from_secs(900));
        for _ in 0..5 {
            coalescer.offer(parked("lms", 100), start);
        }
        assert!(
            coalescer
                .take_due(start + Duration::from_secs(1))
                .is_empty(),
            "gathering"
        );
        assert_eq!(coalescer.next_due(), Some(start + GATHER));
        let sent = coalescer.take_due(start + GATHER);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].counts["records"], 500);

        let later = start + Duration::from_secs(60);
        coalescer.offer(parked("lms", 3), later);
        coalescer.offer(parked("other", 1), later);
        let sent = coalescer.take_due(later + GATHER);
        assert_eq!(sent.len(), 1, "another target's events are their own");
        assert_eq!(sent[0].target.as_deref(), Some("other"));
        assert_eq!(
            coalescer.next_due(),
            Some(start + GATHER + Duration::from_secs(900)),
            "lms waits for min_interval after its last message"
        );
        coalescer.offer(parked("lms", 4), later + Duration::from_secs(5));
        let sent = coalescer.take_due(start + GATHER + Duration::from_secs(900));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].counts["records"], 7);
        assert_eq!(coalescer.waiting(), 0);
    }
}
