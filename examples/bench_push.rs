//! The push benchmark (issue 4): N changes queued in a real sled store, then
//! drained to a stateful fake that adds a fixed latency to every request.
//! The measured step is `push::drain` alone (requests, replies, store
//! acknowledgements); the bound it is compared with counts only the latency:
//! batches × latency for a batch API, N × latency / concurrency for an API
//! that takes one record per request.
//!
//! ```text
//! bench_push KIND [CHANGES] [LATENCY_MS]
//!   KIND: collaborator (batches of 500) | collaborator-single (one per request,
//!         concurrency 16) | maarch | scim (one per request, concurrency 16)
//!         | store (no requests: what the store alone costs per record)
//! ```
//!
//! `scripts/bench-push.sh` runs every kind.

// The daemon's allocator (see src/main.rs), so that the figures are its own.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "../tests/support/fakes/mod.rs"]
#[allow(dead_code, clippy::all)]
mod fakes;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Instant;

use rostersync::config::{self, CheckLevel};
use rostersync::ingest::{self, SourceSpec};
use rostersync::plan::{FileInfo, PlanOptions, SourceInfo, TargetInfo, plan_file};
use rostersync::push::{self, PushTarget};
use rostersync::store::Store;

const TOKEN: &str = "bench-token";

/// A running fake and the target section that points at it.
struct Setup {
    target: String,
    /// Requests the fake has answered so far.
    requests: Box<dyn Fn() -> u64>,
    /// Records per request, and requests in flight at once.
    batch: usize,
    concurrency: usize,
    _keep: Box<dyn std::any::Any>,
}

fn setup(kind: &str, latency_ms: u64) -> Setup {
    match kind {
        "collaborator" | "collaborator-single" => {
            let fake = fakes::collaborator::Fake::start(TOKEN);
            fake.with(|p| p.faults.slow_ms = latency_ms);
            let (batch, concurrency) = if kind == "collaborator" {
                (500, 4)
            } else {
                (1, 16)
            };
            let target = format!(
                "kind = \"collaborator\"\nurl = \"{}\"\ntoken_file = \"token\"\nbatch_size = {batch}\nconcurrency = {concurrency}\n",
                fake.url
            );
            let fake = Arc::new(fake);
            let counter = Arc::clone(&fake);
            Setup {
                target,
                requests: Box::new(move || counter.requests()),
                batch,
                concurrency,
                _keep: Box::new(fake),
            }
        }
        "maarch" => {
            let fake = Arc::new(fakes::maarch::Fake::start("bench", TOKEN));
            fake.with(|c| c.faults.slow_ms = latency_ms);
            let target = format!(
                "kind = \"maarch\"\nurl = \"{}\"\nuser = \"bench\"\npassword_file = \"token\"\nconcurrency = 16\n",
                fake.url
            );
            let counter = Arc::clone(&fake);
            Setup {
                target,
                requests: Box::new(move || counter.requests()),
                batch: 1,
                concurrency: 16,
                _keep: Box::new(fake),
            }
        }
        "scim" => {
            let fake = Arc::new(fakes::scim::Fake::start(TOKEN, true));
            fake.with(|p| p.faults.slow_ms = latency_ms);
            let target = format!(
                "kind = \"scim\"\nurl = \"{}\"\ntoken_file = \"token\"\nconcurrency = 16\n",
                fake.url
            );
            let counter = Arc::clone(&fake);
            Setup {
                target,
                requests: Box::new(move || counter.requests()),
                batch: 1,
                concurrency: 16,
                _keep: Box::new(fake),
            }
        }
        other => panic!("unknown kind {other:?}"),
    }
}

/// What the store costs a push, one thread, no requests: listing the outbox,
/// reading each record's entry and projections, and acknowledging them in
/// groups of 500 (each an entry write and an outbox removal, one sled batch).
fn store_floor(store: &Store, projector: &rostersync::projection::Projector, changes: usize) {
    use rostersync::ingest::record::RecordKind;
    use rostersync::store::{Acked, RecordKey};

    let per_record = |started: Instant| started.elapsed().as_secs_f64() * 1e6 / changes as f64;
    let started = Instant::now();
    let keys: Vec<RecordKey> = store
        .outbox("bench", RecordKind::Users)
        .map(|item| RecordKey {
            target: "bench".into(),
            kind: RecordKind::Users,
            key: item.expect("outbox").0,
        })
        .collect();
    let listing = per_record(started);
    let started = Instant::now();
    let mut reader = store.reader();
    let loaded: Vec<_> = keys
        .iter()
        .map(|key| {
            reader
                .entry_with_fields(key, projector)
                .expect("read")
                .expect("entry")
        })
        .collect();
    let reading = per_record(started);
    let acks: Vec<_> = keys
        .into_iter()
        .zip(loaded)
        .map(|(key, (entry, fields, _))| {
            let acked = Acked {
                hash: entry.desired.hash,
                active: entry.desired.active,
                target_id: None,
                at: 0,
            };
            (key, acked, fields)
        })
        .collect();
    let started = Instant::now();
    for group in acks.chunks(500) {
        store.acknowledge_many(group).expect("acknowledge");
    }
    let acknowledging = per_record(started);
    assert_eq!(store.outbox_len("bench"), 0);
    println!(
        "store: {changes} records, one thread: listing {listing:.1} µs, reading {reading:.1} µs, \
         acknowledging {acknowledging:.1} µs per record; {:.3} s in all",
        (listing + reading + acknowledging) * changes as f64 / 1e6
    );
}

