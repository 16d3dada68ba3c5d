//! The outbox: revocations applied here that Stytch has not confirmed, queued for the
//! background retries (`retry`) until Stytch answers for good or the session has expired.
//! Never dropped silently: every end is logged and counted.
//!
//! Bounded and fair. Entries are deduplicated per target (one session id, member id or
//! credential hash is one entry, tried with one Stytch call per pass; the revocations merged
//! into it keep their own holds). Two classes, each with its own bound
//! ([`RevokeConfig::max_pending`](super::RevokeConfig::max_pending) and
//! [`max_pending_unverified`](super::RevokeConfig::max_pending_unverified)): revocations whose
//! caller was verified here, all tried first in every pass, then credentials nothing here
//! could authenticate, at most `retry::UNVERIFIED_PER_PASS` per pass. A pass makes at most
//! `retry::CONCURRENCY` Stytch calls at a time and stops at the first sign that Stytch is still
//! unreachable; the next one comes after a backoff (0.5 s doubling to
//! [`max_retry_backoff`](super::RevokeConfig::max_retry_backoff)), or at once when a
//! revocation in the request path finds Stytch answering again.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use super::{Basis, Revocation, RevocationId, RevokeConfig, Target};
use crate::credential::CacheKey;
use crate::metrics;

/// First wait after a retry pass found Stytch unreachable (the backoff's floor).
pub(super) const MIN_BACKOFF: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
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
pub(super) struct Claim {
    pub(super) ids: Vec<RevocationId>,
    pub(super) revocation: Revocation,
}

impl Claim {
    fn same_caller(&self, other: &Revocation) -> bool {
        let mine = &self.revocation;
        mine.acting == other.acting && mine.basis == other.basis && mine.source == other.source
    }
}

/// Every pending revocation of one target.
#[derive(Debug)]
pub(super) struct Entry {
    key: TargetKey,
    pub(super) class: Class,
    pub(super) claims: Vec<Claim>,
    pub(super) give_up_at: SystemTime,
}

impl Entry {
    pub(super) fn target(&self) -> Option<&Target> {
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

    pub(super) fn ids(&self) -> impl Iterator<Item = RevocationId> + '_ {
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

/// The queue of pending revocations, and the signals of its background worker.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    limits: [usize; 2],
    pub(super) max_backoff: Duration,
    /// New work for an idle worker.
    pub(super) work: Notify,
    /// Stytch answered in the request path: a backing-off worker tries again at once.
    pub(super) recovered: Notify,
    pub(super) worker_started: AtomicBool,
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
    /// queued ([`enqueue`](Self::enqueue)) or [`unreserve`](Self::unreserve)d.
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
    /// the target's entry if there is one (the worker is `retry::keep`'s).
    pub(super) fn enqueue(&self, id: RevocationId, revocation: Revocation, give_up_at: SystemTime) {
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

    /// Takes every verified entry, then up to `unverified` unverified ones, in order.
    pub(super) fn take(&self, unverified: usize) -> VecDeque<Entry> {
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

    pub(super) fn put_back(&self, entry: Entry) {
        self.queue().insert(entry);
    }

    /// `n` revocations of `class` ended.
    pub(super) fn finished(&self, class: Class, n: usize) {
        let len = {
            let mut queue = self.queue();
            let count = &mut queue.counts[class as usize];
            *count = count.saturating_sub(n);
            queue.counts[0] + queue.counts[1]
        };
        metrics::revocations_pending(len);
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
