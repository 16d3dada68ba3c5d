//! [`RevocationEvent`]: what [`Revoker::events`](super::Revoker::events) tells subscribers
//! (peers to notify, live connections to close). Ids and hashes only, never a credential.

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
}

impl RevokedTarget {
    pub(super) fn of(target: &super::Target) -> Self {
        match target {
            super::Target::Session(id) => Self::Session(id.clone()),
            super::Target::Member(id) => Self::Member(id.clone()),
            super::Target::Credential(c) => Self::Credential(c.cache_key()),
        }
    }
}
