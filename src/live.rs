//! [`SessionLiveness`]: a live connection (WebSocket, server-sent events, long poll) learns
//! that its session was revoked, whatever revoked it (logout, admin route, hook, webhook,
//! another instance): every revocation is applied here by the one pipeline, which tells
//! [`Revoker::events`](crate::Revoker::events) subscribers; this module is one.
//!
//! The registry costs nothing until a handler asks for a handle: a slot per session is
//! created by the first [`SessionLiveness`] of that session and removed with the last one,
//! and the task that follows the revocation events starts with the first handle ever made.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::{broadcast, watch};

use crate::cache::SessionCache;
use crate::credential::{CacheKey, Credential, SessionCredential};
use crate::denylist::{Check, Denylist};
use crate::revoke::{RevocationEvent, RevokedTarget, Revoker};
use crate::session::MemberSession;

/// What a revocation names, and what each slot is filed under. A revocation of a target kind
/// added to [`RevokedTarget`] maps to one of these in [`Key::of`] (an organization-wide one to
/// [`Key::Organization`]); the denylist then decides which of the slots filed there it covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Session(String),
    Member(String),
    Organization(String),
    Credential(CacheKey),
}

impl Key {
    /// The slots a revocation of `target` may cover.
    fn of(target: &RevokedTarget) -> Self {
        match target {
            RevokedTarget::Session(id) => Self::Session(id.clone()),
            RevokedTarget::Member(id) => Self::Member(id.clone()),
            RevokedTarget::Credential(hash) => Self::Credential(*hash),
            RevokedTarget::Organization(id) => Self::Organization(id.clone()),
        }
    }

    /// Whether a revocation under this key covers every slot filed there. Session and
    /// credential revocations do; for the wider ones the denylist decides per session (a
    /// member-wide revocation spares sessions that started after it).
    fn covers_all(&self) -> bool {
        matches!(self, Self::Session(_) | Self::Credential(_))
    }
}

/// One session with live connections.
struct Slot {
    session: MemberSession,
    /// The credentials its connections were authenticated with.
    credentials: HashSet<CacheKey>,
    /// `true` once revoked; every [`SessionLiveness`] of the session holds a receiver.
    revoked: Arc<watch::Sender<bool>>,
}

impl Slot {
    fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        [
            Key::Session(self.session.member_session_id.clone()),
            Key::Member(self.session.member_id.clone()),
            Key::Organization(self.session.organization_id.clone()),
        ]
        .into_iter()
        .chain(self.credentials.iter().map(|k| Key::Credential(*k)))
    }

    /// What the revocations applied here say about this session, knowing nothing of when
    /// Stytch last vouched for it.
    fn check(&self, denylist: &Denylist) -> Check {
        if self.credentials.iter().any(|k| denylist.is_key_denied(k)) {
            return Check::Deny;
        }
        denylist.check(&self.session, None)
    }

    /// What [`LiveSessions::resolve`] needs to settle a [`Check::Ask`].
    fn ask(&self) -> Ask {
        Ask {
            session: self.session.clone(),
            credentials: self.credentials.iter().copied().collect(),
            revoked: self.revoked.clone(),
        }
    }

    fn fire(&self) {
        fire(&self.revoked);
    }
}

fn fire(revoked: &watch::Sender<bool>) {
    revoked.send_if_modified(|revoked| !std::mem::replace(revoked, true));
}

/// A slot a member-wide revocation may cover: it started within the clock skew of the
/// revocation, so whether Stytch vouched for it since decides, exactly as for a request.
struct Ask {
    session: MemberSession,
    credentials: Vec<CacheKey>,
    revoked: Arc<watch::Sender<bool>>,
}

#[derive(Default)]
struct Slots {
    /// By `member_session_id`.
    slots: HashMap<String, Slot>,
    /// Session ids filed under each key.
    index: HashMap<Key, HashSet<String>>,
    /// Whether the follower task was started (with the first handle).
    started: bool,
}

impl Slots {
    fn file(&mut self, key: Key, session_id: &str) {
        self.index
            .entry(key)
            .or_default()
            .insert(session_id.to_owned());
    }

