//! Small tools of the bus's tasks: reconnection backoff, readable Redis errors, and Stream
//! id arithmetic (ids are `<unix ms>-<seq>`).

use std::time::{Duration, SystemTime};

use super::message::unix_ms;

/// Exponential backoff with jitter, from 50 ms to `max`.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

const MIN_BACKOFF: Duration = Duration::from_millis(50);

impl Backoff {
    pub(crate) fn new(max: Duration) -> Self {
        Self {
            next: MIN_BACKOFF,
            max,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = MIN_BACKOFF;
    }

    /// The next wait: the current step, jittered to between half and all of it.
    pub(crate) fn next(&mut self) -> Duration {
        let step = self.next.min(self.max);
        self.next = (self.next * 2).min(self.max);
        step.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// A Redis error for logs: its kind or server code only (never a URL or a reply's text).
pub(crate) fn describe(err: &redis::RedisError) -> String {
    match err.code() {
        Some(code) => code.to_owned(),
        None => format!("{:?}", err.kind()),
    }
}

/// The Stream id below which log entries are trimmed: everything older than `keep`.
pub(crate) fn min_id(now: SystemTime, keep: Duration) -> String {
    let keep_ms = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
    format!("{}-0", unix_ms(now).saturating_sub(keep_ms))
}

/// The milliseconds part of a Stream id.
pub(crate) fn id_ms(id: &str) -> Option<u64> {
    id.split_once('-').map_or(id, |(ms, _)| ms).parse().ok()
}

/// Whether Stream id `a` is before `b` (ids compare as (ms, seq) pairs).
pub(crate) fn id_before(a: &str, b: &str) -> bool {
    let parse = |id: &str| -> (u64, u64) {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
    };
    parse(a) < parse(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn trimming_keeps_the_window() {
        // If this broke, the log would be trimmed of revocations whose JWTs still verify (an
        // instance starting then would accept them), or never trimmed at all.
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_400_000);
        assert_eq!(min_id(now, Duration::from_secs(400)), "1700000000000-0");
        assert_eq!(min_id(UNIX_EPOCH, Duration::from_secs(400)), "0-0");
        let threshold = min_id(now, Duration::from_secs(400));
        assert!(id_before("1699999999999-7", &threshold));
        assert!(!id_before("1700000000000-0", &threshold));
        assert!(!id_before("1700000000001-0", &threshold));
        assert!(id_before("1700000000000-2", "1700000000000-10"));
        assert_eq!(id_ms("1700000000000-3"), Some(1_700_000_000_000));
    }

    #[test]
    fn backoff_grows_to_its_bound_with_jitter() {
        // If this broke, every instance would hammer a Redis that just came back at once, or
        // wait without bound.
        let mut backoff = Backoff::new(Duration::from_secs(2));
        let waits: Vec<_> = (0..10).map(|_| backoff.next()).collect();
        assert!(waits[0] >= MIN_BACKOFF / 2 && waits[0] <= MIN_BACKOFF);
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(2)));
        assert!(waits[9] >= Duration::from_secs(1));
        backoff.reset();
        assert!(backoff.next() <= MIN_BACKOFF);
    }
}
