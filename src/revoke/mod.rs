//! The one revocation path: revoke at Stytch, evict every local cache entry of the session or
//! member, refuse it here from then on, and keep what Stytch has not confirmed for retry.

mod outbox;
mod verdict;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::cache::SessionCache;
use crate::client::{RevokeSelector, StytchClient};
use crate::credential::Credential;
use crate::denylist::Denylist;
use crate::error::StytchError;
use crate::session::is_stytch_id;

pub(crate) use self::outbox::Outbox;
use self::verdict::Verdict;

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

    fn kind(&self) -> &'static str {
        match self {
            Self::Session(_) => "session",
            Self::Member(_) => "member",
            Self::Credential(_) => "credential",
        }
    }
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
    /// Stytch had already revoked it (`404 session_not_found`).
    AlreadyRevoked,
    /// Stytch could not be reached: it is revoked here and will be revoked at Stytch in the
    /// background, until Stytch confirms or the session expires.
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

/// A revocation that did not take effect.
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
}

/// Settings of revocation.
///
/// How long a revoked session stays refused here is derived by the layer, not set: every JWT
/// minted before the revocation must have expired (5 min plus the JWT clock skew) and every cache
/// entry created meanwhile too (plus [`CacheConfig::max_ttl`](crate::CacheConfig::max_ttl)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevokeConfig {
    /// How long a member-wide revocation Stytch has not confirmed is kept for retry (Stytch's
    /// sessions can live up to 366 days; default 24 h).
    pub pending_member_horizon: Duration,
    /// Roles allowed to force other members out locally while Stytch is unreachable (default
    /// `stytch_admin`). Stytch checks the real permission once it answers.
    pub outage_admin_roles: Vec<String>,
}

impl Default for RevokeConfig {
    fn default() -> Self {
        Self {
            pending_member_horizon: Duration::from_secs(24 * 3600),
            outage_admin_roles: vec!["stytch_admin".to_owned()],
        }
    }
}

/// Revokes sessions at Stytch and here. Cheap to clone; every clone of a layer shares one.
///
/// Available from [`StytchAuthLayer::revoker`](crate::StytchAuthLayer::revoker) and in the
/// extensions of every authenticated request.
#[derive(Clone)]
pub struct Revoker {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: StytchClient,
    pub(crate) cache: Arc<SessionCache>,
    pub(crate) denylist: Arc<Denylist>,
    pub(crate) config: RevokeConfig,
    /// How long a revoked session is refused after Stytch confirmed (see [`Revoker::new`]).
    pub(crate) window: Duration,
    pub(crate) outbox: Outbox,
}

