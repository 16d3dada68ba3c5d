//! What the layer puts into an authenticated request's extensions besides the
//! [`MemberSession`]: the layer's [`Revoker`] and [`Authorizer`] and the caller's
//! [`SessionCredential`], in one extension ([`RequestAuth`]), read with
//! [`Revoker::from_extensions`], [`Authorizer::from_extensions`] and
//! [`SessionCredential::from_extensions`] (or, with feature `axum`, as extractors).
//!
//! One extension, not three: `http::Extensions` boxes every value and grows its map past
//! three, so each extension costs a request two allocations and their frees.

use std::sync::Arc;

use http::Extensions;

use crate::authz::Authorizer;
use crate::credential::{Credential, SessionCredential};
use crate::revoke::Revoker;
use crate::session::MemberSession;

/// The handles of one layer, shared by its requests (one `Arc`).
#[derive(Debug)]
pub(crate) struct LayerHandles {
    pub(crate) revoker: Revoker,
    pub(crate) authorizer: Authorizer,
}

/// The extension an authenticated request carries besides its [`MemberSession`].
#[derive(Clone)]
pub(crate) struct RequestAuth {
    handles: Arc<LayerHandles>,
    credential: SessionCredential,
}

impl RequestAuth {
    pub(crate) fn new(handles: &Arc<LayerHandles>, credential: Credential) -> Self {
        Self {
            handles: Arc::clone(handles),
            credential: SessionCredential(credential),
        }
    }
}

impl MemberSession {
    /// The session of the authenticated request whose extensions these are; `None` on a
    /// public route or an anonymous optional one. The same as
    /// `extensions.get::<MemberSession>()`.
    pub fn from_extensions(extensions: &Extensions) -> Option<&Self> {
        extensions.get::<Self>()
    }
}

impl Revoker {
    /// The revoker of the layer that authenticated the request whose extensions these are
    /// (the layer's own, [`StytchAuthLayer::revoker`](crate::StytchAuthLayer::revoker));
    /// `None` on a public route or an anonymous optional one. A `Revoker` inserted into the
    /// extensions by hand (a test, another middleware) is found too.
    pub fn from_extensions(extensions: &Extensions) -> Option<&Self> {
        match extensions.get::<RequestAuth>() {
            Some(auth) => Some(&auth.handles.revoker),
            None => extensions.get::<Self>(),
        }
    }
}

impl Authorizer {
    /// The authorizer of the layer that authenticated the request whose extensions these are
    /// (the layer's own, [`StytchAuthLayer::authorizer`](crate::StytchAuthLayer::authorizer));
    /// `None` on a public route or an anonymous optional one. An `Authorizer` inserted into
    /// the extensions by hand is found too.
    pub fn from_extensions(extensions: &Extensions) -> Option<&Self> {
        match extensions.get::<RequestAuth>() {
            Some(auth) => Some(&auth.handles.authorizer),
            None => extensions.get::<Self>(),
        }
    }
}

impl SessionCredential {
    /// The credential the authenticated request whose extensions these are carried, for
    /// revoking acting as the caller; `None` on a public route or an anonymous optional one.
    /// A `SessionCredential` inserted into the extensions by hand is found too.
    pub fn from_extensions(extensions: &Extensions) -> Option<&Self> {
        match extensions.get::<RequestAuth>() {
            Some(auth) => Some(&auth.credential),
            None => extensions.get::<Self>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_handles_are_found_in_the_one_extension_or_inserted_by_hand() {
        // If this broke, a handler would find no revoker, authorizer or credential in an
        // authenticated request (or not in one an app built by hand for its tests).
        let client = crate::StytchClient::new(
            crate::StytchConfig::builder("project-test-1", "secret")
                .build()
                .unwrap(),
        )
        .unwrap();
        let layer = crate::StytchAuthLayer::builder(client).build().unwrap();
        let handles = Arc::new(LayerHandles {
            revoker: layer.revoker(),
            authorizer: layer.authorizer(),
        });
        let credential = Credential::parse("token-1").unwrap();
        let mut extensions = Extensions::new();
        assert!(Revoker::from_extensions(&extensions).is_none());
        assert!(Authorizer::from_extensions(&extensions).is_none());
        assert!(SessionCredential::from_extensions(&extensions).is_none());
        extensions.insert(RequestAuth::new(&handles, credential.clone()));
        assert!(Revoker::from_extensions(&extensions).is_some());
        assert!(Authorizer::from_extensions(&extensions).is_some());
        assert_eq!(
            SessionCredential::from_extensions(&extensions).map(SessionCredential::credential),
            Some(&credential)
        );
        let mut by_hand = Extensions::new();
        by_hand.insert(layer.revoker());
        by_hand.insert(layer.authorizer());
        by_hand.insert(SessionCredential(credential));
        assert!(Revoker::from_extensions(&by_hand).is_some());
        assert!(Authorizer::from_extensions(&by_hand).is_some());
        assert!(SessionCredential::from_extensions(&by_hand).is_some());
    }
}
