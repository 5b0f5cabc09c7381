//! `scripted`: a kind for tests only, registered like any other. It sends
//! nothing: a test sets a [`Script`] for a target's name, which answers
//! each request, and reads back every request the push engine made (its
//! records, when it went, how many were in flight). It honours the
//! target's `batch_size` and `rate_per_sec` as the HTTP connectors do, and
//! splits a batch its script refuses down to the refused records.
//!
//! It is also the worked example of adding a kind: this file (the
//! connector and its fake, the script), its line in the registry
//! (`connectors/mod.rs`), and its tests (the push engine's, `push/tests.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::TargetConfig;
use crate::ingest::record::Field;
use crate::projection::DefaultFields;

use super::http::Pace;
use super::{
    CheckError, Connector, Outcome, Place, PushItem, PushReply, Settings, SettingsError, Verdict,
    bisect,
};

/// What the target answers to one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The same outcome for every record of the request.
    All(Outcome),
    /// The request is refused for some of its records: split it.
    Split,
    /// This outcome for the request, then nothing more to this target.
    Halt(Outcome, String),
    /// Outcomes for the first `n` records only: a target that breaks the
    /// one-outcome-per-record rule (the first `n` acknowledged).
    Short(usize),
}

/// One request, as the target saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The keys of its records, in order.
    pub keys: Vec<String>,
    /// When it went (after waiting for its turn under `rate_per_sec`).
    pub at: Instant,
}

type AnswerFn = dyn Fn(&[&PushItem]) -> Answer + Send + Sync;

/// A target's behaviour, and what it saw.
pub struct Script {
    answer: Box<AnswerFn>,
    latency: Duration,
    requests: Mutex<Vec<Request>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

impl Script {
    /// A target that answers each request with `answer(records of the request)`.
    pub fn new(answer: impl Fn(&[&PushItem]) -> Answer + Send + Sync + 'static) -> Script {
        Script {
            answer: Box::new(answer),
            latency: Duration::ZERO,
            requests: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
        }
    }

    /// Each request takes this long to be answered.
    pub fn with_latency(mut self, latency: Duration) -> Script {
        self.latency = latency;
        self
    }

    /// Sets this script for the scripted target `target` (its connectors
    /// made from then on use it); returns it, to read the requests back.
    pub fn set_for(self, target: &str) -> Arc<Script> {
        let script = Arc::new(self);
        scripts().insert(target.to_string(), Arc::clone(&script));
        script
    }

    /// Every request so far, in the order they went.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.requests).clone()
    }

    /// The most requests that were in flight at once.
    pub fn most_in_flight(&self) -> usize {
        self.most_in_flight.load(Ordering::SeqCst)
    }

    async fn request(&self, records: &[&PushItem]) -> Answer {
        lock(&self.requests).push(Request {
            keys: records.iter().map(|r| r.key.key.clone()).collect(),
            at: Instant::now(),
        });
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.latency).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        (self.answer)(records)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The scripts set, by target name (each test uses names of its own).
fn scripts() -> MutexGuard<'static, BTreeMap<String, Arc<Script>>> {
    static SCRIPTS: Mutex<BTreeMap<String, Arc<Script>>> = Mutex::new(BTreeMap::new());
    lock(&SCRIPTS)
}

pub struct Scripted {
    script: Arc<Script>,
    batch_size: usize,
    pace: Option<Arc<Pace>>,
}

impl Connector for Scripted {
    const KIND: &'static str = "scripted";
    const SETTINGS: Settings = Settings {
        place: Place::Url,
        token: false,
        password: false,
        encodings: &[],
        own_keys: &[],
    };

    fn default_fields() -> DefaultFields {
        use Field::*;
        DefaultFields::known(
            &[
                ("ext_id", ExtId),
                ("login", Login),
                ("manager", ManagerExtId),
            ],
            &[("ext_id", ExtId), ("label", Label), ("parent", ParentExtId)],
        )
    }

    fn from_config(target: &TargetConfig) -> Result<Scripted, SettingsError> {
        let script = scripts()
            .get(target.name.get_ref())
            .cloned()
            .ok_or(SettingsError::Missing("no script is set for this target"))?;
        Ok(Scripted {
            script,
            batch_size: *target.batch_size.get_ref(),
            pace: Pace::of(target),
        })
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    async fn push(&self, items: &[PushItem]) -> PushReply {
        // usize::MAX: every request answered in full.
        let short = AtomicUsize::new(usize::MAX);
        let short = &short;
        let (mut outcomes, halt) = bisect(items.len(), move |range| async move {
            let part: Vec<&PushItem> = items[range].iter().collect();
            if let Some(pace) = &self.pace {
                pace.wait().await;
            }
            let answer = self.script.request(&part).await;
            if let Answer::Short(n) = answer {
                short.store(n, Ordering::SeqCst);
            }
            self.verdict(&part, &answer)
        })
        .await;
        outcomes.truncate(short.load(Ordering::SeqCst));
        PushReply { outcomes, halt }
    }

    async fn check(&self) -> Result<(), CheckError> {
        Ok(())
    }

    type Reply = Answer;

    /// The script's answer as it is; a short one acknowledges the records it
    /// covers (`push` then cuts the reply short).
    fn verdict(&self, _: &[&PushItem], answer: &Answer) -> Verdict {
        match answer {
            Answer::All(outcome) => Verdict::All(outcome.clone()),
            Answer::Split => Verdict::Split,
            Answer::Halt(outcome, reason) => Verdict::Halt(outcome.clone(), reason.clone()),
            Answer::Short(_) => Verdict::All(Outcome::Acked { target_id: None }),
        }
    }
}
