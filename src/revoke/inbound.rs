//! [`Inbound`]: the one handle through which the revocation bus reaches revocation here.
//! What peers tell is applied through it (their revocations, confirmations, undos, what
//! Stytch told them by webhook, pending revocations of instances gone silent), and never
//! told to the peers again.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use super::external::{hold_made_by_stytch, note_roles};
use super::peers::{Peers, RemoteTarget, instant_of};
use super::retry;
use super::state::Inner;
use super::{
    Basis, MadeByStytch, Revocation, RevocationEvent, RevocationId, RevokedTarget, Source, Target,
};
use crate::store::denylist::MarkSource;

/// The bus's handle on a revoker: it does not keep the revoker alive (the bus's tasks end
/// with the layer).
#[derive(Clone)]
pub(crate) struct Inbound {
    revoker: Weak<Inner>,
    /// How long a revoked session is refused after Stytch confirmed.
    window: Duration,
    /// How long an M2M client's cut-off lasts.
    longest_cut_off: Duration,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// A live revoker, for the duration of one call.
pub(crate) struct Live(Arc<Inner>);

impl Inbound {
    pub(super) fn new(inner: &Arc<Inner>) -> Self {
        Self {
            revoker: Arc::downgrade(inner),
            window: inner.window,
            longest_cut_off: inner.store.machines.longest_cut_off(),
        }
    }

    /// How long a revoked session is refused here after Stytch confirmed: what the bus's log
    /// must keep.
    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// How long an M2M client's cut-off lasts here: what the bus keeps cut-offs for.
    pub(crate) fn longest_cut_off(&self) -> Duration {
        self.longest_cut_off
    }

    /// The revoker, while the layer lives.
    pub(crate) fn live(&self) -> Option<Live> {
        self.revoker.upgrade().map(Live)
    }

    /// Whether the layer still lives.
    pub(crate) fn is_live(&self) -> bool {
        self.revoker.strong_count() > 0
    }

    /// Tells `peers` of every revocation decided here from now on; `false` when peers were
    /// already connected (or the layer is gone).
    pub(crate) fn connect(&self, peers: Arc<dyn Peers>) -> bool {
        self.live().is_some_and(|live| live.0.set_peers(peers))
    }
}

impl Live {
    /// A fresh revocation id of this process (for a peer's revocation applied here).
    pub(crate) fn next_id(&self) -> RevocationId {
        self.0.allocate_id()
    }

    /// Longest a peer's hold may last here: the longest a local one can (retrying until the
    /// horizon, then the JWT window), so a hostile message cannot pin memory for longer.
    pub(crate) fn longest_hold(&self) -> Duration {
        let inner = &self.0;
        inner.config.pending_member_horizon + inner.window
    }

    /// Applies a peer's revocation here as `id`: held until `until` (at most
    /// [`longest_hold`](Self::longest_hold) from now), cache entries evicted, subscribers of
    /// [`events`](Revoker::events) told. Nothing when `until` has passed.
    pub(crate) async fn apply_remote(
        &self,
        id: RevocationId,
        target: &RemoteTarget,
        confirmed: bool,
        until: SystemTime,
        revoked_at: Option<SystemTime>,
    ) {
        let inner = &self.0;
        let left = until.duration_since(SystemTime::now()).unwrap_or_default();
        if left.is_zero() {
            return;
        }
        let until = Instant::now() + left.min(self.longest_hold());
        let denylist = &inner.store.denylist;
        let (keys, event) = match target {
            RemoteTarget::Session(session) => {
                denylist.hold_session(id, session, until, confirmed);
                let keys = inner.store.cache.evict_session(session).await;
                (keys, RevokedTarget::Session(session.clone()))
            }
            RemoteTarget::Member(member) => {
                denylist.hold_member(id, member, until, revoked_at.filter(|_| confirmed));
                let keys = inner.store.cache.evict_member(member).await;
                (keys, RevokedTarget::Member(member.clone()))
            }
            RemoteTarget::Key(key) => {
                // Not counted against this instance's own bound on unverified logouts: the
                // peer that held it bounded it.
                denylist.hold_key(id, *key, until, confirmed, false);
                inner.store.cache.evict_key(key).await;
                (Vec::new(), RevokedTarget::Credential(*key))
            }
        };
        for key in &keys {
            denylist.hold_key(id, *key, until, confirmed, false);
        }
        inner.publish(RevocationEvent::Applied {
            revocation: id.0,
            target: event,
        });
    }

