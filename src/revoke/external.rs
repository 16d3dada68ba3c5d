//! Revocations Stytch itself made, and role changes at Stytch, told by its webhooks: applied
//! here at once as confirmed, never sent to Stytch (it already did them). Like every
//! revocation here they go through the denylist (holds per revocation id, ending with the
//! JWT window), are told to [`Revoker::events`](super::Revoker::events) subscribers, and to the peers (the Redis
//! bus), which apply them through the [`Inbound`](super::Inbound) handle without telling
//! anyone again.

use std::time::{Instant, SystemTime};

use super::peers::system_time_of;
use super::state::Inner;
use super::{RevocationEvent, RevocationId, RevokedTarget};
use crate::store::denylist::MarkSource;

/// What Stytch revoked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum MadeByStytch {
    /// Every session of a member (deleted, or no longer `active`).
    Member(String),
    /// Every session of every member of an organization (deleted).
    Organization(String),
}

/// Applies here a revocation Stytch made at `revoked_at`: the target's cache entries are
/// evicted and its sessions refused until every JWT minted before now has expired. A
/// member's sessions started before `revoked_at` are refused, those within the clock
/// skew of it asked of Stytch, later ones served (a member re-activated since); an
/// organization's sessions are all refused (a deleted organization never comes back).
/// Applying the same event twice refuses nothing more. The peers are told. Returns the
/// revocation's id.
pub(super) async fn apply_made_by_stytch(
    inner: &Inner,
    target: MadeByStytch,
    revoked_at: SystemTime,
) -> u64 {
    let id = inner.allocate_id();
    let until = Instant::now() + inner.window;
    hold_made_by_stytch(inner, id, target.clone(), revoked_at, until).await;
    if let Some(peers) = inner.peers() {
        peers.made_by_stytch(id, &target, revoked_at, system_time_of(until));
    }
    id.0
}

/// Holds `target` as revocation `id` until `until`, evicts its cache entries, and tells
/// the subscribers of [`events`](super::Revoker::events).
pub(super) async fn hold_made_by_stytch(
    inner: &Inner,
    id: RevocationId,
    target: MadeByStytch,
    revoked_at: SystemTime,
    until: Instant,
) {
    // Held before evicted: a request between the two finds the hold, never a fresh entry.
    let (evicted, target) = match target {
        MadeByStytch::Member(member) => {
            inner
                .store
                .denylist
                .hold_member(id, &member, until, Some(revoked_at));
            let keys = inner.store.cache.evict_member(&member).await;
            (keys.len(), RevokedTarget::Member(member))
        }
        MadeByStytch::Organization(organization) => {
            inner
                .store
                .denylist
                .hold_organization(id, &organization, until);
            let keys = inner.store.cache.evict_organization(&organization).await;
            (keys.len(), RevokedTarget::Organization(organization))
        }
    };
    tracing::info!(
        revocation = id.0,
        evicted,
        "revocation made by stytch applied here"
    );
    inner.publish(RevocationEvent::AppliedByStytch {
        revocation: id.0,
        target,
        revoked_at,
    });
}

/// A member's roles changed at Stytch at `changed_at`: their sessions here whose roles
/// differ from `roles` are re-validated at Stytch on their next request, until every
/// JWT and cache entry minted before now has expired. An older change than one already
/// known changes nothing. The peers are told of a recorded one. Returns whether it was
/// recorded.
pub(super) fn mark_roles_changed(
    inner: &Inner,
    member_id: &str,
    changed_at: SystemTime,
    roles: Vec<String>,
) -> bool {
    let until = Instant::now() + inner.window;
    let Some(roles) = note_roles(inner, member_id, MarkSource::Here, changed_at, roles, until)
    else {
        return false;
    };
    if let Some(peers) = inner.peers() {
        let id = inner.allocate_id();
        peers.roles_changed(id, member_id, changed_at, &roles, system_time_of(until));
    }
    true
}

/// Records the mark (learnt from `source`) until `until` and tells the subscribers of [`events`](super::Revoker::events);
/// the roles as recorded (sorted, deduplicated), or `None` when a later change is known.
pub(super) fn note_roles(
    inner: &Inner,
    member_id: &str,
    source: MarkSource,
    changed_at: SystemTime,
    mut roles: Vec<String>,
    until: Instant,
) -> Option<Vec<String>> {
    let noted_at = SystemTime::now();
    roles.sort();
    roles.dedup();
    let recorded = inner.store.denylist.mark_roles(
        member_id,
        source,
        changed_at,
        noted_at,
        roles.clone(),
        until,
    );
    if !recorded {
        return None;
    }
    tracing::info!("member roles changed at stytch: their sessions are re-validated");
    inner.publish(RevocationEvent::RolesChanged {
        member: member_id.to_owned(),
        changed_at,
        noted_at,
        roles: roles.clone(),
    });
    Some(roles)
}
