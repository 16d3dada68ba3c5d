//! [`Revoker`]: the write side of the engine. Every entry point decides a [`Revocation`]
//! (what, acting as whom, on what basis) and runs it in a task of its own ([`submit`]); the
//! webhook entry points apply what Stytch itself did.
//!
//! [`submit`]: Revoker::submit

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{broadcast, oneshot};
use tracing::Instrument;

use super::external::{self, MadeByStytch};
use super::pipeline::{self, Settled};
use super::retry;
use super::state::Inner;
use super::verbs::{self, Caller, LogoutResult};
use super::{
    AtStytch, Basis, ClientCutOff, Revocation, RevocationEvent, RevokeConfig, RevokeError,
    RevokeOutcome, Target,
};
use crate::client::StytchClient;
use crate::credential::Credential;
use crate::session::{MemberSession, is_stytch_id};
use crate::store::SessionStore;

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

impl fmt::Debug for Revoker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revoker")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl Revoker {
    /// A revoker writing `store`. A revoked session is refused after Stytch confirmed until
    /// every JWT minted before the revocation has expired (`JWT_LIFETIME + jwt_clock_skew`:
    /// Stytch's clock may run that far ahead of ours) and every cache entry created meanwhile
    /// too (`cache_max_ttl`).
    pub(crate) fn new(
        client: StytchClient,
        store: Arc<SessionStore>,
        config: RevokeConfig,
        jwt_clock_skew: Duration,
        cache_max_ttl: Duration,
    ) -> Self {
        let inner = Inner::new(client, store, config, jwt_clock_skew, cache_max_ttl);
        Self {
            inner: Arc::new(inner),
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

    /// Cuts M2M client `client_id` off, at once, here and (with a revocation bus) on every
    /// instance: every access token it was issued before now (and within the clock skew
    /// after) is refused until the longest of them has expired
    /// ([`RevokeConfig::max_m2m_token_lifetime`]); Stytch cannot revoke an issued M2M token,
    /// this is what can. With [`AtStytch::Suspend`] the client is also set inactive at Stytch
    /// so that it gets no new token.
    ///
    /// # Errors
    ///
    /// [`RevokeError::InvalidId`] when `client_id` is not a Stytch id (nothing changes).
    pub async fn revoke_client(
        &self,
        client_id: &str,
        at_stytch: AtStytch,
    ) -> Result<ClientCutOff, RevokeError> {
        if !is_stytch_id(client_id) {
            return Err(RevokeError::InvalidId { field: "client_id" });
        }
        let store = &self.inner.store;
        let now = SystemTime::now();
        let until = store.machines.cut_off(client_id, now, None).await;
        if let Some(peers) = self.inner.peers() {
            peers.client_cut_off(self.inner.allocate_id(), client_id, now, until);
        }
        store.publish(RevocationEvent::ClientCutOff {
            client_id: client_id.to_owned(),
            issued_before: now,
            until,
        });
        crate::metrics::revocation("client", "cut_off");
        tracing::info!(client_id, "M2M client cut off here");
        let suspended_at_stytch = match at_stytch {
            AtStytch::Suspend => {
                match self
                    .inner
                    .client
                    .set_m2m_client_active(client_id, false)
                    .await
                {
                    Ok(_) => true,
                    Err(err) => {
                        tracing::warn!(error = %err, client_id, "M2M client cut off here, but not suspended at Stytch: it may get new tokens there");
                        false
                    }
                }
            }
            _ => false,
        };
        Ok(ClientCutOff {
            until,
            suspended_at_stytch,
        })
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
        retry::flush(&self.inner, end).await
    }

    /// What happens to revocations here from now on: applied (evicted and refused here) and
    /// undone (Stytch refused), including, with a revocation bus (feature `redis`), other
    /// instances' revocations as they are applied here. Events carry ids and credential
    /// hashes, never a credential. A subscriber that falls more than 1 024 events behind
    /// loses the oldest ([`broadcast::error::RecvError::Lagged`]).
    pub fn events(&self) -> broadcast::Receiver<RevocationEvent> {
        self.inner.store.subscribe()
    }

    /// The live connections following this revoker's revocations.
    pub(crate) fn live(&self) -> &Arc<crate::store::live::LiveSessions> {
        self.inner.store.live()
    }

    /// Logout (`everywhere`: every session of the member) by the holder of `credential`, as
    /// far as the authenticator could tell who that is (`caller`). Decided and started before
    /// this returns: dropping the future does not cancel it.
    pub(crate) fn logout(
        &self,
        credential: &Credential,
        caller: Caller<'_>,
        everywhere: bool,
    ) -> impl Future<Output = LogoutResult> + Send + 'static {
        let decided = verbs::logout(credential, caller, everywhere).map(|r| self.submit(r));
        async move {
            match decided {
                Ok(done) => LogoutResult::of(done.await),
                Err(result) => result,
            }
        }
    }

    /// An admin route: `caller` (authenticated here with `acting`) revokes `target`, acting as
    /// themselves, so that Stytch enforces their RBAC.
    pub(crate) fn revoke_as_admin(
        &self,
        target: Target,
        acting: Credential,
        caller: &MemberSession,
    ) -> impl Future<Output = Result<RevokeOutcome, RevokeError>> + Send + 'static {
        let basis = self.basis_for(&target, caller);
        self.submit(verbs::admin(target, acting, caller, basis))
    }

    /// Forced sign-out after the app's own admin action on `member_id`: every session of the
    /// member, acting as the caller (`caller`: their session, when authenticated here).
    pub(crate) fn force_signout(
        &self,
        member_id: String,
        acting: Option<Credential>,
        caller: Option<&MemberSession>,
    ) -> impl Future<Output = Result<RevokeOutcome, RevokeError>> + Send + 'static {
        let target = Target::Member(member_id);
        let basis = match (&acting, caller) {
            // An M2M client the route admitted: the app's trust, the project secret.
            (None, _) => Basis::Project,
            (Some(_), Some(caller)) => self.basis_for(&target, caller),
            (Some(_), None) => Basis::Stytch,
        };
        self.submit(verbs::forced_signout(target, acting, basis))
    }

    /// The revocation `target`, acting as `acting` (the credential of a cached session, or
    /// the project secret), decided and run.
    async fn revoke_as(
        &self,
        target: Target,
        acting: Option<&Credential>,
    ) -> Result<RevokeOutcome, RevokeError> {
        let caller = match acting {
            Some(acting) => self.inner.store.cached(&acting.cache_key()).await,
            None => None,
        };
        let caller = caller.as_ref().map(|entry| &entry.session);
        let basis = match (caller, acting) {
            (_, None) => Basis::Project,
            (Some(session), Some(_)) => self.basis_for(&target, session),
            // Not cached: nothing here can say who this is.
            (None, Some(_)) => Basis::Stytch,
        };
        self.submit(verbs::api(target, acting, caller, basis)).await
    }

    /// On what basis `caller` (authenticated here) may revoke `target` (see [`Basis`]).
    pub(crate) fn basis_for(&self, target: &Target, caller: &MemberSession) -> Basis {
        let cache = &self.inner.store.cache;
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
        if self.is_outage_admin(caller) && organization.as_ref() == Some(caller.organization_id()) {
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

    /// Applies here a revocation Stytch made at `revoked_at` (told by its webhook): see
    /// [`external::apply_made_by_stytch`]. Returns the revocation's id.
    pub(crate) async fn apply_made_by_stytch(
        &self,
        target: MadeByStytch,
        revoked_at: SystemTime,
    ) -> u64 {
        external::apply_made_by_stytch(&self.inner, target, revoked_at).await
    }

    /// A member's roles changed at Stytch at `changed_at` (told by its webhook): see
    /// [`external::mark_roles_changed`]. Returns whether it was recorded.
    pub(crate) fn mark_roles_changed(
        &self,
        member_id: &str,
        changed_at: SystemTime,
        roles: Vec<String>,
    ) -> bool {
        external::mark_roles_changed(&self.inner, member_id, changed_at, roles)
    }

    /// Runs a decided revocation in a task of its own and returns a future of its outcome.
    /// The task is spawned before this returns: dropping the future never cancels the
    /// revocation.
    fn submit(
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
                let inner = &guard.revoker.inner;
                let result = match pipeline::run(inner, id, revocation).await {
                    Settled::Done(result) => result,
                    Settled::Keep {
                        revocation,
                        give_up_at,
                    } => {
                        retry::keep(inner, id, revocation, give_up_at);
                        Ok(RevokeOutcome::Pending)
                    }
                };
                // The request may be gone; the revocation is complete all the same.
                let _ = tx.send(result);
                drop(guard);
            }
            .instrument(span),
        );
        async move { rx.await.unwrap_or(Err(RevokeError::Interrupted)) }
    }

    /// The one handle through which the revocation bus reaches this revoker.
    #[cfg(feature = "redis")]
    pub(crate) fn inbound(&self) -> super::Inbound {
        super::Inbound::new(&self.inner)
    }

    /// How long a revocation is held on the denylist after Stytch confirms it: until every
    /// JWT minted before it has expired (5 min + clock skew + the cache's `max_ttl`).
    #[cfg(all(test, feature = "jwt"))]
    pub(crate) fn window(&self) -> Duration {
        self.inner.window
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
    use crate::client::StytchConfig;
    use crate::store::cache::{CacheConfig, CachedSession};

    fn revoker(store: Arc<SessionStore>) -> Revoker {
        let config = StytchConfig::builder("project-test-1", "secret-test-abc")
            .base_url("http://127.0.0.1:9/")
            .build()
            .unwrap();
        Revoker::new(
            StytchClient::new(config).unwrap(),
            store,
            RevokeConfig::default(),
            Duration::ZERO,
            Duration::from_secs(60),
        )
    }

    fn session(member: &str, id: &str, org: &str, roles: &[&str]) -> MemberSession {
        let mut s = crate::store::cache::tests::session(member, id);
        s.make_mut().set_organization(org, "");
        s.make_mut().set_roles(roles.iter().copied());
        s
    }

    async fn cache_of(sessions: &[MemberSession]) -> Arc<SessionStore> {
        let store = SessionStore::new(&CacheConfig::default(), Duration::from_secs(3600));
        let cache = &store.cache;
        for (n, s) in sessions.iter().enumerate() {
            let entry = CachedSession::new(
                [n as u8; 32],
                s.clone(),
                Duration::from_secs(60),
                None,
                None,
                None,
            );
            cache.insert([n as u8; 32], Arc::new(entry)).await;
        }
        store
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
