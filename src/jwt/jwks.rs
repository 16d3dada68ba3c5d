//! The JWKS cache: parsed keys by `kid`, lazy load, periodic refresh in a background task
//! (requests keep the current keys meanwhile), single-flight refetch on an unknown `kid` with
//! a cooldown, and keys kept through rotation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;

use crate::client::{Jwk, Jwks, StytchClient};
use crate::error::{Endpoint, StytchError};
use crate::jwt::JwtError;

/// An immutable snapshot of the usable keys; replaced as a whole on every fetch.
#[derive(Default)]
pub(crate) struct KeySet {
    /// Keys of the last set Stytch returned.
    current: HashMap<String, Arc<DecodingKey>>,
    /// Keys that vanished from Stytch's set, with when they vanished.
    retired: HashMap<String, (Arc<DecodingKey>, Instant)>,
    /// Whether a fetch ever succeeded.
    loaded: bool,
    /// When the set is due for a periodic refresh.
    refresh_due: Option<Instant>,
}

impl KeySet {
    fn get(&self, kid: &str, now: Instant, keep: Duration) -> Option<Arc<DecodingKey>> {
        if let Some(key) = self.current.get(kid) {
            return Some(Arc::clone(key));
        }
        self.retired
            .get(kid)
            .filter(|(_, since)| now.saturating_duration_since(*since) < keep)
            .map(|(key, _)| Arc::clone(key))
    }

    /// The set after Stytch returned `jwks`: Stytch's keys replace ours; ours that vanished
    /// stay usable for `keep` more.
    fn next(&self, jwks: &Jwks, now: Instant, keep: Duration) -> Self {
        let mut current = HashMap::with_capacity(jwks.keys.len());
        for jwk in &jwks.keys {
            if current.contains_key(&jwk.kid) {
                continue;
            }
            if let Some(key) = usable_key(jwk) {
                current.insert(jwk.kid.clone(), Arc::new(key));
            }
        }
        let mut retired: HashMap<_, _> = self
            .retired
            .iter()
            .filter(|(kid, (_, since))| {
                !current.contains_key(*kid) && now.saturating_duration_since(*since) < keep
            })
            .map(|(kid, v)| (kid.clone(), v.clone()))
            .collect();
        for (kid, key) in &self.current {
            if !current.contains_key(kid) {
                retired.insert(kid.clone(), (Arc::clone(key), now));
            }
        }
        Self {
            current,
            retired,
            loaded: true,
            refresh_due: now.checked_add(keep),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.current.len() + self.retired.len()
    }
}

/// Parses a JWK if it is an RS256 signing key (`alg` RS256 or absent, `use` sig or absent).
fn usable_key(jwk: &Jwk) -> Option<DecodingKey> {
    let usable = jwk.kty == "RSA"
        && jwk.alg.as_deref().is_none_or(|a| a == "RS256")
        && jwk.use_.as_deref().is_none_or(|u| u == "sig")
        && !jwk.kid.is_empty();
    if !usable {
        tracing::debug!(kid = %jwk.kid, kty = %jwk.kty, "skipping a JWK that is not an RS256 signing key");
        return None;
    }
    match DecodingKey::from_rsa_components(&jwk.n, &jwk.e) {
        Ok(key) => Some(key),
        Err(err) => {
            tracing::warn!(kid = %jwk.kid, error = %err, "skipping an unparsable JWK");
            None
        }
    }
}

/// Serialised fetch state, behind the single-flight mutex.
#[derive(Default)]
struct FetchState {
    /// When the last fetch (of any kind) started.
    last_attempt: Option<Instant>,
    /// A copy of the error of the last fetch, if it failed.
    last_error: Option<StytchError>,
}

/// The JWKS cache of one verifier.
pub(crate) struct KeyStore {
    client: StytchClient,
    refresh_interval: Duration,
    cooldown: Duration,
    keys: RwLock<Arc<KeySet>>,
    fetch: tokio::sync::Mutex<FetchState>,
    /// Completed fetches; lets waiters see that a fetch ran while they queued.
    fetches: AtomicU64,
    /// Whether a periodic refresh task is under way (at most one is spawned at a time).
    refreshing: AtomicBool,
    /// How far tests have moved this store's clock forward, in nanoseconds.
    #[cfg(test)]
    advanced: AtomicU64,
}

impl KeyStore {
    pub(crate) fn new(
        client: StytchClient,
        refresh_interval: Duration,
        cooldown: Duration,
    ) -> Self {
        Self {
            client,
            refresh_interval,
            cooldown,
            keys: RwLock::new(Arc::new(KeySet::default())),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            fetches: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            #[cfg(test)]
            advanced: AtomicU64::new(0),
        }
    }

