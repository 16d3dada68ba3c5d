//! The one revocation path. A revocation, once decided (logout, admin route, forced sign-out
//! hook, [`Revoker`] call), is a value, [`Revocation`], that the [`Revoker`] runs to the end
//! in a task of its own (`pipeline`), whatever happens to the request that decided it.
//! Stytch's answer is classified by a pure function (`verdict`); what Stytch has not
//! confirmed waits in the `outbox`.
//!
//! The invariant: local state converges to Stytch's verdict. A revocation is applied here
//! *before* Stytch answers only when this process can itself verify the caller's right to it
//! ([`Basis`]); a revocation Stytch refuses is undone here; no "already revoked" is recorded
//! unless Stytch said so about the target.

mod events;
mod external;
mod outbox;
mod peers;
mod pipeline;
mod verdict;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, broadcast, oneshot};
use tracing::Instrument;

use crate::cache::SessionCache;
use crate::client::{RevokeSelector, StytchClient};
use crate::credential::Credential;
use crate::denylist::Denylist;
pub(crate) use crate::denylist::RevocationId;
use crate::error::StytchError;
use crate::session::{MemberSession, is_stytch_id};

pub use self::events::{RevocationEvent, RevokedTarget};
pub(crate) use self::external::MadeByStytch;
pub(crate) use self::outbox::Outbox;
pub(crate) use self::peers::Peers;
#[cfg(feature = "redis")]
pub(crate) use self::peers::RemoteTarget;

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
/// entry created meanwhile too (plus [`CacheConfig::max_ttl`](crate::CacheConfig::max_ttl)).
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
            max_retry_backoff: Duration::from_secs(30),
        }
    }
}

/// Revokes sessions at Stytch and here. Cheap to clone; every clone of a layer shares one.
///
/// Available from [`StytchAuthLayer::revoker`](crate::StytchAuthLayer::revoker) and in the
/// extensions of every authenticated request. Each revocation runs in a task of its own:
/// dropping the future of [`revoke_session`](Self::revoke_session) or
/// [`revoke_member`](Self::revoke_member) does not cancel it.
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
    next_id: AtomicU64,
    in_flight: InFlight,
    events: broadcast::Sender<RevocationEvent>,
    /// Live connections, closed by the revocations that cover them.
    live: Arc<crate::live::LiveSessions>,
    /// Other instances to tell (the Redis bus), when configured.
    peers: OnceLock<Arc<dyn Peers>>,
}

