//! `MemberSession`, `Option<MemberSession>` and `SessionLiveness` as axum extractors (feature
//! `axum`).

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::live::SessionLiveness;
use crate::session::MemberSession;

/// Rejection of the [`MemberSession`] extractor: the request carries no member session,
/// which means [`StytchAuthLayer`](crate::StytchAuthLayer) is missing in front of this
/// handler, or the route is public / optional in its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no MemberSession in the request extensions: is `StytchAuthLayer` applied to this route, and is the route protected?"
)]
pub struct MissingMemberSession;

impl IntoResponse for MissingMemberSession {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MemberSession {
    type Rejection = MissingMemberSession;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<MemberSession>()
            .cloned()
            .ok_or(MissingMemberSession)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for MemberSession {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<MemberSession>().cloned())
    }
}

/// Rejection of the [`SessionLiveness`] extractor: the request is not authenticated (see
/// [`MissingMemberSession`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no authenticated session in the request extensions: is `StytchAuthLayer` applied to this route, and is the route protected?"
)]
pub struct MissingSessionLiveness;

impl IntoResponse for MissingSessionLiveness {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SessionLiveness {
    type Rejection = MissingSessionLiveness;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        SessionLiveness::from_extensions(&parts.extensions).ok_or(MissingSessionLiveness)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for crate::authz::Authorizer {
    type Rejection = MissingMemberSession;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        crate::authz::Authorizer::from_extensions(&parts.extensions)
            .cloned()
            .ok_or(MissingMemberSession)
    }
}

/// Rejection of the [`Authorized`](crate::authz::Authorized) guard: 403 (the member's roles
/// do not grant the permission), 503 (the policy was never loaded), or 500 (no
/// authenticated session: the layer is missing in front of this handler).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthorizationRejection(AuthorizationFailure);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum AuthorizationFailure {
    #[error(transparent)]
    Denied(#[from] crate::authz::Denied),
    #[error(transparent)]
    Missing(#[from] MissingMemberSession),
}

impl IntoResponse for AuthorizationRejection {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            AuthorizationFailure::Denied(crate::authz::Denied::Unavailable) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AuthorizationFailure::Denied(_) => StatusCode::FORBIDDEN,
            AuthorizationFailure::Missing(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, self.to_string()).into_response()
    }
}

impl<S, P> FromRequestParts<S> for crate::authz::Authorized<P>
where
    S: Send + Sync,
    P: crate::authz::Permission,
{
    type Rejection = AuthorizationRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let fail = |f: AuthorizationFailure| AuthorizationRejection(f);
        let session = <MemberSession as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map_err(|m| fail(m.into()))?;
        let authorizer =
            <crate::authz::Authorizer as FromRequestParts<S>>::from_request_parts(parts, state)
                .await
                .map_err(|m| fail(m.into()))?;
        authorizer
            .check(&session, P::RESOURCE, P::ACTION)
            .await
            .map_err(|d| fail(d.into()))?;
        Ok(Self::new(session))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for crate::Revoker {
    type Rejection = MissingMemberSession;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        crate::Revoker::from_extensions(&parts.extensions)
            .cloned()
            .ok_or(MissingMemberSession)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for crate::SessionCredential {
    type Rejection = MissingMemberSession;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        crate::SessionCredential::from_extensions(&parts.extensions)
            .cloned()
            .ok_or(MissingMemberSession)
    }
}

/// Rejection of the [`MachineClient`](crate::MachineClient) extractor: the request was not
/// admitted as an M2M client (the layer is missing, or the route's rule admits members only,
/// or a member's session came).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no MachineClient in the request extensions: does the route's rule admit machines, and did an M2M access token come?"
)]
pub struct MissingMachineClient;

impl IntoResponse for MissingMachineClient {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for crate::MachineClient {
    type Rejection = MissingMachineClient;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<crate::MachineClient>()
            .cloned()
            .ok_or(MissingMachineClient)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for crate::MachineClient {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<crate::MachineClient>().cloned())
    }
}
