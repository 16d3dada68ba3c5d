//! One revocation, start to end, in the task [`Revoker::submit`] spawned: applied here first
//! when this process can verify the caller's right to it ([`Basis`]), then sent to Stytch;
//! local state then follows Stytch's answer: kept (and shortened to the JWT window) when
//! confirmed, undone when refused, queued in the outbox when Stytch cannot be reached.

use std::time::{Instant, SystemTime};

use super::state::Inner;
use super::verdict::Verdict;
use super::{Basis, Revocation, RevocationEvent, RevocationId, RevokeError, RevokeOutcome, Target};
use crate::client::{AuthenticateRequest, AuthenticateResponse};
use crate::credential::Credential;
use crate::error::StytchError;
use crate::metrics;

/// Stytch's answer about one revocation, any ambiguity resolved.
#[derive(Debug)]
pub(super) enum Answer {
    /// Stytch revoked it.
    Confirmed { request_id: String },
    /// Stytch said the target was already revoked.
    AlreadyRevoked,
    /// Stytch refused it for good.
    Refused(RevokeError),
    /// Stytch could not be reached (or could not say): try again later.
    Unavailable(StytchError),
    /// Stytch refused our project credentials.
    Misconfigured(StytchError),
}

/// How a revocation ended in the request path.
#[derive(Debug)]
pub(super) enum Settled {
    /// Stytch answered (or nothing was applied here): the outcome.
    Done(Result<RevokeOutcome, RevokeError>),
    /// Applied here, Stytch unreachable: to keep in the outbox for retry until `give_up_at`
    /// (its room is reserved; the peers were told). Its outcome is
    /// [`RevokeOutcome::Pending`].
    Keep {
        revocation: Revocation,
        give_up_at: SystemTime,
    },
}

/// Runs `revocation` to the end (or to the outbox) and says how it went.
pub(super) async fn run(inner: &Inner, id: RevocationId, revocation: Revocation) -> Settled {
    let mut revocation = revocation;
    let first = revocation.basis.applies_first() && reserve(inner, &revocation);
    if first {
        apply(inner, id, &revocation, false).await;
    }
    let answer = match resolve(inner, &[id], &mut revocation, first).await {
        Some(answer) => answer,
        None => ask(inner, &revocation, false).await,
    };
    if !matches!(answer, Answer::Unavailable(_) | Answer::Misconfigured(_)) {
        // Stytch answers again: pending revocations need not wait for their backoff.
        inner.outbox.stytch_answered();
    }
    let target_kind = revocation.target.kind();
    let result = settle(inner, id, revocation, first, answer).await;
    let label = match &result {
        Settled::Done(Ok(outcome)) => outcome.as_str(),
        Settled::Done(Err(err)) => error_label(err),
        Settled::Keep { .. } => RevokeOutcome::Pending.as_str(),
    };
    metrics::revocation(target_kind, label);
    tracing::info!(outcome = label, applied_first = first, "revocation decided");
    result
}

/// Reserves room in the outbox to hold the revocation here before Stytch answers (and keep
/// it if Stytch cannot be reached); without room, Stytch decides first. A credential nothing
/// here could authenticate also needs room among the credential holds (see
/// [`RevokeConfig::max_pending_unverified`](super::RevokeConfig::max_pending_unverified)).
fn reserve(inner: &Inner, revocation: &Revocation) -> bool {
    if revocation.basis == Basis::Possession
        && inner.store.denylist.unverified_holds() >= inner.config.max_pending_unverified
    {
        return false;
    }
    inner.outbox.reserve(revocation.basis)
}

/// Makes local state follow Stytch's `answer`; `first`: the revocation was applied here
/// before asking.
async fn settle(
    inner: &Inner,
    id: RevocationId,
    revocation: Revocation,
    first: bool,
    answer: Answer,
) -> Settled {
    let outcome = match answer {
        Answer::Confirmed { request_id } => RevokeOutcome::Revoked { request_id },
        Answer::AlreadyRevoked => RevokeOutcome::AlreadyRevoked,
        Answer::Refused(err) => {
            if first {
                inner.outbox.unreserve(revocation.basis);
                undo(inner, id);
            }
            tracing::info!(error = %err, "stytch refused the revocation");
            return Settled::Done(Err(err));
        }
        Answer::Unavailable(err) | Answer::Misconfigured(err) => {
            if !first {
                return Settled::Done(Err(unreachable(err)));
            }
            let give_up_at = give_up_at(inner, &revocation);
            if let Some(peers) = inner.peers() {
                peers.pending(id, &revocation.target.remote(), give_up_at);
            }
            tracing::warn!(error = %err, "stytch unreachable: revoked here, kept for retry");
            return Settled::Keep {
                revocation,
                give_up_at,
            };
        }
    };
    if first {
        inner.outbox.unreserve(revocation.basis);
    }
    confirmed(inner, id, &revocation, first).await;
    Settled::Done(Ok(outcome))
}

