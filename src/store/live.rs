//! The registry of live connections (WebSocket, server-sent events, long poll): a slot per
//! session with live [`SessionLiveness`](crate::live::SessionLiveness) handles, fired when a
//! revocation applied here covers it. Every revocation is applied by the one pipeline, which
//! tells the store's event subscribers; the registry's follower task is one.
//!
//! The registry costs nothing until a handler asks for a handle: a slot per session is
//! created by the first handle of that session and removed with the last one, and the task
//! that follows the revocation events starts with the first handle ever made.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::{broadcast, watch};

use super::cache::SessionCache;
use super::denylist::{Check, Denylist};
use super::events::{RevocationEvent, RevokedTarget};
use crate::credential::{CacheKey, Credential};
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
            Key::Session(self.session.member_session_id.to_string()),
            Key::Member(self.session.member_id.to_string()),
            Key::Organization(self.session.organization_id().to_string()),
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

/// The live sessions of one session store: owned by it, followed by a task of its own.
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
    pub(crate) fn handle(
        self: &Arc<Self>,
        session: &MemberSession,
        credential: &Credential,
    ) -> Receiver {
        let mut slots = self.lock();
        if !slots.started {
            slots.started = true;
            // Subscribed before the first slot exists: every event after this is seen by the
            // follower, every revocation before it is in the denylist checked below.
            tokio::spawn(follow(Arc::downgrade(self), self.events.subscribe()));
        }
        let id = session.member_session_id.as_str();
        let id: &str = &id;
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
    pub(crate) fn release(&self, session_id: &str) {
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
                    vouched = vouched.max(entry.stytch_checked_at());
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

pub(crate) type Receiver = watch::Receiver<bool>;

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
