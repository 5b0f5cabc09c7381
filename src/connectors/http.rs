//! The HTTP layer every web connector shares: rustls with the system roots
//! and an optional private CA, a timeout per request, the target's
//! `rate_per_sec` (every request waits its turn, whichever connector task
//! sends it), secrets in headers marked sensitive (so no debug output shows
//! them), the target's secrets scrubbed from every error reply before any
//! part of it is read (a server may echo the request), and replies
//! classified by the retry policy.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracing::debug;

use crate::config::TargetConfig;
use crate::connectors::{Refusal, SettingsError};
use crate::retry::{self, Failure};
use crate::secret::Secret;

/// What the server answered, success or not.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A non-success reply as a failure (transient or permanent).
    pub fn failure(&self) -> Failure {
        retry::classify_status(
            self.status,
            self.retry_after.as_deref(),
            &self.body,
            SystemTime::now(),
        )
    }
}

#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    base: String,
    pace: Option<Arc<Pace>>,
    /// Why nothing can be sent to the target right now (see
    /// [`Http::refusal`]): set by a 401 (cleared by a success) or by a
    /// certificate rostersync does not trust (cleared by any reply).
    refusal: Arc<std::sync::Mutex<Option<Refusal>>>,
    /// The target's token and password, as its config names them.
    secrets: Arc<[Secret]>,
    /// The target's name, which labels its request metrics.
    target: Arc<str>,
}

/// `rate_per_sec` as a quota: requests evenly spaced (no burst), so a
/// target's limit holds over any window.
pub fn quota(rate_per_sec: f64) -> Option<Quota> {
    if !(rate_per_sec.is_finite() && rate_per_sec > 0.0) {
        return None;
    }
    let period = Duration::from_secs_f64(1.0 / rate_per_sec);
    Quota::with_period(period).map(|q| q.allow_burst(NonZeroU32::MIN))
}

/// A target's `rate_per_sec`: governor's limiter (GCRA, no burst), on
/// tokio's clock so that paused test time drives it too; a request whose
/// turn has not come sleeps on tokio's timer until it has.
#[derive(Debug)]
pub struct Pace {
    limiter: RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>,
    clock: TokioClock,
}

impl Pace {
    pub fn new(quota: Quota) -> Pace {
        Pace {
            limiter: RateLimiter::direct_with_clock(quota, TokioClock),
            clock: TokioClock,
        }
    }

    /// The pace of a target, when it sets `rate_per_sec`; shared by every
    /// task that sends to it.
    pub fn of(target: &TargetConfig) -> Option<Arc<Pace>> {
        target
            .rate_per_sec
            .as_ref()
            .and_then(|rate| quota(*rate.get_ref()))
            .map(|quota| Arc::new(Pace::new(quota)))
    }

    /// Waits for this request's turn.
    pub async fn wait(&self) {
        while let Err(not_until) = self.limiter.check() {
            tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
        }
    }
}

/// tokio's clock, as governor reads clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(tokio::time::Instant);

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

impl std::ops::Add<Nanos> for TokioInstant {
    type Output = TokioInstant;

    fn add(self, later: Nanos) -> TokioInstant {
        TokioInstant(self.0 + Duration::from(later))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        Nanos::from(self.0.saturating_duration_since(earlier.0))
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        TokioInstant(self.0.checked_sub(duration.into()).unwrap_or(self.0))
    }
}

impl Http {
    /// `headers` are sent with every request (authentication, mostly).
    pub fn new(target: &TargetConfig, headers: HeaderMap) -> Result<Http, SettingsError> {
        Http::build(target, headers, reqwest::redirect::Policy::default())
    }

    /// The same, following no redirect: for a target whose redirect is an
    /// answer of its own (Pleasanter's to its error page after an exception).
    pub fn without_redirects(
        target: &TargetConfig,
        headers: HeaderMap,
    ) -> Result<Http, SettingsError> {
        Http::build(target, headers, reqwest::redirect::Policy::none())
    }

