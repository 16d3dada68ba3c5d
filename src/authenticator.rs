//! [`Authenticator`]: the read side of the engine, one credential to a session. Refused if revoked here; served from the cache
//! when possible; otherwise verified (locally for a fresh JWT, by Stytch otherwise) once for
//! all concurrent requests carrying it. A session that started too close to a member-wide
//! revocation to tell on which side is asked of Stytch.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::client::{AuthenticateRequest, StytchClient};
use crate::credential::{CacheKey, Credential};
use crate::error::StytchError;
use crate::machine::MachineClient;
#[cfg(feature = "jwt")]
use crate::machine::MachineClientData;
use crate::metrics;
use crate::session::StytchId;
use crate::store::SessionStore;
use crate::store::cache::CachedSession;
use crate::store::denylist::{Check, RevocationId};

/// A session refused for a missing step-up is asked of Stytch again on its next request when
/// Stytch vouched for it longer ago than this (see [`Authenticator::recheck_soon`]).
const RECHECK_AFTER: Duration = Duration::from_secs(5);

/// Why a lookup failed; the error type shared by coalesced lookups. The `rejection` module
/// turns it into a response.
#[derive(Debug)]
pub(crate) enum AuthError {
    /// The credential is dead, forged or revoked here.
    Invalid {
        error_type: Option<String>,
        request_id: Option<String>,
        /// Whether the refusal may be remembered in the negative cache. Never for a JWT that
        /// was not yet valid here: this host's clock may be the one that is wrong.
        remember: bool,
    },
    /// Stytch (or its JWKS) could not answer.
    Unavailable {
        retry_after: Option<Duration>,
        error_type: Option<String>,
        request_id: Option<String>,
    },
    /// Stytch refused our project credentials, or answered what only a bug explains.
    Misconfigured {
        error_type: Option<String>,
        request_id: Option<String>,
    },
}

impl AuthError {
    /// Stytch could not say (unreachable, or refusing our project credentials): nothing here
    /// knows whether the credential is a live session.
    pub(crate) fn is_undecided(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Misconfigured { .. })
    }

    /// Stytch said the credential's session does not exist (any more).
    pub(crate) fn is_session_not_found(&self) -> bool {
        matches!(self, Self::Invalid { error_type: Some(t), .. } if t == "session_not_found")
    }

    /// Refused without asking Stytch (revoked here, expired, negative cache, local JWT check).
    fn invalid() -> Self {
        Self::Invalid {
            error_type: None,
            request_id: None,
            remember: true,
        }
    }

    /// This error, never to be remembered in the negative cache.
    #[cfg(feature = "jwt")]
    fn forgotten(mut self) -> Self {
        if let Self::Invalid { remember, .. } = &mut self {
            *remember = false;
        }
        self
    }

    fn from_stytch(err: &StytchError) -> Self {
        let error_type = err.error_type().map(str::to_owned);
        let request_id = err.request_id().map(str::to_owned);
        if err.is_session_invalid() {
            Self::Invalid {
                error_type,
                request_id,
                remember: true,
            }
        } else if err.is_misconfigured() {
            tracing::error!(error = %err, "stytch refused our project credentials: check STYTCH_PROJECT_ID / STYTCH_SECRET");
            Self::Misconfigured {
                error_type,
                request_id,
            }
        } else if err.is_verdict_unknown() {
            tracing::warn!(error = %err, "stytch unavailable");
            Self::Unavailable {
                retry_after: err.retry_after(),
                error_type,
                request_id,
            }
        } else {
            tracing::error!(error = %err, "unexpected answer from stytch authenticate");
            Self::Misconfigured {
                error_type,
                request_id,
            }
        }
    }
}

/// What authenticating a credential needs: the cache, the denylist, the JWT verifier and the
/// Stytch client. Shared by every clone of a layer.
pub(crate) struct Authenticator {
    client: StytchClient,
    store: Arc<SessionStore>,
    /// Longest a remotely authenticated session is trusted without asking Stytch again.
    max_ttl: Duration,
    /// Coalesces the questions to Stytch about sessions near a member-wide revocation: one
    /// per credential and revocation at a time (see [`Authenticator::recheck_cache`]).
    rechecks: moka::future::Cache<(CacheKey, RevocationId), ()>,
    /// `stytch_auth_cache_total{result="hit"}`.
    hits: metrics::LazyCounter,
    #[cfg(feature = "jwt")]
    verifier: Option<crate::jwt::JwtVerifier>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("max_ttl", &self.max_ttl)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator over `store`, asking `client`'s Stytch project; `max_ttl`: longest a
    /// remotely authenticated session is trusted without asking Stytch again.
    pub(crate) fn new(
        client: StytchClient,
        store: Arc<SessionStore>,
        max_ttl: Duration,
        #[cfg(feature = "jwt")] verifier: Option<crate::jwt::JwtVerifier>,
    ) -> Self {
        Self {
            client,
            store,
            max_ttl,
            rechecks: Self::recheck_cache(),
            hits: metrics::cache_hit(),
            #[cfg(feature = "jwt")]
            verifier,
        }
    }

