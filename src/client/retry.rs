//! The retry policy of calls to Stytch, as a pure function.

use std::time::Duration;

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
    /// Overall time budget of one call, attempts and waits included.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts, 100 ms base, 2 s cap, 10 s deadline.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
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
