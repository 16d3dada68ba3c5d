//! The retry policy of calls to Stytch, as a pure function, and the process-wide retry
//! budget that keeps retries a small fraction of first attempts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::StytchError;

/// Bounded retries with exponential backoff and full jitter, an overall deadline per call, and
/// `Retry-After` honoured. Only retryable errors ([`StytchError::is_retryable`]: 429, 5xx,
/// connect errors, timeouts) are retried; no other 4xx ever is.
///
/// Start from [`RetryPolicy::default`] (or [`RetryPolicy::none`]) and set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Backoff cap before the first retry; doubles with each retry.
    pub base_delay: Duration,
    /// Largest backoff between two attempts.
    pub max_delay: Duration,
    /// Overall time budget of one call, attempts and waits included: a request's
    /// authentication gets its answer (or its 503) within this time.
    pub deadline: Duration,
    /// Retry budget, as in Finagle and Envoy: retries may be at most this percentage of the
    /// first attempts of the same client (all calls, all requests, shared by every clone of the
    /// [`StytchClient`](super::StytchClient)), so an outage or a rate limit at Stytch is not
    /// multiplied by retries. A retry the budget does not allow is not made: the call fails
    /// with the error of its last attempt.
    pub budget_percent: u32,
    /// Retries allowed per second whatever the traffic (so a quiet process still retries a
    /// blip), on top of [`budget_percent`](Self::budget_percent). The budget holds at most ten
    /// seconds of these (at least 10 retries), so a long quiet period does not bank a burst.
    pub budget_min_per_second: u32,
}

impl Default for RetryPolicy {
    /// 3 attempts, 100 ms base, 2 s cap, 3 s deadline; retries at most 20 % of first attempts
    /// plus 10 per second.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            deadline: Duration::from_secs(3),
            budget_percent: 20,
            budget_min_per_second: 10,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryDecision {
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// Stop and return the error.
    GiveUp,
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Decides after attempt number `attempt` (1-based) failed with `err`, `elapsed` since the
    /// call began. `jitter` is a uniform random number in `[0, 1)` (full jitter: the wait is
    /// `jitter × min(max_delay, base_delay × 2^(attempt-1))`). A `Retry-After` longer than the
    /// jittered backoff wins; if the wait would pass the deadline, give up.
    pub fn decide(
        &self,
        err: &StytchError,
        attempt: u32,
        elapsed: Duration,
        jitter: f64,
    ) -> RetryDecision {
        if !err.is_retryable() || attempt >= self.max_attempts {
            return RetryDecision::GiveUp;
        }
        let exp = attempt.saturating_sub(1).min(30);
        let cap = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mut wait = cap.mul_f64(jitter);
        if let Some(after) = err.retry_after() {
            wait = wait.max(after);
        }
        match elapsed.checked_add(wait) {
            Some(at) if at < self.deadline => RetryDecision::RetryAfter(wait),
            _ => RetryDecision::GiveUp,
        }
    }
}

/// The state of a [`RetryPolicy`]'s retry budget: a token bucket in thousandths of a retry.
/// Every first attempt deposits `budget_percent` × 10, every retry takes 1000, and
/// `budget_min_per_second` × 1000 flow in per second, up to the cap. It starts full.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    per_attempt: i64,
    per_second: i64,
    cap: i64,
    state: Mutex<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    balance: i64,
    refilled_at: Instant,
}

const RETRY: i64 = 1000;

impl RetryBudget {
    pub(crate) fn new(policy: &RetryPolicy, now: Instant) -> Self {
        let per_second = i64::from(policy.budget_min_per_second) * RETRY;
        let cap = (per_second * 10).max(10 * RETRY);
        Self {
            per_attempt: i64::from(policy.budget_percent) * RETRY / 100,
            per_second,
            cap,
            state: Mutex::new(BudgetState {
                balance: cap,
                refilled_at: now,
            }),
        }
    }

    /// A first attempt is about to be made.
    pub(crate) fn deposit(&self, now: Instant) {
        let mut state = self.refilled(now);
        state.balance = (state.balance + self.per_attempt).min(self.cap);
    }

    /// Takes one retry from the budget; false if it has none left.
    pub(crate) fn try_withdraw(&self, now: Instant) -> bool {
        let mut state = self.refilled(now);
        if state.balance >= RETRY {
            state.balance -= RETRY;
            true
        } else {
            false
        }
    }

