//! One retry loop for every call that may be tried again (Shopify requests, staged uploads,
//! result downloads, bulk operation polls, Sales Layer pages): a [`Policy`] says how many attempts
//! and how long to wait between them, and each attempt's [`Verdict`] says whether it is done, has
//! failed for good, or is tried again — after the policy's backoff, after a wait the server named
//! (`Retry-After`), or at once because the caller paces itself (the Shopify client waits for its
//! cost bucket to restore before each request, so a `THROTTLED` answer needs no wait of its own).
//!
//! Hand-written rather than `backon` or `tokio-retry`: both retry a closure on an error predicate
//! with a schedule fixed in advance, while here the wait is decided by each answer (`Retry-After`,
//! the bucket's pacing) and the attempt number is part of what a request reports.

use std::future::Future;
use std::time::Duration;

/// How often and how patiently an operation is tried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Attempts in all, the first included; `u32::MAX` tries until a verdict says otherwise.
    pub attempts: u32,
    /// The first backoff; each next one is `factor` times longer, up to `max`.
    pub first: Duration,
    pub factor: f64,
    pub max: Duration,
    /// Each backoff is drawn between half and one and a half times its value, so clients that
    /// failed together do not retry together.
    pub jitter: bool,
    /// Waits are multiplied by `CATSYNC_RETRY_SCALE` (a factor up to 1, default 1): tests and
    /// demos shorten them.
    pub scaled: bool,
}

impl Policy {
    /// Requests to a store or an API: 8 attempts, 0.5 s doubling to 16 s, jittered.
    pub const REQUEST: Policy = Policy {
        attempts: 8,
        first: Duration::from_millis(500),
        factor: 2.0,
        max: Duration::from_secs(16),
        jitter: true,
        scaled: true,
    };

    /// Waiting for a long operation (a bulk operation to end, a slot to free): polls from 0.1 s
    /// growing by half to 5 s, as long as it takes.
    pub const POLL: Policy = Policy {
        attempts: u32::MAX,
        first: Duration::from_millis(100),
        factor: 1.5,
        max: Duration::from_secs(5),
        jitter: false,
        scaled: false,
    };

    /// The backoff before attempt `attempt + 1`, unscaled and without jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let grown = self.first.as_secs_f64() * self.factor.powi(attempt.saturating_sub(1).min(64) as i32);
        Duration::from_secs_f64(grown.min(self.max.as_secs_f64()))
    }

    /// The wait before attempt `attempt + 1`: the server's when it named one (at most a minute),
    /// else the policy's backoff (jittered when asked, still at most `max`).
    fn wait(&self, attempt: u32, wait: Wait) -> Duration {
        let d = match wait {
            Wait::Paced => return Duration::ZERO,
            Wait::Server(d) => d.min(Duration::from_secs(60)),
            Wait::Backoff if self.jitter => self.backoff(attempt).mul_f64(0.5 + jitter()).min(self.max),
            Wait::Backoff => self.backoff(attempt),
        };
        if self.scaled {
            d.mul_f64(scale())
        } else {
            d
        }
    }
}

/// What to wait before trying again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wait {
    /// The policy's backoff.
    Backoff,
    /// What the server asked for (`Retry-After`).
    Server(Duration),
    /// Nothing here: the caller waits before each attempt anyway (the client's bucket pacing).
    Paced,
}

impl Wait {
    /// The wait an HTTP answer asks for: its `Retry-After` seconds, else the policy's backoff.
    pub fn asked_by(headers: &reqwest::header::HeaderMap) -> Wait {
        headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(Wait::Backoff, |s| Wait::Server(Duration::from_secs_f64(s)))
    }
}

/// How one attempt ended: done with a `T`, failed for good with an `F`, or failed this time with
/// an `R` (what the caller needs to say why, should the attempts run out).
#[derive(Debug)]
pub enum Verdict<T, F, R> {
    Done(T),
    /// Failed for good: trying again cannot help.
    Fail(F),
    /// Failed this time; worth another attempt after `Wait`.
    Retry(R, Wait),
}

/// Why [`retry`] returned no value.
#[derive(Debug, PartialEq)]
pub enum GaveUp<F, R> {
    /// An attempt failed for good.
    Failed(F),
    /// Every attempt failed; the last one's reason.
    Exhausted { attempts: u32, last: R },
}

