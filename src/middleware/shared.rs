//! [`Shared`]: the state shared by every clone of a layer and of its services.

use std::sync::Arc;

use bytes::Bytes;
use http::Response;

use super::rejection::{Rejection, SharedRejectionHandler};
use super::route_table::RouteTable;
use crate::authz::Authorizer;
use crate::authz::rules::RouteRules;
use crate::cookies::CookieSettings;
use crate::engine::Engine;
use crate::extract::CredentialSource;
use crate::request::LayerHandles;

/// Everything a request needs besides itself, built once by
/// [`StytchAuthLayerBuilder::build`](super::StytchAuthLayerBuilder::build) and shared behind
/// one `Arc`.
pub(crate) struct Shared {
    /// The session store, the authenticator and the revoker.
    pub(crate) engine: Engine,
    /// Stytch RBAC checks against the cached policy.
    pub(crate) authorizer: Authorizer,
    /// The revoker and the authorizer, for the extension of every authenticated request.
    pub(crate) handles: Arc<LayerHandles>,
    /// `stytch_auth_requests_total{outcome="authenticated"}`.
    pub(crate) authenticated: crate::metrics::LazyCounter,
    /// `stytch_auth_principals_total{principal="member"}`.
    pub(crate) admitted_member: crate::metrics::LazyCounter,
    /// `stytch_auth_principals_total{principal="machine"}`.
    pub(crate) admitted_machine: crate::metrics::LazyCounter,
    /// The routes' authorization rules.
    pub(crate) rules: RouteRules,
    /// `(resource, action)` a member needs to cut an M2M client off (the admin route).
    pub(crate) m2m_revoke_permission: (String, String),
    /// What the layer does with each route.
    pub(crate) routes: RouteTable,
    /// Where credentials are looked for, in order.
    pub(crate) sources: Vec<CredentialSource>,
    /// Attributes of the cookies the layer writes and clears.
    pub(crate) cookies: CookieSettings,
    /// Builds the response of a rejection.
    pub(crate) rejection: SharedRejectionHandler,
    /// Where logout may redirect with `?return_to=`.
    pub(crate) redirect_allowlist: Vec<String>,
    /// Origins besides the request's own from which the routes with a side effect accept
    /// requests.
    pub(crate) trusted_origins: Vec<String>,
    /// The Stytch webhook endpoint, when configured.
    pub(crate) webhook: Option<Arc<crate::webhook::Receiver>>,
    /// The revocation bus shared with other instances, when configured.
    #[cfg(feature = "redis")]
    pub(crate) bus: Option<crate::bus::BusHandle>,
}

impl Shared {
    /// The cookie names the layer reads (and clears at logout).
    pub(crate) fn cookie_names(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().filter_map(|s| match s {
            CredentialSource::Cookie(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The response for a rejection, through the configured handler, with the rejection in its
    /// extensions.
    pub(crate) fn reject(&self, rejection: Rejection) -> Response<Bytes> {
        let mut res = self.rejection.response(&rejection);
        res.extensions_mut().insert(rejection);
        res
    }
}
