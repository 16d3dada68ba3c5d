//! Revocations applied here that Stytch has not confirmed, retried in the background until
//! Stytch answers for good or the session has expired. Never dropped silently: every end is
//! logged and counted.
//!
//! Bounded and fair. Entries are deduplicated per target (one session id, member id or
//! credential hash is one entry, tried with one Stytch call per pass; the revocations merged
//! into it keep their own holds). Two classes, each with its own bound
//! ([`RevokeConfig::max_pending`](super::RevokeConfig::max_pending) and
//! [`max_pending_unverified`](super::RevokeConfig::max_pending_unverified)): revocations whose
//! caller was verified here, all tried first in every pass, then credentials nothing here
//! could authenticate, at most [`UNVERIFIED_PER_PASS`] per pass. A pass makes at most
//! [`CONCURRENCY`] Stytch calls at a time and stops at the first sign that Stytch is still
//! unreachable; the next one comes after a backoff (0.5 s doubling to
//! [`max_retry_backoff`](super::RevokeConfig::max_retry_backoff)), or at once when a
//! revocation in the request path finds Stytch answering again.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use super::pipeline::{self, Answer};
use super::{Basis, Inner, Revocation, RevocationId, RevokeConfig, Revoker, Target};
use crate::credential::CacheKey;
use crate::metrics;

/// Stytch calls in flight at once in one retry pass.
const CONCURRENCY: usize = 8;
/// Unverified entries tried per background pass, after every verified one.
const UNVERIFIED_PER_PASS: usize = 64;
/// First wait after a pass found Stytch unreachable.
const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Longest idle wait before the worker checks whether the layer is gone.
const IDLE_CHECK: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Verified = 0,
    Unverified = 1,
}

impl Class {
    fn of(basis: Basis) -> Self {
        if basis == Basis::Possession {
            Self::Unverified
        } else {
            Self::Verified
        }
    }
}

/// The identity of a target, for deduplication.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TargetKey {
    Session(String),
    Member(String),
    Credential(CacheKey),
}

impl TargetKey {
    fn of(target: &Target) -> Self {
        match target {
            Target::Session(id) => Self::Session(id.clone()),
            Target::Member(id) => Self::Member(id.clone()),
            Target::Credential(c) => Self::Credential(c.cache_key()),
        }
    }
}

/// Revocations of one target by one caller: one Stytch call answers for all of them.
#[derive(Debug)]
struct Claim {
    ids: Vec<RevocationId>,
    revocation: Revocation,
}

impl Claim {
    fn same_caller(&self, other: &Revocation) -> bool {
        let mine = &self.revocation;
        mine.acting == other.acting && mine.basis == other.basis && mine.source == other.source
    }
}

/// Every pending revocation of one target.
#[derive(Debug)]
struct Entry {
    key: TargetKey,
    class: Class,
    claims: Vec<Claim>,
    give_up_at: SystemTime,
}

impl Entry {
    fn target(&self) -> Option<&Target> {
        self.claims.first().map(|c| &c.revocation.target)
    }

    fn add(&mut self, ids: Vec<RevocationId>, revocation: Revocation) {
        match self.claims.iter_mut().find(|c| c.same_caller(&revocation)) {
            Some(claim) => claim.ids.extend(ids),
            None => self.claims.push(Claim { ids, revocation }),
        }
    }

    fn merge(&mut self, other: Entry) {
        self.give_up_at = self.give_up_at.max(other.give_up_at);
        for claim in other.claims {
            self.add(claim.ids, claim.revocation);
        }
    }

    fn ids(&self) -> impl Iterator<Item = RevocationId> + '_ {
        self.claims.iter().flat_map(|c| c.ids.iter().copied())
    }
}

#[derive(Debug, Default)]
struct Queue {
    entries: HashMap<TargetKey, Entry>,
    order: [VecDeque<TargetKey>; 2],
    /// Pending revocations per class, those being tried included.
    counts: [usize; 2],
}

impl Queue {
    /// Puts an entry (back) at the end of its class, merged into one for the same target
    /// that arrived meanwhile.
    fn insert(&mut self, entry: Entry) {
        match self.entries.get_mut(&entry.key) {
            Some(existing) => existing.merge(entry),
            None => {
                self.order[entry.class as usize].push_back(entry.key.clone());
                self.entries.insert(entry.key.clone(), entry);
            }
        }
    }

    fn pop(&mut self, class: Class) -> Option<Entry> {
        while let Some(key) = self.order[class as usize].pop_front() {
            if let Some(entry) = self.entries.remove(&key) {
                return Some(entry);
            }
        }
        None
    }
}

/// The queue of pending revocations and its background worker.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    limits: [usize; 2],
    max_backoff: Duration,
    /// New work for an idle worker.
    work: Notify,
    /// Stytch answered in the request path: a backing-off worker tries again at once.
    recovered: Notify,
    worker_started: AtomicBool,
}

