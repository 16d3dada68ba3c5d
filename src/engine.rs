//! The engine under the layer: one [`SessionStore`] with its two sides, the
//! [`Authenticator`] (read: credential → session) and the [`Revoker`] (write: every
//! revocation), built together so that they share the store and agree on how long a
//! revocation must be held. The HTTP layer holds an engine and nothing else of the state.

use std::sync::Arc;
use std::time::Duration;

use crate::authenticator::Authenticator;
use crate::client::StytchClient;
use crate::credential::Credential;
use crate::revoke::{Caller, LogoutResult, RevokeConfig, Revoker};
use crate::store::SessionStore;
use crate::store::cache::CacheConfig;

/// The store, the authenticator and the revoker of one layer (shared by its clones).
#[derive(Debug)]
pub(crate) struct Engine {
    /// Where the state of sessions lives.
    pub(crate) store: Arc<SessionStore>,
    /// Credential → session.
    pub(crate) authenticator: Arc<Authenticator>,
    /// Every revocation.
    pub(crate) revoker: Revoker,
}

impl Engine {
    /// An engine for `client`'s project. The revoker holds a revoked session until every JWT
    /// minted before it has expired, counting the JWT clock skew (a JWT from a Stytch clock
    /// that far ahead expires that much later) and the cache's `max_ttl`.
    pub(crate) fn new(
        client: StytchClient,
        cache: &CacheConfig,
        revoke: RevokeConfig,
        #[cfg(feature = "jwt")] jwt: Option<crate::jwt::JwtConfig>,
    ) -> Self {
        let store = SessionStore::new(cache, revoke.max_m2m_token_lifetime);
        #[cfg(feature = "jwt")]
        let (jwt_clock_skew, verifier) = match jwt {
            Some(config) => (
                config.clock_skew(),
                Some(crate::jwt::JwtVerifier::new(client.clone(), config)),
            ),
            None => (Duration::ZERO, None),
        };
        #[cfg(not(feature = "jwt"))]
        let jwt_clock_skew = Duration::ZERO;
        let revoker = Revoker::new(
            client.clone(),
            Arc::clone(&store),
            revoke,
            jwt_clock_skew,
            cache.max_ttl,
        );
        let authenticator = Arc::new(Authenticator::new(
            client,
            Arc::clone(&store),
            cache.max_ttl,
            #[cfg(feature = "jwt")]
            verifier,
        ));
        Self {
            store,
            authenticator,
            revoker,
        }
    }

    /// Logout (`everywhere`: every session of the member) by the holder of `credential`: who
    /// that is, as far as the authenticator can tell, decides what the revoker revokes.
    pub(crate) async fn logout(&self, credential: &Credential, everywhere: bool) -> LogoutResult {
        let authenticated = self.authenticator.authenticate(credential).await;
        let caller = match &authenticated {
            Ok(entry) => Caller::Session(&entry.session),
            Err(err) if err.is_undecided() => Caller::Undecided,
            Err(err) if err.is_session_not_found() => Caller::Ended,
            Err(_) => Caller::Refused,
        };
        self.revoker.logout(credential, caller, everywhere).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::client::StytchConfig;

    /// An engine whose Stytch is a closed port (nothing here reaches it).
    pub(crate) fn engine() -> Engine {
        let config = StytchConfig::builder("project-test-1", "secret-test-abc")
            .base_url("http://127.0.0.1:9/")
            .build()
            .unwrap();
        Engine::new(
            StytchClient::new(config).unwrap(),
            &CacheConfig::default(),
            RevokeConfig::default(),
            #[cfg(feature = "jwt")]
            None,
        )
    }
}
