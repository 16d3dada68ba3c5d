//! What each session's state allows, and the tallies of the run.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One session of the run: its credentials and what has been done to it.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) member_id: String,
    pub(crate) member_session_id: String,
    pub(crate) token: String,
    pub(crate) jwt: String,
    pub(crate) state: Mutex<State>,
}

/// A session's state as the driver knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Never revoked.
    Live,
    /// A revocation is in flight: any of 200, 401, 503 may be right.
    Revoking,
    /// A revocation answered something that is neither "revoked" nor "not revoked" (a 503 of
    /// the admin route, a connection cut by the SIGTERM): any of 200, 401, 503 may be right.
    Uncertain,
    /// A revocation answered 2xx at `at`, through gateway `by`; `how`: the route and answer.
    Revoked {
        at: Instant,
        by: usize,
        how: &'static str,
    },
}

/// The propagation rule (RELIABILITY.md, "Soak").
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    /// Bound on another instance while the bus is live.
    pub(crate) propagation: Duration,
    /// After Redis is back: the longest reconnect backoff plus the catch-up.
    pub(crate) reconnect: Duration,
}

/// When Redis was down: `(killed, back)`; `back` is `None` while it is still down. With
/// Sentinels, `back` is the replica's promotion.
#[derive(Debug, Default)]
pub(crate) struct Outage(pub(crate) Mutex<Option<(Instant, Option<Instant>)>>);

impl Outage {
    fn get(&self) -> Option<(Instant, Option<Instant>)> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Redis went down (was killed) at `at`.
    pub(crate) fn started(&self, at: Instant) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((at, None));
    }

    /// Redis (or its new primary) accepts writes again at `at`.
    pub(crate) fn ended(&self, at: Instant) {
        if let Some((_, back)) = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
        {
            *back = Some(at);
        }
    }
}

impl Rule {
    /// The latest request start at which a session revoked at `at` through gateway `by` may
    /// still be answered 200 by gateway `on`; `None`: no bound yet (Redis still down).
    pub(crate) fn deadline(
        &self,
        at: Instant,
        by: usize,
        on: usize,
        outage: &Outage,
    ) -> Option<Instant> {
        if by == on {
            // Revoked here: refused at once.
            return Some(at);
        }
        match outage.get() {
            // Answered while Redis was down, just before it went (its message may not have
            // been written), or before both buses were back (the longest reconnect backoff
            // and the catch-up): the bound runs from the buses' return.
            Some((down, back)) if at + self.propagation >= down => {
                back.map(|back| at.max(back + self.reconnect) + self.propagation)
            }
            _ => Some(at + self.propagation),
        }
    }
}

/// Counters of the run.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) requests: AtomicU64,
    pub(crate) ok: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) unavailable: AtomicU64,
    /// Of those, for a session JWT (verified locally unless Stytch must be asked).
    pub(crate) unavailable_jwt: AtomicU64,
    pub(crate) unexpected: AtomicU64,
    pub(crate) revoked_accepted: AtomicU64,
    pub(crate) accepted_within_bound: AtomicU64,
    pub(crate) logouts: AtomicU64,
    pub(crate) admin_revocations: AtomicU64,
    pub(crate) revocations_2xx: AtomicU64,
    pub(crate) revocations_uncertain: AtomicU64,
    pub(crate) cut_by_shutdown: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    /// Details of unexpected answers printed so far (capped).
    pub(crate) printed: AtomicU64,
    /// Revoked sessions accepted beyond the bound, by how they were revoked and the
    /// credential accepted (`logout:pending/jwt` …).
    pub(crate) accepted_by: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Details of revoked sessions accepted printed so far (capped apart).
    pub(crate) printed_accepted: AtomicU64,
}

/// At most this many unexpected answers, and as many revoked sessions accepted, are printed.
pub(crate) const PRINT_CAP: u64 = 50;

impl Tally {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts an unexpected answer and prints it (never a credential) while under the cap.
    pub(crate) fn unexpected(&self, what: std::fmt::Arguments<'_>) {
        Self::add(&self.unexpected);
        if self.printed.fetch_add(1, Ordering::Relaxed) < PRINT_CAP {
            println!("unexpected: {what}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_runs_from_redis_return_for_revocations_made_while_it_was_down() {
        // If this broke, the soak would blame the bus for revocations it could not carry.
        let rule = Rule {
            propagation: Duration::from_secs(1),
            reconnect: Duration::from_secs(3),
        };
        let t0 = Instant::now();
        let outage = Outage::default();
        assert_eq!(rule.deadline(t0, 0, 0, &outage), Some(t0));
        assert_eq!(
            rule.deadline(t0, 0, 1, &outage),
            Some(t0 + Duration::from_secs(1))
        );
        *outage.0.lock().unwrap() = Some((t0, None));
        assert_eq!(rule.deadline(t0, 0, 1, &outage), None);
        let back = t0 + Duration::from_secs(2);
        *outage.0.lock().unwrap() = Some((t0, Some(back)));
        assert_eq!(
            rule.deadline(t0, 0, 1, &outage),
            Some(back + Duration::from_secs(4))
        );
        // Answered after Redis returned but before the buses could have reconnected.
        let just_after = back + Duration::from_millis(200);
        assert_eq!(
            rule.deadline(just_after, 0, 1, &outage),
            Some(back + Duration::from_secs(4))
        );
        let later = back + Duration::from_secs(10);
        assert_eq!(
            rule.deadline(later, 0, 1, &outage),
            Some(later + Duration::from_secs(1))
        );
    }
}
