//! The revocation verbs' decisions, pure: from who asks (and what this process could verify
//! about them) to a [`Revocation`] (what, acting as whom, on what basis). The
//! [`Revoker`](super::Revoker) computes the basis (it needs the store), runs the revocation,
//! and the HTTP layer only maps its outcome to a response.

use std::time::SystemTime;

use super::{Basis, Revocation, RevokeError, RevokeOutcome, Source, Target};
use crate::credential::Credential;
use crate::session::MemberSession;

/// Who holds the credential of a logout, as far as this process could tell.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Caller<'a> {
    /// Authenticated here (by Stytch, the cache, or a JWT Stytch signed).
    Session(&'a MemberSession),
    /// Nothing here could say: Stytch unreachable (or refusing our project credentials), the
    /// credential not cached, no locally verifiable JWT.
    Undecided,
    /// Stytch said the credential's session does not exist.
    Ended,
    /// Refused here without asking Stytch: forged, expired, or revoked here before.
    Refused,
}

/// What a logout did (the layer's `x-stytch-logout` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogoutResult {
    /// Stytch confirmed.
    Revoked,
    /// Stytch said the session does not exist.
    AlreadyRevoked,
    /// Revoked here; Stytch is told as soon as it answers.
    Pending,
    /// Nothing revoked: Stytch refused, or could not be reached and it could not be kept.
    Failed,
    /// No session to revoke (no credential, or one refused here without asking Stytch).
    Nothing,
}

impl LogoutResult {
    /// The outcome of a submitted logout.
    pub(super) fn of(result: Result<RevokeOutcome, RevokeError>) -> Self {
        match result {
            Ok(RevokeOutcome::Revoked { .. }) => Self::Revoked,
            Ok(RevokeOutcome::AlreadyRevoked) => Self::AlreadyRevoked,
            Ok(RevokeOutcome::Pending) => Self::Pending,
            Err(err) => {
                tracing::warn!(error = %err, "logout: not revoked");
                Self::Failed
            }
        }
    }

    /// `revoked`, `already_revoked`, `pending`, `failed` or `none`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::AlreadyRevoked => "already_revoked",
            Self::Pending => "pending",
            Self::Failed => "failed",
            Self::Nothing => "none",
        }
    }
}

/// The revocation a logout makes, or what it answers without one.
///
/// The caller's own session (authenticated here) is revoked here at once and at Stytch
/// acting as the caller. A credential nothing here can authenticate is held here by its hash
/// and sent to Stytch as soon as it answers: holding it is the right to revoke it. A
/// credential refused here without asking Stytch is no session to revoke.
pub(super) fn logout(
    credential: &Credential,
    caller: Caller<'_>,
    everywhere: bool,
) -> Result<Revocation, LogoutResult> {
    match caller {
        Caller::Session(session) => Ok(Revocation {
            target: if everywhere {
                Target::Member(session.member_id.to_string())
            } else {
                Target::Session(session.member_session_id.to_string())
            },
            acting: Some(credential.clone()),
            acting_is_target: !everywhere,
            basis: Basis::Own,
            source: if everywhere {
                Source::LogoutEverywhere
            } else {
                Source::Logout
            },
            expires_at: Some(session.expires_at()),
        }),
        Caller::Undecided => Ok(Revocation {
            target: Target::Credential(credential.clone()),
            acting: None,
            acting_is_target: false,
            basis: Basis::Possession,
            source: Source::Logout,
            expires_at: None,
        }),
        Caller::Ended => Err(LogoutResult::AlreadyRevoked),
        Caller::Refused => Err(LogoutResult::Nothing),
    }
}

/// An admin route's revocation: `caller`, authenticated with `acting`, revokes `target`
/// acting as themselves.
pub(super) fn admin(
    target: Target,
    acting: Credential,
    caller: &MemberSession,
    basis: Basis,
) -> Revocation {
    Revocation {
        acting_is_target: matches!(&target, Target::Session(id) if caller.member_session_id == *id),
        acting: Some(acting),
        target,
        basis,
        source: Source::AdminRoute,
        expires_at: None,
    }
}

/// A forced sign-out hook's revocation: every session of a member, acting as the caller (the
/// project secret for an M2M client).
pub(super) fn forced_signout(
    target: Target,
    acting: Option<Credential>,
    basis: Basis,
) -> Revocation {
    Revocation {
        target,
        acting,
        acting_is_target: false,
        basis,
        source: Source::Hook,
        expires_at: None,
    }
}

/// A [`Revoker`](super::Revoker) call's revocation, acting as `acting` (whose cached session
/// is `caller`) or as the project.
pub(super) fn api(
    target: Target,
    acting: Option<&Credential>,
    caller: Option<&MemberSession>,
    basis: Basis,
) -> Revocation {
    let acting_is_target = match (caller, &target) {
        (Some(session), Target::Session(id)) => {
            acting.is_some() && *id == session.member_session_id
        }
        _ => false,
    };
    Revocation {
        target,
        acting: acting.cloned(),
        acting_is_target,
        basis,
        source: Source::Api,
        expires_at: None::<SystemTime>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::cache::tests::session;

    fn token() -> Credential {
        Credential::parse("session-token-abcdefghijklmnopqrstuvwxyz0123456789abcd").unwrap()
    }

    #[test]
    fn logout_decisions() {
        // If this broke, a logout would revoke the wrong target (one session instead of the
        // member, or the reverse), hold a credential it could authenticate, or revoke what
        // Stytch already ended.
        let s = session("member-test-1", "member-session-test-1");
        let one = logout(&token(), Caller::Session(&s), false).unwrap();
        assert_eq!(one.target, Target::Session("member-session-test-1".into()));
        assert_eq!((one.basis, one.acting_is_target), (Basis::Own, true));
        let all = logout(&token(), Caller::Session(&s), true).unwrap();
        assert_eq!(all.target, Target::Member("member-test-1".into()));
        assert_eq!(
            (all.source, all.acting_is_target),
            (Source::LogoutEverywhere, false)
        );
        let held = logout(&token(), Caller::Undecided, false).unwrap();
        assert_eq!(held.target, Target::Credential(token()));
        assert_eq!(
            (held.basis, held.acting.is_none()),
            (Basis::Possession, true)
        );
        assert_eq!(
            logout(&token(), Caller::Ended, false).unwrap_err(),
            LogoutResult::AlreadyRevoked
        );
        assert_eq!(
            logout(&token(), Caller::Refused, true).unwrap_err(),
            LogoutResult::Nothing
        );
    }

    #[test]
    fn an_admin_revoking_their_own_session_acts_as_the_target() {
        // If this broke, Stytch's 404 about an admin's own session would be read as being
        // about the acting session (or the reverse), and the outcome misreported.
        let s = session("member-test-1", "member-session-test-1");
        let own = admin(
            Target::Session("member-session-test-1".into()),
            token(),
            &s,
            Basis::Own,
        );
        assert!(own.acting_is_target);
        let other = admin(
            Target::Session("member-session-test-2".into()),
            token(),
            &s,
            Basis::Stytch,
        );
        assert!(!other.acting_is_target);
        let member = admin(
            Target::Member("member-test-1".into()),
            token(),
            &s,
            Basis::Own,
        );
        assert!(!member.acting_is_target);
    }
}
