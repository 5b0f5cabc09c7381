//! What every fake shares, so that each product's file keeps only its API:
//! the server on its own thread ([`Server`]), the state behind one lock with
//! the injected [`Faults`] and the requests per route beside it ([`Ledger`]),
//! the request numbering, the credential check, latency and transient
//! failures ([`Kernel::admit`]), and the deterministic draws that decide which
//! requests get a fault ([`roll`], [`Admitted::malformed`],
//! [`Admitted::wrong_counts`]), and the echo of a request's headers that any
//! fake can be made to answer with ([`Faults::echo_headers`]); and the
//! faults a test counts ([`Burst`]: the next N requests or replies spoiled,
//! then none), refused credentials ([`Faults::refuse_credentials`]), and a
//! fake that stops listening for a while ([`Server::down`], [`Server::up`]).
// The handlers' errors are the HTTP answers themselves.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
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
    /// The next requests or replies spoiled, then none.
    pub burst: Burst,
    /// Answer every request 401 in the product's words (its own check of
    /// the credential aside), as a product whose credential changed would.
    pub refuse_credentials: bool,
}

/// A fault on the next `left` requests (or replies, for the faults that
/// strike once the product did its work), then none: how many requests it
/// spoils is what the retries it costs are counted against.
#[derive(Debug, Clone, Default)]
pub struct Burst {
    pub fault: Fault,
    /// Requests (or replies) to let through before the burst.
    pub skip: u64,
    /// Requests (or replies) still to spoil.
    pub left: u64,
    /// When each spoiled request arrived.
    pub spoiled_at: Vec<Instant>,
    /// When each request after the last one spoiled arrived.
    pub after: Vec<Instant>,
}

impl Burst {
    pub fn of(fault: Fault, count: u64) -> Burst {
        Burst {
            fault,
            left: count,
            ..Burst::default()
        }
    }

    /// The same, once `skip` requests (or replies) went through.
    pub fn after_passing(mut self, skip: u64) -> Burst {
        self.skip = skip;
        self
    }

    /// How many requests (or replies) it spoiled.
    pub fn spoiled(&self) -> u64 {
        self.spoiled_at.len() as u64
    }

    /// Spoils a request that arrived `at`, if any is left to spoil.
    fn take(&mut self, at: Instant) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        self.spoiled_at.push(at);
        true
    }

    /// Notes a request that arrived `at`, not spoiled, after a spoiled one
    /// (the first few only: what honouring `Retry-After` is judged on).
    fn note(&mut self, at: Instant) {
        if !self.spoiled_at.is_empty() && self.after.len() < 64 {
            self.after.push(at);
        }
    }
}

/// What a burst does to a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fault {
    /// 503, before the product sees the request.
    #[default]
    Unavailable,
    /// 429 with `Retry-After`, before the product sees the request.
    TooManyRequests(RetryAfter),
    /// The product does the work; its reply, whatever it is, is held this
    /// many milliseconds (past the client's timeout, say).
    Slow(u64),
    /// The product does the work; its reply (a success with a body) is
    /// cut: its head announcing the whole body, half of it, then the
    /// connection dropped.
    Reset,
    /// The product does the work; its reply (a success with a body) comes
    /// whole but with half its body: JSON cut short.
    Malformed,
    /// The product does the work; its reply (a success with a body) comes
    /// with an empty body.
    Blank,
    /// The product does the work; its reply (a success with a body) comes
    /// as `{}`.
    EmptyObject,
}

impl Fault {
    /// Whether it strikes the reply, once the product did the work.
    fn on_reply(self) -> bool {
        !matches!(self, Fault::Unavailable | Fault::TooManyRequests(_))
    }
}

/// `Retry-After` as delta-seconds, or as an HTTP date this many seconds
/// after the reply (in whole seconds, as HTTP dates are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    Seconds(u64),
    DateIn(u64),
}

impl Default for RetryAfter {
    fn default() -> Self {
        RetryAfter::Seconds(1)
    }
}

impl RetryAfter {
    fn header(self) -> String {
        match self {
            RetryAfter::Seconds(seconds) => seconds.to_string(),
            RetryAfter::DateIn(seconds) => {
                httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(seconds))
            }
        }
    }

    /// The least a client that honours it waits: a date is in whole
    /// seconds, so up to one less than asked.
    pub fn least_wait(self) -> Duration {
        match self {
            RetryAfter::Seconds(seconds) => Duration::from_secs(seconds),
            RetryAfter::DateIn(seconds) => Duration::from_secs(seconds.saturating_sub(1)),
        }
    }
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

/// Serves `app` on 127.0.0.1 on a thread of its own; returns the base URL
/// and the switch that stops and starts it listening.
pub fn serve(app: Router) -> (String, Switch) {
    let (sender, receiver) = std::sync::mpsc::channel();
    let (listening, mut wanted) = tokio::sync::watch::channel(true);
    std::thread::spawn(move || {
        // Two workers: a vendor's server answers requests side by side.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            sender.send(address).unwrap();
            loop {
                let mut down = wanted.clone();
                let stopped = async move {
                    let _ = down.wait_for(|up| !*up).await;
                };
                // Stopped, it finishes the requests under way and closes
                // every connection and the listener.
                axum::serve(listener, app.clone())
                    .with_graceful_shutdown(stopped)
                    .await
                    .unwrap();
                // The fake was dropped (its switch with it): its server
                // goes too. Waiting on a closed channel whose last value
                // says "up" returns at once, so without this check the
                // server would be bound and stopped again in a busy loop.
                if wanted.has_changed().is_err() || wanted.wait_for(|up| *up).await.is_err() {
                    return;
                }
                // The same port again (nothing else binds on loopback
                // meanwhile in a test).
                listener = loop {
                    match tokio::net::TcpListener::bind(address).await {
                        Ok(listener) => break listener,
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                };
            }
        });
    });
    let address = receiver.recv().unwrap();
    (format!("http://{address}"), Switch { address, listening })
}

