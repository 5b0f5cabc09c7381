//! Times ingest (decode, parse, validate, cross-row checks) of a WBT users file
//! and reports rows/s and the process's peak memory:
//! `cargo run --release --example bench_ingest -- /tmp/users.csv [runs]`.
//! `scripts/bench-ingest.sh` generates the input and runs this.

use std::time::Instant;

use rostersync::ingest::record::RecordKind;
use rostersync::ingest::{SourceSpec, ingest};

/// Peak resident set size of this process, from /proc (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: bench_ingest FILE [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(5).max(1);
    let started = Instant::now();
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("cannot read {path}: {error}");
            std::process::exit(1);
        }
    };
    println!(
        "file: {path}, {:.1} MB, read in {:.2} s",
        bytes.len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let spec = SourceSpec::wbt(RecordKind::Users);
    let mut times = Vec::with_capacity(runs);
    for run in 1..=runs {
        let started = Instant::now();
        let outcome = ingest(&bytes, &spec);
        let seconds = started.elapsed().as_secs_f64();
        times.push(seconds);
        println!(
            "run {run}: {} rows, {} valid, verdict {:?}, {:.2} s, {:.0} rows/s, {:.1} MB/s",
            outcome.rows,
            outcome.records.len(),
            outcome.verdict,
            seconds,
            outcome.rows as f64 / seconds,
            bytes.len() as f64 / 1e6 / seconds
        );
        drop(outcome);
    }
    let rows = bytecount_lines(&bytes).saturating_sub(1) as f64;
    times.sort_by(f64::total_cmp);
    let best = times[0];
    let median = times[times.len() / 2];
    println!(
        "best: {best:.2} s, {:.0} rows/s; median: {median:.2} s, {:.0} rows/s; \
         peak RSS {:.0} MiB (file bytes {:.0} MiB included)",
        rows / best,
        rows / median,
        peak_rss_mib().unwrap_or(f64::NAN),
        bytes.len() as f64 / 1_048_576.0
    );
}

fn bytecount_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}
