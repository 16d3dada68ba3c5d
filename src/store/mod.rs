//! The session store: where the state of sessions lives in this process, with one owner.
//!
//! - the [`cache`]: credential hash → the session Stytch (or a JWT it signed) vouched for;
//! - the [`denylist`]: sessions, members, credentials and organizations revoked here, and the
//!   members whose roles changed at Stytch;
//! - the [`live`] registry: sessions with live connections (WebSocket, SSE, long poll);
//! - the [`events`] of every revocation applied here, which the registry and the app's
//!   subscribers follow.
//!
//! The [`Authenticator`](crate::authenticator::Authenticator) reads it (credential →
//! session); the [`Revoker`](crate::Revoker) writes it (revocations applied, confirmed,
//! undone). Neither reaches into the other: both hold the store.

pub(crate) mod cache;
pub(crate) mod denylist;
pub(crate) mod events;
pub(crate) mod live;
pub(crate) mod machines;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use self::cache::{CacheConfig, CachedSession, SessionCache};
use self::denylist::Denylist;
use self::events::RevocationEvent;
use self::live::LiveSessions;
use self::machines::Machines;
use crate::credential::CacheKey;

/// Events kept for a subscriber that lags behind.
const EVENTS_CAPACITY: usize = 1024;

/// The state of sessions in this process: cache, denylist, live connections, and the events
/// of revocations applied to them. Shared (`Arc`) by the authenticator and the revoker.
pub(crate) struct SessionStore {
    /// Credential hash → session.
    pub(crate) cache: Arc<SessionCache>,
    /// What is refused here whatever the cache says.
    pub(crate) denylist: Arc<Denylist>,
    /// Sessions with live connections.
    live: Arc<LiveSessions>,
    /// Every revocation applied or undone here.
    events: broadcast::Sender<RevocationEvent>,
    /// M2M access tokens that verified, and the clients cut off here.
    pub(crate) machines: Arc<Machines>,
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl SessionStore {
    /// An empty store with a cache of `config`; M2M access tokens live at most
    /// `max_m2m_token_lifetime`.
    pub(crate) fn new(config: &CacheConfig, max_m2m_token_lifetime: Duration) -> Arc<Self> {
        let cache = Arc::new(SessionCache::new(config));
        let denylist = Arc::new(Denylist::default());
        let events = broadcast::channel(EVENTS_CAPACITY).0;
        let live = LiveSessions::new(Arc::clone(&denylist), Arc::clone(&cache), events.clone());
        Arc::new(Self {
            cache,
            denylist,
            live,
            events,
            machines: Arc::new(Machines::new(config.max_capacity, max_m2m_token_lifetime)),
        })
    }

    /// The live-connection registry.
    pub(crate) fn live(&self) -> &Arc<LiveSessions> {
        &self.live
    }

    /// Tells every subscriber (the live registry, the app's) what happened to a revocation.
    /// Nobody may be listening: that is not an error.
    pub(crate) fn publish(&self, event: RevocationEvent) {
        let _ = self.events.send(event);
    }

    /// A subscription to the events from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RevocationEvent> {
        self.events.subscribe()
    }

    /// The cached session of `key`, if any (no expiry or denylist check: who it is, for
    /// deciding who may revoke what).
    pub(crate) async fn cached(&self, key: &CacheKey) -> Option<Arc<CachedSession>> {
        self.cache.get(key).await
    }

    /// Forgets `key`'s session and remembers for a while that its credential is dead.
    pub(crate) async fn forget_dead(&self, key: CacheKey) {
        self.cache.evict_key(&key).await;
        self.cache.insert_negative(key).await;
    }
}
