//! What every fake shares, so that each product's file keeps only its API:
//! the server on its own thread ([`Server`]), the state behind one lock with
//! the injected [`Faults`] and the requests per route beside it ([`Ledger`]),
//! the request numbering, the credential check, latency and transient
//! failures ([`Kernel::admit`]), and the deterministic draws that decide which
//! requests get a fault ([`roll`], [`Admitted::malformed`],
//! [`Admitted::wrong_counts`]), and the echo of a request's headers that any
//! fake can be made to answer with ([`Faults::echo_headers`]).
// The handlers' errors are the HTTP answers themselves.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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
    /// Answer every request with this status and a body that shows its
    /// headers, credentials included, as a misconfigured server's error page
    /// can: as is, as JSON (PHP's, `/` escaped), URL-encoded and in base64.
    pub echo_headers: Option<u16>,
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
pub fn serve(app: Router) -> String {
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

/// A fake's state as its handlers and its tests see it: the product's own
/// (`S`, reached through `Deref`: `fake.with(|p| p.users.len())`), the
/// faults to inject and the requests received per route.
#[derive(Default)]
pub struct Ledger<S> {
    pub faults: Faults,
    /// Requests per route, as each fake names them ("batch", "POST /Users", ...).
    pub hits: BTreeMap<String, u64>,
    pub product: S,
}

impl<S> Deref for Ledger<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.product
    }
}

impl<S> DerefMut for Ledger<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.product
    }
}

/// The answers the kernel gives on a product's behalf, each in the
/// product's own words (`Kernel::new`'s `refusal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401: the credential is missing or wrong.
    Unauthorised,
    /// 429 (the kernel adds `Retry-After`).
    TooManyRequests,
    /// 503.
    Unavailable,
}

/// What a request admitted by [`Kernel::admit`] carries on: its number and
/// the faults in force when it arrived.
#[derive(Debug, Clone, Default)]
pub struct Admitted {
    pub n: u64,
    pub faults: Faults,
}

impl Admitted {
    /// Whether this request's answer is cut short (the work is done).
    pub fn malformed(&self) -> bool {
        roll(self.n, self.faults.malformed_percent, 17)
    }

    /// Whether this request's answer gives counts that do not add up.
    pub fn wrong_counts(&self) -> bool {
        roll(self.n, self.faults.wrong_counts_percent, 31)
    }
}

/// The shared part of a fake: its state, its request numbering, the
/// credential every request must present, and how it words a refusal.
pub struct Kernel<S> {
    state: Mutex<Ledger<S>>,
    requests: Counter,
    credential: Option<String>,
    refusal: fn(Refusal) -> Response,
}

impl<S> Kernel<S> {
    /// `credential`: what a request must present (its `Authorization`
    /// header, say), or `None` when the product checks it itself.
    pub fn new(product: S, credential: Option<String>, refusal: fn(Refusal) -> Response) -> Self {
        Kernel {
            state: Mutex::new(Ledger {
                faults: Faults::default(),
                hits: BTreeMap::new(),
                product,
            }),
            requests: Counter::default(),
            credential,
            refusal,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Ledger<S>> {
        self.state.lock().unwrap()
    }

    /// Numbers a request the product refuses before admitting it (a body
    /// it cannot even read).
    pub fn number(&self) -> u64 {
        self.requests.next()
    }

    /// The start of every request, in this order: its number, its route's
    /// count, the injected latency, the credential (`presented`, e.g. from
    /// [`header`]), then the injected transient failures (503, or 429 with
    /// `Retry-After` when `retry_after` is set).
    pub async fn admit(&self, route: &str, presented: Option<&str>) -> Result<Admitted, Response> {
        let n = self.requests.next();
        let faults = {
            let mut state = self.lock();
            *state.hits.entry(route.to_string()).or_default() += 1;
            state.faults.clone()
        };
        if faults.slow_ms > 0 {
            delay(faults.slow_ms).await;
        }
        if let Some(expected) = &self.credential
            && presented != Some(expected.as_str())
        {
            return Err((self.refusal)(Refusal::Unauthorised));
        }
        if roll(n, faults.fail_percent, 0) {
            return Err(match &faults.retry_after {
                Some(after) => {
                    let mut response = (self.refusal)(Refusal::TooManyRequests);
                    response
                        .headers_mut()
                        .insert("retry-after", after.parse().unwrap());
                    response
                }
                None => (self.refusal)(Refusal::Unavailable),
            });
        }
        Ok(Admitted { n, faults })
    }
}

/// `kernel.admit(route, credential)` in a handler: the admitted request, or
/// the kernel's refusal returned as the handler's answer.
macro_rules! admit {
    ($kernel:expr, $route:expr, $credential:expr) => {
        match $kernel.admit($route, $credential).await {
            Ok(admitted) => admitted,
            Err(response) => return response,
        }
    };
}
pub(crate) use admit;

/// A header's value, as a request presents its credential.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A running fake: its base URL, and its kernel to count and change what it
/// holds. Each product's `Fake` is one of these (`Server<Portal>`, ...).
pub struct Server<S> {
    pub url: String,
    kernel: Arc<Kernel<S>>,
}

impl<S: Send + 'static> Server<S> {
    /// Serves the routes `app` makes around the shared kernel, behind the
    /// kernel's own faults ([`Faults::echo_headers`]).
    pub fn launch(kernel: Kernel<S>, app: impl FnOnce(Arc<Kernel<S>>) -> Router) -> Server<S> {
        let kernel = Arc::new(kernel);
        let app = app(Arc::clone(&kernel)).layer(axum::middleware::from_fn_with_state(
            Arc::clone(&kernel),
            echo_headers::<S>,
        ));
        Server {
            url: serve(app),
            kernel,
        }
    }

    /// Every request received, answered or not.
    pub fn requests(&self) -> u64 {
        self.kernel.requests.get()
    }

    /// Requests received on one route.
    pub fn hits(&self, route: &str) -> u64 {
        self.with(|state| state.hits.get(route).copied().unwrap_or(0))
    }

    /// Reads or changes the state (faults included) under its lock.
    pub fn with<T>(&self, f: impl FnOnce(&mut Ledger<S>) -> T) -> T {
        f(&mut self.kernel.lock())
    }
}

/// Answers with the request's headers instead of the product when
/// [`Faults::echo_headers`] is set.
async fn echo_headers<S>(
    State(kernel): State<Arc<Kernel<S>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(status) = kernel.lock().faults.echo_headers else {
        return next.run(request).await;
    };
    kernel.number();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, echo_body(request.headers())).into_response()
}

/// Every header as is, then as PHP's JSON, URL-encoded and base64.
fn echo_body(headers: &HeaderMap) -> String {
    use base64::Engine as _;
    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.to_string(), value)
        })
        .collect();
    let mut body = String::from("Bad request. Your request was:\n");
    for (name, value) in &pairs {
        body.push_str(&format!("{name}: {value}\n"));
    }
    let json: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(name, value)| (name.clone(), value.clone().into()))
        .collect();
    let json = serde_json::Value::Object(json)
        .to_string()
        .replace('/', "\\/");
    body.push_str(&format!("{json}\n"));
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    body.push_str(&format!("{form}\n"));
    for (name, value) in &pairs {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        body.push_str(&format!("{name} (base64): {encoded}\n"));
    }
    body
}
