//! [`SessionLiveness`]: a live connection (WebSocket, server-sent events, long poll) learns
//! that its session was revoked, whatever revoked it (logout, admin route, hook, webhook,
//! another instance): every revocation is applied by the one pipeline, which tells
//! [`Revoker::events`](crate::Revoker::events) subscribers; the live-connection registry is
//! one.
//!
//! Nothing is registered until a handler asks for a handle; the registration goes with the
//! last handle of the session.

use std::fmt;
use std::sync::Arc;

use crate::credential::SessionCredential;
use crate::revoke::Revoker;
use crate::session::MemberSession;
use crate::store::live::{LiveSessions, Receiver};

/// Whether an authenticated session is still live: resolves when the session is revoked
/// (logout, logout everywhere, admin route, forced sign-out hook, [`Revoker`] call, and every
/// revocation that reaches this process another way: all go through one pipeline). For
/// WebSocket, server-sent-event and long-poll handlers, which outlive the request that
/// authenticated them.
///
/// Get one from an authenticated request with [`from_extensions`](Self::from_extensions) or,
/// with the `axum` feature, as an extractor. Cheap to clone. Nothing is registered until a
/// handle exists; the registration goes with the last handle of the session.
///
/// A member-wide revocation covers the sessions the denylist refuses for it: those started
/// before it, and those too close to it to tell (their reconnection asks Stytch). A
/// revocation Stytch refuses afterwards (undone) does not reopen anything: the client
/// reconnects. Expiry is not a revocation: close at
/// [`MemberSessionData::expires_at`](crate::session::MemberSessionData::expires_at) if that matters to you.
pub struct SessionLiveness {
    live: Arc<LiveSessions>,
    session_id: Arc<str>,
    revoked: Receiver,
}

impl SessionLiveness {
    /// A handle on `session`'s liveness, authenticated with `credential`, following
    /// `revoker`'s revocations. Must be called within a Tokio runtime.
    pub fn new(revoker: &Revoker, session: &MemberSession, credential: &SessionCredential) -> Self {
        Self::attach(revoker.live(), session, credential.credential())
    }

    /// A handle on `session`'s liveness in the registry `live`.
    pub(crate) fn attach(
        live: &Arc<LiveSessions>,
        session: &MemberSession,
        credential: &crate::credential::Credential,
    ) -> Self {
        Self {
            revoked: live.handle(session, credential),
            live: Arc::clone(live),
            session_id: Arc::from(&*session.member_session_id.as_str()),
        }
    }

    /// A handle for the authenticated request whose extensions these are (the layer puts the
    /// session, the revoker and the credential there); `None` on a public route or an
    /// anonymous optional one. Must be called within a Tokio runtime.
    pub fn from_extensions(extensions: &http::Extensions) -> Option<Self> {
        Some(Self::new(
            Revoker::from_extensions(extensions)?,
            MemberSession::from_extensions(extensions)?,
            SessionCredential::from_extensions(extensions)?,
        ))
    }

    /// The session's id.
    pub fn member_session_id(&self) -> &str {
        &self.session_id
    }

    /// Whether the session has been revoked.
    pub fn is_revoked(&self) -> bool {
        *self.revoked.borrow()
    }

    /// Resolves once the session is revoked (at once if it already is). Cancel-safe.
    pub async fn revoked(&self) {
        let mut rx = self.revoked.clone();
        // The sender lives in the slot as long as a handle does: it cannot close first.
        let _ = rx.wait_for(|revoked| *revoked).await;
    }
}

impl Clone for SessionLiveness {
    fn clone(&self) -> Self {
        Self {
            live: self.live.clone(),
            session_id: self.session_id.clone(),
            revoked: self.revoked.clone(),
        }
    }
}

impl Drop for SessionLiveness {
    fn drop(&mut self) {
        self.live.release(&self.session_id);
    }
}

