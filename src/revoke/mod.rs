//! The one revocation path. A revocation, once decided (logout, admin route, forced sign-out
//! hook, [`Revoker`] call), is a value, `Revocation`, that the [`Revoker`] runs to the end
//! in a task of its own (`pipeline`), whatever happens to the request that decided it.
//! Stytch's answer is classified by a pure function (`verdict`); what Stytch has not
//! confirmed waits in the `outbox`.
//!
//! The invariant: local state converges to Stytch's verdict. A revocation is applied here
//! *before* Stytch answers only when this process can itself verify the caller's right to it
//! (its `Basis`); a revocation Stytch refuses is undone here; no "already revoked" is recorded
//! unless Stytch said so about the target.

mod external;
pub(crate) mod inbound;
mod outbox;
mod peers;
mod pipeline;
mod retry;
mod revoker;
mod state;
mod verbs;
mod verdict;

use std::time::{Duration, SystemTime};

use crate::client::RevokeSelector;
use crate::credential::Credential;
use crate::error::StytchError;
pub(crate) use crate::store::denylist::RevocationId;
pub use crate::store::events::{RevocationEvent, RevokedTarget};

pub(crate) use self::external::MadeByStytch;
#[cfg(feature = "redis")]
pub(crate) use self::inbound::Inbound;
#[cfg(feature = "redis")]
pub(crate) use self::peers::Peers;
pub(crate) use self::peers::RemoteTarget;
pub use self::revoker::Revoker;
pub(crate) use self::verbs::{Caller, LogoutResult};

/// A session JWT verifies for at most this long after it was minted.
pub(crate) const JWT_LIFETIME: Duration = Duration::from_secs(300);

/// What a revocation targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// One session by id.
    Session(String),
    /// Every session of a member.
    Member(String),
    /// The session behind one credential, when its id is not known.
    Credential(Credential),
}

impl Target {
    fn selector(&self) -> RevokeSelector {
        match self {
            Self::Session(id) => RevokeSelector::MemberSessionId(id.clone()),
            Self::Member(id) => RevokeSelector::MemberId(id.clone()),
            Self::Credential(Credential::Token(t)) => RevokeSelector::SessionToken(t.clone()),
            Self::Credential(Credential::Jwt(j)) => RevokeSelector::SessionJwt(j.clone()),
        }
    }

    /// The target as told to peers: ids, or a credential's hash.
    pub(crate) fn remote(&self) -> RemoteTarget {
        match self {
            Self::Session(id) => RemoteTarget::Session(id.clone()),
            Self::Member(id) => RemoteTarget::Member(id.clone()),
            Self::Credential(c) => RemoteTarget::Key(c.cache_key()),
        }
    }

    /// The target as told to [`Revoker::events`] subscribers.
    fn revoked(&self) -> RevokedTarget {
        match self {
            Self::Session(id) => RevokedTarget::Session(id.clone()),
            Self::Member(id) => RevokedTarget::Member(id.clone()),
            Self::Credential(c) => RevokedTarget::Credential(c.cache_key()),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Session(_) => "session",
            Self::Member(_) => "member",
            Self::Credential(_) => "credential",
        }
    }
}

/// Why this process may (or may not) apply a revocation before Stytch confirms it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Basis {
    /// The caller revokes their own session or member, authenticated here (by Stytch, the
    /// cache, or a JWT Stytch signed).
    Own,
    /// Logout with a credential nothing here could authenticate (Stytch unreachable, not
    /// cached, no locally verifiable JWT): holding it is the right to revoke it, but whether
    /// it is a session at all only Stytch knows. Bounded apart from the others.
    Possession,
    /// The app, with the project secret alone.
    Project,
    /// The caller holds an outage admin role and the target is known here to belong to the
    /// caller's organization.
    OrgAdmin,
    /// Nothing here can verify the caller's right: Stytch decides first.
    Stytch,
}

impl Basis {
    /// Applied here before Stytch answers (and kept while Stytch cannot be reached).
    fn applies_first(self) -> bool {
        self != Self::Stytch
    }
}

/// Who decided a revocation (for logs, and for the logout's project-secret fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Logout,
    LogoutEverywhere,
    AdminRoute,
    Hook,
    Api,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutEverywhere => "logout_everywhere",
            Self::AdminRoute => "admin_route",
            Self::Hook => "forced_signout",
            Self::Api => "revoker",
        }
    }

    fn is_logout(self) -> bool {
        matches!(self, Self::Logout | Self::LogoutEverywhere)
    }
}

/// A decided revocation: what, acting as whom, and on what basis. Holds the acting credential
/// only to send it to Stytch; a pending revocation whose acting session is gone is completed
/// with the project secret (see the README, "Caching and revocation semantics").
#[derive(Debug, Clone)]
pub(crate) struct Revocation {
    pub(crate) target: Target,
    /// Sent to Stytch as the acting member (`None`: the project secret alone).
    pub(crate) acting: Option<Credential>,
    /// The acting credential is one of the target session's own: a 404 about one is about
    /// the other.
    pub(crate) acting_is_target: bool,
    pub(crate) basis: Basis,
    pub(crate) source: Source,
    /// When the target session expires, when known: retrying ends then.
    pub(crate) expires_at: Option<SystemTime>,
}

