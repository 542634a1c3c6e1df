//! The Admin GraphQL client: one POST per operation, paced from `extensions.cost.throttleStatus`
//! so it is almost never throttled while using the budget fully, and retrying what can be retried
//! (`THROTTLED`, HTTP 429/5xx honouring `Retry-After`, timeouts, connection errors) through
//! [`crate::retry`] — never `MAX_COST_EXCEEDED`, `MAX_INPUT_SIZE_EXCEEDED` or validation errors.
//! Requests sent at once share the bucket: each reserves its cost before it is sent, and a pause
//! the store asks for (HTTP 429) holds them all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tracing::Instrument;

use crate::config::secret::Secret;
use crate::retry::{retry, GaveUp, Policy, Verdict, Wait};

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GqlError {
    /// The store refused the request as a whole (bad token, unknown shop): no item can succeed.
    #[error("the store refused the request (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    /// A GraphQL error that retrying cannot fix (validation, `MAX_COST_EXCEEDED`, ...).
    #[error("{message}")]
    Rejected { code: Option<String>, message: String },
    /// Still failing after every retry (5xx, throttling, timeouts after sending).
    #[error("gave up after {attempts} attempts: {message}")]
    Exhausted { attempts: u32, message: String },
    /// No attempt reached the store (connection refused, DNS, TLS): no item can succeed.
    #[error("cannot reach the store at {endpoint} after {attempts} attempts: {message}")]
    Unreachable { endpoint: String, attempts: u32, message: String },
    /// The answer was not a GraphQL response.
    #[error("the store answered something that is not a GraphQL response: {0}")]
    Garbage(String),
    /// A bulk file could not be staged (the upload target refused it or could not be reached):
    /// bulk operations are unusable, single calls may still work.
    #[error("cannot stage a bulk file: {0}")]
    Staging(String),
    /// A bulk operation failed as a whole (it ended `FAILED`, `CANCELED` or `EXPIRED`, or a
    /// request about the operation itself was refused): nothing says which of its items the
    /// store applied, so none is charged — they stay queued.
    #[error("{0}")]
    BulkFailed(String),
}

impl GqlError {
    /// The request may or may not have been applied (a timeout after sending, a reset): callers
    /// of non-idempotent operations must look before trying again.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, GqlError::Exhausted { .. })
    }

    /// What to check when this error stops a run.
    pub fn hint(&self) -> &'static str {
        match self {
            GqlError::Refused { .. } => "check the store `url`, `api_version` and the access token",
            GqlError::Unreachable { .. } => "check the store `url` and the network (DNS, proxy, firewall)",
            GqlError::Exhausted { .. } => {
                "the store kept failing (server errors, timeouts or throttling); check its status and retry later"
            }
            GqlError::Garbage(_) => "check the store `url`: it does not look like a Shopify Admin GraphQL endpoint",
            GqlError::Staging(_) => "check that the staged-upload host the store names is reachable from here",
            GqlError::Rejected { .. } => "the store rejected the request",
            GqlError::BulkFailed(_) => {
                "its items stay queued and `catsync run` sends them again; if it keeps failing, check the store's status, or set `bulk: { enabled: false }` on the export to send single calls"
            }
        }
    }
}

/// The leaky bucket as last reported by the store, advanced by its restore rate.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    maximum: f64,
    available: f64,
    restore_rate: f64,
    at: Instant,
}

impl Bucket {
    fn now(&self) -> f64 {
        (self.available + self.restore_rate * self.at.elapsed().as_secs_f64()).min(self.maximum)
    }
}

/// What every request of a client paces itself by; requests in flight at once share it.
#[derive(Debug, Default)]
struct Pacing {
    bucket: Option<Bucket>,
    /// Points reserved by requests whose answers have not come back yet: an answer's
    /// `currentlyAvailable` may not count them, so they are taken off what it says.
    pending: f64,
    /// No request starts before then: the store asked for a pause (HTTP 429, `Retry-After`),
    /// which holds every request of the client, not only the one it answered.
    hold_until: Option<Instant>,
}

/// Points a request reserved from the bucket, given back to the pending count when its answer
/// is in (or the request is dropped).
struct Reservation<'c> {
    pacing: &'c Mutex<Pacing>,
    points: f64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut p = self.pacing.lock().expect("pacing lock");
        p.pending = (p.pending - self.points).max(0.0);
    }
}

/// Counters for reports and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    pub retried: AtomicU64,
    /// Points actually charged (thousandths).
    pub cost_milli: AtomicU64,
}