impl Inner {
    fn allocate_id(&self) -> RevocationId {
        RevocationId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The peers to tell, if any.
    pub(crate) fn peers(&self) -> Option<&dyn Peers> {
        self.peers.get().map(|p| &**p)
    }
}

impl fmt::Debug for Revoker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revoker")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

/// Events kept for a subscriber that lags behind.
const EVENTS_CAPACITY: usize = 1024;

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
        let outbox = Outbox::new(&config);
        let events = broadcast::channel(EVENTS_CAPACITY).0;
        let live = crate::live::LiveSessions::new(denylist.clone(), cache.clone(), events.clone());
        Self {
            inner: Arc::new(Inner {
                client,
                cache,
                denylist,
                config,
                window: JWT_LIFETIME + jwt_clock_skew + cache_max_ttl,
                outbox,
                next_id: AtomicU64::new(1),
                in_flight: InFlight::default(),
                events,
                live,
                peers: OnceLock::new(),
            }),
        }
    }

    /// Revokes one session, acting as `acting` (Stytch checks that member's permission:
    /// `revoke-sessions` on `stytch.self` for their own session, on `stytch.member` for
    /// another's). Without `acting`, the project secret alone authorizes it.
    ///
    /// Applied here at once when this process can verify the right to it: no `acting` (the
    /// app decided), `acting` is a cached session of the same member, or `acting` is a cached
    /// session holding an [outage admin role](RevokeConfig::outage_admin_roles) and the target
    /// is a cached session of the same organization. Otherwise applied here once Stytch
    /// confirms.
    ///
    /// # Errors
    ///
    /// See [`RevokeError`]. When Stytch is unreachable this answers
    /// [`RevokeOutcome::Pending`] if the revocation was applied here, and
    /// `Err(Unavailable)` (nothing changed here) otherwise.
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
        self.revoke_as(Target::Session(member_session_id.to_owned()), acting)
            .await
    }

    /// Revokes every session of a member, acting as `acting`. See
    /// [`revoke_session`](Self::revoke_session) (the target's organization is known here when
    /// one of the member's sessions is cached).
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
        self.revoke_as(Target::Member(member_id.to_owned()), acting)
            .await
    }

    /// Revocations applied here that Stytch has not confirmed yet.
    pub fn pending(&self) -> usize {
        self.inner.outbox.len()
    }

    /// Lets revocations still deciding finish, then tries every pending revocation now,
    /// repeatedly, until none is left or `deadline` has passed (graceful shutdown). Returns
    /// how many are still pending.
    pub async fn flush(&self, deadline: Duration) -> usize {
        let end = Instant::now() + deadline;
        self.inner.in_flight.settled(end).await;
        outbox::flush(self, end).await
    }

    /// What happens to revocations here from now on: applied (evicted and refused here) and
    /// undone (Stytch refused), including, with a revocation bus (feature `redis`), other
    /// instances' revocations as they are applied here. Events carry ids and credential
    /// hashes, never a credential. A subscriber that falls more than 1 024 events behind loses the oldest
    /// ([`broadcast::error::RecvError::Lagged`]).
    pub fn events(&self) -> broadcast::Receiver<RevocationEvent> {
        self.inner.events.subscribe()
    }

    /// The live connections following this revoker's revocations.
    pub(crate) fn live(&self) -> &Arc<crate::live::LiveSessions> {
        &self.inner.live
    }

    /// The revocation `target`, acting as `acting` (the credential of a cached session, or
    /// the project secret), decided and run.
    async fn revoke_as(
        &self,
        target: Target,
        acting: Option<&Credential>,
    ) -> Result<RevokeOutcome, RevokeError> {
        let caller = match acting {
            Some(acting) => self.inner.cache.get(&acting.cache_key()).await,
            None => None,
        };
        let (basis, acting_is_target) = match (&caller, acting) {
            (_, None) => (Basis::Project, false),
            (Some(entry), Some(_)) => (
                self.basis_for(&target, &entry.session),
                target == Target::Session(entry.session.member_session_id.clone()),
            ),
            // Not cached: nothing here can say who this is.
            (None, Some(_)) => (Basis::Stytch, false),
        };
        self.submit(Revocation {
            target,
            acting: acting.cloned(),
            acting_is_target,
            basis,
            source: Source::Api,
            expires_at: None,
        })
        .await
    }

    /// On what basis `caller` (authenticated here) may revoke `target` (see [`Basis`]).
    pub(crate) fn basis_for(&self, target: &Target, caller: &MemberSession) -> Basis {
        let cache = &self.inner.cache;
        let organization = match target {
            Target::Member(id) if *id == caller.member_id => return Basis::Own,
            Target::Member(id) => cache.organization_of_member(id),
            Target::Session(id) if *id == caller.member_session_id => return Basis::Own,
            Target::Session(id) => match cache.owner_of_session(id) {
                Some((member, _)) if member == caller.member_id => return Basis::Own,
                Some((_, organization)) => Some(organization),
                None => None,
            },
            Target::Credential(_) => return Basis::Stytch,
        };
        if self.is_outage_admin(caller) && organization.as_deref() == Some(&caller.organization_id)
        {
            Basis::OrgAdmin
        } else {
            Basis::Stytch
        }
    }

    fn is_outage_admin(&self, session: &MemberSession) -> bool {
        self.inner
            .config
            .outage_admin_roles
            .iter()
            .any(|r| session.has_role(r))
    }

    /// Runs a decided revocation in a task of its own and returns a future of its outcome.
    /// The task is spawned before this returns: dropping the future never cancels the
    /// revocation.
    pub(crate) fn submit(
        &self,
        revocation: Revocation,
    ) -> impl Future<Output = Result<RevokeOutcome, RevokeError>> + Send + 'static {
        let id = self.inner.allocate_id();
        let span = tracing::info_span!(
            "revocation",
            id = id.0,
            target_kind = revocation.target.kind(),
            source = revocation.source.as_str(),
        );
        let (tx, rx) = oneshot::channel();
        let guard = InFlightGuard::new(self.clone());
        tokio::spawn(
            async move {
                let result = pipeline::run(&guard.revoker, id, revocation).await;
                // The request may be gone; the revocation is complete all the same.
                let _ = tx.send(result);
                drop(guard);
            }
            .instrument(span),
        );
        async move { rx.await.unwrap_or(Err(RevokeError::Interrupted)) }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    /// How long a revocation is held on the denylist after Stytch confirms it: until every
    /// JWT minted before it has expired (5 min + clock skew + the cache's `max_ttl`).
    #[cfg(test)]
    pub(crate) fn window(&self) -> Duration {
        self.inner.window
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }
}