    fn refilled(&self, now: Instant) -> std::sync::MutexGuard<'_, BudgetState> {
        // A poisoned lock only means a panic elsewhere while holding it; the numbers are
        // still valid integers.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(state.refilled_at);
        let flow = i64::try_from(elapsed.as_millis())
            .unwrap_or(i64::MAX)
            .saturating_mul(self.per_second)
            / 1000;
        if flow > 0 {
            state.balance = state.balance.saturating_add(flow).min(self.cap);
            state.refilled_at = now;
        }
        state
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ApiError, Endpoint};
    use http::StatusCode;

    fn api(status: u16, retry_after: Option<u64>) -> StytchError {
        let status = StatusCode::from_u16(status).unwrap();
        let body = format!(r#"{{"status_code":{},"error_type":"x"}}"#, status.as_u16());
        StytchError::Api {
            endpoint: Endpoint::Revoke,
            error: Box::new(
                ApiError::from_body(
                    status,
                    body.as_bytes(),
                    retry_after.map(Duration::from_secs),
                )
                .unwrap(),
            ),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
            deadline: Duration::from_secs(5),
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn decision_table() {
        // If this broke, we would hammer Stytch on 4xx, or give up on a passing 503.
        use RetryDecision::*;
        let ms = Duration::from_millis;
        let timeout = StytchError::Timeout {
            endpoint: Endpoint::Authenticate,
        };
        let cases: Vec<(&str, StytchError, u32, Duration, f64, RetryDecision)> = vec![
            (
                "503 first attempt, max jitter",
                api(503, None),
                1,
                ms(0),
                0.999_999,
                RetryAfter(ms(99)),
            ),
            (
                "503 first attempt, no jitter",
                api(503, None),
                1,
                ms(0),
                0.0,
                RetryAfter(ms(0)),
            ),
            (
                "500 second attempt doubles",
                api(500, None),
                2,
                ms(0),
                0.5,
                RetryAfter(ms(100)),
            ),
            (
                "backoff is capped",
                api(502, None),
                3,
                ms(0),
                0.999_999,
                RetryAfter(ms(249)),
            ),
            (
                "429 retried",
                api(429, None),
                1,
                ms(0),
                0.5,
                RetryAfter(ms(50)),
            ),
            (
                "timeout retried",
                timeout,
                1,
                ms(0),
                0.5,
                RetryAfter(ms(50)),
            ),
            (
                "retry-after wins",
                api(429, Some(2)),
                1,
                ms(0),
                0.5,
                RetryAfter(ms(2000)),
            ),
            (
                "retry-after past deadline",
                api(429, Some(10)),
                1,
                ms(0),
                0.5,
                GiveUp,
            ),
            ("deadline reached", api(503, None), 1, ms(4990), 0.5, GiveUp),
            ("attempts exhausted", api(503, None), 4, ms(0), 0.5, GiveUp),
            ("404 never retried", api(404, None), 1, ms(0), 0.5, GiveUp),
            ("400 never retried", api(400, None), 1, ms(0), 0.5, GiveUp),
            ("401 never retried", api(401, None), 1, ms(0), 0.5, GiveUp),
            ("403 never retried", api(403, None), 1, ms(0), 0.5, GiveUp),
            (
                "nan jitter is no wait",
                api(503, None),
                1,
                ms(0),
                f64::NAN,
                RetryAfter(ms(0)),
            ),
        ];
        for (name, err, attempt, elapsed, jitter, want) in cases {
            let got = policy().decide(&err, attempt, elapsed, jitter);
            match (got, want) {
                (RetryAfter(g), RetryAfter(w)) => {
                    assert!(g.abs_diff(w) <= ms(1), "{name}: got {g:?}, want {w:?}")
                }
                _ => assert_eq!(got, want, "{name}"),
            }
        }
    }

    #[test]
    fn none_never_retries() {
        // If this broke, `RetryPolicy::none()` would still retry on the request path.
        let p = RetryPolicy::none();
        assert_eq!(
            p.decide(&api(503, None), 1, Duration::ZERO, 0.5),
            RetryDecision::GiveUp
        );
    }

    fn budget(percent: u32, min_per_second: u32) -> RetryPolicy {
        RetryPolicy {
            budget_percent: percent,
            budget_min_per_second: min_per_second,
            ..RetryPolicy::default()
        }
    }

    fn drain(b: &RetryBudget, at: Instant) -> usize {
        std::iter::from_fn(|| b.try_withdraw(at).then_some(())).count()
    }

    #[test]
    fn budget_keeps_retries_to_the_percentage_of_first_attempts() {
        // If this broke, every instance would multiply a Stytch outage by its retries: with
        // 1000 first attempts and a 20 % budget, about 200 retries (plus the 10 it starts with).
        let start = Instant::now();
        let b = RetryBudget::new(&budget(20, 1), start);
        let mut retries = 0;
        for _ in 0..1000 {
            b.deposit(start);
            if b.try_withdraw(start) {
                retries += 1;
            }
        }
        // 10 banked + 999 deposits of a fifth (the first one fell on a full bucket).
        assert_eq!(retries, 10 + 199);
    }

    #[test]
    fn budget_refills_by_the_minimum_per_second_up_to_its_cap() {
        // If this broke, a quiet process could never retry again after a blip, or a long quiet
        // period would bank an unbounded burst of retries.
        let start = Instant::now();
        let b = RetryBudget::new(&budget(0, 10), start);
        assert_eq!(
            drain(&b, start),
            100,
            "starts full: ten seconds of the minimum"
        );
        assert_eq!(drain(&b, start + Duration::from_millis(500)), 5);
        assert_eq!(drain(&b, start + Duration::from_secs(3600)), 100, "capped");
    }

    #[test]
    fn zero_minimum_keeps_a_floor_of_ten_and_no_flow() {
        // If this broke, `budget_min_per_second = 0` would either disable retries at start or
        // refill them over time, against its documentation.
        let start = Instant::now();
        let b = RetryBudget::new(&budget(0, 0), start);
        assert_eq!(drain(&b, start), 10);
        assert_eq!(drain(&b, start + Duration::from_secs(60)), 0);
    }

    #[test]
    fn parses_retry_after() {
        // If this broke, Stytch's Retry-After would be ignored.
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:30 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
