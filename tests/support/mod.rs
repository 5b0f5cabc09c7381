//! Shared test support. `harness.rs`: the end-to-end harness (a temp folder,
//! its config from a builder, the target's fake, its secrets, the runs of
//! the real binary, the daemon child); `fakes/`: the stateful fakes of the
//! target APIs on one kernel. Here: the library-level world of the planning
//! tests, a real sled store in a temp dir, sources and targets, and a
//! "perfect target" that acknowledges everything queued.
#![allow(dead_code)]

pub mod fakes;
pub mod harness;
pub mod held;
pub mod scrape;

#[allow(unused_imports)]
pub use harness::*;

use std::collections::BTreeMap;

use chrono::NaiveDate;

use rostersync::config::{SafetyConfig, TargetKind};
use rostersync::ingest::record::RecordKind;
use rostersync::ingest::{Mode, SourceSpec, ingest};
use rostersync::plan::{FileInfo, Plan, PlanOptions, Planned, SourceInfo, TargetInfo, plan_file};
use rostersync::projection::Projector;
use rostersync::store::{Acked, Store};

pub struct World {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub targets: Vec<TargetInfo>,
    pub safety: SafetyConfig,
    pub today: NaiveDate,
    files: u64,
    /// The records of the file planned last, which its commit stores.
    records: Vec<rostersync::ingest::record::Record>,
}

pub fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

pub fn target(name: &str, kind: TargetKind) -> TargetInfo {
    TargetInfo {
        name: name.into(),
        projector: Projector::new(kind.default_fields(), &BTreeMap::new()),
        scope: None,
        delete_after_days: None,
        max_delete_count: 50,
    }
}

pub fn source(name: &str, kind: RecordKind, mode: Mode) -> SourceInfo {
    SourceInfo {
        name: name.into(),
        kind,
        mode,
        create_disabled: false,
        prehire_days: 0,
    }
}

impl World {
    /// "lms" (Collaborator: maps e-mail, keeps organisations) and "erp"
    /// (Gestimum: login and department only, no organisations).
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        World {
            dir,
            store,
            targets: vec![
                target("lms", TargetKind::Collaborator),
                target("erp", TargetKind::Gestimum),
            ],
            safety: SafetyConfig::default(),
            today: day(2026, 11, 21),
            files: 0,
            records: Vec::new(),
        }
    }

    /// Small test files would trip the default block, shrink and change rules.
    pub fn relax_safety(&mut self) {
        self.safety.max_block_percent = toml::Spanned::new(0..0, 100.0);
        self.safety.max_shrink_percent = toml::Spanned::new(0..0, 100.0);
        self.safety.max_change_percent = toml::Spanned::new(0..0, 0.0);
    }

    pub fn options(&self) -> PlanOptions {
        PlanOptions {
            today: self.today,
            now: 1_700_000_000,
            detail_limit: usize::MAX,
        }
    }

    /// Plans a WBT file without applying it.
    pub fn plan(&mut self, source: &SourceInfo, text: &str) -> Planned {
        let mut spec = SourceSpec::wbt(source.kind);
        spec.mode = source.mode;
        let outcome = ingest(text.as_bytes(), &spec);
        assert!(outcome.accepted(), "{:?}", outcome.problems);
        self.files += 1;
        let file = FileInfo {
            name: format!("file{}.csv", self.files),
            sha256: [self.files as u8; 32],
            rows: outcome.rows as u64,
        };
        let planned = plan_file(
            &self.store,
            source,
            &self.targets,
            &outcome.records,
            &file,
            &self.safety,
            self.options(),
        )
        .unwrap();
        self.records = outcome.records;
        planned
    }

    /// Applies a plan of the file planned last.
    pub fn commit(&self, planned: &Planned) {
        self.store.commit(&planned.commit, &self.records).unwrap();
    }

    /// Plans a file (which must not be held), applies it, and has every target acknowledge
    /// everything queued. Returns the plan.
    pub fn sync(&mut self, source: &SourceInfo, text: &str) -> Plan {
        let planned = self.plan(source, text);
        assert!(planned.plan.held.is_none(), "held: {:?}", planned.plan.held);
        self.commit(&planned);
        self.ack_all();
        planned.plan
    }

    /// What a target that accepts everything would do: acknowledge each queued record.
    pub fn ack_all(&self) {
        for target in &self.targets {
            for kind in [RecordKind::Orgs, RecordKind::Users] {
                let queued: Vec<(String, rostersync::store::OutboxItem)> = self
                    .store
                    .outbox(&target.name, kind)
                    .map(|item| item.unwrap())
                    .collect();
                for (key, item) in queued {
                    let record_key = rostersync::store::RecordKey {
                        target: target.name.clone(),
                        kind,
                        key,
                    };
                    let entry = self.store.entry(&record_key).unwrap().unwrap();
                    let fields = self
                        .store
                        .desired_fields(&record_key, &target.projector)
                        .unwrap()
                        .unwrap_or_default();
                    let acked = Acked {
                        hash: entry.desired.hash,
                        active: entry.desired.active,
                        target_id: None,
                        at: 1_700_000_001,
                    };
                    if item.action == rostersync::model::ActionKind::Delete {
                        let gone = vec![(record_key, acked, fields)];
                        self.store.acknowledge_deleted(&gone).unwrap();
                    } else {
                        self.store
                            .acknowledge(&record_key, &acked, &fields)
                            .unwrap();
                    }
                }
                assert_eq!(self.store.outbox(&target.name, kind).count(), 0);
            }
        }
    }
}

/// A plan as `(target, action, ext_id, changes)` lines, easy to compare exactly.
pub fn lines(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for (target, target_plan) in &plan.targets {
        for action in &target_plan.actions {
            let changes: Vec<String> = action
                .changes
                .iter()
                .map(|(field, (old, new))| {
                    format!(
                        "{field}:{}→{}",
                        old.as_deref().unwrap_or("∅"),
                        new.as_deref().unwrap_or("∅")
                    )
                })
                .collect();
            let mut line = format!("{target} {} {}", action.action, action.ext_id);
            if !changes.is_empty() {
                line.push(' ');
                line.push_str(&changes.join(" "));
            }
            if !action.deferred.is_empty() {
                line.push_str(&format!(" (deferred: {})", action.deferred.join(",")));
            }
            out.push(line);
        }
    }
    out
}

/// Counts per target: (create, update, block, unblock).
pub fn counts(plan: &Plan) -> BTreeMap<String, (u64, u64, u64, u64)> {
    plan.targets
        .iter()
        .map(|(name, t)| (name.clone(), (t.create, t.update, t.block, t.unblock)))
        .collect()
}

/// Opens a store, waiting for one dropped a moment ago to let go of it.
pub fn open_store(path: &std::path::Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Store::open(path) {
            Ok(store) => return store,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(error) => panic!("cannot open {}: {error}", path.display()),
        }
    }
}

/// Opens a sled database directly, waiting for a store dropped a moment ago
/// to let go of it (sled's flusher thread holds the lock a little longer).
pub fn open_sled(path: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(error) if std::time::Instant::now() < deadline => {
                let _ = error;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(error) => panic!("cannot open {}: {error}", path.display()),
        }
    }
}
