//! The state of revocation in this process, shared by the [`Revoker`](super::Revoker), the
//! pipeline, the outbox's retries and the bus's inbound handle.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::outbox::Outbox;
use super::peers::Peers;
use super::{JWT_LIFETIME, RevocationEvent, RevocationId, RevokeConfig};
use crate::client::StytchClient;
use crate::store::SessionStore;

pub(crate) struct Inner {
    pub(super) client: StytchClient,
    /// The session store this revoker writes.
    pub(super) store: Arc<SessionStore>,
    pub(super) config: RevokeConfig,
    /// How long a revoked session is refused after Stytch confirmed (see [`Inner::new`]).
    pub(super) window: Duration,
    pub(super) outbox: Outbox,
    next_id: AtomicU64,
    /// Revocations deciding right now, for [`Revoker::flush`](super::Revoker::flush).
    pub(super) in_flight: InFlight,
    /// Other instances to tell (the Redis bus), when configured.
    peers: OnceLock<Arc<dyn Peers>>,
}

impl Inner {
    /// The state of a revoker writing `store`. A revoked session is refused after Stytch
    /// confirmed until every JWT minted before the revocation has expired
    /// (`JWT_LIFETIME + jwt_clock_skew`: Stytch's clock may run that far ahead of ours) and
    /// every cache entry created meanwhile too (`cache_max_ttl`).
    pub(super) fn new(
        client: StytchClient,
        store: Arc<SessionStore>,
        config: RevokeConfig,
        jwt_clock_skew: Duration,
        cache_max_ttl: Duration,
    ) -> Self {
        Self {
            client,
            store,
            outbox: Outbox::new(&config),
            config,
            window: JWT_LIFETIME + jwt_clock_skew + cache_max_ttl,
            next_id: AtomicU64::new(1),
            in_flight: InFlight::default(),
            peers: OnceLock::new(),
        }
    }

    /// Tells `peers` of every revocation decided here from now on. Set once.
    pub(super) fn set_peers(&self, peers: Arc<dyn Peers>) -> bool {
        self.peers.set(peers).is_ok()
    }

    pub(super) fn allocate_id(&self) -> RevocationId {
        RevocationId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The peers to tell, if any.
    pub(super) fn peers(&self) -> Option<&dyn Peers> {
        self.peers.get().map(|p| &**p)
    }

    /// Tells the store's subscribers (live connections, the app) of `event`.
    pub(super) fn publish(&self, event: RevocationEvent) {
        self.store.publish(event);
    }
}

/// Revocations deciding right now (their tasks running), for [`Revoker::flush`].
#[derive(Debug, Default)]
pub(super) struct InFlight {
    pub(super) count: AtomicUsize,
    pub(super) idle: Notify,
}

impl InFlight {
    /// Waits until no revocation is deciding, or `end`.
    pub(super) async fn settled(&self, end: Instant) {
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