impl fmt::Debug for Revoker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revoker")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl Revoker {
    /// A revoker over the layer's cache and denylist. A revoked session is refused after
    /// Stytch confirmed until every JWT minted before the revocation has expired
    /// (`JWT_LIFETIME + jwt_clock_skew`: Stytch's clock may run that far ahead of ours) and
    /// every cache entry created meanwhile too
    /// (`cache_max_ttl`).
    pub(crate) fn new(
        client: StytchClient,
        cache: Arc<SessionCache>,
        denylist: Arc<Denylist>,
        config: RevokeConfig,
        jwt_clock_skew: Duration,
        cache_max_ttl: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                cache,
                denylist,
                config,
                window: JWT_LIFETIME + jwt_clock_skew + cache_max_ttl,
                outbox: Outbox::default(),
            }),
        }
    }

    /// How long a revoked session must be refused after Stytch confirmed.
    fn window(&self) -> Duration {
        self.inner.window
    }

    /// Revokes one session, acting as `acting` (Stytch checks that member's permission:
    /// `revoke-sessions` on `stytch.self` for their own session, on `stytch.member` for
    /// another's). Without `acting`, the project secret alone authorizes it.
    ///
    /// # Errors
    ///
    /// See [`RevokeError`]. When Stytch is unreachable this answers `Err(Unavailable)` and
    /// changes nothing here, unless `acting` holds one of the outage admin roles: then it is
    /// applied locally and kept for retry ([`RevokeOutcome::Pending`]).
    pub async fn revoke_session(
        &self,
        member_session_id: &str,
        acting: Option<&Credential>,
    ) -> Result<RevokeOutcome, RevokeError> {
        if !is_stytch_id(member_session_id) {
            return Err(RevokeError::InvalidId {
                field: "member_session_id",
            });
        }
        let local = self.acting_is_outage_admin(acting).await;
        self.revoke(
            Target::Session(member_session_id.to_owned()),
            acting,
            local,
            None,
        )
        .await
    }

    /// Revokes every session of a member, acting as `acting`. See
    /// [`revoke_session`](Self::revoke_session).
    ///
    /// # Errors
    ///
    /// See [`revoke_session`](Self::revoke_session).
    pub async fn revoke_member(
        &self,
        member_id: &str,
        acting: Option<&Credential>,
    ) -> Result<RevokeOutcome, RevokeError> {
        if !is_stytch_id(member_id) {
            return Err(RevokeError::InvalidId { field: "member_id" });
        }
        let local = self.acting_is_outage_admin(acting).await;
        self.revoke(Target::Member(member_id.to_owned()), acting, local, None)
            .await
    }

    /// Whether the acting credential belongs to a cached session holding an outage admin role.
    async fn acting_is_outage_admin(&self, acting: Option<&Credential>) -> bool {
        let Some(acting) = acting else {
            // The project secret itself acts: the host app decided.
            return true;
        };
        match self.inner.cache.get(&acting.cache_key()).await {
            Some(entry) => self.is_outage_admin(&entry.session),
            None => false,
        }
    }

    pub(crate) fn is_outage_admin(&self, session: &crate::MemberSession) -> bool {
        self.inner
            .config
            .outage_admin_roles
            .iter()
            .any(|r| session.has_role(r))
    }

    /// The revocation path shared by every entry point: ask Stytch, classify its answer
    /// ([`Verdict::of`], pure), then apply the verdict here.
    ///
    /// `local_on_outage`: apply the local effect and queue for retry when Stytch cannot be
    /// reached. `expires_at`: when the target session expires (bounds the retry).
    pub(crate) async fn revoke(
        &self,
        target: Target,
        acting: Option<&Credential>,
        local_on_outage: bool,
        expires_at: Option<SystemTime>,
    ) -> Result<RevokeOutcome, RevokeError> {
        let answer = self.inner.client.revoke(&target.selector(), acting).await;
        let verdict = Verdict::of(answer, acting.is_some());
        let outcome = match self
            .apply(verdict, &target, acting, local_on_outage, expires_at)
            .await
        {
            Ok(outcome) => outcome,
            Err((result, err)) => {
                record(&target, result);
                return Err(err);
            }
        };
        record(&target, outcome.as_str());
        tracing::info!(
            target_kind = target.kind(),
            outcome = outcome.as_str(),
            "revoked"
        );
        Ok(outcome)
    }

    /// Applies Stytch's verdict here: evicts and refuses the target when Stytch agreed (or
    /// could not be reached and `local_on_outage`), and otherwise says why not, with the
    /// `result` label to count it under.
    async fn apply(
        &self,
        verdict: Verdict,
        target: &Target,
        acting: Option<&Credential>,
        local_on_outage: bool,
        expires_at: Option<SystemTime>,
    ) -> Result<RevokeOutcome, (&'static str, RevokeError)> {
        let confirmed_until = || Some(Instant::now() + self.window());
        match verdict {
            Verdict::Confirmed { request_id } => {
                self.apply_local(target, confirmed_until()).await;
                Ok(RevokeOutcome::Revoked { request_id })
            }
            Verdict::AlreadyRevoked => {
                self.apply_local(target, confirmed_until()).await;
                Ok(RevokeOutcome::AlreadyRevoked)
            }
            Verdict::ActingSessionMaybeDead(err) => {
                if let Some(acting) = acting
                    && !self.acting_is_target(acting, target).await
                    && !self.acting_is_live(acting).await
                {
                    tracing::info!(
                        target_kind = target.kind(),
                        "revocation refused: the acting member's session is not valid"
                    );
                    return Err((
                        "acting_session_invalid",
                        RevokeError::ActingSessionInvalid(err),
                    ));
                }
                self.apply_local(target, confirmed_until()).await;
                Ok(RevokeOutcome::AlreadyRevoked)
            }
            Verdict::Unavailable(err) | Verdict::Misconfigured(err) => {
                self.unconfirmed(err, target, acting, local_on_outage, expires_at)
                    .await
            }
            Verdict::Forbidden(err) => {
                tracing::info!(target_kind = target.kind(), error = %err, "stytch refused the revocation");
                Err(("forbidden", RevokeError::Forbidden(err)))
            }
            Verdict::NotFound(err) => Err(("not_found", RevokeError::NotFound(err))),
            Verdict::Rejected(err) => {
                tracing::warn!(target_kind = target.kind(), error = %err, "stytch rejected the revocation");
                Err(("rejected", RevokeError::Rejected(err)))
            }
        }
    }

    /// Stytch could not be reached (or refused our project secret): with `local_on_outage`,
    /// revoke here until the session's end and keep it for retry; otherwise change nothing.
    async fn unconfirmed(
        &self,
        err: StytchError,
        target: &Target,
        acting: Option<&Credential>,
        local_on_outage: bool,
        expires_at: Option<SystemTime>,
    ) -> Result<RevokeOutcome, (&'static str, RevokeError)> {
        let misconfigured = err.is_misconfigured();
        if misconfigured {
            tracing::error!(error = %err, "stytch refused our project credentials while revoking");
        }
        if !local_on_outage {
            return Err((
                "unavailable",
                if misconfigured {
                    RevokeError::Misconfigured(err)
                } else {
                    RevokeError::Unavailable(err)
                },
            ));
        }
        // Unknown expiry (a member, or a session known only by id): keep retrying for the
        // configured horizon.
        let give_up_at = expires_at
            .unwrap_or_else(|| SystemTime::now() + self.inner.config.pending_member_horizon);
        let until = Instant::now()
            + give_up_at
                .duration_since(SystemTime::now())
                .unwrap_or_default()
            + self.window();
        self.apply_local(target, Some(until)).await;
        tracing::warn!(
            target_kind = target.kind(),
            error = %err,
            "stytch unreachable: revoked locally, kept for retry"
        );
        self.inner.outbox.push(
            outbox::Pending {
                target: target.clone(),
                acting: acting.cloned(),
                give_up_at,
            },
            self,
        );
        Ok(RevokeOutcome::Pending)
    }

    /// Whether the acting credential is (a credential of) the target session itself.
    async fn acting_is_target(&self, acting: &Credential, target: &Target) -> bool {
        match target {
            Target::Credential(c) => c == acting,
            Target::Session(id) => self
                .inner
                .cache
                .get(&acting.cache_key())
                .await
                .is_some_and(|entry| entry.session.member_session_id == *id),
            Target::Member(_) => false,
        }
    }

    /// Asks Stytch whether the acting credential is a live session; if not, it is evicted
    /// and refused here too.
    async fn acting_is_live(&self, acting: &Credential) -> bool {
        let request = crate::client::AuthenticateRequest::new(acting.clone());
        match self.inner.client.authenticate(&request).await {
            Ok(_) => true,
            Err(err) if err.is_session_invalid() => {
                let until = Instant::now() + self.window();
                self.apply_local(&Target::Credential(acting.clone()), Some(until))
                    .await;
                false
            }
            // Stytch could not say: the target's 404 stands (the acting session was live a
            // moment ago, when the layer authenticated it).
            Err(_) => true,
        }
    }

    /// Evicts and refuses the target here.
    pub(crate) async fn apply_local(&self, target: &Target, until: Option<Instant>) {
        let until = until.unwrap_or_else(|| Instant::now() + self.window());
        let inner = &self.inner;
        let keys = match target {
            Target::Session(id) => {
                inner.denylist.deny_session(id, until);
                inner.cache.evict_session(id).await
            }
            Target::Member(id) => {
                inner.denylist.deny_member(id, SystemTime::now(), until);
                inner.cache.evict_member(id).await
            }
            Target::Credential(credential) => {
                let key = credential.cache_key();
                inner.cache.evict_key(&key).await;
                vec![key]
            }
        };
        // The credentials seen for it are refused by hash too, so that none of them needs a
        // Stytch call to be refused again.
        for key in &keys {
            inner.denylist.deny_key(*key, until);
        }
        tracing::debug!(
            target_kind = target.kind(),
            evicted = keys.len(),
            "evicted local cache entries"
        );
    }

    /// Revocations not yet confirmed by Stytch.
    pub fn pending(&self) -> usize {
        self.inner.outbox.len()
    }

    /// Tries every pending revocation now, repeatedly, until none is left or `deadline` has
    /// passed (graceful shutdown). Returns how many are still pending.
    pub async fn flush(&self, deadline: Duration) -> usize {
        outbox::flush(self, deadline).await
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    pub(crate) fn confirm_window(&self) -> Duration {
        self.window()
    }
}

fn record(target: &Target, result: &'static str) {
    crate::metrics::revocation(target.kind(), result);
}