impl Outbox {
    pub(crate) fn new(config: &RevokeConfig) -> Self {
        Self {
            queue: Mutex::default(),
            limits: [config.max_pending, config.max_pending_unverified],
            max_backoff: config.max_retry_backoff.max(MIN_BACKOFF),
            work: Notify::new(),
            recovered: Notify::new(),
            worker_started: AtomicBool::new(false),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // The queue holds no invariant a panic elsewhere could break half-way.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pending revocations.
    pub(crate) fn len(&self) -> usize {
        let counts = self.queue().counts;
        counts[0] + counts[1]
    }

    /// Pending revocations whose caller was verified here.
    #[cfg(test)]
    fn len_verified(&self) -> usize {
        self.queue().counts[Class::Verified as usize]
    }

    /// Reserves room for one pending revocation of `basis`'s class, before it is applied
    /// here: `false` when the class is full. The reservation counts as pending until it is
    /// [`push`](Self::push)ed or [`unreserve`](Self::unreserve)d.
    pub(crate) fn reserve(&self, basis: Basis) -> bool {
        let class = Class::of(basis) as usize;
        let mut queue = self.queue();
        if queue.counts[class] >= self.limits[class] {
            return false;
        }
        queue.counts[class] += 1;
        true
    }

    /// Gives back a reservation (Stytch answered: nothing to keep).
    pub(crate) fn unreserve(&self, basis: Basis) {
        self.finished(Class::of(basis), 1);
    }

    /// Keeps revocation `id` (its room reserved) for retry until `give_up_at`, merged with
    /// the target's entry if there is one, and wakes the worker (started on first use).
    pub(crate) fn push(
        &self,
        id: RevocationId,
        revocation: Revocation,
        give_up_at: SystemTime,
        revoker: &Revoker,
    ) {
        self.enqueue(id, revocation, give_up_at);
        self.start_worker(revoker);
        self.work.notify_one();
    }

    /// [`push`](Self::push) without the worker.
    fn enqueue(&self, id: RevocationId, revocation: Revocation, give_up_at: SystemTime) {
        let class = Class::of(revocation.basis);
        let len = {
            let mut queue = self.queue();
            let mut entry = Entry {
                key: TargetKey::of(&revocation.target),
                class,
                claims: Vec::new(),
                give_up_at,
            };
            entry.add(vec![id], revocation);
            queue.insert(entry);
            queue.counts[0] + queue.counts[1]
        };
        metrics::revocations_pending(len);
    }

    /// A revocation in the request path got an answer from Stytch.
    pub(crate) fn stytch_answered(&self) {
        if self.len() > 0 {
            self.recovered.notify_one();
        }
    }

    fn start_worker(&self, revoker: &Revoker) {
        if self.worker_started.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(worker(revoker.downgrade()));
            }
            // No runtime: stays queued for `flush`.
            Err(_) => self.worker_started.store(false, Ordering::Release),
        }
    }

    /// Takes every verified entry, then up to `unverified` unverified ones, in order.
    fn take(&self, unverified: usize) -> VecDeque<Entry> {
        let mut queue = self.queue();
        let mut batch = VecDeque::new();
        while let Some(entry) = queue.pop(Class::Verified) {
            batch.push_back(entry);
        }
        for _ in 0..unverified {
            let Some(entry) = queue.pop(Class::Unverified) else {
                break;
            };
            batch.push_back(entry);
        }
        batch
    }

    fn put_back(&self, entry: Entry) {
        self.queue().insert(entry);
    }

    /// `n` revocations of `class` ended.
    fn finished(&self, class: Class, n: usize) {
        let len = {
            let mut queue = self.queue();
            let count = &mut queue.counts[class as usize];
            *count = count.saturating_sub(n);
            queue.counts[0] + queue.counts[1]
        };
        metrics::revocations_pending(len);
    }
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
async fn pass(revoker: &Revoker, unverified: usize, end: Option<Instant>) -> Tried {
    let batch = revoker.inner().outbox.take(unverified);
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
        .map(|_| tokio::spawn(lane(revoker.clone(), Arc::clone(&pass))))
        .collect();
    for handle in handles {
        let _ = handle.await;
    }
    Tried {
        entries,
        down: pass.down.load(Ordering::Acquire),
    }
}

async fn lane(revoker: Revoker, pass: Arc<Pass>) {
    let outbox = &revoker.inner().outbox;
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
        if let Some(kept) = retry(&revoker, entry).await {
            pass.down.store(true, Ordering::Release);
            outbox.put_back(kept);
        }
    }
}

