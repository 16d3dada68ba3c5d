//! The emulated Stytch endpoints, one module per job: [`sessions`] (authenticate, Get
//! Sessions), [`revoke`], [`rbac`] (policies), [`m2m`] (clients, tokens), and here the JWKS and what they share (finding a session from a
//! token or JWT, RBAC errors).
//!
//! Handlers use [`wire`](crate::wire), [`render`](crate::render),
//! [`shared`](crate::shared) and [`state`](crate::state); never the dispatcher.

pub(crate) mod m2m;
pub(crate) mod rbac;
pub(crate) mod revoke;
pub(crate) mod sessions;

use serde_json::{Map, Value};

use crate::keys::JwtError;
use crate::render::SESSION_CLAIM;
use crate::shared::Shared;
use crate::state::{Authz, Session, State};
use crate::wire::ApiError;

/// How a request names a session.
pub(crate) enum SessionRef {
    Token(String),
    Id(String),
}

/// Verifies a JWT (signature only; an expired `exp` is fine) and returns its session id.
pub(crate) fn session_id_of_jwt(shared: &Shared, jwt: &str) -> Result<String, ApiError> {
    let claims = shared.keys.verify(jwt).map_err(|e| match e {
        JwtError::Malformed => ApiError::new(
            400,
            "unable_to_parse_session_jwt",
            "Unable to parse the session JWT.",
        ),
        JwtError::Unverifiable => ApiError::session_not_found(),
    })?;
    claims
        .get(SESSION_CLAIM)
        .and_then(|s| s.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(ApiError::session_not_found)
}

pub(crate) fn find_live<'s>(
    state: &'s State,
    target: &SessionRef,
    now: i64,
) -> Result<&'s Session, ApiError> {
    match target {
        SessionRef::Token(t) => state.live_session_by_token(t, now),
        SessionRef::Id(id) => state.live_session(id, now),
    }
    .ok_or_else(ApiError::session_not_found)
}

/// An optional string field where `null` counts as absent.
pub(crate) fn lenient_str<'a>(
    body: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_request(format!("{field} must be a string."))),
    }
}

pub(crate) fn authz_error(authz: Authz, member_org: &str, asked_org: &str) -> ApiError {
    match authz {
        Authz::Tenancy => ApiError::new(
            403,
            "session_authorization_tenancy_error",
            format!(
                "Subject organization_id {member_org} does not match authZ request organization_id {asked_org}"
            ),
        ),
        _ => ApiError::new(
            403,
            "session_authorization_error",
            "The Member is not authorized to perform the requested action on that resource.",
        ),
    }
}

/// `GET /v1/b2b/sessions/jwks/{project_id}`.
pub(crate) fn jwks(shared: &Shared, project_id: &str) -> Result<Map<String, Value>, ApiError> {
    if project_id != shared.project_id {
        return Err(ApiError::new(
            400,
            "invalid_project_id",
            "The project_id in the path is not this project's.",
        ));
    }
    let mut out = Map::new();
    out.insert("keys".into(), Value::Array(shared.keys.jwks()));
    Ok(out)
}