    fn remove(&mut self, session_id: &str) {
        let Some(slot) = self.slots.remove(session_id) else {
            return;
        };
        for key in slot.keys() {
            if let Some(ids) = self.index.get_mut(&key) {
                ids.remove(session_id);
                if ids.is_empty() {
                    self.index.remove(&key);
                }
            }
        }
    }
}

/// The live sessions of one [`Revoker`]: owned by it, followed by a task of its own.
pub(crate) struct LiveSessions {
    denylist: Arc<Denylist>,
    cache: Arc<SessionCache>,
    events: broadcast::Sender<RevocationEvent>,
    slots: Mutex<Slots>,
}

impl LiveSessions {
    pub(crate) fn new(
        denylist: Arc<Denylist>,
        cache: Arc<SessionCache>,
        events: broadcast::Sender<RevocationEvent>,
    ) -> Arc<Self> {
        Arc::new(Self {
            denylist,
            cache,
            events,
            slots: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A panic while holding the lock leaves the maps consistent (every update is one
        // insert or remove): the poison carries no meaning here.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle on `session`'s liveness: its slot created (or joined), then checked against
    /// the revocations already applied, so that one applied between the request's
    /// authentication and now is not missed.
    fn handle(self: &Arc<Self>, session: &MemberSession, credential: &Credential) -> Receiver {
        let mut slots = self.lock();
        if !slots.started {
            slots.started = true;
            // Subscribed before the first slot exists: every event after this is seen by the
            // follower, every revocation before it is in the denylist checked below.
            tokio::spawn(follow(Arc::downgrade(self), self.events.subscribe()));
        }
        let id = session.member_session_id.as_str();
        let key = credential.cache_key();
        let slot = slots.slots.entry(id.to_owned()).or_insert_with(|| Slot {
            session: session.clone(),
            credentials: HashSet::new(),
            revoked: Arc::new(watch::channel(false).0),
        });
        slot.credentials.insert(key);
        let rx = slot.revoked.subscribe();
        let ask = match slot.check(&self.denylist) {
            Check::Allow => None,
            Check::Deny => {
                slot.fire();
                None
            }
            Check::Ask(_) => Some(slot.ask()),
        };
        let keys: Vec<Key> = slot.keys().collect();
        for key in keys {
            slots.file(key, id);
        }
        drop(slots);
        if let Some(ask) = ask {
            let live = Arc::clone(self);
            tokio::spawn(async move { live.resolve(vec![ask]).await });
        }
        rx
    }

    /// A handle of `session_id` is going: its slot goes with the last one.
    fn release(&self, session_id: &str) {
        let mut slots = self.lock();
        // The going handle's receiver is still alive: it is the last one when the count is 1.
        // A slot is only removed with its last receiver, so `session_id`'s slot is the one
        // the going handle belongs to.
        let last = slots
            .slots
            .get(session_id)
            .is_some_and(|slot| slot.revoked.receiver_count() <= 1);
        if last {
            slots.remove(session_id);
        }
    }

    /// Fires the slots that the revocation of `target` covers.
    async fn applied(&self, target: &RevokedTarget) {
        let key = Key::of(target);
        let asks = {
            let slots = self.lock();
            let filed = slots.index.get(&key).into_iter().flatten();
            let filed = filed.filter_map(|id| slots.slots.get(id));
            self.settle(filed, key.covers_all())
        };
        self.resolve(asks).await;
    }

    /// Events were lost (the follower lagged): every slot is checked against the denylist.
    async fn recheck_all(&self) {
        let asks = {
            let slots = self.lock();
            self.settle(slots.slots.values(), false)
        };
        self.resolve(asks).await;
    }

    /// Fires the slots refused (all of them with `all`), and returns those to ask about.
    fn settle<'a>(&self, slots: impl Iterator<Item = &'a Slot>, all: bool) -> Vec<Ask> {
        let mut asks = Vec::new();
        for slot in slots {
            match slot.check(&self.denylist) {
                _ if all => slot.fire(),
                Check::Allow => {}
                Check::Deny => slot.fire(),
                Check::Ask(_) => asks.push(slot.ask()),
            }
        }
        asks
    }

    /// Settles each [`Ask`] as the layer does for a request: with when Stytch last said the
    /// session is alive (its cache entry; a member-wide revocation evicts the member's
    /// entries, so only a check after it counts). No entry: nobody vouched for it since the
    /// revocation, and the connection is closed (its reconnection is asked of Stytch).
    async fn resolve(&self, asks: Vec<Ask>) {
        for ask in asks {
            let mut vouched = None;
            for key in &ask.credentials {
                if let Some(entry) = self.cache.get(key).await {
                    vouched = vouched.max(entry.stytch_checked_at);
                }
            }
            if self.denylist.check(&ask.session, vouched) != Check::Allow {
                fire(&ask.revoked);
            }
        }
    }

    /// Sessions with live handles (tests: no slot outlives its handles).
    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        let slots = self.lock();
        (slots.slots.len(), slots.index.len())
    }
}

type Receiver = watch::Receiver<bool>;

/// The follower task: applied revocations fire the slots they cover. An undone revocation
/// reopens nothing: a connection closed by it reconnects and is authenticated again. Ends
/// when the revoker and every handle are gone.
async fn follow(live: Weak<LiveSessions>, mut events: broadcast::Receiver<RevocationEvent>) {
    loop {
        let event = events.recv().await;
        let Some(live) = live.upgrade() else { return };
        match event {
            Ok(
                RevocationEvent::Applied { target, .. }
                | RevocationEvent::AppliedByStytch { target, .. },
            ) => live.applied(&target).await,
            // A role change re-validates the session's next request; its connections stay.
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "live connections: revocation events lagged, rechecking"
                );
                live.recheck_all().await;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

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
/// [`MemberSession::expires_at`] if that matters to you.
pub struct SessionLiveness {
    live: Arc<LiveSessions>,
    session_id: Arc<str>,
    revoked: Receiver,
}

impl SessionLiveness {
    /// A handle on `session`'s liveness, authenticated with `credential`, following
    /// `revoker`'s revocations. Must be called within a Tokio runtime.
    pub fn new(revoker: &Revoker, session: &MemberSession, credential: &SessionCredential) -> Self {
        let live = revoker.live().clone();
        let revoked = live.handle(session, credential.credential());
        Self {
            live,
            session_id: Arc::from(session.member_session_id.as_str()),
            revoked,
        }
    }

    /// A handle for the authenticated request whose extensions these are (the layer puts the
    /// session, the revoker and the credential there); `None` on a public route or an
    /// anonymous optional one. Must be called within a Tokio runtime.
    pub fn from_extensions(extensions: &http::Extensions) -> Option<Self> {
        Some(Self::new(
            extensions.get::<Revoker>()?,
            extensions.get::<MemberSession>()?,
            extensions.get::<SessionCredential>()?,
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

    use super::*;
    use crate::cache::tests::session;
    use crate::denylist::RevocationId;

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
            let cache = Arc::new(SessionCache::new(&crate::CacheConfig::default()));
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
            SessionLiveness {
                revoked: self.live.handle(session, &credential),
                live: self.live.clone(),
                session_id: Arc::from(session.member_session_id.as_str()),
            }
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
        old.make_mut().started_at = Some(now - Duration::from_secs(3600));
        let mut new = session("m1", "s2");
        new.make_mut().started_at = Some(now + Duration::from_secs(3600));
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
        a.make_mut().organization_id = "organization-test-a".into();
        let mut b = session("m2", "s2");
        b.make_mut().organization_id = "organization-test-a".into();
        let mut c = session("m3", "s3");
        c.make_mut().organization_id = "organization-test-c".into();
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
        fresh.make_mut().started_at = Some(now + Duration::from_secs(1));
        let vouched = Arc::new(crate::cache::CachedSession {
            session: fresh.clone(),
            ttl: Duration::from_secs(60),
            refreshed_jwt: None,
            request_id: None,
            stytch_checked_at: Some(now + Duration::from_secs(1)),
        });
        let key = Credential::parse("tok-fresh").unwrap().cache_key();
        f.cache.insert(key, vouched).await;
        let fresh = f.handle(&fresh, "tok-fresh");
        let mut unvouched = session("m1", "s1");
        unvouched.make_mut().started_at = Some(now - Duration::from_secs(1));
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