/// Tries one entry: its claims in order until Stytch answers for the target. Returns the
/// entry when Stytch could not be reached.
async fn retry(revoker: &Revoker, mut entry: Entry) -> Option<Entry> {
    let inner = revoker.inner();
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
            inner.denylist.release(id);
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
        let revoker = Revoker::from_inner(inner);
        let tried = pass(&revoker, UNVERIFIED_PER_PASS, None).await;
        let outbox = &revoker.inner().outbox;
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
pub(crate) async fn flush(revoker: &Revoker, end: Instant) -> usize {
    let outbox = &revoker.inner().outbox;
    loop {
        pass(revoker, usize::MAX, Some(end)).await;
        let remaining = outbox.len();
        if remaining == 0 || Instant::now() + Duration::from_millis(200) >= end {
            return remaining;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::{Credential, SessionJwt, SessionToken};
    use crate::revoke::Source;

    fn revocation(target: Target, acting: Option<&str>, basis: Basis) -> Revocation {
        Revocation {
            target,
            acting: acting.map(|a| Credential::Token(SessionToken::new(a))),
            acting_is_target: false,
            basis,
            source: Source::AdminRoute,
            expires_at: None,
        }
    }

    fn junk(n: u64) -> Revocation {
        let token = Credential::Token(SessionToken::new(format!("junk{n}")));
        revocation(Target::Credential(token), None, Basis::Possession)
    }

    fn outbox(max_pending: usize, max_pending_unverified: usize) -> Outbox {
        Outbox::new(&RevokeConfig {
            max_pending,
            max_pending_unverified,
            ..RevokeConfig::default()
        })
    }

    /// Reserves and enqueues, as the pipeline does; `false` when the class is full.
    fn put(o: &Outbox, id: u64, revocation: Revocation) -> bool {
        if !o.reserve(revocation.basis) {
            return false;
        }
        let later = SystemTime::now() + Duration::from_secs(3600);
        o.enqueue(RevocationId(id), revocation, later);
        true
    }

    #[test]
    fn one_entry_per_target_one_claim_per_caller() {
        // If this broke, a target revoked many times would cost as many Stytch calls per pass
        // (or the revocations merged into it would lose their own ids, and their exact undo).
        let o = outbox(100, 100);
        let m1 = || Target::Member("m1".into());
        assert!(put(&o, 1, revocation(m1(), Some("a"), Basis::OrgAdmin)));
        assert!(put(&o, 2, revocation(m1(), Some("a"), Basis::OrgAdmin)));
        assert!(put(&o, 3, revocation(m1(), Some("b"), Basis::OrgAdmin)));
        let m2 = Target::Member("m2".into());
        assert!(put(&o, 4, revocation(m2, None, Basis::Project)));
        assert_eq!(o.len(), 4);
        let batch = o.take(usize::MAX);
        assert_eq!(batch.len(), 2);
        let first = &batch[0];
        assert_eq!(first.claims.len(), 2);
        assert_eq!(first.claims[0].ids, [RevocationId(1), RevocationId(2)]);
        assert_eq!(first.claims[1].ids, [RevocationId(3)]);
        // Taken entries still count until they end.
        assert_eq!(o.len(), 4);
        o.finished(Class::Verified, 4);
        assert_eq!(o.len(), 0);
    }

    #[test]
    fn each_class_has_its_own_bound() {
        // If this broke, junk logouts could fill the outbox (and memory) without end, or
        // crowd out real revocations.
        let o = outbox(2, 3);
        for n in 0..3 {
            assert!(put(&o, n, junk(n)));
        }
        assert!(!put(&o, 9, junk(9)));
        for n in 10..12 {
            let target = Target::Session(format!("s{n}"));
            assert!(put(&o, n, revocation(target, None, Basis::Project)));
        }
        let target = Target::Session("s99".into());
        assert!(!put(&o, 99, revocation(target, None, Basis::Project)));
        assert_eq!((o.len(), o.len_verified()), (5, 2));
        o.unreserve(Basis::Possession);
        assert!(put(&o, 20, junk(20)));
    }

    #[test]
    fn verified_entries_are_taken_first_and_junk_within_its_budget() {
        // If this broke, a real revocation would wait behind every junk logout after an
        // outage.
        let o = outbox(100, 100);
        for n in 0..5 {
            assert!(put(&o, n, junk(n)));
        }
        let own = revocation(Target::Session("s1".into()), Some("a"), Basis::Own);
        assert!(put(&o, 10, own));
        let jwt = Credential::Jwt(SessionJwt::new("a.b.c"));
        let possession = revocation(Target::Credential(jwt), None, Basis::Possession);
        assert!(put(&o, 11, possession));
        let batch = o.take(2);
        let classes: Vec<Class> = batch.iter().map(|e| e.class).collect();
        assert_eq!(
            classes,
            [Class::Verified, Class::Unverified, Class::Unverified]
        );
        assert_eq!(batch[1].key, TargetKey::of(&junk(0).target));
        // What is put back goes behind what was not taken.
        for entry in batch {
            o.put_back(entry);
        }
        let again = o.take(1);
        assert_eq!(again[0].class, Class::Verified);
        assert_eq!(again[1].key, TargetKey::of(&junk(2).target));
    }
}
