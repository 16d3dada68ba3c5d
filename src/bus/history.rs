//! [`History`]: every log message this instance knows within the log's window, its own and
//! its peers', in the order it learnt them: what it writes again when Redis lost the log
//! (see `reader::check_lost` and `writer`).
//!
//! A Redis restarted without persistence (or flushed, failed over to an empty replica, or
//! back from an older snapshot) loses the whole log, or minutes of it, not only its last seconds: an instance started afterwards would
//! catch up from nothing, and serve locally verified JWTs of sessions revoked before. Any
//! instance still running knows the window's revocations, including those of peers that
//! have died since, so each writes them all again; readers ignore what they applied already.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::message::Message;

/// The messages of the last `keep`, at most `max` of them (the oldest go first).
#[derive(Debug)]
pub(crate) struct History {
    inner: Mutex<Inner>,
    keep: Duration,
    max: usize,
}

#[derive(Debug, Default)]
struct Inner {
    items: VecDeque<(Instant, Message)>,
    /// The messages in `items`: one read twice (a catch-up, another instance writing it
    /// again) is kept once.
    seen: HashSet<Message>,
}

impl History {
    pub(crate) fn new(keep: Duration, max: usize) -> Self {
        Self {
            inner: Mutex::default(),
            keep,
            max: max.max(1),
        }
    }

    /// Notes `message`, unless it is noted already.
    pub(crate) fn record(&self, message: &Message) {
        self.record_at(message, Instant::now());
    }

    fn record_at(&self, message: &Message, now: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.seen.contains(message) {
            return;
        }
        inner.seen.insert(message.clone());
        inner.items.push_back((now, message.clone()));
        self.trim(&mut inner, now);
    }

    /// The messages of the window, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<Message> {
        self.snapshot_at(Instant::now())
    }

    fn snapshot_at(&self, now: Instant) -> Vec<Message> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.trim(&mut inner, now);
        inner.items.iter().map(|(_, m)| m.clone()).collect()
    }

    fn trim(&self, inner: &mut Inner, now: Instant) {
        while inner.items.len() > self.max
            || inner
                .items
                .front()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) > self.keep)
        {
            if let Some((_, gone)) = inner.items.pop_front() {
                inner.seen.remove(&gone);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::message::{Body, InstanceId, RevKey};

    fn message(rev: u64) -> Message {
        Message {
            from: InstanceId::random(),
            key: RevKey {
                origin: InstanceId::random(),
                rev,
            },
            body: Body::Undone,
        }
    }

    #[test]
    fn a_message_read_twice_is_kept_once_in_order() {
        // If this broke, every rewrite after a lost log would double what it writes.
        let history = History::new(Duration::from_secs(60), 100);
        let (a, b) = (message(1), message(2));
        history.record(&a);
        history.record(&b);
        history.record(&a);
        assert_eq!(history.snapshot(), vec![a, b]);
    }

    #[test]
    fn the_window_and_the_bound_are_kept() {
        // If this broke, the history would grow without end, or forget revocations still
        // inside the window.
        let history = History::new(Duration::from_secs(60), 3);
        let start = Instant::now();
        let old = message(1);
        history.record_at(&old, start);
        let recent: Vec<_> = (2..=4).map(message).collect();
        for m in &recent {
            history.record_at(m, start + Duration::from_secs(30));
        }
        // Four noted, three kept: the oldest went.
        assert_eq!(history.snapshot_at(start + Duration::from_secs(30)), recent);
        assert!(
            history
                .snapshot_at(start + Duration::from_secs(91))
                .is_empty()
        );
        // Forgotten, it can be noted again.
        history.record_at(&old, start + Duration::from_secs(92));
        assert_eq!(
            history.snapshot_at(start + Duration::from_secs(92)),
            vec![old]
        );
    }
}