    fn build(
        target: &TargetConfig,
        headers: HeaderMap,
        redirects: reqwest::redirect::Policy,
    ) -> Result<Http, SettingsError> {
        let url = target
            .url
            .as_ref()
            .map(|u| u.get_ref().trim_end_matches('/').to_string())
            .ok_or(SettingsError::Missing("the target needs url"))?;
        let mut builder = reqwest::Client::builder()
            .timeout(target.timeout.0)
            .connect_timeout(target.timeout.0.min(Duration::from_secs(10)))
            .default_headers(headers)
            .redirect(redirects)
            .user_agent(concat!("rostersync/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &target.ca_file {
            for certificate in ca_certificates(ca.get_ref())? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build().map_err(SettingsError::Https)?;
        Ok(Http {
            client,
            base: url,
            pace: Pace::of(target),
            refusal: Arc::default(),
            secrets: target_secrets(target)?.into(),
            target: target.name.get_ref().as_str().into(),
        })
    }

    /// `text` without any of the target's secrets, in any form
    /// ([`Secret::scrub`]).
    pub fn scrub(&self, text: &str) -> String {
        self.secrets
            .iter()
            .fold(text.to_string(), |text, secret| secret.scrub(&text))
    }

    /// Why nothing can be sent to the target right now, whatever the record:
    /// its last reply was a 401, or its certificate was not trusted.
    pub fn refusal(&self) -> Option<Refusal> {
        self.refusal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_refusal(&self, refusal: Option<Refusal>) {
        *self
            .refusal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = refusal;
    }

    fn shown_url(&self) -> String {
        shown_url(&self.base)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends a request; `Err` only when no reply came (classified: refused
    /// connections and timeouts are transient).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Reply, Failure> {
        if let Some(pace) = &self.pace {
            pace.wait().await;
        }
        let started = std::time::Instant::now();
        let reply = self.exchange(request).await;
        crate::metrics::get().request(&self.target, started.elapsed().as_secs_f64());
        reply
    }

    /// [`Http::send`] once its turn came: the request and the whole reply.
    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Reply, Failure> {
        let scrubbed = |error| transport_failure(error).map_reason(|r| self.scrub(r));
        let (client, request) = request.build_split();
        let request = request.map_err(scrubbed)?;
        // What a debug line shows of a request: its method and path, never
        // its query, headers or body (where credentials go).
        let method = request.method().clone();
        let path = self.scrub(request.url().path());
        let started = std::time::Instant::now();
        let no_reply = |failure: Failure| {
            let ms = started.elapsed().as_millis() as u64;
            debug!(%method, %path, ms, error = %failure.reason(), "HTTP request: no reply");
            failure
        };
        let response = match client.execute(request).await {
            Ok(response) => response,
            Err(error) => {
                let failure = no_reply(scrubbed(error));
                let Some(why) = untrusted_certificate(failure.reason()) else {
                    return Err(failure);
                };
                // Nothing will change that by itself: the whole target waits.
                let reason = format!(
                    "the server's certificate at {} is not trusted ({why}): if a private CA signed it, \
                     set the target's ca_file to that CA's certificate (PEM)",
                    self.shown_url()
                );
                self.set_refusal(Some(Refusal::Certificate(reason.clone())));
                return Err(Failure::Permanent { reason });
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .text()
            .await
            .map_err(|error| no_reply(scrubbed(error)))?;
        let ms = started.elapsed().as_millis() as u64;
        debug!(%method, %path, status, ms, "HTTP request");
        // Before anything cuts it short (a reason keeps its first 300
        // characters), so no part of a secret survives.
        // A success is data to read, left whole: a short password could
        // match a name in it.
        let body = if (200..300).contains(&status) {
            body
        } else {
            self.scrub(&body)
        };
        // A 401 is about the credentials, whatever the request was; a kind
        // that logs in again on a 401 clears it with the next success. A
        // reply at all means the certificate was trusted.
        if status == 401 {
            self.set_refusal(Some(Refusal::Credentials));
        } else if (200..300).contains(&status)
            || matches!(self.refusal(), Some(Refusal::Certificate(_)))
        {
            self.set_refusal(None);
        }
        Ok(Reply {
            status,
            body,
            retry_after,
        })
    }
}

/// The certificates of a `ca_file`: PEM, at least one, each one a
/// certificate rustls takes as a trust anchor. Checked here, since reqwest
/// takes a file without any certificate as an empty list (the target's
/// private CA then silently not trusted) and a broken one only when the
/// client is built, in words that name no file.
pub fn ca_certificates(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, SettingsError> {
    let invalid = |reason: String| SettingsError::CaFileInvalid {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|error| SettingsError::CaFileUnreadable {
        path: path.to_path_buf(),
        error,
    })?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|error| invalid(format!("not a PEM certificate file: {}", describe(&error))))?;
    if certificates.is_empty() {
        return Err(invalid(
            "holds no certificate: the PEM file of the CA (\"-----BEGIN CERTIFICATE-----\") is expected"
                .into(),
        ));
    }
    for (n, certificate) in certificates.iter().enumerate() {
        // What the client does with it: parsed as a trust anchor.
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(certificate.clone())
            .build()
            .map_err(|error| {
                invalid(format!(
                    "certificate {} of the file is not one a client can trust: {}",
                    n + 1,
                    describe(&error)
                ))
            })?;
    }
    Ok(certificates)
}

/// Every secret the target's config names (read as its connector reads
/// them), for [`Http::scrub`].
fn target_secrets(target: &TargetConfig) -> Result<Vec<Secret>, SettingsError> {
    [target.token_source(), target.password_source()]
        .into_iter()
        .flatten()
        .map(|source| source.load().map_err(SettingsError::from))
        .collect()
}

/// What rustls said of a certificate it did not trust (`invalid peer
/// certificate: UnknownIssuer`, `...: Expired`, `...: NotValidForName`), from
/// a transport failure's reason.
fn untrusted_certificate(reason: &str) -> Option<&str> {
    const SAID: &str = "invalid peer certificate";
    let at = reason.find(SAID)?;
    let rest = &reason[at..];
    Some(rest.split(": error").next().unwrap_or(rest))
}

/// A request that got no reply, classified, its causes said (the URL left out).
pub(crate) fn transport_failure(error: reqwest::Error) -> Failure {
    let dropped = error.is_request() || error.is_body() || error.is_decode();
    let (connect, timeout) = (error.is_connect() || dropped, error.is_timeout());
    // reqwest's message names the URL (left out), never headers or bodies;
    // its causes say what actually happened ("Connection refused").
    let description = describe(&error.without_url());
    retry::classify_transport(connect, timeout, &description)
}

/// An error and its causes, one after the other, without repeats.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}

/// A header carrying a secret, marked sensitive so that it never shows in debug output.
pub fn secret_header(
    name: &'static str,
    prefix: &str,
    secret: &Secret,
) -> Result<HeaderMap, SettingsError> {
    let mut value = HeaderValue::from_str(&format!("{prefix}{}", secret.expose()))
        .map_err(|_| SettingsError::HeaderValue { header: name })?;
    value.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static(name), value);
    Ok(headers)
}

/// A target's URL as messages name it: scheme, host, port and path, never a
/// user, password or query (where a careless URL would carry a secret).
pub fn shown_url(base: &str) -> String {
    match url::Url::parse(base) {
        Ok(url) => format!(
            "{}://{}{}{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port().map(|p| format!(":{p}")).unwrap_or_default(),
            url.path().trim_end_matches('/')
        ),
        Err(_) => "its url".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_become_evenly_spaced_quotas() {
        let quota = quota(20.0).unwrap();
        assert_eq!(quota.replenish_interval(), Duration::from_millis(50));
        assert_eq!(quota.burst_size().get(), 1);
        assert_eq!(
            super::quota(0.5).unwrap().replenish_interval(),
            Duration::from_secs(2)
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(super::quota(bad).is_none(), "{bad}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unreachable_server_is_transient_and_says_why() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = reqwest::Client::new();
        let error = client
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        let failure = transport_failure(error);
        assert!(matches!(failure, Failure::Transient { .. }), "{failure:?}");
        assert!(
            failure.reason().contains("error sending request")
                && failure
                    .reason()
                    .to_lowercase()
                    .contains("connection refused"),
            "{}",
            failure.reason()
        );
        assert!(
            !failure.reason().contains("127.0.0.1"),
            "{}",
            failure.reason()
        );
    }

    /// A server on loopback that answers one request with `status` and
    /// `body`; its base URL.
    fn answer_once(status: u16, body: String) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buffer = [0; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buffer).unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..n]);
            }
            let head = format!(
                "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(body.as_bytes()).unwrap();
        });
        url
    }

    /// An `Http` to `url` whose config gives `token` in a file.
    fn http_with_token(dir: &std::path::Path, url: &str, token: &str) -> Http {
        use std::os::unix::fs::PermissionsExt;
        let file = dir.join("token");
        std::fs::write(&file, token).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = format!(
            "[[source]]\nname = \"hr\"\nkind = \"users\"\ninbox = \"in\"\ntargets = [\"t\"]\n\
             [[target]]\nname = \"t\"\nkind = \"collaborator\"\nurl = \"{url}\"\ntoken_file = \"{}\"\n",
            file.display()
        );
        let config = crate::config::parse(
            &text,
            std::path::Path::new("."),
            crate::config::CheckLevel::SourcesOnly,
        )
        .unwrap();
        Http::new(&config.targets[0], HeaderMap::new()).unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_error_reply_is_scrubbed_before_its_reason_is_cut_short() {
        let token = "tok-0123456789abcdefghijklmnopqrstuvwxyz";
        // The reason keeps 300 characters of the body: the cut falls in the token.
        let body = format!("{} Bearer {token} and more", "a".repeat(280));
        let dir = tempfile::tempdir().unwrap();
        let http = http_with_token(dir.path(), &answer_once(400, body), token);
        let reply = http.send(http.client().get(http.url("/"))).await.unwrap();
        let reason = reply.failure().reason().to_string();
        assert!(reason.contains(" Bearer ***"), "{reason}");
        assert!(!reason.contains(&token[..8]), "{reason}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_success_is_read_whole() {
        let token = "tok-0123456789";
        let dir = tempfile::tempdir().unwrap();
        let http = http_with_token(dir.path(), &answer_once(200, format!("[{token:?}]")), token);
        let reply = http.send(http.client().get(http.url("/"))).await.unwrap();
        assert_eq!(reply.body, format!("[{token:?}]"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_limiter_spaces_requests() {
        let limiter = Pace::new(quota(100.0).unwrap());
        let start = std::time::Instant::now();
        for _ in 0..5 {
            limiter.wait().await;
        }
        // The first goes at once, the next four 10 ms apart.
        assert!(
            start.elapsed() >= Duration::from_millis(38),
            "{:?}",
            start.elapsed()
        );
    }
}
