//! [`RevocationEvent`]: what [`Revoker::events`](crate::Revoker::events) tells subscribers
//! (peers to notify, live connections to close). Ids and hashes only, never a credential.

use std::time::SystemTime;

/// Something that happened to a revocation in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationEvent {
    /// Applied here: the target's cache entries are evicted and it is refused. Sent when the
    /// revocation is applied, before Stytch answered when this process could verify the
    /// caller's right to it, after Stytch confirmed otherwise.
    Applied {
        /// The revocation's id, unique in this process.
        revocation: u64,
        /// What it revokes.
        target: RevokedTarget,
    },
    /// Stytch refused a revocation applied here before it answered (or it could not be kept
    /// for retry): it no longer refuses anything here.
    Undone {
        /// The revocation's id.
        revocation: u64,
    },
    /// A revocation Stytch itself made (told by its webhook: a member deleted or no longer
    /// active, an organization deleted), applied here as already confirmed, without calling
    /// Stytch: the target's cache entries are evicted, and its sessions started before
    /// `revoked_at` refused (an organization's: all of them).
    AppliedByStytch {
        /// The revocation's id, unique in this process.
        revocation: u64,
        /// What it revokes: [`RevokedTarget::Member`] or [`RevokedTarget::Organization`].
        target: RevokedTarget,
        /// When Stytch made it (its event's timestamp, never later than when it arrived).
        revoked_at: SystemTime,
    },
    /// An M2M client was cut off here: its access tokens issued before `issued_before` (and
    /// within the clock skew after it) are refused until `until`.
    ClientCutOff {
        /// The client's id.
        client_id: String,
        /// Tokens issued before this are refused.
        issued_before: SystemTime,
        /// The cut-off ends then (no token issued before lives longer).
        until: SystemTime,
    },
    /// A member's roles changed at Stytch (its webhook): a session of the member whose roles
    /// differ from `roles`, and that Stytch has not vouched for since `noted_at`, is
    /// re-validated at Stytch on its next request (not refused), so fresh roles reach the
    /// app.
    RolesChanged {
        /// The member's `member_id`.
        member: String,
        /// When Stytch sent the event: of two changes of one member, the later one wins.
        changed_at: SystemTime,
        /// When this process received it.
        noted_at: SystemTime,
        /// The member's role ids after the change, sorted.
        roles: Vec<String>,
    },
}

/// What a revocation revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokedTarget {
    /// One session, by `member_session_id`.
    Session(String),
    /// Every session of a member, by `member_id`.
    Member(String),
    /// The session behind one credential, unknown here: the SHA-256 of the credential.
    Credential([u8; 32]),
    /// Every session of every member of an organization, by `organization_id` (only ever
    /// made by Stytch: [`RevocationEvent::AppliedByStytch`]).
    Organization(String),
}