impl fmt::Debug for SessionLiveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLiveness")
            .field("member_session_id", &self.session_id)
            .field("revoked", &self.is_revoked())
            .finish()
    }
}
#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant, SystemTime};

    use tokio::sync::broadcast;

    use super::*;
    use crate::credential::Credential;
    use crate::store::cache::SessionCache;
    use crate::store::cache::tests::session;
    use crate::store::denylist::{Denylist, RevocationId};
    use crate::store::events::{RevocationEvent, RevokedTarget};

    struct Fixture {
        denylist: Arc<Denylist>,
        cache: Arc<SessionCache>,
        events: broadcast::Sender<RevocationEvent>,
        live: Arc<LiveSessions>,
        next: u64,
    }

    impl Fixture {
        fn new() -> Self {
            let denylist = Arc::new(Denylist::default());
            let cache = Arc::new(SessionCache::new(&crate::config::CacheConfig::default()));
            let events = broadcast::channel(16).0;
            let live = LiveSessions::new(denylist.clone(), cache.clone(), events.clone());
            Self {
                denylist,
                cache,
                events,
                live,
                next: 1,
            }
        }

        fn handle(&self, session: &MemberSession, credential: &str) -> SessionLiveness {
            let credential = Credential::parse(credential).unwrap();
            SessionLiveness::attach(&self.live, session, &credential)
        }

        /// Applies a revocation the way the pipeline does: the denylist hold, then the event.
        fn revoke(&mut self, target: RevokedTarget, revoked_at: Option<SystemTime>) {
            let id = RevocationId(self.next);
            self.next += 1;
            let until = Instant::now() + Duration::from_secs(60);
            match &target {
                RevokedTarget::Session(s) => self.denylist.hold_session(id, s, until, false),
                RevokedTarget::Member(m) => self.denylist.hold_member(id, m, until, revoked_at),
                RevokedTarget::Credential(k) => self.denylist.hold_key(id, *k, until, false, false),
                RevokedTarget::Organization(o) => self.denylist.hold_organization(id, o, until),
            }
            // As the pipeline: nobody may be listening yet.
            let _ = self.events.send(RevocationEvent::Applied {
                revocation: id.0,
                target,
            });
        }
    }

    async fn fired(handle: &SessionLiveness) -> bool {
        tokio::time::timeout(Duration::from_secs(2), handle.revoked())
            .await
            .is_ok()
    }

    async fn quiet(handle: &SessionLiveness) -> bool {
        tokio::time::timeout(Duration::from_millis(100), handle.revoked())
            .await
            .is_err()
    }

    #[tokio::test]
    async fn a_session_revocation_fires_that_sessions_handles_only() {
        // If this broke, a WebSocket would stay open after its session was logged out, or one
        // member's logout would close another's connections.
        let mut f = Fixture::new();
        let a = f.handle(&session("m1", "s1"), "tok-a");
        let a2 = a.clone();
        let b = f.handle(&session("m1", "s2"), "tok-b");
        f.revoke(RevokedTarget::Session("s1".into()), None);
        assert!(fired(&a).await && fired(&a2).await);
        assert!(a.is_revoked());
        assert!(quiet(&b).await && !b.is_revoked());
    }

    #[tokio::test]
    async fn a_credential_revocation_fires_the_session_it_authenticated() {
        // If this broke, a logout by a credential whose session is not known here (Stytch
        // was unreachable) would leave that credential's live connections open.
        let mut f = Fixture::new();
        let a = f.handle(&session("m1", "s1"), "tok-a");
        let b = f.handle(&session("m1", "s2"), "tok-b");
        let key = Credential::parse("tok-a").unwrap().cache_key();
        f.revoke(RevokedTarget::Credential(key), None);
        assert!(fired(&a).await);
        assert!(quiet(&b).await);
    }

    #[tokio::test]
    async fn a_member_revocation_fires_the_sessions_the_denylist_refuses() {
        // If this broke, "log out everywhere" or a forced sign-out would leave live
        // connections open, or close those of a session the member started after it.
        let mut f = Fixture::new();
        let now = SystemTime::now();
        let mut old = session("m1", "s1");
        old.make_mut()
            .set_started_at(Some(now - Duration::from_secs(3600)));
        let mut new = session("m1", "s2");
        new.make_mut()
            .set_started_at(Some(now + Duration::from_secs(3600)));
        let other = f.handle(&session("m2", "s3"), "tok-c");
        let old = f.handle(&old, "tok-a");
        let new = f.handle(&new, "tok-b");
        f.revoke(RevokedTarget::Member("m1".into()), Some(now));
        assert!(fired(&old).await);
        assert!(quiet(&new).await, "started after the confirmed revocation");
        assert!(quiet(&other).await);
        // Unconfirmed, a member-wide revocation refuses every session of the member.
        f.revoke(RevokedTarget::Member("m1".into()), None);
        assert!(fired(&new).await);
    }

    #[tokio::test]
    async fn an_organization_revocation_fires_every_session_of_that_organization_only() {
        // If this broke, an organization deleted at Stytch (its webhook) would leave its
        // members' WebSockets and streams open, or close another organization's.
        let mut f = Fixture::new();
        let mut a = session("m1", "s1");
        a.make_mut().set_organization("organization-test-a", "");
        let mut b = session("m2", "s2");
        b.make_mut().set_organization("organization-test-a", "");
        let mut c = session("m3", "s3");
        c.make_mut().set_organization("organization-test-c", "");
        let (a, b, c) = (
            f.handle(&a, "tok-a"),
            f.handle(&b, "tok-b"),
            f.handle(&c, "tok-c"),
        );
        f.revoke(
            RevokedTarget::Organization("organization-test-a".into()),
            None,
        );
        assert!(fired(&a).await);
        assert!(fired(&b).await);
        assert!(quiet(&c).await);
    }

    #[tokio::test]
    async fn a_session_started_within_the_skew_of_a_member_revocation_is_asked_as_a_request_is() {
        // If this broke, a member forced out and signed in again within the clock skew would
        // have every new connection closed at once (Stytch vouched for the new session after
        // the revocation), or a session of just before the revocation would stay live.
        let mut f = Fixture::new();
        let now = SystemTime::now();
        f.revoke(RevokedTarget::Member("m1".into()), Some(now));
        let mut fresh = session("m1", "s2");
        fresh
            .make_mut()
            .set_started_at(Some(now + Duration::from_secs(1)));
        let vouched = Arc::new(crate::store::cache::CachedSession::new(
            Credential::parse("tok-fresh").unwrap().cache_key(),
            fresh.clone(),
            Duration::from_secs(60),
            None,
            None,
            Some(now + Duration::from_secs(1)),
        ));
        let key = Credential::parse("tok-fresh").unwrap().cache_key();
        f.cache.insert(key, vouched).await;
        let fresh = f.handle(&fresh, "tok-fresh");
        let mut unvouched = session("m1", "s1");
        unvouched
            .make_mut()
            .set_started_at(Some(now - Duration::from_secs(1)));
        let unvouched = f.handle(&unvouched, "tok-old");
        assert!(
            fired(&unvouched).await,
            "nobody vouched for it after the revocation"
        );
        assert!(
            quiet(&fresh).await,
            "Stytch said it is alive after the revocation"
        );
        // A second confirmed member-wide revocation now: the entry's vouch predates it.
        f.revoke(
            RevokedTarget::Member("m1".into()),
            Some(now + Duration::from_secs(2)),
        );
        assert!(fired(&fresh).await);
    }

    #[tokio::test]
    async fn a_handle_made_after_the_revocation_is_revoked_at_once() {
        // If this broke, a WebSocket accepted between its request's authentication and the
        // follower seeing the revocation would stay open.
        let mut f = Fixture::new();
        let keep = f.handle(&session("m9", "s9"), "tok-z");
        f.revoke(RevokedTarget::Session("s1".into()), None);
        let late = f.handle(&session("m1", "s1"), "tok-a");
        assert!(late.is_revoked());
        assert!(!keep.is_revoked());
    }

    #[tokio::test]
    async fn slots_go_with_the_last_handle() {
        // If this broke, every WebSocket ever opened would leave its session in the registry
        // for the life of the process (a leak proportional to connections).
        let mut f = Fixture::new();
        for n in 0..100 {
            let s = session("m1", &format!("s{n}"));
            let h = f.handle(&s, &format!("tok-{n}"));
            let h2 = h.clone();
            let h3 = f.handle(&s, "tok-other");
            assert_eq!(f.live.len().0, 1);
            drop((h, h2));
            assert_eq!(f.live.len().0, 1, "a handle of s{n} is still alive");
            drop(h3);
        }
        assert_eq!(f.live.len(), (0, 0));
        // Revoked ones too.
        let h = f.handle(&session("m1", "s1"), "tok-a");
        f.revoke(RevokedTarget::Session("s1".into()), None);
        assert!(fired(&h).await);
        drop(h);
        assert_eq!(f.live.len(), (0, 0));
    }

    #[tokio::test]
    async fn the_follower_ends_with_the_registry() {
        // If this broke, each layer dropped (tests, reconfiguration) would leave a task behind.
        let f = Fixture::new();
        let h = f.handle(&session("m1", "s1"), "tok-a");
        let metrics = tokio::runtime::Handle::current().metrics();
        assert_eq!(metrics.num_alive_tasks(), 1, "the follower runs");
        let weak = Arc::downgrade(&f.live);
        drop(h);
        drop(f);
        assert!(weak.upgrade().is_none());
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(metrics.num_alive_tasks(), 0, "the follower ended");
    }
}