/// Stops a fake listening (connections to it are refused, as to a server
/// that is down) and starts it again on the same port.
pub struct Switch {
    address: std::net::SocketAddr,
    listening: tokio::sync::watch::Sender<bool>,
}

impl Switch {
    /// Returns once connections are refused.
    pub fn down(&self) {
        self.listening.send_replace(false);
        self.wait_for(false);
    }

    /// Returns once connections are taken again.
    pub fn up(&self) {
        self.listening.send_replace(true);
        self.wait_for(true);
    }

    fn wait_for(&self, accepting: bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(self.address).is_ok() != accepting {
            assert!(
                Instant::now() < deadline,
                "the fake never went {}",
                if accepting { "up" } else { "down" }
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
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
        let (faults, spoiled) = {
            let mut state = self.lock();
            *state.hits.entry(route.to_string()).or_default() += 1;
            let burst = &mut state.faults.burst;
            let fault = burst.fault;
            let spoiled = !fault.on_reply() && burst.take(Instant::now());
            if !spoiled && !fault.on_reply() {
                burst.note(Instant::now());
            }
            (state.faults.clone(), spoiled.then_some(fault))
        };
        if faults.slow_ms > 0 {
            delay(faults.slow_ms).await;
        }
        match spoiled {
            Some(Fault::TooManyRequests(after)) => return Err(self.too_many(&after.header())),
            Some(_) => return Err((self.refusal)(Refusal::Unavailable)),
            None => {}
        }
        if faults.refuse_credentials {
            return Err((self.refusal)(Refusal::Unauthorised));
        }
        if let Some(expected) = &self.credential
            && presented != Some(expected.as_str())
        {
            return Err((self.refusal)(Refusal::Unauthorised));
        }
        if roll(n, faults.fail_percent, 0) {
            return Err(match &faults.retry_after {
                Some(after) => self.too_many(after),
                None => (self.refusal)(Refusal::Unavailable),
            });
        }
        Ok(Admitted { n, faults })
    }

    /// A 429 in the product's words, with `Retry-After: after`.
    fn too_many(&self, after: &str) -> Response {
        let mut response = (self.refusal)(Refusal::TooManyRequests);
        response
            .headers_mut()
            .insert("retry-after", after.parse().unwrap());
        response
    }

    /// A reply the product gave, spoiled when a burst of a fault that
    /// strikes replies says so: only a success with a body (there is
    /// nothing to cut in a 204), or any reply for a slow one.
    async fn spoil(&self, response: Response) -> Response {
        let fault = {
            let mut state = self.lock();
            let burst = &mut state.faults.burst;
            let fault = burst.fault;
            if !fault.on_reply() {
                return response;
            }
            let has_body = response.status().is_success()
                && response.status() != StatusCode::NO_CONTENT
                && response
                    .headers()
                    .get(CONTENT_LENGTH)
                    .is_none_or(|length| length != "0");
            let applies = matches!(fault, Fault::Slow(_)) || has_body;
            if !(applies && burst.take(Instant::now())) {
                burst.note(Instant::now());
                return response;
            }
            fault
        };
        let (mut parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let half = bytes.slice(..bytes.len() / 2);
        parts.headers.remove(CONTENT_LENGTH);
        let body = match fault {
            Fault::Slow(ms) => {
                delay(ms).await;
                Body::from(bytes)
            }
            Fault::Malformed => Body::from(half),
            Fault::Blank => Body::empty(),
            Fault::EmptyObject => Body::from("{}"),
            Fault::Reset => {
                // The whole length announced, half of it sent, then an
                // error: the server drops the connection mid-body.
                let length = bytes.len().max(1).to_string();
                parts
                    .headers
                    .insert(CONTENT_LENGTH, length.parse().unwrap());
                let cut = std::io::Error::other("the fake cut its reply");
                Body::from_stream(futures_util::stream::iter([Ok(half), Err(cut)]))
            }
            Fault::Unavailable | Fault::TooManyRequests(_) => Body::from(bytes),
        };
        Response::from_parts(parts, body)
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
    switch: Switch,
}

impl<S: Send + 'static> Server<S> {
    /// Serves the routes `app` makes around the shared kernel, behind the
    /// kernel's own faults ([`Faults::echo_headers`], the replies a
    /// [`Burst`] spoils).
    pub fn launch(kernel: Kernel<S>, app: impl FnOnce(Arc<Kernel<S>>) -> Router) -> Server<S> {
        let kernel = Arc::new(kernel);
        let app = app(Arc::clone(&kernel))
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&kernel),
                spoil_replies::<S>,
            ))
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&kernel),
                echo_headers::<S>,
            ));
        let (url, switch) = serve(app);
        Server {
            url,
            kernel,
            switch,
        }
    }

    /// Stops listening: connections are refused until [`Server::up`].
    pub fn down(&self) {
        self.switch.down();
    }

    /// Listens again, on the same port.
    pub fn up(&self) {
        self.switch.up();
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

/// The product's reply, spoiled when a [`Burst`] of a fault that strikes
/// replies says so.
async fn spoil_replies<S>(
    State(kernel): State<Arc<Kernel<S>>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    kernel.spoil(response).await
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
