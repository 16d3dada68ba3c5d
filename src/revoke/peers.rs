//! Revocations shared with other instances (the Redis bus, feature `redis`): what this
//! process tells its peers ([`Peers`], called by the pipeline, the outbox and what Stytch's
//! webhooks apply). What they tell is applied through the [`Inbound`](super::Inbound)
//! handle, which never tells the peers again.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::time::{Instant, SystemTime};

use super::{MadeByStytch, RevocationId};
use crate::credential::CacheKey;

/// Told of every local revocation's life (ids, hashes and times only: a revocation's acting
/// credential never leaves this process).
pub(crate) trait Peers: Send + Sync + 'static {
    /// Revocation `id` was applied here; its holds end at `until`. `revoked_at`: when Stytch
    /// confirmed a member-wide one.
    fn applied(
        &self,
        id: RevocationId,
        target: &RemoteTarget,
        confirmed: bool,
        until: SystemTime,
        revoked_at: Option<SystemTime>,
    );
    /// Stytch confirmed revocation `id` (applied before): its holds end at `until`.
    fn confirmed(&self, id: RevocationId, until: SystemTime, revoked_at: SystemTime);
    /// Stytch refused revocation `id`: undone here.
    fn undone(&self, id: RevocationId);
    /// Stytch could not be reached: revocation `id` of `target` waits in the outbox until
    /// `give_up_at`.
    fn pending(&self, id: RevocationId, target: &RemoteTarget, give_up_at: SystemTime);
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
    /// M2M client `client_id` was cut off here, as `id`: its tokens issued before
    /// `issued_before` are refused until `until`.
    fn client_cut_off(
        &self,
        id: RevocationId,
        client_id: &str,
        issued_before: SystemTime,
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
