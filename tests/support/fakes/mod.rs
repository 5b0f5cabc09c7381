//! Stateful fakes of the target APIs: real HTTP servers on loopback that keep
//! users and organisations, enforce each API's rules, and inject faults on
//! demand. Each runs on its own thread and runtime, so tests that drive the
//! real binary can use them as they would a vendor's server.
#![allow(dead_code)]

pub mod collaborator;
pub mod gestimum;
pub mod maarch;
pub mod pleasanter;
pub mod scim;

use std::sync::atomic::{AtomicU64, Ordering};

/// Faults a fake injects, each on a share of requests (0–100 %), chosen by
/// the request number so that runs are repeatable.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer 503 (or 429 when `retry_after` is set) without doing anything.
    pub fail_percent: u64,
    pub retry_after: Option<String>,
    /// Do the work, then answer with a body that is not JSON.
    pub malformed_percent: u64,
    /// Do the work, then answer with counts that do not add up.
    pub wrong_counts_percent: u64,
    /// Sleep this long before answering (past the client's timeout, say).
    pub slow_ms: u64,
}

/// Whether request `n` gets a fault of `percent`: splitmix64's finaliser, so
/// that consecutive requests are independent draws (a plain multiplicative
/// hash repeats about every 5th request, and a record that takes 5 requests
/// would then fail at the same step on every retry).
pub fn roll(n: u64, percent: u64, salt: u64) -> bool {
    let mut z = n
        .wrapping_add(salt.wrapping_mul(0x2545_F491_4F6C_DD1D))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    percent > 0 && z % 100 < percent
}

/// Holds a reply back `ms` milliseconds, as precisely as the machine allows:
/// tokio's timer counts whole milliseconds and rounds up (a 5 ms sleep takes
/// 5 to 6), so a thread of the blocking pool sleeps instead. Even that
/// oversleeps on a loaded virtual machine, so the time actually held back is
/// added up (see [`delays`]) for benchmarks to compare against.
pub async fn delay(ms: u64) {
    let held = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(ms));
        started.elapsed()
    })
    .await
    .unwrap_or_default();
    DELAYED_MICROS.fetch_add(held.as_micros() as u64, Ordering::Relaxed);
    DELAYS.fetch_add(1, Ordering::Relaxed);
}

static DELAYED_MICROS: AtomicU64 = AtomicU64::new(0);
static DELAYS: AtomicU64 = AtomicU64::new(0);

/// How many replies every fake of this process held back so far, and for
/// how long in all.
pub fn delays() -> (u64, std::time::Duration) {
    (
        DELAYS.load(Ordering::Relaxed),
        std::time::Duration::from_micros(DELAYED_MICROS.load(Ordering::Relaxed)),
    )
}

/// Numbers requests.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Serves `app` on 127.0.0.1 on a thread of its own; returns the base URL.
pub fn serve(app: axum::Router) -> String {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Two workers: a vendor's server answers requests side by side.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sender.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let address = receiver.recv().unwrap();
    format!("http://{address}")
}
