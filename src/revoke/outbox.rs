//! Revocations Stytch has not confirmed yet, retried in the background until Stytch confirms
//! or the session has expired. Never dropped silently: every end is logged and counted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use super::{Inner, Revoker, Target, Verdict};
use crate::credential::Credential;
use crate::metrics;

/// One revocation waiting for Stytch.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) target: Target,
    pub(crate) acting: Option<Credential>,
    pub(crate) give_up_at: SystemTime,
}

/// The queue of pending revocations and its background worker.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: Mutex<Vec<Pending>>,
    notify: Notify,
    worker_started: AtomicBool,
}

const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Outbox {
    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn len(&self) -> usize {
        self.queue().len()
    }

    pub(crate) fn push(&self, pending: Pending, revoker: &Revoker) {
        let len = {
            let mut queue = self.queue();
            queue.push(pending);
            queue.len()
        };
        metrics::revocations_pending(len);
        if !self.worker_started.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(worker(revoker.downgrade()));
                }
                // No runtime: stays queued for `flush`.
                Err(_) => self.worker_started.store(false, Ordering::Release),
            }
        }
        self.notify.notify_one();
    }

    fn take(&self) -> Vec<Pending> {
        std::mem::take(&mut *self.queue())
    }

    fn put_back(&self, mut kept: Vec<Pending>) -> usize {
        let mut queue = self.queue();
        queue.append(&mut kept);
        let len = queue.len();
        drop(queue);
        metrics::revocations_pending(len);
        len
    }
}

/// Tries each pending revocation once (those reached before `end`). Returns how many are
/// still pending. Never cancelled half-way, so nothing taken from the queue is lost.
async fn attempt_all(revoker: &Revoker, end: Option<Instant>) -> usize {
    let inner = revoker.inner();
    let batch = inner.outbox.take();
    if batch.is_empty() {
        return inner.outbox.len();
    }
    let mut kept = Vec::new();
    for pending in batch {
        if end.is_some_and(|end| Instant::now() >= end) {
            kept.push(pending);
            continue;
        }
        if SystemTime::now() > pending.give_up_at {
            tracing::warn!(
                target_kind = pending.target.kind(),
                "pending revocation dropped: the session has expired at Stytch meanwhile"
            );
            metrics::revocation_retried("expired");
            continue;
        }
        let answer = inner
            .client
            .revoke(&pending.target.selector(), pending.acting.as_ref())
            .await;
        match Verdict::of(answer, pending.acting.is_some()) {
            Verdict::Confirmed { .. } => confirm(revoker, &pending.target, "confirmed"),
            Verdict::AlreadyRevoked | Verdict::ActingSessionMaybeDead(_) => {
                confirm(revoker, &pending.target, "already_revoked")
            }
            Verdict::Unavailable(err) | Verdict::Misconfigured(err) => {
                tracing::debug!(error = %err, "pending revocation still not accepted by stytch");
                kept.push(pending);
            }
            Verdict::Forbidden(err) | Verdict::NotFound(err) | Verdict::Rejected(err) => {
                // Stytch answered and refused: keep refusing locally until the window ends,
                // but retrying cannot succeed.
                tracing::error!(
                    target_kind = pending.target.kind(),
                    error = %err,
                    "pending revocation refused by stytch; it stays revoked only locally"
                );
                metrics::revocation_retried("failed");
            }
        }
    }
    inner.outbox.put_back(kept)
}

fn confirm(revoker: &Revoker, target: &Target, result: &'static str) {
    let until = Instant::now() + revoker.confirm_window();
    let denylist = &revoker.inner().denylist;
    match target {
        Target::Session(id) => denylist.shorten(Some(id), None, until),
        Target::Member(id) => denylist.shorten(None, Some(id), until),
        Target::Credential(c) => denylist.deny_key(c.cache_key(), until),
    }
    tracing::info!(
        target_kind = target.kind(),
        result,
        "pending revocation confirmed by stytch"
    );
    metrics::revocation_retried(result);
}

async fn worker(weak: Weak<Inner>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let revoker = Revoker::from_inner(inner);
        let remaining = attempt_all(&revoker, None).await;
        if remaining == 0 {
            backoff = MIN_BACKOFF;
            // Wake on new work, or periodically to notice that the layer was dropped.
            let notified = revoker.inner().outbox.notify.notified();
            let _ = tokio::time::timeout(Duration::from_secs(60), notified).await;
        } else {
            drop(revoker);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Retries until nothing is pending or `deadline` has passed.
pub(crate) async fn flush(revoker: &Revoker, deadline: Duration) -> usize {
    let end = Instant::now() + deadline;
    loop {
        let remaining = attempt_all(revoker, Some(end)).await;
        if remaining == 0 || Instant::now() + Duration::from_millis(200) >= end {
            return remaining;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