    /// The Stytch client.
    pub(crate) fn client(&self) -> &StytchClient {
        &self.client
    }

    /// The local JWT verifier, when local verification is on.
    #[cfg(feature = "jwt")]
    pub(crate) fn verifier(&self) -> Option<&crate::jwt::JwtVerifier> {
        self.verifier.as_ref()
    }

    /// The cached session of `credential` when serving it needs nothing more than the cache
    /// and the denylist: not revoked here, no revalidation due, not expired, no question to
    /// Stytch. Synchronous, so that a cache hit builds no boxed future (the request path's
    /// largest cost on a hit); `None` sends the request down [`authenticate`](Self::authenticate),
    /// which decides every other case. `key` is `credential`'s
    /// [`cache_key`](Credential::cache_key), computed once by the caller for both; `path` is
    /// only logged.
    pub(crate) fn cached(
        &self,
        key: &CacheKey,
        credential: &Credential,
        path: &str,
    ) -> Option<Arc<CachedSession>> {
        debug_assert_eq!(*key, credential.cache_key());
        // moka's read completes at once unless its housekeeping must wait for a lock: then the
        // request takes the asynchronous path.
        let mut get = std::pin::pin!(self.store.cache.get(key));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let std::task::Poll::Ready(Some(entry)) = get.as_mut().poll(&mut cx) else {
            return None;
        };
        if entry.session.expires_at() <= SystemTime::now()
            || !self
                .store
                .denylist
                .serves(key, &entry.session, entry.stytch_checked_at())
        {
            return None;
        }
        self.hits.increment();
        // The fields of the `stytch_auth` span a lookup that awaits runs in: a hit makes no
        // span (creating one costs more than the rest of the hit).
        tracing::debug!(
            path,
            credential = credential.kind(),
            outcome = "authenticated",
            request_id = %entry.logged_request_id(),
            member_id = %entry.session.member_id,
            "authenticated"
        );
        Some(entry)
    }

    /// Authenticates `credential`: refused if revoked here; served from the cache when
    /// possible; otherwise verified once for all concurrent requests carrying it.
    pub(crate) async fn authenticate(
        self: &Arc<Self>,
        credential: &Credential,
    ) -> Result<Arc<CachedSession>, Arc<AuthError>> {
        self.authenticate_keyed(credential.cache_key(), credential)
            .await
    }

    /// [`authenticate`](Self::authenticate) with `credential`'s
    /// [`cache_key`](Credential::cache_key) already computed (a request that [`cached`](Self::cached)
    /// declined: the SHA-256 of a 1 KB JWT is about a microsecond).
    pub(crate) async fn authenticate_keyed(
        self: &Arc<Self>,
        key: CacheKey,
        credential: &Credential,
    ) -> Result<Arc<CachedSession>, Arc<AuthError>> {
        debug_assert_eq!(key, credential.cache_key());
        if self.store.denylist.is_key_denied(&key) {
            return Err(Arc::new(AuthError::invalid()));
        }
        let mut entry = match self.store.cache.get(&key).await {
            Some(entry) => {
                self.hits.increment();
                entry
            }
            None if self.store.cache.is_negative(&key).await => {
                metrics::cache_lookup("negative_hit");
                return Err(Arc::new(AuthError::invalid()));
            }
            None => {
                metrics::cache_lookup("miss");
                let verify = Arc::clone(self).verify(key, credential.clone());
                let result = self.store.cache.get_or_try_insert(key, verify).await;
                if let Err(err) = &result
                    && matches!(**err, AuthError::Invalid { remember: true, .. })
                {
                    self.store.cache.insert_negative(key).await;
                }
                result?
            }
        };
        if self
            .store
            .denylist
            .needs_revalidation(&entry.session, entry.stytch_checked_at())
        {
            tracing::debug!("the member's roles changed at stytch: re-validating the session");
            entry = self.revalidate(key, credential).await?;
        }
        if entry.session.expires_at() <= SystemTime::now() {
            tracing::debug!("session expired");
            return Err(Arc::new(AuthError::invalid()));
        }
        match self
            .store
            .denylist
            .check(&entry.session, entry.stytch_checked_at())
        {
            Check::Allow => {}
            Check::Deny => {
                tracing::debug!("session revoked here");
                return Err(Arc::new(AuthError::invalid()));
            }
            Check::Ask(revocations) => {
                self.ask_stytch(key, credential, &entry, revocations)
                    .await?;
            }
        }
        tracing::debug!(
            request_id = %entry.logged_request_id(),
            member_id = %entry.session.member_id,
            "authenticated"
        );
        Ok(entry)
    }