fn unreachable(err: StytchError) -> RevokeError {
    if err.is_misconfigured() {
        RevokeError::Misconfigured(err)
    } else {
        RevokeError::Unavailable(err)
    }
}

/// Asks Stytch to revoke, acting as the revocation's acting member, and resolves what its
/// answer means. `pending`: a retry from the outbox.
///
/// Two answers need more than the pure [`Verdict`]:
/// - 403 to a logout acting as the member: the member's roles may not grant
///   `revoke-sessions` on `stytch.self`; their own logout is legitimate all the same, and is
///   sent again with the project secret alone.
/// - `404 session_not_found` acting as another member: about the target or about the acting
///   session. Stytch's authenticate of the acting credential tells: alive → the target was
///   already revoked; dead → the caller's right is gone (`ActingSessionInvalid`), except for
///   a pending revocation, which exists only because its right was verified here when it was
///   decided: it is completed with the project secret alone, whose answer is about the target.
pub(super) async fn ask(inner: &Inner, revocation: &Revocation, pending: bool) -> Answer {
    let mut acting = revocation.acting.as_ref();
    loop {
        let answer = inner
            .client
            .revoke(&revocation.target.selector(), acting)
            .await;
        let acting_other = acting.is_some() && !revocation.acting_is_target;
        match Verdict::of(answer, acting_other) {
            Verdict::Confirmed { request_id } => return Answer::Confirmed { request_id },
            Verdict::AlreadyRevoked => return Answer::AlreadyRevoked,
            Verdict::Refused(RevokeError::Forbidden(_))
                if acting.is_some()
                    && revocation.basis == Basis::Own
                    && revocation.source.is_logout() =>
            {
                tracing::debug!(
                    "stytch.self does not grant revoke-sessions: logout with the project secret"
                );
                acting = None;
            }
            Verdict::Refused(err) => return Answer::Refused(err),
            Verdict::AmbiguousNotFound(err) => {
                let Some(credential) = acting else {
                    return Answer::AlreadyRevoked;
                };
                match is_live(inner, credential).await {
                    Ok(true) => return Answer::AlreadyRevoked,
                    Ok(false) if pending => {
                        tracing::info!(
                            "the acting session is gone: completing the pending revocation with the project secret"
                        );
                        acting = None;
                    }
                    Ok(false) => return Answer::Refused(RevokeError::ActingSessionInvalid(err)),
                    Err(unknown) => return Answer::Unavailable(unknown),
                }
            }
            Verdict::Unavailable(err) => return Answer::Unavailable(err),
            Verdict::Misconfigured(err) => {
                tracing::error!(error = %err, "stytch refused our project credentials while revoking");
                return Answer::Misconfigured(err);
            }
        }
    }
}

/// A logout by a credential that could not be looked up when it was decided (Stytch was
/// unreachable) names no session: revoked at Stytch by the credential alone, the session
/// would end there, but nothing here would know which session it was, and its other
/// credentials (its JWT, verified locally) would be served until they expire. So before it
/// is sent, Stytch's authenticate names the session, and the revocation becomes one of that
/// session: held here and at peers (revocations `ids`, when `applied` here already), every
/// credential of it refused, then revoked at Stytch by its id.
///
/// `None`: go on and ask Stytch to revoke the target; `Some`: the answer already (the
/// credential is dead at Stytch: already revoked; or Stytch is still unreachable).
pub(super) async fn resolve(
    inner: &Inner,
    ids: &[RevocationId],
    revocation: &mut Revocation,
    applied: bool,
) -> Option<Answer> {
    let Target::Credential(credential) = &revocation.target else {
        return None;
    };
    match ask_authenticate(inner, credential).await {
        Ok(Some(response)) => {
            let session = &response.member_session;
            revocation.target = Target::Session(session.member_session_id.to_string());
            revocation.expires_at = Some(session.expires_at());
            if applied {
                for id in ids {
                    apply(inner, *id, revocation, false).await;
                }
            }
            tracing::debug!("the logged-out credential's session is known: revoking the session");
            None
        }
        Ok(None) => Some(Answer::AlreadyRevoked),
        Err(err) if err.is_misconfigured() => Some(Answer::Misconfigured(err)),
        Err(err) if err.is_verdict_unknown() => Some(Answer::Unavailable(err)),
        Err(err) => {
            tracing::warn!(error = %err, "stytch refused to name the logged-out credential's session");
            Some(Answer::Refused(RevokeError::Rejected(err)))
        }
    }
}

/// Whether Stytch's authenticate says `acting` is a live session (see [`ask_authenticate`]).
async fn is_live(inner: &Inner, acting: &Credential) -> Result<bool, StytchError> {
    Ok(ask_authenticate(inner, acting).await?.is_some())
}

