//! Revocations shared with other instances (the Redis bus, feature `redis`): what this
//! process tells its peers ([`Peers`], called by the pipeline, the outbox and what Stytch's
//! webhooks apply), and how what they tell is applied here (the `*_remote` methods of
//! [`Revoker`], which never tell the peers again).
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{
    Basis, MadeByStytch, Revocation, RevocationEvent, RevocationId, RevokedTarget, Revoker, Source,
    Target,
};
use crate::credential::CacheKey;
use crate::denylist::MarkSource;

/// Told of every local revocation's life (ids, hashes and times only; see
/// [`Revocation`]'s acting credential, which never leaves this process).
pub(crate) trait Peers: Send + Sync + 'static {
    /// Revocation `id` was applied here; its holds end at `until`. `revoked_at`: when Stytch
    /// confirmed a member-wide one.
    fn applied(
        &self,
        id: RevocationId,
        target: &Target,
        confirmed: bool,
        until: SystemTime,
        revoked_at: Option<SystemTime>,
    );
    /// Stytch confirmed revocation `id` (applied before): its holds end at `until`.
    fn confirmed(&self, id: RevocationId, until: SystemTime, revoked_at: SystemTime);
    /// Stytch refused revocation `id`: undone here.
    fn undone(&self, id: RevocationId);
    /// Stytch could not be reached: revocation `id` waits in the outbox until `give_up_at`.
    fn pending(&self, id: RevocationId, revocation: &Revocation, give_up_at: SystemTime);
    /// Retrying revocation `id` ended without Stytch's answer (its session expired).
    fn expired(&self, id: RevocationId);
    /// Stytch revoked `target` at `revoked_at` (its webhook), applied here as `id`; its holds
    /// end at `until`.
    fn made_by_stytch(
        &self,
        id: RevocationId,
        target: &MadeByStytch,
        revoked_at: SystemTime,
        until: SystemTime,
    );
    /// The member's roles changed at Stytch at `changed_at` (its webhook): marked here, as
    /// `id`, until `until`.
    fn roles_changed(
        &self,
        id: RevocationId,
        member_id: &str,
        changed_at: SystemTime,
        roles: &[String],
        until: SystemTime,
    );
}

/// What a peer's revocation revokes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum RemoteTarget {
    Session(String),
    Member(String),
    /// A credential, by its SHA-256.
    Key(CacheKey),
}

/// `at` on this process's monotonic clock (now when `at` has passed).
pub(crate) fn instant_of(at: SystemTime) -> Instant {
    Instant::now() + at.duration_since(SystemTime::now()).unwrap_or_default()
}

/// `at` on the wall clock.
pub(crate) fn system_time_of(at: Instant) -> SystemTime {
    SystemTime::now() + at.saturating_duration_since(Instant::now())
}

impl Revoker {
    /// Tells `peers` of every revocation decided here from now on. Set once.
    pub(crate) fn set_peers(&self, peers: Arc<dyn Peers>) -> bool {
        self.inner().peers.set(peers).is_ok()
    }

    /// A fresh revocation id of this process (for a peer's revocation applied here).
    pub(crate) fn next_id(&self) -> RevocationId {
        self.inner().allocate_id()
    }

    /// Longest a peer's hold may last here: the longest a local one can (retrying until the
    /// horizon, then the JWT window), so a hostile message cannot pin memory for longer.
    pub(crate) fn longest_hold(&self) -> Duration {
        let inner = self.inner();
        inner.config.pending_member_horizon + inner.window
    }