/// A client for one store and API version. Requests may be sent from several tasks at once: they
/// share one bucket, so together they never ask for more than it holds.
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    token: Option<Secret>,
    pacing: Mutex<Pacing>,
    pub stats: Stats,
}

/// Why one attempt of a request is worth another.
#[derive(Debug)]
struct Transient {
    message: String,
    /// The request may have reached the store (anything but a refused connection).
    reached: bool,
    /// The store asked for a pause (HTTP 429, `Retry-After`): every request of the client waits.
    hold: bool,
    kind: Again,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Again {
    /// No answer, or a server error.
    Unanswered,
    /// HTTP 429.
    TooMany,
    /// `THROTTLED`: the bucket is empty; pacing waits for it to restore.
    Throttled,
}

impl Client {
    pub fn new(store_url: &str, api_version: &str, token: Option<Secret>) -> Result<Client, GqlError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("catsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GqlError::Rejected { code: None, message: format!("cannot start the HTTP client: {e}") })?;
        Ok(Client {
            http,
            endpoint: format!("{}/admin/api/{api_version}/graphql.json", store_url.trim_end_matches('/')),
            token,
            pacing: Mutex::new(Pacing::default()),
            stats: Stats::default(),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The store's budget as its last answer said (none before one did): the bucket's size in
    /// cost points, and the points it restores per second.
    pub fn budget(&self) -> Option<(f64, f64)> {
        self.pacing.lock().ok().and_then(|p| p.bucket.as_ref().map(|b| (b.maximum, b.restore_rate)))
    }

    /// Waits out a pause the store asked for, then until the bucket should hold `cost` points,
    /// and reserves them. An estimate above the bucket's size waits for a full bucket, no longer
    /// (the store judges the real cost).
    async fn pace(&self, cost: f64) -> Reservation<'_> {
        loop {
            let hold = self.pacing.lock().expect("pacing lock").hold_until.filter(|t| *t > Instant::now());
            match hold {
                Some(until) => tokio::time::sleep_until(until.into()).await,
                None => break,
            }
        }
        let (wait, points) = {
            let mut p = self.pacing.lock().expect("pacing lock");
            let (wait, points) = match p.bucket.as_mut() {
                None => (Duration::ZERO, cost),
                Some(b) => {
                    let cost = cost.min(b.maximum);
                    let now = b.now();
                    let wait = if now >= cost { 0.0 } else { (cost - now) / b.restore_rate.max(1.0) };
                    // Reserve: the next caller sees what this one will spend.
                    b.available = now - cost;
                    b.at = Instant::now();
                    (Duration::from_secs_f64(wait), cost)
                }
            };
            p.pending += points;
            (wait, points)
        };
        let reservation = Reservation { pacing: &self.pacing, points };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        reservation
    }

    /// Takes the store's word for the bucket, less what the other requests in flight reserved.
    fn observe(&self, status: &Value, own: &Reservation) {
        let get = |k: &str| status.get(k).and_then(Value::as_f64);
        if let (Some(maximum), Some(available), Some(restore_rate)) =
            (get("maximumAvailable"), get("currentlyAvailable"), get("restoreRate"))
        {
            let mut p = self.pacing.lock().expect("pacing lock");
            let others = (p.pending - own.points).max(0.0);
            p.bucket = Some(Bucket { maximum, available: available - others, restore_rate, at: Instant::now() });
        }
    }

    /// Holds every request of this client for `wait`.
    fn hold(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut p = self.pacing.lock().expect("pacing lock");
        p.hold_until = Some(p.hold_until.map_or(until, |t| t.max(until)));
    }

    /// Runs one operation; returns its `data`. `cost` is the expected requested cost. Retried
    /// by [`Policy::REQUEST`] in a `request` span (the operation's name, its cost, the attempt).
    pub async fn execute(&self, query: &str, variables: Value, cost: f64) -> Result<Value, GqlError> {
        self.execute_with(query, variables, cost, true).await
    }

    /// [`Client::execute`] for an operation that must not be applied twice (`collectionCreate`):
    /// an attempt the store may have applied (no answer after sending, a server error) is not
    /// repeated but returned as ambiguous ([`GqlError::is_ambiguous`]), for the caller to look
    /// before it tries again. Refused connections and throttling, which apply nothing, are retried.
    pub async fn execute_once(&self, query: &str, variables: Value, cost: f64) -> Result<Value, GqlError> {
        self.execute_with(query, variables, cost, false).await
    }

    async fn execute_with(&self, query: &str, variables: Value, cost: f64, repeat: bool) -> Result<Value, GqlError> {
        let span =
            tracing::info_span!("request", operation = operation_name(query), cost, attempt = tracing::field::Empty);
        let body = json!({ "query": query, "variables": variables });
        let body = &body;
        let mut reached = false;
        let result = retry(
            Policy::REQUEST,
            |attempt| async move {
                match self.attempt(body, cost, attempt).await {
                    Verdict::Retry(again, _) if !repeat && again.reached && again.kind == Again::Unanswered => {
                        Verdict::Fail(GqlError::Exhausted { attempts: attempt, message: again.message })
                    }
                    verdict => verdict,
                }
            },
            |attempt, again, wait| {
                reached |= again.reached;
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                if again.hold {
                    self.hold(wait);
                }
                match again.kind {
                    Again::TooMany => {
                        tracing::info!(attempt, wait_ms = wait.as_millis() as u64, "throttled (HTTP 429); waiting");
                    }
                    Again::Unanswered => self.retrying(attempt, &again.message, wait),
                    // The bucket was just observed; pacing waits for the cost on the next attempt.
                    Again::Throttled => {}
                }
            },
        )
        .instrument(span)
        .await;
        result.map_err(|gave_up| match gave_up {
            GaveUp::Failed(e) => e,
            GaveUp::Exhausted { attempts, last } if reached || last.reached => {
                GqlError::Exhausted { attempts, message: last.message }
            }
            GaveUp::Exhausted { attempts, last } => {
                GqlError::Unreachable { endpoint: self.endpoint.clone(), attempts, message: last.message }
            }
        })
    }

    /// One attempt of a request: paced, sent, and its answer judged.
    async fn attempt(&self, body: &Value, cost: f64, attempt: u32) -> Verdict<Value, GqlError, Transient> {
        tracing::Span::current().record("attempt", attempt);
        let reservation = self.pace(cost).await;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mut request = self.http.post(&self.endpoint).json(body);
        if let Some(token) = &self.token {
            request = request.header("X-Shopify-Access-Token", token.expose());
        }
        let unanswered = |message, reached| Transient { message, reached, hold: false, kind: Again::Unanswered };
        let response = match request.send().await {
            Ok(r) => r,
            // A request that may have been sent (timeout, reset mid-answer) reached the store.
            Err(e) => return Verdict::Retry(unanswered(describe(&e), !e.is_connect()), Wait::Backoff),
        };
        let status = response.status().as_u16();
        let wait = Wait::asked_by(response.headers());
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return Verdict::Retry(unanswered(describe(&e), true), Wait::Backoff),
        };
        if status == 401 || status == 403 || status == 404 {
            let text = String::from_utf8_lossy(&bytes).chars().take(200).collect::<String>();
            return Verdict::Fail(GqlError::Refused { status, message: refused_hint(status, &text) });
        }
        if status == 429 || status >= 500 {
            let kind = if status == 429 { Again::TooMany } else { Again::Unanswered };
            if kind == Again::TooMany {
                self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            }
            let hold = status == 429 || wait != Wait::Backoff;
            return Verdict::Retry(Transient { message: format!("HTTP {status}"), reached: true, hold, kind }, wait);
        }
        let value: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => return Verdict::Fail(GqlError::Garbage(format!("HTTP {status}, {e}"))),
        };
        let actual = value.pointer("/extensions/cost/actualQueryCost").and_then(Value::as_f64);
        if let Some(ts) = value.pointer("/extensions/cost/throttleStatus") {
            self.observe(ts, &reservation);
        }
        if let Some(actual) = actual {
            self.stats.cost_milli.fetch_add((actual * 1000.0) as u64, Ordering::Relaxed);
        }
        tracing::debug!(status, actual_cost = actual, "answered");
        if let Some(errors) = value.get("errors").and_then(Value::as_array).filter(|e| !e.is_empty()) {
            let code = errors[0].pointer("/extensions/code").and_then(Value::as_str).map(str::to_string);
            let message =
                errors.iter().filter_map(|e| e.get("message").and_then(Value::as_str)).collect::<Vec<_>>().join("; ");
            if code.as_deref() == Some("THROTTLED") {
                self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                let again =
                    Transient { message: "throttled".to_string(), reached: true, hold: false, kind: Again::Throttled };
                return Verdict::Retry(again, Wait::Paced);
            }
            return Verdict::Fail(GqlError::Rejected { code, message });
        }
        match value.get("data") {
            Some(data) if !data.is_null() => Verdict::Done(data.clone()),
            _ => Verdict::Fail(GqlError::Garbage("no `data` in the response".to_string())),
        }
    }