    /// The member's roles changed at Stytch since this entry was vouched for: Stytch's
    /// authenticate replaces it (once for concurrent requests with this credential), so the
    /// app sees the fresh roles; a dead session is refused and remembered as such.
    async fn revalidate(
        self: &Arc<Self>,
        key: CacheKey,
        credential: &Credential,
    ) -> Result<Arc<CachedSession>, Arc<AuthError>> {
        self.store.cache.evict_key(&key).await;
        let this = Arc::clone(self);
        let credential = credential.clone();
        let result = self
            .store
            .cache
            .get_or_try_insert(key, async move { this.remote(key, credential).await })
            .await;
        if let Err(err) = &result
            && matches!(**err, AuthError::Invalid { remember: true, .. })
        {
            self.store.cache.insert_negative(key).await;
        }
        result
    }

    /// The session of `key` (`entry`) lacked a step-up a route asked for: if Stytch vouched
    /// for it more than [`RECHECK_AFTER`] ago, its entry goes, so that the next request asks
    /// Stytch and sees a step-up done since (an opaque token keeps its key when the member
    /// steps up; a JWT is minted anew, with a key of its own).
    pub(crate) fn recheck_soon(&self, key: CacheKey, entry: &CachedSession) {
        let stale = entry
            .stytch_checked_at()
            .is_some_and(|at| at.elapsed().unwrap_or_default() > RECHECK_AFTER);
        if stale && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = Arc::clone(&self.store);
            runtime.spawn(async move { store.cache.evict_key(&key).await });
        }
    }

    /// The M2M client of `credential`, for a route that admits machines: `Ok(None)` when the
    /// credential is not an M2M access token (an opaque token, a session JWT), so the member
    /// path decides; refused when it is one that does not verify locally, or whose client was
    /// cut off here. Verified locally only (Stytch verifies M2M tokens nowhere else): without
    /// local JWT verification no machine is admitted. Cached until the token's `exp`.
    pub(crate) async fn authenticate_machine(
        &self,
        key: CacheKey,
        credential: &Credential,
    ) -> Result<Option<MachineClient>, Arc<AuthError>> {
        let machines = &self.store.machines;
        if let Some(machine) = machines.cached(&key).await {
            self.hits.increment();
            return Ok(Some(machine));
        }
        #[cfg(feature = "jwt")]
        if let (Credential::Jwt(jwt), Some(verifier)) = (credential, &self.verifier) {
            use crate::jwt::{JwtError, JwtVerifier};
            if JwtVerifier::looks_like_session(jwt.expose_secret()) {
                return Ok(None);
            }
            if self.store.cache.is_negative(&key).await {
                return Err(Arc::new(AuthError::invalid()));
            }
            let now = SystemTime::now();
            return match verifier.verify_access_token(jwt.expose_secret(), now).await {
                Ok(token) => {
                    let machine = MachineClient::new(MachineClientData {
                        client_id: token.client_id,
                        scopes: token.scopes,
                        custom_claims: token.custom_claims,
                        issued_at: token.issued_at,
                        expires_at: token.expires_at,
                    });
                    if !machines.serves(&machine) {
                        tracing::debug!("M2M client cut off here");
                        return Err(Arc::new(AuthError::invalid()));
                    }
                    machines.insert(key, machine.clone()).await;
                    tracing::debug!(client_id = %machine.client_id, "M2M access token verified");
                    Ok(Some(machine))
                }
                Err(err @ JwtError::Jwks(_)) => {
                    tracing::warn!(error = %err, "JWKS unavailable: M2M token not verified");
                    Err(Arc::new(AuthError::Unavailable {
                        retry_after: None,
                        error_type: None,
                        request_id: None,
                    }))
                }
                Err(err) => {
                    tracing::debug!(reason = err.kind(), "M2M access token rejected");
                    if !matches!(err, JwtError::NotYetValid | JwtError::KeyNotLoaded) {
                        self.store.cache.insert_negative(key).await;
                    }
                    Err(Arc::new(AuthError::invalid()))
                }
            };
        }
        let _ = credential;
        Ok(None)
    }

    /// The cache behind [`rechecks`](Self::rechecks): an answer is kept a few seconds, keyed
    /// by the revocation too, so a later revocation always asks again.
    fn recheck_cache() -> moka::future::Cache<(CacheKey, RevocationId), ()> {
        moka::future::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(Duration::from_secs(5))
            .build()
    }

    /// The session started within the clock skew of member-wide `revocations` Stytch
    /// confirmed: Stytch's authenticate (not the cache entry) says whether it survived them,
    /// once for all concurrent requests with this credential. Alive: it is not asked about
    /// again for these revocations. Dead: refused, evicted and negatively cached. Stytch
    /// unreachable: 503, never a guess.
    async fn ask_stytch(
        &self,
        key: CacheKey,
        credential: &Credential,
        entry: &CachedSession,
        revocations: Vec<RevocationId>,
    ) -> Result<(), Arc<AuthError>> {
        let latest = revocations.iter().copied().max().unwrap_or(RevocationId(0));
        let client = &self.client;
        let answer = self
            .rechecks
            .try_get_with((key, latest), async {
                let request = AuthenticateRequest::new(credential.clone());
                match client.authenticate(&request).await {
                    Ok(_) => Ok(()),
                    Err(err) => Err(AuthError::from_stytch(&err)),
                }
            })
            .await;
        let session = &entry.session;
        match answer {
            Ok(()) => {
                tracing::debug!("stytch says the session survived the member's revocation");
                self.store.denylist.clear(
                    &revocations,
                    &session.member_id.as_str(),
                    &session.member_session_id.as_str(),
                );
                Ok(())
            }
            Err(err) => {
                if matches!(*err, AuthError::Invalid { .. }) {
                    tracing::debug!("stytch says the session ended with the member's revocation");
                    self.store.forget_dead(key).await;
                }
                Err(err)
            }
        }
    }

    /// Verifies a credential that is not cached: a fresh JWT locally, anything else remotely.
    async fn verify(
        self: Arc<Self>,
        key: CacheKey,
        credential: Credential,
    ) -> Result<Arc<CachedSession>, AuthError> {
        #[cfg(feature = "jwt")]
        if let (Credential::Jwt(jwt), Some(verifier)) = (&credential, &self.verifier) {
            use crate::jwt::JwtError;
            match verifier.verify(jwt).await {
                Ok(verified) => {
                    let now = SystemTime::now();
                    let max_age_end = verified.issued_at + verifier.config().max_token_age();
                    let until = verified
                        .expires_at
                        .min(max_age_end)
                        .min(verified.session.expires_at());
                    let ttl = until.duration_since(now).unwrap_or_default();
                    return Ok(Arc::new(CachedSession::new(
                        key,
                        verified.session,
                        ttl,
                        None,
                        None,
                        None,
                    )));
                }
                Err(JwtError::NotYetValid) => {
                    // This host's clock may be behind Stytch's by more than the skew: Stytch
                    // decides, and its refusal is not remembered either.
                    tracing::debug!("session JWT not yet valid here: authenticating remotely");
                    return self
                        .remote(key, credential)
                        .await
                        .map_err(AuthError::forgotten);
                }
                Err(err) if err.is_unavailable() => {
                    tracing::warn!(error = %err, "JWKS unavailable: authenticating remotely");
                }
                Err(err) if err.needs_remote() => {
                    tracing::debug!(reason = %err, "session JWT needs Stytch: authenticating remotely");
                }
                Err(err) => {
                    tracing::debug!(reason = %err, "session JWT rejected locally");
                    return Err(AuthError::invalid());
                }
            }
        }
        self.remote(key, credential).await
    }

    /// `POST /v1/b2b/sessions/authenticate`.
    async fn remote(
        &self,
        key: CacheKey,
        credential: Credential,
    ) -> Result<Arc<CachedSession>, AuthError> {
        let is_jwt = credential.is_jwt();
        let asked_at = SystemTime::now();
        let response = self
            .client
            .authenticate(&AuthenticateRequest::new(credential))
            .await
            .map_err(|err| AuthError::from_stytch(&err))?;
        let now = SystemTime::now();
        let ttl = response
            .member_session
            .expires_at()
            .duration_since(now)
            .unwrap_or_default()
            .min(self.max_ttl);
        tracing::debug!(request_id = %response.request_id, "session authenticated by stytch");
        Ok(Arc::new(CachedSession::new(
            key,
            response.member_session,
            ttl,
            if is_jwt {
                response.session_jwt.map(Box::new)
            } else {
                None
            },
            Some(StytchId::from(response.request_id)),
            Some(asked_at),
        )))
    }
}