/// CPU time of this process so far (user and system), from /proc: the fake
/// runs in it too, on the same cores.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may hold spaces): utime and stime
    // are the 12th and 13th, in clock ticks (USER_HZ, 100 on Linux).
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn users_file(count: usize) -> String {
    let mut text = String::from("user_extid;user_lname;user_fname;user_login;user_email\n");
    for i in 0..count {
        text.push_str(&format!(
            "E{i:06};Nom{i};Prénom{i};login{i};u{i}@example.org\n"
        ));
    }
    text
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map_or("collaborator", String::as_str);
    let changes: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let latency_ms: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(5);

    // `store`: the store's share alone (no requests), see `store_floor`.
    let fake = setup(
        if kind == "store" {
            "collaborator"
        } else {
            kind
        },
        latency_ms,
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).expect("token file");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::create_dir(dir.path().join("inbox")).expect("inbox");
    let text = format!(
        "[daemon]\nstate_dir = \"state\"\nlog_dir = \"log\"\n\n\
         [[source]]\nname = \"hr\"\nkind = \"users\"\ninbox = \"inbox\"\ntargets = [\"bench\"]\n\n\
         [[target]]\nname = \"bench\"\n{}timeout = \"10s\"\n",
        fake.target
    );
    let config = config::parse(&text, dir.path(), CheckLevel::Full)
        .unwrap_or_else(|problems| panic!("{problems:?}"));
    let store = Arc::new(Store::open(&dir.path().join("db")).expect("store"));

    // Queue the changes: ingest, plan and commit, as `rostersync sync` does.
    let bytes = users_file(changes).into_bytes();
    let outcome = ingest::ingest(&bytes, &SourceSpec::wbt(ingest::record::RecordKind::Users));
    assert!(outcome.accepted(), "{:?}", outcome.problems.first());
    let source = SourceInfo::from_config(&config.sources[0]);
    let targets = vec![TargetInfo::from_config(&config.targets[0])];
    let file = FileInfo {
        name: "bench.csv".into(),
        sha256: [7; 32],
        rows: outcome.rows as u64,
    };
    let options = PlanOptions {
        today: chrono::Utc::now().date_naive(),
        now: 0,
        detail_limit: 0,
    };
    let planned = plan_file(
        &store,
        &source,
        &targets,
        &outcome.records,
        &file,
        &config.safety,
        options,
    )
    .expect("plan");
    store
        .commit(&planned.commit, &outcome.records)
        .expect("commit");
    assert_eq!(store.outbox_len("bench"), changes);

    if kind == "store" {
        store_floor(&store, &targets[0].projector, changes);
        return;
    }

    let pusher = PushTarget::from_config(&config.targets[0]).expect("connector");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let before = (fake.requests)();
    let delays_before = fakes::delays();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let drained = runtime
        .block_on(push::drain(
            &store,
            &pusher,
            || 0,
            &push::DrainControl::unattended(),
        ))
        .expect("drain");
    let elapsed = started.elapsed();
    let cpu = cpu_seconds() - cpu_before;
    let requests = (fake.requests)() - before;
    assert_eq!((drained.done + drained.parked) as usize, changes);
    assert_eq!(store.outbox_len("bench"), 0, "every change acknowledged");

    // The issue's bounds: batches × latency for a batch API; changes ×
    // latency / concurrency for one record per request.
    let bound = |latency_s: f64| {
        if fake.batch > 1 {
            changes.div_ceil(fake.batch) as f64 * latency_s
        } else {
            changes as f64 * latency_s / fake.concurrency as f64
        }
    };
    let nominal = bound(latency_ms as f64 / 1000.0);
    // The fake's sleeps overshoot on a busy virtual machine: the same bound
    // at the latency it actually added.
    let (delays, delayed) = fakes::delays();
    let (delays, delayed) = (delays - delays_before.0, delayed - delays_before.1);
    let actual_latency = delayed.as_secs_f64() / delays.max(1) as f64;
    let actual = bound(actual_latency);
    println!(
        "{kind}: {changes} changes, {requests} requests ({} per request, {} at once), {latency_ms} ms latency: \
         {:.3} s, {:.0} changes/s; latency bound {nominal:.3} s, ratio {:.2}; \
         latency actually added {:.2} ms, bound {actual:.3} s, ratio {:.2}; CPU {cpu:.2} s (both sides, store included)",
        fake.batch,
        fake.concurrency,
        elapsed.as_secs_f64(),
        changes as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() / nominal,
        actual_latency * 1000.0,
        elapsed.as_secs_f64() / actual,
    );
}