/// The result of a revocation that took effect here.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeOutcome {
    /// Stytch revoked it.
    Revoked {
        /// Stytch's request id.
        request_id: String,
    },
    /// Stytch said the target was already revoked (`404 session_not_found` about it).
    AlreadyRevoked,
    /// Stytch could not be reached: it is revoked here (this process could verify the
    /// caller's right to it) and is sent to Stytch in the background until Stytch answers.
    Pending,
}

impl RevokeOutcome {
    /// `revoked`, `already_revoked` or `pending`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Revoked { .. } => "revoked",
            Self::AlreadyRevoked => "already_revoked",
            Self::Pending => "pending",
        }
    }
}

/// What [`Revoker::revoke_client`] also asks of Stytch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AtStytch {
    /// Nothing: the cut-off is this process's (and its peers') alone.
    Nothing,
    /// Set the client `inactive` at Stytch, so that it gets no new access token. Reversible
    /// (set it `active` again once its secret is rotated), and it keeps the client's scopes
    /// and id; rotating the secret instead would also lock out the legitimate holder until
    /// they get the new one, and deleting the client would lose its configuration.
    Suspend,
}

/// What [`Revoker::revoke_client`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientCutOff {
    /// The client's tokens issued before now are refused here (and by the peers) until then.
    pub until: SystemTime,
    /// Whether Stytch set the client inactive ([`AtStytch::Suspend`]); `false` when not asked
    /// or when Stytch could not be reached or refused (logged: the cut-off here stands).
    pub suspended_at_stytch: bool,
}

/// A revocation that did not take effect: nothing of it remains here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevokeError {
    /// The id is not a Stytch id; nothing was sent.
    #[error("invalid {field}")]
    InvalidId {
        /// `member_id` or `member_session_id`.
        field: &'static str,
    },
    /// Stytch refused: the acting member lacks the permission, or is in another organization.
    #[error("stytch refused the revocation")]
    Forbidden(#[source] StytchError),
    /// Stytch does not know the member.
    #[error("stytch does not know the member")]
    NotFound(#[source] StytchError),
    /// The acting member's session is not valid (revoked or expired meanwhile).
    #[error("the acting member's session is not valid")]
    ActingSessionInvalid(#[source] StytchError),
    /// Stytch could not be reached and the revocation was not applied locally.
    #[error("stytch is unavailable")]
    Unavailable(#[source] StytchError),
    /// Stytch refused our project credentials.
    #[error("stytch refused our project credentials")]
    Misconfigured(#[source] StytchError),
    /// Any other refusal by Stytch.
    #[error("stytch rejected the revocation")]
    Rejected(#[source] StytchError),
    /// The revocation's task ended without an answer (the runtime is shutting down).
    #[error("the revocation was interrupted")]
    Interrupted,
}

/// Settings of revocation.
///
/// How long a revoked session stays refused here is derived by the layer, not set: every JWT
/// minted before the revocation must have expired (5 min plus the JWT clock skew) and every cache
/// entry created meanwhile too (plus [`CacheConfig::max_ttl`](crate::config::CacheConfig::max_ttl)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevokeConfig {
    /// How long a revocation of unknown expiry (a member, a session known by id only) that
    /// Stytch has not confirmed is kept for retry (Stytch's sessions can live up to 366 days;
    /// default 24 h).
    pub pending_member_horizon: Duration,
    /// Roles allowed to force other members of their own organization out locally while
    /// Stytch is unreachable (default `stytch_admin`). Stytch checks the real permission once
    /// it answers, and a refusal is undone here.
    pub outage_admin_roles: Vec<String>,
    /// Most revocations waiting for Stytch whose caller was verified here (default 10 000).
    /// Beyond it, a revocation Stytch cannot take is not applied here (503, or the logout
    /// header `failed`).
    pub max_pending: usize,
    /// Most credentials held here that nothing could authenticate: logouts while Stytch was
    /// unreachable with a credential neither cached nor a locally verifiable JWT (default
    /// 1 000). Beyond it such a logout is sent to Stytch only, not held here.
    pub max_pending_unverified: usize,
    /// The longest an M2M access token lives (Stytch's default, and this default: an hour): a
    /// client cut off here is refused until every token issued before has expired.
    pub max_m2m_token_lifetime: Duration,
    /// Longest wait between two retries while Stytch stays unreachable (default 30 s; the
    /// wait doubles from 0.5 s). Once Stytch answers, every pending revocation whose caller
    /// was verified here is retried in the next pass, before any unverified one.
    pub max_retry_backoff: Duration,
}

impl Default for RevokeConfig {
    fn default() -> Self {
        Self {
            pending_member_horizon: Duration::from_secs(24 * 3600),
            outage_admin_roles: vec!["stytch_admin".to_owned()],
            max_pending: 10_000,
            max_pending_unverified: 1_000,
            max_m2m_token_lifetime: Duration::from_secs(3600),
            max_retry_backoff: Duration::from_secs(30),
        }
    }
}
