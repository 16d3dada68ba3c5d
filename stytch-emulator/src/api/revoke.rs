//! `POST /v1/b2b/sessions/revoke`, with the RBAC of an acting member
//! (`X-Stytch-Member-Session` / `X-Stytch-Member-SessionJWT`).

use http::HeaderMap;
use serde_json::{Map, Value};

use super::{SessionRef, authz_error, find_live, session_id_of_jwt};
use crate::config::{MEMBER_SESSION_HEADER, MEMBER_SESSION_JWT_HEADER};
use crate::shared::Shared;
use crate::state::{Authz, Member, State};
use crate::wire::ApiError;

const REVOKE_SELECTORS: [&str; 4] = [
    "member_session_id",
    "session_token",
    "session_jwt",
    "member_id",
];

/// What a revoke targets.
enum RevokeTarget {
    Session(SessionRef),
    Member(String),
}

/// The one selector of a revoke body (`null` counts as absent).
fn revoke_selector(body: &Map<String, Value>) -> Result<(&'static str, &str), ApiError> {
    let mut selected = Vec::with_capacity(1);
    for field in REVOKE_SELECTORS {
        match body.get(field) {
            None => {}
            Some(Value::String(s)) => selected.push((field, s.as_str())),
            // Stytch's official Rust SDK sends absent selectors as `null`; it must keep
            // working unchanged, so `null` counts as absent (as on authenticate).
            Some(Value::Null) => {}
            Some(_) => {
                return Err(ApiError::new(
                    400,
                    "invalid_request",
                    format!("{field} must be a string."),
                ));
            }
        }
    }
    match selected.as_slice() {
        [] => Err(ApiError::new(
            400,
            "no_session_revoke_arguments",
            "One of member_session_id, session_token, session_jwt or member_id must be provided.",
        )),
        [one] => Ok(*one),
        _ => Err(ApiError::new(
            400,
            "too_many_session_revoke_arguments",
            "Only one of member_session_id, session_token, session_jwt or member_id may be provided.",
        )),
    }
}

/// The acting member's session, from `X-Stytch-Member-Session` or
/// `X-Stytch-Member-SessionJWT` (not both).
fn acting_session(shared: &Shared, headers: &HeaderMap) -> Result<Option<SessionRef>, ApiError> {
    let header_str = |name: &str| -> Result<Option<&str>, ApiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| ApiError::bad_request(format!("{name} is not valid.")))
            })
            .transpose()
    };
    match (
        header_str(MEMBER_SESSION_HEADER)?,
        header_str(MEMBER_SESSION_JWT_HEADER)?,
    ) {
        (Some(_), Some(_)) => Err(ApiError::new(
            400,
            "too_many_session_arguments",
            "Only one of X-Stytch-Member-Session or X-Stytch-Member-SessionJWT may be provided.",
        )),
        (Some(t), None) => Ok(Some(SessionRef::Token(t.to_owned()))),
        (None, Some(j)) => Ok(Some(SessionRef::Id(session_id_of_jwt(shared, j)?))),
        (None, None) => Ok(None),
    }
}

/// `POST /v1/b2b/sessions/revoke`.
pub(crate) fn revoke(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let (field, value) = revoke_selector(body)?;
    let acting = acting_session(shared, headers)?;
    let target = match field {
        "member_session_id" => RevokeTarget::Session(SessionRef::Id(value.to_owned())),
        "session_token" => RevokeTarget::Session(SessionRef::Token(value.to_owned())),
        "session_jwt" => RevokeTarget::Session(SessionRef::Id(session_id_of_jwt(shared, value)?)),
        _ => RevokeTarget::Member(value.to_owned()),
    };

    let now = shared.now();
    let mut st = shared.lock();
    let actor = match &acting {
        Some(acting) => {
            let session = find_live(&st, acting, now)?;
            Some(
                st.members
                    .get(&session.member_id)
                    .cloned()
                    .ok_or_else(ApiError::session_not_found)?,
            )
        }
        None => None,
    };
    let (target_member, session_id) = match &target {
        RevokeTarget::Session(r) => {
            let s = find_live(&st, r, now)?;
            (s.member_id.clone(), Some(s.id.clone()))
        }
        RevokeTarget::Member(id) => {
            if !st.members.contains_key(id) {
                return Err(ApiError::member_not_found());
            }
            (id.clone(), None)
        }
    };
    if let Some(actor) = &actor {
        may_revoke(&st, actor, &target_member)?;
    }
    match session_id {
        Some(id) => {
            st.revoke_session(&id);
        }
        None => {
            st.revoke_member(&target_member);
        }
    }
    Ok(Map::new())
}

/// Stytch's RBAC for a revoke acting as `actor`: `revoke-sessions` on `stytch.self` for
/// their own sessions, on `stytch.member` for another member's, in the same organization.
fn may_revoke(st: &State, actor: &Member, target_member: &str) -> Result<(), ApiError> {
    let target_org = st
        .members
        .get(target_member)
        .map(|m| m.organization_id.clone())
        .unwrap_or_default();
    let resource = if actor.id == target_member {
        "stytch.self"
    } else {
        "stytch.member"
    };
    match st.authorize(actor, &target_org, resource, "revoke-sessions") {
        denied @ (Authz::Tenancy | Authz::Denied) => {
            Err(authz_error(denied, &actor.organization_id, &target_org))
        }
        _ => Ok(()),
    }
}