/// Revocations deciding right now (their tasks running), for [`Revoker::flush`].
#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    /// Waits until no revocation is deciding, or `end`.
    async fn settled(&self, end: Instant) {
        loop {
            let idle = self.idle.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, idle).await.is_err() {
                return;
            }
        }
    }
}

/// Counts one revocation as deciding while it lives (a panicking task still uncounts).
struct InFlightGuard {
    revoker: Revoker,
}

impl InFlightGuard {
    fn new(revoker: Revoker) -> Self {
        revoker.inner.in_flight.count.fetch_add(1, Ordering::AcqRel);
        Self { revoker }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let in_flight = &self.revoker.inner.in_flight;
        if in_flight.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            in_flight.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CacheConfig;
    use crate::cache::CachedSession;
    use crate::client::StytchConfig;

    fn revoker(cache: Arc<SessionCache>) -> Revoker {
        let config = StytchConfig::builder("project-test-1", "secret-test-abc")
            .base_url("http://127.0.0.1:9/")
            .build()
            .unwrap();
        Revoker::new(
            StytchClient::new(config).unwrap(),
            cache,
            Arc::default(),
            RevokeConfig::default(),
            Duration::ZERO,
            Duration::from_secs(60),
        )
    }

    fn session(member: &str, id: &str, org: &str, roles: &[&str]) -> MemberSession {
        let mut s = crate::cache::tests::session(member, id);
        s.make_mut().organization_id = org.to_owned();
        s.make_mut().roles = roles.iter().map(|r| (*r).to_owned()).collect();
        s
    }

    async fn cache_of(sessions: &[MemberSession]) -> Arc<SessionCache> {
        let cache = Arc::new(SessionCache::new(&CacheConfig::default()));
        for (n, s) in sessions.iter().enumerate() {
            let entry = CachedSession {
                session: s.clone(),
                ttl: Duration::from_secs(60),
                refreshed_jwt: None,
                request_id: None,
                stytch_checked_at: None,
            };
            cache.insert([n as u8; 32], Arc::new(entry)).await;
        }
        cache
    }

    #[tokio::test]
    async fn basis_table() {
        // If this broke, a revocation would be applied here on a right this process cannot
        // verify (an admin of another organization during an outage), or a caller's own
        // logout would wait for Stytch.
        let cache = cache_of(&[
            session("m-a", "s-a", "org-a", &[]),
            session("m-b", "s-b", "org-b", &[]),
        ])
        .await;
        let r = revoker(cache);
        let admin_a = session("admin-a", "s-admin-a", "org-a", &["stytch_admin"]);
        let member_a = session("m-a2", "s-a2", "org-a", &[]);
        let member = |id: &str| Target::Member(id.to_owned());
        let one = |id: &str| Target::Session(id.to_owned());
        let cases = [
            ("own member", member("admin-a"), &admin_a, Basis::Own),
            ("own session", one("s-admin-a"), &admin_a, Basis::Own),
            (
                "admin, member of own org",
                member("m-a"),
                &admin_a,
                Basis::OrgAdmin,
            ),
            (
                "admin, session of own org",
                one("s-a"),
                &admin_a,
                Basis::OrgAdmin,
            ),
            (
                "admin, member of other org",
                member("m-b"),
                &admin_a,
                Basis::Stytch,
            ),
            (
                "admin, session of other org",
                one("s-b"),
                &admin_a,
                Basis::Stytch,
            ),
            (
                "admin, member unknown here",
                member("m-x"),
                &admin_a,
                Basis::Stytch,
            ),
            (
                "not an admin, same org",
                member("m-a"),
                &member_a,
                Basis::Stytch,
            ),
        ];
        for (name, target, caller, want) in cases {
            assert_eq!(r.basis_for(&target, caller), want, "{name}");
        }
    }
}
