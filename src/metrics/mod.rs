//! What the daemon counts, as Prometheus metrics (README, *Metrics*): one
//! registry for the process, fed where the reports and `status.json` get
//! their figures (the filing of each file, the push engine's
//! acknowledgements and parkings, each HTTP request, the status counts),
//! encoded in the OpenMetrics text format that Prometheus scrapes. This
//! file holds no IO; [`server`] serves it.
//!
//! One registry per process, as Prometheus sees a process: a counter
//! belongs to the process that counts it, and the recording points (deep
//! in the push engine, in the HTTP layer) need no handle passed down.

pub mod server;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::model::ActionKind;

/// What `/metrics` answers with: the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceOutcome {
    source: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    target: String,
    kind: String,
    outcome: String,
}

/// How an action a target was sent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The target confirmed it.
    Done,
    /// Set aside with a reason (refused, ambiguous, still failing).
    Parked,
}

impl Settled {
    fn as_str(self) -> &'static str {
        match self {
            Settled::Done => "done",
            Settled::Parked => "parked",
        }
    }
}

/// A target's figures that `status.json` counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetGauges {
    pub outbox: u64,
    pub parked: u64,
    pub ambiguous: u64,
}

fn request_histogram() -> Histogram {
    // 5 ms to about 20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

fn file_histogram() -> Histogram {
    // 10 ms to about 45 min: a first import of a million people is long.
    Histogram::new(exponential_buckets(0.01, 4.0, 12))
}

pub struct Metrics {
    registry: Registry,
    files: Family<SourceOutcome, Counter>,
    file_seconds: Family<SourceLabel, Histogram, fn() -> Histogram>,
    actions: Family<ActionLabels, Counter>,
    request_seconds: Family<TargetLabel, Histogram, fn() -> Histogram>,
    retries: Family<TargetLabel, Counter>,
    outbox: Family<TargetLabel, Gauge>,
    parked: Family<TargetLabel, Gauge>,
    ambiguous: Family<TargetLabel, Gauge>,
    held_files: Family<SourceLabel, Gauge>,
    target_success: Family<TargetLabel, Gauge<f64, AtomicU64>>,
    source_success: Family<SourceLabel, Gauge<f64, AtomicU64>>,
    target_failing: Family<TargetLabel, Gauge<f64, AtomicU64>>,
    /// Targets failing since (Unix seconds), with no success since: what
    /// `target_down` notifications watch.
    failing: Mutex<BTreeMap<String, i64>>,
    any_failing: AtomicBool,
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry of its own (tests; the daemon uses [`get`]).
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("rostersync"),
            files: Family::default(),
            file_seconds: Family::new_with_constructor(file_histogram),
            actions: Family::default(),
            request_seconds: Family::new_with_constructor(request_histogram),
            retries: Family::default(),
            outbox: Family::default(),
            parked: Family::default(),
            ambiguous: Family::default(),
            held_files: Family::default(),
            target_success: Family::default(),
            source_success: Family::default(),
            target_failing: Family::default(),
            failing: Mutex::default(),
            any_failing: AtomicBool::new(false),
        };
        let registry = &mut metrics.registry;
        registry.register(
            "files",
            "Files taken from a source's inbox, by outcome (archived, duplicate, rejected, held, failed)",
            metrics.files.clone(),
        );
        registry.register(
            "file_processing_seconds",
            "Time from taking a file to filing it away (read, check, plan, commit, move)",
            metrics.file_seconds.clone(),
        );
        registry.register(
            "actions",
            "Actions sent to a target, by kind (create, update, block, unblock, delete) and outcome (done, parked)",
            metrics.actions.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "HTTP requests to a target, from sending to the whole reply",
            metrics.request_seconds.clone(),
        );
        registry.register(
            "retries",
            "Records sent again to a target after a transient failure",
            metrics.retries.clone(),
        );
        registry.register(
            "outbox",
            "Records still to push to a target, parked ones included",
            metrics.outbox.clone(),
        );
        registry.register(
            "parked",
            "Records of a target set aside with a reason",
            metrics.parked.clone(),
        );
        registry.register(
            "ambiguous",
            "Parked records of a target that holds several accounts that could be theirs",
            metrics.ambiguous.clone(),
        );
        registry.register(
            "held_files",
            "Files of a source waiting in held/ for `rostersync approve`",
            metrics.held_files.clone(),
        );
        registry.register(
            "target_last_success_timestamp_seconds",
            "When a target last confirmed a record (Unix time)",
            metrics.target_success.clone(),
        );
        registry.register(
            "source_last_success_timestamp_seconds",
            "When a source's last file was accepted, archived or as a duplicate (Unix time)",
            metrics.source_success.clone(),
        );
        registry.register(
            "target_failing_since_timestamp_seconds",
            "Since when a target fails (transient failures, or stopped) with no success since (Unix time; 0 while it does not)",
            metrics.target_failing.clone(),
        );
        metrics
    }

    /// A file filed away: its outcome and how long it took.
    pub fn file_processed(&self, source: &str, outcome: &str, seconds: f64) {
        self.files
            .get_or_create(&SourceOutcome {
                source: source.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.file_seconds
            .get_or_create(&source_label(source))
            .observe(seconds);
    }

    /// A source's file was accepted, at `unix` seconds.
    pub fn source_succeeded(&self, source: &str, unix: f64) {
        self.source_success
            .get_or_create(&source_label(source))
            .set(unix);
    }

    /// Records of a target settled.
    pub fn actions(&self, target: &str, kind: ActionKind, settled: Settled, count: u64) {
        self.actions
            .get_or_create(&ActionLabels {
                target: target.to_string(),
                kind: kind.as_str().to_string(),
                outcome: settled.as_str().to_string(),
            })
            .inc_by(count);
    }

    /// A target confirmed records at `unix` seconds: it no longer fails.
    pub fn target_succeeded(&self, target: &str, unix: f64) {
        let label = target_label(target);
        self.target_success.get_or_create(&label).set(unix);
        if self.any_failing.load(Ordering::Relaxed) {
            let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
            if failing.remove(target).is_some() {
                self.target_failing.get_or_create(&label).set(0.0);
            }
            self.any_failing
                .store(!failing.is_empty(), Ordering::Relaxed);
        }
    }

    /// A target failed at `unix` seconds (a transient failure, a stop):
    /// failing since then unless it failed already.
    pub fn target_failed(&self, target: &str, unix: i64) {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        if !failing.contains_key(target) {
            failing.insert(target.to_string(), unix);
            self.target_failing
                .get_or_create(&target_label(target))
                .set(unix as f64);
        }
        self.any_failing.store(true, Ordering::Relaxed);
    }

    /// The targets failing with no success since, and since when (Unix seconds).
    pub fn failing_targets(&self) -> Vec<(String, i64)> {
        let failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        failing
            .iter()
            .map(|(t, since)| (t.clone(), *since))
            .collect()
    }

    /// A target's outbox as `status.json` last counted it.
    pub fn outbox_of(&self, target: &str) -> u64 {
        self.outbox
            .get(&target_label(target))
            .map_or(0, |gauge| u64::try_from(gauge.get()).unwrap_or(0))
    }

    pub fn request(&self, target: &str, seconds: f64) {
        self.request_seconds
            .get_or_create(&target_label(target))
            .observe(seconds);
    }

    pub fn retries(&self, target: &str, records: u64) {
        self.retries
            .get_or_create(&target_label(target))
            .inc_by(records);
    }

    /// A target's counts as `status.json` has them.
    pub fn target_gauges(&self, target: &str, gauges: TargetGauges) {
        let label = target_label(target);
        let as_gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.outbox
            .get_or_create(&label)
            .set(as_gauge(gauges.outbox));
        self.parked
            .get_or_create(&label)
            .set(as_gauge(gauges.parked));
        self.ambiguous
            .get_or_create(&label)
            .set(as_gauge(gauges.ambiguous));
    }

    pub fn held_files(&self, source: &str, files: u64) {
        self.held_files
            .get_or_create(&source_label(source))
            .set(i64::try_from(files).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

fn source_label(source: &str) -> SourceLabel {
    SourceLabel {
        source: source.to_string(),
    }
}

fn target_label(target: &str) -> TargetLabel {
    TargetLabel {
        target: target.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_each_metric_with_its_labels() {
        let metrics = Metrics::new();
        metrics.file_processed("users", "archived", 0.2);
        metrics.file_processed("users", "archived", 0.3);
        metrics.actions("lms", ActionKind::Create, Settled::Done, 7);
        metrics.actions("lms", ActionKind::Block, Settled::Parked, 1);
        metrics.request("lms", 0.05);
        metrics.retries("lms", 3);
        metrics.target_gauges(
            "lms",
            TargetGauges {
                outbox: 4,
                parked: 1,
                ambiguous: 0,
            },
        );
        metrics.held_files("users", 2);
        metrics.target_succeeded("lms", 1_800_000_000.0);
        let text = metrics.encode();
        for line in [
            "rostersync_files_total{source=\"users\",outcome=\"archived\"} 2",
            "rostersync_file_processing_seconds_count{source=\"users\"} 2",
            "rostersync_actions_total{target=\"lms\",kind=\"create\",outcome=\"done\"} 7",
            "rostersync_actions_total{target=\"lms\",kind=\"block\",outcome=\"parked\"} 1",
            "rostersync_request_duration_seconds_count{target=\"lms\"} 1",
            "rostersync_retries_total{target=\"lms\"} 3",
            "rostersync_outbox{target=\"lms\"} 4",
            "rostersync_parked{target=\"lms\"} 1",
            "rostersync_ambiguous{target=\"lms\"} 0",
            "rostersync_held_files{source=\"users\"} 2",
            "rostersync_target_last_success_timestamp_seconds{target=\"lms\"} 1800000000.0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_target_fails_from_its_first_failure_until_a_success() {
        let metrics = Metrics::new();
        metrics.target_failed("lms", 100);
        metrics.target_failed("lms", 150);
        assert_eq!(metrics.failing_targets(), vec![("lms".to_string(), 100)]);
        assert!(
            metrics.encode().contains(
                "rostersync_target_failing_since_timestamp_seconds{target=\"lms\"} 100.0"
            )
        );
        metrics.target_succeeded("lms", 200.0);
        assert!(metrics.failing_targets().is_empty());
        assert!(
            metrics
                .encode()
                .contains("rostersync_target_failing_since_timestamp_seconds{target=\"lms\"} 0.0")
        );
    }
}