    /// Says that a request failed and is tried again: an unreachable or failing store is never
    /// silent for the minute its retries can take.
    fn retrying(&self, attempt: u32, error: &str, wait: Duration) {
        tracing::warn!(
            "the store at {} did not answer ({error}); retry {}/{} in {:.1} s",
            self.endpoint,
            attempt,
            Policy::REQUEST.attempts - 1,
            wait.as_secs_f64()
        );
    }

    /// Uploads a file to a staged-upload target (a form POST: the target's parameters, then the
    /// file). The store's token is never sent there: the target is a storage bucket.
    pub async fn upload_form(
        &self,
        url: &str,
        parameters: &[(String, String)],
        filename: &str,
        bytes: Vec<u8>,
    ) -> Result<(), GqlError> {
        let upload = |_| async {
            let mut form = reqwest::multipart::Form::new();
            for (name, value) in parameters {
                form = form.text(name.clone(), value.clone());
            }
            let part = match reqwest::multipart::Part::bytes(bytes.clone())
                .file_name(filename.to_string())
                .mime_str("text/jsonl")
            {
                Ok(part) => part,
                Err(e) => return Verdict::Fail(GqlError::Garbage(e.to_string())),
            };
            form = form.part("file", part);
            match self.http.post(url).multipart(form).timeout(Duration::from_secs(600)).send().await {
                Ok(r) if r.status().is_success() => Verdict::Done(()),
                Ok(r) if r.status().is_client_error() => {
                    let status = r.status().as_u16();
                    let text: String = r.text().await.unwrap_or_default().chars().take(300).collect();
                    Verdict::Fail(GqlError::Staging(format!("the staged upload was refused (HTTP {status}): {text}")))
                }
                Ok(r) => Verdict::Retry(format!("HTTP {}", r.status().as_u16()), Wait::Backoff),
                Err(e) => Verdict::Retry(describe(&e), Wait::Backoff),
            }
        };
        retry(Policy::REQUEST, upload, |_, _, _| {
            self.stats.retried.fetch_add(1, Ordering::Relaxed);
        })
        .await
        .map_err(|gave_up| match gave_up {
            GaveUp::Failed(e) => e,
            GaveUp::Exhausted { attempts, last } => {
                GqlError::Staging(format!("gave up after {attempts} attempts: {last}"))
            }
        })
    }

