//! [`StytchAuthLayer`] and its builder.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::builder::StytchAuthLayerBuilder;
use super::service::StytchAuth;
use super::shared::Shared;
use crate::authz::Authorizer;
use crate::client::StytchClient;
use crate::error::{ConfigError, StytchError};
use crate::revoke::Revoker;

/// A tower [`Layer`] that authenticates requests with Stytch B2B sessions, serves logout and
/// admin revocation routes, and forces members out after the app's own admin actions.
///
/// **Cloning this layer shares one cache, one denylist and one revocation outbox**: every
/// service it builds sees the same sessions and revocations. Build one layer per process (or
/// per Stytch project) and clone it.
///
/// See the [crate docs](crate) for examples.
#[derive(Clone)]
#[must_use]
pub struct StytchAuthLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for StytchAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StytchAuthLayer")
            .field(
                "project_id",
                &self
                    .shared
                    .engine
                    .authenticator
                    .client()
                    .config()
                    .project_id(),
            )
            .field("routes", &self.shared.routes)
            .field("sources", &self.shared.sources)
            .field("store", &self.shared.engine.store)
            .finish_non_exhaustive()
    }
}

impl StytchAuthLayer {
    /// The layer over `shared`.
    fn from_shared(shared: Shared) -> Self {
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Starts a layer for `client`'s Stytch project, with the defaults: credentials from
    /// `Authorization: Bearer`, cookie `stytch_session_jwt`, cookie `stytch_session`; every
    /// route protected; `POST /logout`, `POST /logout/everywhere`,
    /// `POST /admin/members/{member_id}/revoke-sessions`,
    /// `POST /admin/sessions/{member_session_id}/revoke`; local JWT verification on (feature
    /// `jwt`); a 60 s cache.
    pub fn builder(client: StytchClient) -> StytchAuthLayerBuilder {
        StytchAuthLayerBuilder::new(client)
    }

    /// The revoker of this layer (shared with every clone).
    pub fn revoker(&self) -> Revoker {
        self.shared.engine.revoker.clone()
    }

    /// The routes this layer answers itself, before the app (`"POST /logout"`, …): the app
    /// never sees a request to them. Logged at INFO when the layer is built; move them with
    /// [`logout_path`](StytchAuthLayerBuilder::logout_path) and
    /// [`admin_prefix`](StytchAuthLayerBuilder::admin_prefix), or turn them off with
    /// [`without_logout`](StytchAuthLayerBuilder::without_logout) and
    /// [`without_admin_routes`](StytchAuthLayerBuilder::without_admin_routes).
    pub fn served_routes(&self) -> Vec<String> {
        let mut routes = self.shared.routes.own_routes();
        if let Some(webhook) = &self.shared.webhook {
            routes.push(format!("POST {}", webhook.path()));
        }
        routes
    }

    /// The authorizer of this layer: Stytch RBAC checks against its cached policy (shared
    /// with every clone).
    pub fn authorizer(&self) -> Authorizer {
        self.shared.authorizer.clone()
    }

    /// The Stytch client of this layer.
    pub fn client(&self) -> &StytchClient {
        self.shared.engine.authenticator.client()
    }

    /// Readiness: Stytch is reachable (its JWKS endpoint answers) and, with local JWT
    /// verification, its keys are loaded.
    ///
    /// # Errors
    ///
    /// The error of the JWKS call.
    pub async fn ready(&self) -> Result<(), StytchError> {
        let authenticator = &self.shared.engine.authenticator;
        #[cfg(feature = "jwt")]
        if let Some(verifier) = authenticator.verifier() {
            return verifier.refresh_jwks().await;
        }
        authenticator.client().jwks().await.map(|_| ())
    }

    /// The revocation bus, when one was configured
    /// ([`StytchAuthLayerBuilder::revocation_bus`]): its state, for readiness probes.
    #[cfg(feature = "redis")]
    pub fn revocation_bus(&self) -> Option<&crate::bus::BusHandle> {
        self.shared.bus.as_ref()
    }

    /// Approximate number of cached sessions.
    pub fn cached_sessions(&self) -> u64 {
        self.shared.engine.store.cache.entry_count()
    }

    /// Runs the cache's pending maintenance (expiry, eviction bookkeeping) now.
    pub async fn run_pending_tasks(&self) {
        self.shared.engine.store.cache.run_pending_tasks().await;
    }
}

impl StytchAuthLayerBuilder {
    /// Checks every setting and builds the layer.
    ///
    /// # Errors
    ///
    /// The first invalid setting (with a [revocation bus](Self::revocation_bus): also when
    /// called outside a Tokio runtime).
    pub fn build(self) -> Result<StytchAuthLayer, ConfigError> {
        let layer = StytchAuthLayer::from_shared(self.into_shared()?);
        // The app never sees these: an app route at the same place is shadowed (the README
        // says so next to the first example; this line says it when it happens).
        tracing::info!(
            routes = %layer.served_routes().join(", "),
            "tower-stytch answers these routes itself, before the app"
        );
        Ok(layer)
    }
}

impl<S> Layer<S> for StytchAuthLayer {
    type Service = StytchAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StytchAuth::new(inner, Arc::clone(&self.shared))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::StytchConfig;

    fn client() -> StytchClient {
        let config = StytchConfig::builder(
            "project-test-00000000-0000-0000-0000-000000000000",
            "secret-test-abc",
        )
        .build()
        .unwrap();
        StytchClient::new(config).unwrap()
    }

    #[cfg(feature = "jwt")]
    #[test]
    fn the_denylist_window_covers_jwts_from_a_clock_ahead() {
        // If this broke, the JWT of a revoked session minted by a Stytch clock ahead of ours
        // (accepted within the clock skew) would verify again once the denylist entry ended.
        let skew = std::time::Duration::from_secs(45);
        let layer = StytchAuthLayer::builder(client())
            .jwt(crate::jwt::JwtConfig::builder().clock_skew(skew).build())
            .build()
            .unwrap();
        let max_ttl = crate::store::cache::CacheConfig::default().max_ttl;
        assert_eq!(
            layer.shared.engine.revoker.window(),
            crate::revoke::JWT_LIFETIME + skew + max_ttl
        );
        let default = StytchAuthLayer::builder(client()).build().unwrap();
        assert_eq!(
            default.shared.engine.revoker.window(),
            crate::revoke::JWT_LIFETIME + crate::jwt::CLOCK_SKEW + max_ttl
        );
    }

    #[test]
    fn the_routes_the_layer_answers_itself_are_listed_and_follow_the_settings() {
        // If this broke, an app would not learn (from the build log or this list) that its
        // own `/logout` or `/admin/...` is shadowed by the layer.
        let default = StytchAuthLayer::builder(client()).build().unwrap();
        assert_eq!(
            default.served_routes(),
            [
                "POST /logout",
                "POST /logout/everywhere",
                "POST /admin/members/{member_id}/revoke-sessions",
                "POST /admin/sessions/{member_session_id}/revoke",
                "POST /admin/m2m-clients/{client_id}/revoke",
            ]
        );
        let moved = StytchAuthLayer::builder(client())
            .logout_path("/auth/logout")
            .without_admin_routes()
            .build()
            .unwrap();
        assert_eq!(
            moved.served_routes(),
            ["POST /auth/logout", "POST /auth/logout/everywhere"]
        );
        let none = StytchAuthLayer::builder(client())
            .without_logout()
            .without_admin_routes()
            .build()
            .unwrap();
        assert!(none.served_routes().is_empty());
    }
}