/// Stytch's authenticate of `credential`: `None` when its session is dead, which is then
/// evicted here and negatively cached.
async fn ask_authenticate(
    inner: &Inner,
    credential: &Credential,
) -> Result<Option<AuthenticateResponse>, StytchError> {
    let request = AuthenticateRequest::new(credential.clone());
    match inner.client.authenticate(&request).await {
        Ok(response) => Ok(Some(response)),
        Err(err) if err.is_session_invalid() => {
            let key = credential.cache_key();
            inner.store.forget_dead(key).await;
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Holds the target here (denylist) and evicts its cache entries. `confirmed`: Stytch has
/// confirmed (the holds end with the JWT window); otherwise they last until retrying ends.
async fn apply(inner: &Inner, id: RevocationId, revocation: &Revocation, confirmed: bool) {
    let (until, revoked_at) = if confirmed {
        (Instant::now() + inner.window, Some(SystemTime::now()))
    } else {
        let left = give_up_at(inner, revocation)
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        (Instant::now() + left + inner.window, None)
    };
    let denylist = &inner.store.denylist;
    // Held before evicted: a request between the two finds the hold, never a fresh entry.
    let keys = match &revocation.target {
        Target::Session(session) => {
            denylist.hold_session(id, session, until, confirmed);
            inner.store.cache.evict_session(session).await
        }
        Target::Member(member) => {
            denylist.hold_member(id, member, until, revoked_at);
            inner.store.cache.evict_member(member).await
        }
        Target::Credential(credential) => {
            let key = credential.cache_key();
            let unverified = revocation.basis == Basis::Possession;
            denylist.hold_key(id, key, until, confirmed, unverified);
            inner.store.cache.evict_key(&key).await;
            Vec::new()
        }
    };
    // Every credential seen for the target is refused by hash too, so that none of them
    // needs a Stytch call to be refused again.
    for key in &keys {
        denylist.hold_key(id, *key, until, confirmed, false);
    }
    tracing::debug!(evicted = keys.len(), confirmed, "applied here");
    if let Some(peers) = inner.peers() {
        let until = super::peers::system_time_of(until);
        peers.applied(
            id,
            &revocation.target.remote(),
            confirmed,
            until,
            revoked_at,
        );
    }
    inner.publish(RevocationEvent::Applied {
        revocation: id.0,
        target: revocation.target.revoked(),
    });
}

/// Stytch confirmed (or said the target was already revoked): applied here now if it was
/// not, and the holds shortened to the JWT window, the member-wide ones refusing the sessions
/// started before now.
pub(super) async fn confirmed(
    inner: &Inner,
    id: RevocationId,
    revocation: &Revocation,
    applied: bool,
) {
    if applied && let Some(peers) = inner.peers() {
        peers.confirmed(id, SystemTime::now() + inner.window, SystemTime::now());
    }
    if let Target::Credential(credential @ Credential::Token(_)) = &revocation.target {
        // The session behind this token is gone, and a token is only ever verified by
        // Stytch: the negative cache refuses it from now on, and its hold (counted against
        // the bound on unverified credentials) can go.
        let key = credential.cache_key();
        inner.store.forget_dead(key).await;
        inner.store.denylist.release(id);
        return;
    }
    if applied {
        let until = Instant::now() + inner.window;
        inner.store.denylist.confirm(id, until, SystemTime::now());
    } else {
        apply(inner, id, revocation, true).await;
    }
}

/// Undoes revocation `id` here: its holds go (evictions stay: the next request
/// authenticates again).
pub(super) fn undo(inner: &Inner, id: RevocationId) {
    inner.store.denylist.release(id);
    if let Some(peers) = inner.peers() {
        peers.undone(id);
    }
    inner.publish(RevocationEvent::Undone { revocation: id.0 });
    tracing::info!(revocation = id.0, "revocation undone here");
}

/// When retrying ends: the target session's expiry, or the configured horizon when unknown.
fn give_up_at(inner: &Inner, revocation: &Revocation) -> SystemTime {
    revocation
        .expires_at
        .unwrap_or_else(|| SystemTime::now() + inner.config.pending_member_horizon)
}

/// The metric label of a revocation that did not take effect.
fn error_label(err: &RevokeError) -> &'static str {
    match err {
        RevokeError::InvalidId { .. } => "invalid_id",
        RevokeError::Forbidden(_) => "forbidden",
        RevokeError::NotFound(_) => "not_found",
        RevokeError::ActingSessionInvalid(_) => "acting_session_invalid",
        RevokeError::Unavailable(_) => "unavailable",
        RevokeError::Misconfigured(_) => "misconfigured",
        RevokeError::Rejected(_) => "rejected",
        RevokeError::Interrupted => "interrupted",
    }
}
