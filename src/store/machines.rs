//! Machines in the session store: the cache of M2M access tokens that verified (keyed by the
//! SHA-256 of the token, as sessions are), and the cut-offs of M2M clients revoked here.
//!
//! A cut-off refuses every token of the client issued before it (and within the clock skew
//! after it: Stytch's clock may run ahead of ours) until the longest token issued before it
//! has expired. Stytch cannot revoke an issued M2M token; this is what can.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use moka::future::Cache;

use super::denylist::CLOCK_SKEW;
use crate::credential::CacheKey;
use crate::machine::MachineClient;

/// Each entry lives until its token's `exp`.
struct TokenExpiry;

impl Expiry<CacheKey, MachineClient> for TokenExpiry {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        machine: &MachineClient,
        _now: Instant,
    ) -> Option<Duration> {
        Some(
            machine
                .expires_at
                .duration_since(SystemTime::now())
                .unwrap_or_default(),
        )
    }
}

/// One client's cut-off.
#[derive(Debug, Clone, Copy)]
struct Cut {
    /// Tokens issued before this (plus the clock skew) are refused.
    issued_before: SystemTime,
    /// The cut-off is kept until then (no token issued before it lives longer).
    until: SystemTime,
}

/// The machines' cache and the clients cut off here.
pub(crate) struct Machines {
    cache: Cache<CacheKey, MachineClient>,
    cuts: RwLock<HashMap<String, Cut>>,
    /// The longest an access token lives (Stytch's default: an hour).
    max_token_lifetime: Duration,
}

impl std::fmt::Debug for Machines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machines")
            .field("cached", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl Machines {
    pub(crate) fn new(capacity: u64, max_token_lifetime: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(TokenExpiry)
                .support_invalidation_closures()
                .build(),
            cuts: RwLock::default(),
            max_token_lifetime,
        }
    }

    /// The longest a cut-off lasts: the longest an access token lives, plus the clock skew.
    pub(crate) fn longest_cut_off(&self) -> Duration {
        self.max_token_lifetime + CLOCK_SKEW
    }

    /// The cut-offs in force: `(client_id, issued_before, until)` each.
    pub(crate) fn cut_offs(&self) -> Vec<(String, SystemTime, SystemTime)> {
        let now = SystemTime::now();
        let cuts = self.cuts.read().unwrap_or_else(PoisonError::into_inner);
        cuts.iter()
            .filter(|(_, cut)| cut.until > now)
            .map(|(client, cut)| (client.clone(), cut.issued_before, cut.until))
            .collect()
    }

    /// The cached client of `key`, when its token is still live and its client not cut off;
    /// without waiting (a cache read that would wait answers `None`).
    pub(crate) fn cached_now(&self, key: &CacheKey) -> Option<MachineClient> {
        use std::future::Future as _;
        let mut get = std::pin::pin!(self.cache.get(key));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let std::task::Poll::Ready(Some(machine)) = get.as_mut().poll(&mut cx) else {
            return None;
        };
        self.serves(&machine).then_some(machine)
    }

    /// The cached client of `key`, if any and still served.
    pub(crate) async fn cached(&self, key: &CacheKey) -> Option<MachineClient> {
        let machine = self.cache.get(key).await?;
        self.serves(&machine).then_some(machine)
    }

    #[cfg(any(feature = "jwt", test))]
    pub(crate) async fn insert(&self, key: CacheKey, machine: MachineClient) {
        self.cache.insert(key, machine).await;
    }

    /// Whether `machine`'s token is live and not cut off here.
    pub(crate) fn serves(&self, machine: &MachineClient) -> bool {
        let now = SystemTime::now();
        now < machine.expires_at && !self.is_cut_off(&machine.client_id, machine.issued_at, now)
    }

    /// Whether a token of `client_id` issued at `issued_at` is refused by a cut-off.
    pub(crate) fn is_cut_off(
        &self,
        client_id: &str,
        issued_at: SystemTime,
        now: SystemTime,
    ) -> bool {
        let cuts = self.cuts.read().unwrap_or_else(PoisonError::into_inner);
        cuts.get(client_id)
            .is_some_and(|cut| now < cut.until && issued_at <= cut.issued_before + CLOCK_SKEW)
    }

    /// Cuts `client_id` off: every token issued before `at` (and within the clock skew after
    /// it) is refused until `until` (`None`: the longest token issued before `at` has
    /// expired), and evicted here. A later cut-off of a client extends an earlier one.
    /// Returns when the cut-off ends.
    pub(crate) async fn cut_off(
        &self,
        client_id: &str,
        at: SystemTime,
        until: Option<SystemTime>,
    ) -> SystemTime {
        let until = until.unwrap_or(at + self.max_token_lifetime + CLOCK_SKEW);
        {
            let mut cuts = self.cuts.write().unwrap_or_else(PoisonError::into_inner);
            let now = SystemTime::now();
            cuts.retain(|_, cut| cut.until > now);
            let cut = cuts.entry(client_id.to_owned()).or_insert(Cut {
                issued_before: at,
                until,
            });
            cut.issued_before = cut.issued_before.max(at);
            cut.until = cut.until.max(until);
        }
        let id = client_id.to_owned();
        // Invalidation closures run in moka's housekeeping; the check above already refuses
        // what they have not yet removed.
        let _ = self
            .cache
            .invalidate_entries_if(move |_, machine| machine.client_id == id);
        until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::MachineClientData;
    use serde_json::Map;

    fn token(client: &str, issued_at: SystemTime) -> MachineClient {
        MachineClient::new(MachineClientData {
            client_id: client.to_owned(),
            scopes: vec!["read:documents".into()],
            custom_claims: Map::new(),
            issued_at,
            expires_at: issued_at + Duration::from_secs(3600),
        })
    }

    #[tokio::test]
    async fn a_cut_off_refuses_the_clients_tokens_issued_before_it_only() {
        // If this broke, a compromised client's tokens already issued would still be served
        // after it was cut off, or a new client (or the same one's later tokens) refused.
        let m = Machines::new(100, Duration::from_secs(3600));
        let now = SystemTime::now();
        let old = token("m2m-client-a", now - Duration::from_secs(600));
        let other = token("m2m-client-b", now - Duration::from_secs(600));
        m.insert([1; 32], old.clone()).await;
        assert!(m.cached(&[1; 32]).await.is_some());
        let until = m.cut_off("m2m-client-a", now, None).await;
        assert!(until >= now + Duration::from_secs(3600));
        assert!(
            m.cached(&[1; 32]).await.is_none(),
            "the cached token is refused"
        );
        assert!(!m.serves(&old));
        assert!(m.serves(&other), "another client is not concerned");
        let within_skew = token("m2m-client-a", now + Duration::from_secs(10));
        assert!(
            !m.serves(&within_skew),
            "a token stamped by a clock a little ahead"
        );
        let later = token("m2m-client-a", now + Duration::from_secs(120));
        assert!(m.serves(&later), "a token issued after the cut-off");
    }
}