    /// Downloads a result file (a bulk operation's JSONL); the URL is signed, so no token is sent.
    pub async fn download(&self, url: &str) -> Result<String, GqlError> {
        let download = |_| async {
            match self.http.get(url).timeout(Duration::from_secs(600)).send().await {
                Ok(r) if r.status().is_success() => match r.text().await {
                    Ok(t) => Verdict::Done(t),
                    Err(e) => Verdict::Retry(describe(&e), Wait::Backoff),
                },
                Ok(r) => Verdict::Retry(format!("HTTP {}", r.status().as_u16()), Wait::Backoff),
                Err(e) => Verdict::Retry(describe(&e), Wait::Backoff),
            }
        };
        retry(Policy::REQUEST, download, |_, _: &String, _| {
            self.stats.retried.fetch_add(1, Ordering::Relaxed);
        })
        .await
        .map_err(|gave_up: GaveUp<std::convert::Infallible, String>| match gave_up {
            GaveUp::Failed(never) => match never {},
            GaveUp::Exhausted { attempts, last } => {
                GqlError::Exhausted { attempts, message: format!("bulk result file: {last}") }
            }
        })
    }
}

/// An operation's name as its document declares it (`mutation CatsyncProductSet(…)` →
/// `CatsyncProductSet`), for logs.
fn operation_name(query: &str) -> &str {
    let rest = query.trim_start();
    let rest = rest.split_once(char::is_whitespace).map_or("", |(_, r)| r.trim_start());
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
    match &rest[..end] {
        "" => "anonymous",
        name => name,
    }
}

fn refused_hint(status: u16, body: &str) -> String {
    match status {
        401 => format!("{body}; check the access token (`token:`) — it may have been revoked"),
        403 => format!("{body}; the access token lacks a scope catsync needs (write_products, write_translations)"),
        _ => format!("{body}; check the store `url` and `api_version`"),
    }
}

fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
