//! Seeded fault injection for reliability tests: a fraction of requests answered with HTTP
//! 500/502/503 (with `Retry-After`), connections closed without a response, slow responses,
//! forced `THROTTLED` answers, and `JOB_ERROR` for asynchronous operations. The same seed and
//! the same request order give the same faults.

use std::str::FromStr;
use std::time::Duration;

/// What `--faults` asked for. Every rate is a probability in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    pub seed: u64,
    pub http_500: f64,
    pub http_502: f64,
    pub http_503: f64,
    /// Close the connection without answering.
    pub reset: f64,
    /// Apply the request, then close the connection without answering (an answer lost on the
    /// way back: the client cannot tell whether it was applied).
    pub lost: f64,
    /// Delay the answer by `slow_by`.
    pub slow: f64,
    pub slow_by: Duration,
    /// Answer `THROTTLED` whatever the bucket holds.
    pub throttle: f64,
    /// Fail asynchronous product operations and bulk operations.
    pub job_error: f64,
    /// The `Retry-After` header (seconds) sent with 5xx answers.
    pub retry_after: u64,
}

impl Default for FaultSpec {
    fn default() -> Self {
        FaultSpec {
            seed: 0,
            http_500: 0.0,
            http_502: 0.0,
            http_503: 0.0,
            reset: 0.0,
            lost: 0.0,
            slow: 0.0,
            slow_by: Duration::from_millis(500),
            throttle: 0.0,
            job_error: 0.0,
            retry_after: 1,
        }
    }
}

impl FaultSpec {
    /// Whether any fault can happen.
    pub fn is_active(&self) -> bool {
        self.http_500
            + self.http_502
            + self.http_503
            + self.reset
            + self.lost
            + self.slow
            + self.throttle
            + self.job_error
            > 0.0
    }
}

/// The syntax of `--faults`, for messages.
pub const SYNTAX: &str =
    "comma-separated `key=value` pairs: seed=N, 5xx=P, 500=P, 502=P, 503=P, reset=P, lost=P, slow=P[:DURATION], throttle=P, job_error=P, retry_after=SECONDS (P between 0 and 1, DURATION like 250ms or 2s)";

impl FromStr for FaultSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut spec = FaultSpec::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!("fault `{part}` has no value; expected {SYNTAX}"));
            };
            let rate = |v: &str| -> Result<f64, String> {
                let r: f64 = v.parse().map_err(|_| format!("fault `{key}` needs a probability, got `{v}`"))?;
                if (0.0..=1.0).contains(&r) {
                    Ok(r)
                } else {
                    Err(format!("fault `{key}` needs a probability between 0 and 1, got `{v}`"))
                }
            };
            match key.trim() {
                "seed" => {
                    spec.seed = value.parse().map_err(|_| format!("fault `seed` needs an integer, got `{value}`"))?
                }
                "5xx" => {
                    let r = rate(value)? / 3.0;
                    (spec.http_500, spec.http_502, spec.http_503) = (r, r, r);
                }
                "500" => spec.http_500 = rate(value)?,
                "502" => spec.http_502 = rate(value)?,
                "503" => spec.http_503 = rate(value)?,
                "reset" => spec.reset = rate(value)?,
                "lost" => spec.lost = rate(value)?,
                "slow" => match value.split_once(':') {
                    Some((r, d)) => {
                        spec.slow = rate(r)?;
                        spec.slow_by = parse_duration(d)?;
                    }
                    None => spec.slow = rate(value)?,
                },
                "throttle" => spec.throttle = rate(value)?,
                "job_error" => spec.job_error = rate(value)?,
                "retry_after" => {
                    spec.retry_after =
                        value.parse().map_err(|_| format!("fault `retry_after` needs seconds, got `{value}`"))?
                }
                other => return Err(format!("unknown fault `{other}`; expected {SYNTAX}")),
            }
        }
        if spec.http_500 + spec.http_502 + spec.http_503 + spec.reset + spec.lost + spec.throttle > 1.0 {
            return Err("fault rates of 5xx, reset, lost and throttle add up to more than 1".to_string());
        }
        Ok(spec)
    }
}

/// `250ms`, `2s`, `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 0.001)
    };
    let v: f64 = number.trim().parse().map_err(|_| format!("`{text}` is not a duration (use 250ms or 2s)"))?;
    if v < 0.0 || !v.is_finite() {
        return Err(format!("`{text}` is not a duration (use 250ms or 2s)"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Status(u16),
    Reset,
    /// Applied, then no answer.
    Lost,
    Throttle,
}

/// The fault injector: a spec and a deterministic random source.
#[derive(Debug, Clone)]
pub struct Faults {
    spec: FaultSpec,
    state: u64,
}

impl Faults {
    /// An injector seeded from `spec.seed`.
    pub fn new(spec: FaultSpec) -> Self {
        let state = spec.seed ^ 0x9E37_79B9_7F4A_7C15;
        Faults { spec, state }
    }

    /// What was asked for.
    pub fn spec(&self) -> &FaultSpec {
        &self.spec
    }

    /// SplitMix64, mapped to `[0, 1)`.
    fn next(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Draws the fate of one request: an optional fault and an optional delay.
    pub fn draw(&mut self) -> (Option<Fault>, Option<Duration>) {
        if !self.spec.is_active() {
            return (None, None);
        }
        let u = self.next();
        let s = &self.spec;
        let thresholds = [
            (s.http_500, Fault::Status(500)),
            (s.http_502, Fault::Status(502)),
            (s.http_503, Fault::Status(503)),
            (s.reset, Fault::Reset),
            (s.lost, Fault::Lost),
            (s.throttle, Fault::Throttle),
        ];
        let mut acc = 0.0;
        let mut fault = None;
        for (p, f) in thresholds {
            acc += p;
            if u < acc {
                fault = Some(f);
                break;
            }
        }
        let slow = (self.next() < self.spec.slow).then_some(self.spec.slow_by);
        (fault, slow)
    }

    /// Whether an asynchronous job fails.
    pub fn job_error(&mut self) -> bool {
        self.spec.job_error > 0.0 && self.next() < self.spec.job_error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let s: FaultSpec = "seed=7, 5xx=0.3, reset=0.1, slow=0.2:250ms, job_error=1".parse().unwrap();
        assert_eq!(s.seed, 7);
        assert!((s.http_503 - 0.1).abs() < 1e-9);
        assert_eq!(s.slow_by, Duration::from_millis(250));
        assert!("5xx=2".parse::<FaultSpec>().is_err());
        assert!("nope=1".parse::<FaultSpec>().is_err());
        assert!("5xx=0.6,reset=0.6".parse::<FaultSpec>().is_err());
    }

    #[test]
    fn draws_are_seeded_and_follow_the_rates() {
        let spec: FaultSpec = "seed=42,5xx=0.3".parse().unwrap();
        let mut a = Faults::new(spec.clone());
        let mut b = Faults::new(spec);
        let draws_a: Vec<_> = (0..1000).map(|_| a.draw()).collect();
        let draws_b: Vec<_> = (0..1000).map(|_| b.draw()).collect();
        assert_eq!(draws_a, draws_b);
        let failures = draws_a.iter().filter(|(f, _)| f.is_some()).count();
        assert!((250..350).contains(&failures), "{failures} failures for a 30% rate");
    }
}