/// Runs `attempt(n)` for n = 1, 2, … until it is done, fails for good, or the policy's attempts
/// are spent; `before_retry(n, error, wait)` is told about each retry before its wait (to log and
/// count it).
pub async fn retry<T, F, R, Fut>(
    policy: Policy,
    mut attempt: impl FnMut(u32) -> Fut,
    mut before_retry: impl FnMut(u32, &R, Duration),
) -> Result<T, GaveUp<F, R>>
where
    Fut: Future<Output = Verdict<T, F, R>>,
{
    let mut n = 1;
    loop {
        match attempt(n).await {
            Verdict::Done(value) => return Ok(value),
            Verdict::Fail(error) => return Err(GaveUp::Failed(error)),
            Verdict::Retry(error, _) if n >= policy.attempts => {
                return Err(GaveUp::Exhausted { attempts: n, last: error })
            }
            Verdict::Retry(error, wait) => {
                let wait = policy.wait(n, wait);
                before_retry(n, &error, wait);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        n += 1;
    }
}

/// `CATSYNC_RETRY_SCALE`, clamped to [0, 1] (default 1).
fn scale() -> f64 {
    std::env::var("CATSYNC_RETRY_SCALE").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(1.0).clamp(0.0, 1.0)
}

/// A number in [0, 1) that differs between calls and processes (no need for a real generator).
fn jitter() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let seed = format!("{nanos}:{}:{}", std::process::id(), CALLS.fetch_add(1, Ordering::Relaxed));
    let bytes = blake3::hash(seed.as_bytes());
    let n = u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes"));
    (n >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn quick(attempts: u32) -> Policy {
        Policy { attempts, first: Duration::from_millis(1), scaled: false, ..Policy::REQUEST }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
    }

    #[test]
    fn backoff_doubles_to_its_ceiling() {
        let p = Policy::REQUEST;
        let secs: Vec<f64> = (1..=8).map(|n| p.backoff(n).as_secs_f64()).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 16.0, 16.0]);
        let poll: Vec<u128> = (1..=12).map(|n| Policy::POLL.backoff(n).as_millis()).collect();
        assert_eq!(poll[..4], [100, 150, 225, 337]);
        assert_eq!(poll[11], 5000);
        for n in 1..=20 {
            let w = p.wait(n, Wait::Backoff);
            assert!(w >= p.backoff(n).mul_f64(0.5).mul_f64(scale()) && w <= p.max, "{w:?}");
        }
    }

    #[test]
    fn server_waits_are_honoured_up_to_a_minute_and_paced_retries_do_not_wait() {
        let p = Policy { scaled: false, ..Policy::REQUEST };
        assert_eq!(p.wait(1, Wait::Server(Duration::from_secs(3))), Duration::from_secs(3));
        assert_eq!(p.wait(1, Wait::Server(Duration::from_secs(3600))), Duration::from_secs(60));
        assert_eq!(p.wait(7, Wait::Paced), Duration::ZERO);
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(Wait::asked_by(&headers), Wait::Backoff);
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(Wait::asked_by(&headers), Wait::Server(Duration::from_secs(2)));
        // An HTTP date is not read: the policy's backoff instead.
        headers.insert("retry-after", "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap());
        assert_eq!(Wait::asked_by(&headers), Wait::Backoff);
    }

    #[test]
    fn retries_until_done_and_reports_each_retry() {
        let retried = RefCell::new(Vec::new());
        let result: Result<u32, GaveUp<(), String>> = block_on(retry(
            quick(5),
            |n| async move {
                if n < 3 {
                    Verdict::Retry(format!("fail {n}"), Wait::Backoff)
                } else {
                    Verdict::Done(n)
                }
            },
            |n, e: &String, _| retried.borrow_mut().push((n, e.clone())),
        ));
        assert_eq!(result, Ok(3));
        assert_eq!(*retried.borrow(), [(1, "fail 1".to_string()), (2, "fail 2".to_string())]);
    }

    #[test]
    fn gives_up_after_its_attempts_or_at_a_final_failure() {
        let calls = RefCell::new(0);
        let result: Result<(), GaveUp<(), &str>> = block_on(retry(
            quick(4),
            |_| {
                *calls.borrow_mut() += 1;
                async { Verdict::Retry("busy", Wait::Paced) }
            },
            |_, _, _| {},
        ));
        assert_eq!(result, Err(GaveUp::Exhausted { attempts: 4, last: "busy" }));
        assert_eq!(*calls.borrow(), 4);
        let result: Result<(), GaveUp<&str, ()>> =
            block_on(retry(quick(4), |_| async { Verdict::Fail("refused") }, |_, _, _| panic!("no retry")));
        assert_eq!(result, Err(GaveUp::Failed("refused")));
    }
}
