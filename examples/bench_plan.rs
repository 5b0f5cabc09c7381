//! The sync engine's benchmark: plan a full export against the state of two
//! targets. Each step runs in its own process so that its peak memory is its own:
//!
//! ```text
//! bench_plan setup STATE_DIR FILE    # first import: ingest, plan, commit, acknowledge
//! bench_plan plan STATE_DIR FILE     # ingest and plan FILE (nothing is written)
//! ```
//!
//! `scripts/bench-plan.sh` generates the files and runs every step.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use chrono::NaiveDate;
use rostersync::config::{SafetyConfig, TargetKind};
use rostersync::ingest::record::{Record, RecordKind};
use rostersync::ingest::{Mode, SourceSpec, ingest};
use rostersync::plan::{FileInfo, PlanOptions, Planned, SourceInfo, TargetInfo, plan_file};
use rostersync::projection::Projector;
use rostersync::store::{Acked, RecordKey, Store};

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .to_string();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn targets() -> Vec<TargetInfo> {
    [
        ("lms", TargetKind::Collaborator),
        ("wbt", TargetKind::WbtFile),
    ]
    .into_iter()
    .map(|(name, kind)| TargetInfo {
        name: name.into(),
        projector: Projector::new(kind.default_fields(), &BTreeMap::new()),
        scope: None,
        delete_after_days: None,
        max_delete_count: 50,
    })
    .collect()
}

fn source() -> SourceInfo {
    SourceInfo {
        name: "hr".into(),
        kind: RecordKind::Users,
        mode: Mode::Full,
        create_disabled: false,
        prehire_days: 0,
    }
}

/// Ingest then plan a file; prints the timings. The file's bytes are dropped
/// once ingested, as the daemon does.
fn ingest_and_plan(store: &Store, file: &Path) -> (Planned, Vec<Record>) {
    let started = Instant::now();
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let sha256 = {
        use sha2::Digest;
        sha2::Sha256::digest(&bytes).into()
    };
    let outcome = ingest(&bytes, &SourceSpec::wbt(RecordKind::Users));
    drop(bytes);
    assert!(
        outcome.accepted(),
        "{:?}",
        &outcome.problems[..outcome.problems.len().min(5)]
    );
    let ingested = started.elapsed();
    let info = FileInfo {
        name: file.display().to_string(),
        sha256,
        rows: outcome.rows as u64,
    };
    let options = PlanOptions {
        today: NaiveDate::from_ymd_opt(2026, 11, 21).unwrap_or_default(),
        now: 1_790_000_000,
        detail_limit: 10,
    };
    let safety = SafetyConfig {
        max_block_percent: toml::Spanned::new(0..0, 100.0),
        ..SafetyConfig::default()
    };
    let planned = plan_file(
        store,
        &source(),
        &targets(),
        &outcome.records,
        &info,
        &safety,
        options,
    )
    .unwrap_or_else(|e| panic!("plan: {e}"));
    let total = started.elapsed();
    let counts: Vec<String> = planned
        .plan
        .targets
        .iter()
        .map(|(name, t)| {
            format!(
                "{name}: {} create {} update {} block",
                t.create, t.update, t.block
            )
        })
        .collect();
    println!(
        "{} rows: read+ingest {:.2} s, plan {:.2} s, total {:.2} s ({}), {} writes",
        outcome.rows,
        ingested.as_secs_f64(),
        (total - ingested).as_secs_f64(),
        total.as_secs_f64(),
        counts.join("; "),
        planned
            .commit
            .targets
            .iter()
            .map(|t| t.writes.len())
            .sum::<usize>()
    );
    (planned, outcome.records)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [step, state, file] = args.as_slice() else {
        eprintln!("usage: bench_plan setup|plan STATE_DIR FILE");
        std::process::exit(2);
    };
    let store = Store::open(Path::new(state)).unwrap_or_else(|e| panic!("{e}"));
    let (planned, records) = ingest_and_plan(&store, Path::new(file));
    if step == "setup" {
        let started = Instant::now();
        store
            .commit(&planned.commit, &records)
            .unwrap_or_else(|e| panic!("{e}"));
        let committed = started.elapsed();
        drop(planned);
        drop(records);
        // Every target confirms everything, in batches as a batch API would.
        let started = Instant::now();
        for target in targets() {
            let mut batch = Vec::with_capacity(1000);
            let projector = target.projector.clone();
            let keys: Vec<String> = store
                .outbox(&target.name, RecordKind::Users)
                .map(|item| item.map(|(key, _)| key))
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{e}"));
            // As a worker reads a page to send: one reader, in key order.
            let mut reader = store.reader();
            for key in keys {
                let key = RecordKey {
                    target: target.name.clone(),
                    kind: RecordKind::Users,
                    key,
                };
                let entry = reader
                    .entry(&key)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| panic!("no entry"));
                let fields = reader
                    .desired_fields(&key, &projector)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let acked = Acked {
                    hash: entry.desired.hash,
                    active: entry.desired.active,
                    target_id: None,
                    at: 1_790_000_001,
                };
                batch.push((key, acked, fields));
                if batch.len() == 1000 {
                    store
                        .acknowledge_many(&batch)
                        .unwrap_or_else(|e| panic!("{e}"));
                    batch.clear();
                }
            }
            store
                .acknowledge_many(&batch)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        store.flush().unwrap_or_else(|e| panic!("{e}"));
        println!(
            "commit {:.2} s, acknowledge all {:.2} s",
            committed.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
    println!("peak RSS {:.0} MiB", peak_rss_mib());
}
