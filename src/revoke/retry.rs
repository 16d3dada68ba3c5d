//! The outbox's background retries: a worker started with the first revocation Stytch could
//! not take, passes over the queue with a few concurrent Stytch calls, and [`flush`] at
//! shutdown. Every answer goes through the pipeline's verdict; local state follows it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use super::outbox::{Class, Entry, MIN_BACKOFF};
use super::pipeline::{self, Answer};
use super::state::Inner;
use super::{Revocation, RevocationId, Target};
use crate::metrics;

/// Stytch calls in flight at once in one retry pass.
const CONCURRENCY: usize = 8;
/// Unverified entries tried per background pass, after every verified one.
const UNVERIFIED_PER_PASS: usize = 64;
/// Longest idle wait before the worker checks whether the layer is gone.
const IDLE_CHECK: Duration = Duration::from_secs(60);

/// Keeps revocation `id` (its room reserved in the outbox) for retry until `give_up_at`, and
/// wakes the worker (started on first use).
pub(super) fn keep(
    inner: &Arc<Inner>,
    id: RevocationId,
    revocation: Revocation,
    give_up_at: SystemTime,
) {
    let outbox = &inner.outbox;
    outbox.enqueue(id, revocation, give_up_at);
    if !outbox.worker_started.swap(true, Ordering::AcqRel) {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(worker(Arc::downgrade(inner)));
            }
            // No runtime: stays queued for `flush`.
            Err(_) => outbox.worker_started.store(false, Ordering::Release),
        }
    }
    outbox.work.notify_one();
}

/// One pass's shared state: what is left to try, and whether Stytch looked unreachable.
struct Pass {
    batch: Mutex<VecDeque<Entry>>,
    down: AtomicBool,
    end: Option<Instant>,
}

/// What one pass did.
#[derive(Debug, Clone, Copy)]
struct Tried {
    /// Entries taken (0: nothing was queued).
    entries: usize,
    /// Stytch looked unreachable.
    down: bool,
}

/// Tries every verified entry and up to `unverified` unverified ones with [`CONCURRENCY`]
/// lanes. The lanes are tasks of their own that put back whatever they do not finish, so
/// nothing taken is lost if this future is dropped.
async fn pass(inner: &Arc<Inner>, unverified: usize, end: Option<Instant>) -> Tried {
    let batch = inner.outbox.take(unverified);
    let entries = batch.len();
    if entries == 0 {
        return Tried {
            entries,
            down: false,
        };
    }
    let lanes = batch.len().min(CONCURRENCY);
    let pass = Arc::new(Pass {
        batch: Mutex::new(batch),
        down: AtomicBool::new(false),
        end,
    });
    let handles: Vec<_> = (0..lanes)
        .map(|_| tokio::spawn(lane(Arc::clone(inner), Arc::clone(&pass))))
        .collect();
    for handle in handles {
        let _ = handle.await;
    }
    Tried {
        entries,
        down: pass.down.load(Ordering::Acquire),
    }
}

async fn lane(inner: Arc<Inner>, pass: Arc<Pass>) {
    let outbox = &inner.outbox;
    loop {
        let next = pass
            .batch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        let Some(entry) = next else { return };
        let stop =
            pass.down.load(Ordering::Acquire) || pass.end.is_some_and(|end| Instant::now() >= end);
        if stop {
            outbox.put_back(entry);
            continue;
        }
        if let Some(kept) = retry(&inner, entry).await {
            pass.down.store(true, Ordering::Release);
            outbox.put_back(kept);
        }
    }
}