    /// A peer cut M2M client `client_id` off: as [`Revoker::revoke_client`] here (without
    /// Stytch), until `until` (at most the longest cut-off from now). Nothing when `until`
    /// has passed.
    pub(crate) async fn client_cut_off_remote(
        &self,
        client_id: &str,
        issued_before: SystemTime,
        until: SystemTime,
    ) {
        let store = &self.0.store;
        let now = SystemTime::now();
        if until <= now {
            return;
        }
        let until = until.min(now + store.machines.longest_cut_off());
        let until = store
            .machines
            .cut_off(client_id, issued_before, Some(until))
            .await;
        store.publish(RevocationEvent::ClientCutOff {
            client_id: client_id.to_owned(),
            issued_before,
            until,
        });
        crate::metrics::revocation("client", "cut_off_by_peer");
    }

    /// The M2M client cut-offs in force here: `(client_id, issued_before, until)` each.
    pub(crate) fn client_cut_offs(&self) -> Vec<(String, SystemTime, SystemTime)> {
        self.0.store.machines.cut_offs()
    }

    /// A peer's revocation applied here as `id` was confirmed by Stytch.
    pub(crate) fn confirm_remote(
        &self,
        id: RevocationId,
        until: SystemTime,
        revoked_at: SystemTime,
    ) {
        let until = instant_of(until).min(Instant::now() + self.longest_hold());
        self.0.store.denylist.confirm(id, until, revoked_at);
    }

    /// A peer's revocation applied here as `id` was refused by Stytch: its holds go.
    pub(crate) fn undo_remote(&self, id: RevocationId) {
        let inner = &self.0;
        inner.store.denylist.release(id);
        inner.publish(RevocationEvent::Undone { revocation: id.0 });
    }

    /// Applies here, as `id`, a revocation Stytch made that a peer was told of by its
    /// webhook: as [`Revoker::apply_made_by_stytch`], held until `until`
    /// (at most the window from now). Nothing when `until` has passed.
    pub(crate) async fn made_by_stytch_remote(
        &self,
        id: RevocationId,
        target: MadeByStytch,
        revoked_at: SystemTime,
        until: SystemTime,
    ) {
        if let Some(until) = self.remote_until(until) {
            hold_made_by_stytch(&self.0, id, target, revoked_at, until).await;
        }
    }

    /// A member's roles changed at Stytch, told by a peer that got the webhook: as
    /// [`Revoker::mark_roles_changed`], marked until `until` (at most the
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
            note_roles(
                &self.0,
                member_id,
                MarkSource::Peer,
                changed_at,
                roles,
                until,
            );
        }
    }

    /// A peer's `until` for what Stytch made, on this clock, at most the window from now (the
    /// longest such a hold lasts here); `None` when it has passed.
    fn remote_until(&self, until: SystemTime) -> Option<Instant> {
        let left = until.duration_since(SystemTime::now()).ok()?;
        (!left.is_zero()).then(|| Instant::now() + left.min(self.0.window))
    }

    /// Takes over a peer's pending revocation (its instance is gone), applied here as `id`:
    /// retried from this outbox with the project secret alone, under the rule for pending
    /// revocations whose acting session is gone (its authorization was verified where it was
    /// decided). `false` when the outbox is full.
    pub(crate) fn take_over(
        &self,
        id: RevocationId,
        target: &RemoteTarget,
        give_up_at: SystemTime,
    ) -> bool {
        let target = match target {
            RemoteTarget::Session(id) => Target::Session(id.clone()),
            RemoteTarget::Member(id) => Target::Member(id.clone()),
            // A credential known by its hash alone cannot be sent to Stytch from here.
            RemoteTarget::Key(_) => return false,
        };
        let inner = &self.0;
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
        retry::keep(inner, id, revocation, give_up_at);
        true
    }
}