    /// Applies a peer's revocation here as `id`: held until `until` (at most
    /// [`longest_hold`](Self::longest_hold) from now), cache entries evicted, subscribers of
    /// [`events`](Self::events) told. Nothing when `until` has passed.
    pub(crate) async fn apply_remote(
        &self,
        id: RevocationId,
        target: &RemoteTarget,
        confirmed: bool,
        until: SystemTime,
        revoked_at: Option<SystemTime>,
    ) {
        let inner = self.inner();
        let left = until.duration_since(SystemTime::now()).unwrap_or_default();
        if left.is_zero() {
            return;
        }
        let until = Instant::now() + left.min(self.longest_hold());
        let denylist = &inner.denylist;
        let (keys, event) = match target {
            RemoteTarget::Session(session) => {
                denylist.hold_session(id, session, until, confirmed);
                let keys = inner.cache.evict_session(session).await;
                (keys, RevokedTarget::Session(session.clone()))
            }
            RemoteTarget::Member(member) => {
                denylist.hold_member(id, member, until, revoked_at.filter(|_| confirmed));
                let keys = inner.cache.evict_member(member).await;
                (keys, RevokedTarget::Member(member.clone()))
            }
            RemoteTarget::Key(key) => {
                // Not counted against this instance's own bound on unverified logouts: the
                // peer that held it bounded it.
                denylist.hold_key(id, *key, until, confirmed, false);
                inner.cache.evict_key(key).await;
                (Vec::new(), RevokedTarget::Credential(*key))
            }
        };
        for key in &keys {
            denylist.hold_key(id, *key, until, confirmed, false);
        }
        let _ = inner.events.send(RevocationEvent::Applied {
            revocation: id.0,
            target: event,
        });
    }

    /// A peer's revocation applied here as `id` was confirmed by Stytch.
    pub(crate) fn confirm_remote(
        &self,
        id: RevocationId,
        until: SystemTime,
        revoked_at: SystemTime,
    ) {
        let until = instant_of(until).min(Instant::now() + self.longest_hold());
        self.inner().denylist.confirm(id, until, revoked_at);
    }

    /// A peer's revocation applied here as `id` was refused by Stytch: its holds go.
    pub(crate) fn undo_remote(&self, id: RevocationId) {
        let inner = self.inner();
        inner.denylist.release(id);
        let _ = inner
            .events
            .send(RevocationEvent::Undone { revocation: id.0 });
    }

    /// Applies here, as `id`, a revocation Stytch made that a peer was told of by its
    /// webhook: as [`apply_made_by_stytch`](Self::apply_made_by_stytch), held until `until`
    /// (at most the window from now). Nothing when `until` has passed.
    pub(crate) async fn made_by_stytch_remote(
        &self,
        id: RevocationId,
        target: MadeByStytch,
        revoked_at: SystemTime,
        until: SystemTime,
    ) {
        if let Some(until) = self.remote_until(until) {
            self.hold_made_by_stytch(id, target, revoked_at, until)
                .await;
        }
    }

    /// A member's roles changed at Stytch, told by a peer that got the webhook: as
    /// [`mark_roles_changed`](Self::mark_roles_changed), marked until `until` (at most the
    /// window from now). Nothing when `until` has passed or a later change is known from a
    /// peer; kept apart from the marks of webhooks received here, which it never hides.
    pub(crate) fn roles_changed_remote(
        &self,
        member_id: &str,
        changed_at: SystemTime,
        roles: Vec<String>,
        until: SystemTime,
    ) {
        if let Some(until) = self.remote_until(until) {
            self.note_roles(member_id, MarkSource::Peer, changed_at, roles, until);
        }
    }

    /// A peer's `until` for what Stytch made, on this clock, at most the window from now (the
    /// longest such a hold lasts here); `None` when it has passed.
    fn remote_until(&self, until: SystemTime) -> Option<Instant> {
        let left = until.duration_since(SystemTime::now()).ok()?;
        (!left.is_zero()).then(|| Instant::now() + left.min(self.inner().window))
    }

    /// Takes over a peer's pending revocation (its instance is gone), applied here as `id`:
    /// retried from this outbox with the project secret alone, under the rule for pending
    /// revocations whose acting session is gone (its authorization was verified where it was
    /// decided). `false` when the outbox is full.
    pub(crate) fn take_over(
        &self,
        id: RevocationId,
        target: Target,
        give_up_at: SystemTime,
    ) -> bool {
        let inner = self.inner();
        if !inner.outbox.reserve(Basis::Project) {
            return false;
        }
        let revocation = Revocation {
            target,
            acting: None,
            acting_is_target: false,
            basis: Basis::Project,
            source: Source::Api,
            expires_at: Some(give_up_at),
        };
        inner.outbox.push(id, revocation, give_up_at, self);
        true
    }
}
