//! The Admin GraphQL client: one POST per operation, paced from `extensions.cost.throttleStatus`
//! so it is almost never throttled while using the budget fully, and retrying what can be retried
//! (`THROTTLED`, HTTP 429/5xx honouring `Retry-After`, timeouts, connection errors) with jittered
//! backoff — never `MAX_COST_EXCEEDED`, `MAX_INPUT_SIZE_EXCEEDED` or validation errors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::secret::Secret;

/// Attempts for one operation before its error is final.
const MAX_ATTEMPTS: u32 = 8;

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

/// Counters for reports and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    pub retried: AtomicU64,
    /// Points actually charged (thousandths).
    pub cost_milli: AtomicU64,
}

/// A client for one store and API version.
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    token: Option<Secret>,
    bucket: Mutex<Option<Bucket>>,
    pub stats: Stats,
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
            bucket: Mutex::new(None),
            stats: Stats::default(),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The store's budget as its last answer said (none before one did): the bucket's size in
    /// cost points, and the points it restores per second.
    pub fn budget(&self) -> Option<(f64, f64)> {
        self.bucket.lock().ok().and_then(|b| b.as_ref().map(|b| (b.maximum, b.restore_rate)))
    }

    /// Waits until the bucket should hold `cost` points, then reserves them. An estimate above
    /// the bucket's size waits for a full bucket, no longer (the store judges the real cost).
    async fn pace(&self, cost: f64) {
        let wait = {
            let mut guard = self.bucket.lock().expect("bucket lock");
            match guard.as_mut() {
                None => Duration::ZERO,
                Some(b) => {
                    let cost = cost.min(b.maximum);
                    let now = b.now();
                    let wait = if now >= cost { 0.0 } else { (cost - now) / b.restore_rate.max(1.0) };
                    // Reserve: the next caller sees what this one will spend.
                    b.available = now - cost;
                    b.at = Instant::now();
                    Duration::from_secs_f64(wait)
                }
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    fn observe(&self, status: &Value) {
        let get = |k: &str| status.get(k).and_then(Value::as_f64);
        if let (Some(maximum), Some(available), Some(restore_rate)) =
            (get("maximumAvailable"), get("currentlyAvailable"), get("restoreRate"))
        {
            *self.bucket.lock().expect("bucket lock") =
                Some(Bucket { maximum, available, restore_rate, at: Instant::now() });
        }
    }

    /// Runs one operation; returns its `data`. `cost` is the expected requested cost.
    pub async fn execute(&self, query: &str, variables: Value, cost: f64) -> Result<Value, GqlError> {
        let body = json!({ "query": query, "variables": variables });
        let mut last_error = String::new();
        let mut reached = false;
        for attempt in 1..=MAX_ATTEMPTS {
            if attempt > 1 {
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
            }
            self.pace(cost).await;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let mut request = self.http.post(&self.endpoint).json(&body);
            if let Some(token) = &self.token {
                request = request.header("X-Shopify-Access-Token", token.expose());
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    // A request that may have been sent (timeout, reset mid-answer) reached the store.
                    reached |= !e.is_connect();
                    last_error = describe(&e);
                    let wait = backoff(attempt, None);
                    self.retrying(attempt, &last_error, wait);
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            reached = true;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<f64>().ok())
                .map(Duration::from_secs_f64);
            let bytes = match response.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    last_error = describe(&e);
                    tokio::time::sleep(backoff(attempt, None)).await;
                    continue;
                }
            };
            if status == 401 || status == 403 || status == 404 {
                let text = String::from_utf8_lossy(&bytes).chars().take(200).collect::<String>();
                return Err(GqlError::Refused { status, message: refused_hint(status, &text) });
            }
            if status == 429 || status >= 500 {
                if status == 429 {
                    self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                }
                last_error = format!("HTTP {status}");
                let wait = backoff(attempt, retry_after);
                if status == 429 {
                    tracing::info!(attempt, wait_ms = wait.as_millis() as u64, "throttled (HTTP 429); waiting");
                } else {
                    self.retrying(attempt, &last_error, wait);
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            let value: Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => return Err(GqlError::Garbage(format!("HTTP {status}, {e}"))),
            };
            if let Some(cost) = value.pointer("/extensions/cost") {
                if let Some(ts) = cost.get("throttleStatus") {
                    self.observe(ts);
                }
                if let Some(actual) = cost.get("actualQueryCost").and_then(Value::as_f64) {
                    self.stats.cost_milli.fetch_add((actual * 1000.0) as u64, Ordering::Relaxed);
                }
            }
            if let Some(errors) = value.get("errors").and_then(Value::as_array).filter(|e| !e.is_empty()) {
                let code = errors[0].pointer("/extensions/code").and_then(Value::as_str).map(str::to_string);
                let message = errors
                    .iter()
                    .filter_map(|e| e.get("message").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("; ");
                if code.as_deref() == Some("THROTTLED") {
                    self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                    last_error = "throttled".to_string();
                    // The bucket was just observed; pacing waits for the cost on the next attempt.
                    continue;
                }
                return Err(GqlError::Rejected { code, message });
            }
            return match value.get("data") {
                Some(data) if !data.is_null() => Ok(data.clone()),
                _ => Err(GqlError::Garbage("no `data` in the response".to_string())),
            };
        }
        if !reached {
            return Err(GqlError::Unreachable {
                endpoint: self.endpoint.clone(),
                attempts: MAX_ATTEMPTS,
                message: last_error,
            });
        }
        Err(GqlError::Exhausted { attempts: MAX_ATTEMPTS, message: last_error })
    }
}

impl Client {
    /// Says that a request failed and is tried again: an unreachable or failing store is never
    /// silent for the minute its retries can take.
    fn retrying(&self, attempt: u32, error: &str, wait: Duration) {
        if attempt < MAX_ATTEMPTS {
            tracing::warn!(
                "the store at {} did not answer ({error}); retry {}/{} in {:.1} s",
                self.endpoint,
                attempt,
                MAX_ATTEMPTS - 1,
                wait.as_secs_f64()
            );
        }
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
        let mut last_error = String::new();
        for attempt in 1..=MAX_ATTEMPTS {
            let mut form = reqwest::multipart::Form::new();
            for (name, value) in parameters {
                form = form.text(name.clone(), value.clone());
            }
            let part = reqwest::multipart::Part::bytes(bytes.clone())
                .file_name(filename.to_string())
                .mime_str("text/jsonl")
                .map_err(|e| GqlError::Garbage(e.to_string()))?;
            form = form.part("file", part);
            match self.http.post(url).multipart(form).timeout(Duration::from_secs(600)).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().is_client_error() => {
                    let status = r.status().as_u16();
                    let text: String = r.text().await.unwrap_or_default().chars().take(300).collect();
                    return Err(GqlError::Staging(format!("the staged upload was refused (HTTP {status}): {text}")));
                }
                Ok(r) => last_error = format!("HTTP {}", r.status().as_u16()),
                Err(e) => last_error = describe(&e),
            }
            self.stats.retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(backoff(attempt, None)).await;
        }
        Err(GqlError::Staging(format!("gave up after {MAX_ATTEMPTS} attempts: {last_error}")))
    }

    /// Downloads a result file (a bulk operation's JSONL); the URL is signed, so no token is sent.
    pub async fn download(&self, url: &str) -> Result<String, GqlError> {
        let mut last_error = String::new();
        for attempt in 1..=MAX_ATTEMPTS {
            match self.http.get(url).timeout(Duration::from_secs(600)).send().await {
                Ok(r) if r.status().is_success() => match r.text().await {
                    Ok(t) => return Ok(t),
                    Err(e) => last_error = describe(&e),
                },
                Ok(r) => last_error = format!("HTTP {}", r.status().as_u16()),
                Err(e) => last_error = describe(&e),
            }
            tokio::time::sleep(backoff(attempt, None)).await;
        }
        Err(GqlError::Exhausted { attempts: MAX_ATTEMPTS, message: format!("bulk result file: {last_error}") })
    }
}

fn refused_hint(status: u16, body: &str) -> String {
    match status {
        401 => format!("{body}; check the access token (`token:`) — it may have been revoked"),
        403 => format!("{body}; the access token lacks a scope catsync needs (write_products, write_translations)"),
        _ => format!("{body}; check the store `url` and `api_version`"),
    }
}

/// Exponential backoff with jitter (0.25 s doubling to 16 s), or the server's `Retry-After`.
/// `CATSYNC_RETRY_SCALE` (a factor up to 1, default 1) shortens every wait: for tests and demos.
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let scale =
        std::env::var("CATSYNC_RETRY_SCALE").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(1.0).clamp(0.0, 1.0);
    if let Some(d) = retry_after {
        return d.min(Duration::from_secs(60)).mul_f64(scale);
    }
    let base = 0.25 * f64::from(1u32 << attempt.min(6));
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let jitter = 0.5 + f64::from(nanos % 1000) / 1000.0;
    Duration::from_secs_f64((base * jitter).min(16.0) * scale)
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
