//! Revocations Stytch itself made, and role changes at Stytch, told by its webhooks: applied
//! here at once as confirmed, never sent to Stytch (it already did them). Like every
//! revocation here they go through the denylist (holds per revocation id, ending with the
//! JWT window) and are told to [`Revoker::events`] subscribers, so peers and live
//! connections follow.

use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use super::{RevocationEvent, RevocationId, RevokedTarget, Revoker};

/// What Stytch revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MadeByStytch {
    /// Every session of a member (deleted, or no longer `active`).
    Member(String),
    /// Every session of every member of an organization (deleted).
    Organization(String),
}

impl Revoker {
    /// Applies here a revocation Stytch made at `revoked_at`: the target's cache entries are
    /// evicted and its sessions refused until every JWT minted before now has expired. A
    /// member's sessions started before `revoked_at` are refused, those within the clock
    /// skew of it asked of Stytch, later ones served (a member re-activated since); an
    /// organization's sessions are all refused (a deleted organization never comes back).
    /// Applying the same event twice refuses nothing more. Returns the revocation's id.
    pub(crate) async fn apply_made_by_stytch(
        &self,
        target: MadeByStytch,
        revoked_at: SystemTime,
    ) -> u64 {
        let inner = self.inner();
        let id = RevocationId(inner.next_id.fetch_add(1, Ordering::Relaxed));
        let until = Instant::now() + inner.window;
        // Held before evicted: a request between the two finds the hold, never a fresh entry.
        let (evicted, target) = match target {
            MadeByStytch::Member(member) => {
                inner
                    .denylist
                    .hold_member(id, &member, until, Some(revoked_at));
                let keys = inner.cache.evict_member(&member).await;
                (keys.len(), RevokedTarget::Member(member))
            }
            MadeByStytch::Organization(organization) => {
                inner.denylist.hold_organization(id, &organization, until);
                let keys = inner.cache.evict_organization(&organization).await;
                (keys.len(), RevokedTarget::Organization(organization))
            }
        };
        tracing::info!(
            revocation = id.0,
            evicted,
            "revocation made by stytch applied here"
        );
        let _ = inner.events.send(RevocationEvent::AppliedByStytch {
            revocation: id.0,
            target,
            revoked_at,
        });
        id.0
    }

    /// A member's roles changed at Stytch at `changed_at`: their sessions here whose roles
    /// differ from `roles` are re-validated at Stytch on their next request, until every
    /// JWT and cache entry minted before now has expired. An older change than one already
    /// known changes nothing. Returns whether it was recorded.
    pub(crate) fn mark_roles_changed(
        &self,
        member_id: &str,
        changed_at: SystemTime,
        roles: Vec<String>,
    ) -> bool {
        let inner = self.inner();
        let noted_at = SystemTime::now();
        let until = Instant::now() + inner.window;
        let mut roles = roles;
        roles.sort();
        roles.dedup();
        let recorded =
            inner
                .denylist
                .mark_roles(member_id, changed_at, noted_at, roles.clone(), until);
        if recorded {
            tracing::info!("member roles changed at stytch: their sessions are re-validated");
            let _ = inner.events.send(RevocationEvent::RolesChanged {
                member: member_id.to_owned(),
                changed_at,
                noted_at,
                roles,
            });
        }
        recorded
    }
}