    /// The store's clock: `Instant::now()`, plus what tests moved it forward by, so that
    /// cooldowns and refresh intervals are tested without waiting (or racing) real time.
    fn now(&self) -> Instant {
        #[cfg(test)]
        {
            Instant::now() + Duration::from_nanos(self.advanced.load(Ordering::Acquire))
        }
        #[cfg(not(test))]
        {
            Instant::now()
        }
    }

    /// Moves this store's clock forward by `by` (tests).
    #[cfg(test)]
    pub(crate) fn advance_clock(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.advanced.fetch_add(nanos, Ordering::AcqRel);
    }

    /// The current snapshot.
    pub(crate) fn snapshot(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn loaded(&self) -> bool {
        self.snapshot().loaded
    }

    /// Installs a JWKS without fetching (tests).
    #[cfg(test)]
    pub(crate) fn install(&self, jwks: &Jwks) {
        let now = self.now();
        let mut guard = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let next = guard.next(jwks, now, self.refresh_interval);
        *guard = Arc::new(next);
    }

    /// Fetches completed so far (tests).
    #[cfg(test)]
    pub(crate) fn completed_fetches(&self) -> u64 {
        self.fetches.load(Ordering::Acquire)
    }

    /// The key for `kid`: loads the JWKS on first use, starts the periodic refresh in the
    /// background when due (this request goes on with the current keys), refetches it once
    /// on an unknown `kid` (single flight, cooldown).
    pub(crate) async fn key(self: &Arc<Self>, kid: &str) -> Result<Arc<DecodingKey>, JwtError> {
        let mut set = self.snapshot();
        let now = self.now();
        if !set.loaded {
            self.load().await.map_err(JwtError::Jwks)?;
            set = self.snapshot();
        } else if set.refresh_due.is_some_and(|due| now >= due) {
            self.spawn_periodic_refresh();
        }
        if let Some(key) = set.get(kid, self.now(), self.refresh_interval) {
            return Ok(key);
        }
        self.refetch_for(kid).await
    }

    /// First load. Concurrent callers share one fetch; after a failure, callers within the
    /// cooldown get that failure again instead of a new fetch.
    async fn load(&self) -> Result<(), StytchError> {
        let seen = self.fetches.load(Ordering::Acquire);
        let mut state = self.fetch.lock().await;
        if self.snapshot().loaded {
            return Ok(());
        }
        let ran_meanwhile = self.fetches.load(Ordering::Acquire) != seen;
        if (ran_meanwhile || self.cooling_down(&state))
            && let Some(err) = &state.last_error
        {
            return Err(replay(err));
        }
        self.fetch_locked(&mut state, "initial").await
    }

    /// Starts the due periodic refresh in a Tokio task, unless one is under way. Outside a
    /// Tokio runtime (never the case under the layer, which needs one) nothing is started
    /// and the current keys are kept; the next request on a runtime starts it.
    fn spawn_periodic_refresh(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        handle.spawn(async move {
            this.periodic_refresh().await;
            this.refreshing.store(false, Ordering::Release);
        });
    }

    /// A due periodic refresh, by whoever gets the lock first; everyone else goes on with the
    /// current keys. A failure keeps the current keys and postpones the next try by the
    /// cooldown.
    async fn periodic_refresh(&self) {
        let Ok(mut state) = self.fetch.try_lock() else {
            return;
        };
        let due = self.snapshot().refresh_due;
        if due.is_some_and(|due| self.now() < due) {
            return;
        }
        if let Err(err) = self.fetch_locked(&mut state, "periodic").await {
            tracing::warn!(error = %err, "JWKS refresh failed; keeping the current keys");
            let mut guard = self.keys.write().unwrap_or_else(PoisonError::into_inner);
            let next = KeySet {
                current: guard.current.clone(),
                retired: guard.retired.clone(),
                loaded: guard.loaded,
                refresh_due: self.now().checked_add(self.cooldown),
            };
            *guard = Arc::new(next);
        }
    }

    /// An unknown `kid`: one fetch per cooldown, shared by concurrent callers.
    async fn refetch_for(&self, kid: &str) -> Result<Arc<DecodingKey>, JwtError> {
        let mut state = self.fetch.lock().await;
        if let Some(key) = self.snapshot().get(kid, self.now(), self.refresh_interval) {
            return Ok(key);
        }
        if self.cooling_down(&state) {
            return Err(JwtError::KeyNotLoaded);
        }
        self.fetch_locked(&mut state, "unknown_kid")
            .await
            .map_err(JwtError::Jwks)?;
        self.snapshot()
            .get(kid, self.now(), self.refresh_interval)
            .ok_or(JwtError::UnknownKey)
    }

    /// Fetches now, whatever the cooldown.
    pub(crate) async fn refresh(&self) -> Result<(), StytchError> {
        let mut state = self.fetch.lock().await;
        self.fetch_locked(&mut state, "manual").await
    }

    fn cooling_down(&self, state: &FetchState) -> bool {
        state
            .last_attempt
            .is_some_and(|at| self.now().saturating_duration_since(at) < self.cooldown)
    }

    async fn fetch_locked(
        &self,
        state: &mut FetchState,
        reason: &'static str,
    ) -> Result<(), StytchError> {
        state.last_attempt = Some(self.now());
        let result = self.client.jwks().await;
        let outcome = match &result {
            Ok(jwks) => {
                let now = self.now();
                let mut guard = self.keys.write().unwrap_or_else(PoisonError::into_inner);
                let next = guard.next(jwks, now, self.refresh_interval);
                tracing::debug!(
                    reason,
                    keys = next.current.len(),
                    retired = next.retired.len(),
                    "fetched stytch JWKS"
                );
                *guard = Arc::new(next);
                state.last_error = None;
                "ok"
            }
            Err(err) => {
                tracing::debug!(reason, error = %err, "fetching stytch JWKS failed");
                state.last_error = Some(replay(err));
                "error"
            }
        };
        self.fetches.fetch_add(1, Ordering::AcqRel);
        crate::metrics::jwks_fetch(outcome, reason);
        result.map(|_| ())
    }
}

/// A copy of a JWKS fetch error for callers that did not run the fetch. Transport errors
/// cannot be copied; they are replayed as a timeout of the JWKS endpoint (both mean Stytch
/// was unreachable).
fn replay(err: &StytchError) -> StytchError {
    match err {
        StytchError::Api { endpoint, error } => StytchError::Api {
            endpoint: *endpoint,
            error: error.clone(),
        },
        StytchError::UnexpectedStatus {
            endpoint,
            status,
            retry_after,
        } => StytchError::UnexpectedStatus {
            endpoint: *endpoint,
            status: *status,
            retry_after: *retry_after,
        },
        StytchError::Decode { endpoint, source } => StytchError::Decode {
            endpoint: *endpoint,
            source: source.clone(),
        },
        _ => StytchError::Timeout {
            endpoint: Endpoint::Jwks,
        },
    }
}