/// Tries one entry: its claims in order until Stytch answers for the target. Returns the
/// entry when Stytch could not be reached.
async fn retry(inner: &Inner, mut entry: Entry) -> Option<Entry> {
    if SystemTime::now() > entry.give_up_at {
        expire(inner, entry);
        return None;
    }
    while !entry.claims.is_empty() {
        let claim = &mut entry.claims[0];
        let answer = match pipeline::resolve(inner, &claim.ids, &mut claim.revocation, true).await {
            Some(answer) => answer,
            None => pipeline::ask(inner, &claim.revocation, true).await,
        };
        match answer {
            Answer::Confirmed { .. } => return confirm(inner, entry, "confirmed").await,
            Answer::AlreadyRevoked => return confirm(inner, entry, "already_revoked").await,
            Answer::Refused(err) => {
                let claim = entry.claims.remove(0);
                tracing::warn!(
                    target_kind = claim.revocation.target.kind(),
                    error = %err,
                    "stytch refused a pending revocation: undone here"
                );
                for id in &claim.ids {
                    pipeline::undo(inner, *id);
                }
                inner.outbox.finished(entry.class, claim.ids.len());
                metrics::revocation_retried("refused");
            }
            Answer::Unavailable(err) | Answer::Misconfigured(err) => {
                tracing::debug!(error = %err, "pending revocation still not accepted by stytch");
                return Some(entry);
            }
        }
    }
    None
}

/// Stytch revoked the target: every revocation merged into the entry is confirmed.
async fn confirm(inner: &Inner, entry: Entry, result: &'static str) -> Option<Entry> {
    for claim in &entry.claims {
        for id in &claim.ids {
            pipeline::confirmed(inner, *id, &claim.revocation, true).await;
        }
    }
    let n = entry.ids().count();
    inner.outbox.finished(entry.class, n);
    tracing::info!(
        target_kind = entry.target().map_or("", Target::kind),
        result,
        "pending revocation confirmed by stytch"
    );
    metrics::revocation_retried(result);
    None
}

/// The target's session has expired at Stytch meanwhile (or the horizon passed): retrying
/// ends. Verified holds run out on their own (they end with the retrying plus the JWT
/// window); an unverified credential's hold lives only as long as its entry.
fn expire(inner: &Inner, entry: Entry) {
    tracing::warn!(
        target_kind = entry.target().map_or("", Target::kind),
        "pending revocation dropped: the session has expired at Stytch meanwhile"
    );
    if entry.class == Class::Unverified {
        for id in entry.ids() {
            inner.store.denylist.release(id);
        }
    }
    if let Some(peers) = inner.peers() {
        entry.ids().for_each(|id| peers.expired(id));
    }
    inner.outbox.finished(entry.class, entry.ids().count());
    metrics::revocation_retried("expired");
}

async fn worker(weak: Weak<Inner>) {
    let mut backoff = MIN_BACKOFF;
    // Started by the first revocation Stytch could not take: its first retry waits a backoff
    // too (see below).
    if let Some(inner) = weak.upgrade() {
        let _ = tokio::time::timeout(MIN_BACKOFF, inner.outbox.recovered.notified()).await;
    }
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let tried = pass(&inner, UNVERIFIED_PER_PASS, None).await;
        let outbox = &inner.outbox;
        if tried.entries == 0 {
            backoff = MIN_BACKOFF;
            // Nothing queued (revocations still deciding in the request path count as
            // pending, but are not queued): wake on new work, or now and then to notice that
            // the layer was dropped.
            let _ = tokio::time::timeout(IDLE_CHECK, outbox.work.notified()).await;
            // New work is queued because Stytch just failed it (its call already spent its
            // attempts): the first retry waits a backoff too, unless Stytch answers again
            // meanwhile, so an outage is not met with an immediate second round of calls.
            let _ = tokio::time::timeout(MIN_BACKOFF, outbox.recovered.notified()).await;
        } else if tried.down {
            let _ = tokio::time::timeout(backoff, outbox.recovered.notified()).await;
            backoff = (backoff * 2).min(outbox.max_backoff);
        } else {
            // Stytch answers; unverified entries beyond this pass's budget remain.
            backoff = MIN_BACKOFF;
            tokio::task::yield_now().await;
        }
    }
}

/// Retries until nothing is pending or `end` has passed. Returns how many are still pending.
pub(super) async fn flush(inner: &Arc<Inner>, end: Instant) -> usize {
    let outbox = &inner.outbox;
    loop {
        pass(inner, usize::MAX, Some(end)).await;
        let remaining = outbox.len();
        if remaining == 0 || Instant::now() + Duration::from_millis(200) >= end {
            return remaining;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
