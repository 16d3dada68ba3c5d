//! `POST /v1/b2b/sessions/authenticate` and `GET /v1/b2b/sessions` (Get Sessions).

use serde_json::{Map, Value, json};

use super::{SessionRef, authz_error, find_live, lenient_str, session_id_of_jwt};
use crate::render::{member_json, member_session_json, organization_json, without_reserved_claims};
use crate::shared::Shared;
use crate::state::{Authz, Session};
use crate::wire::ApiError;

/// Bounds of `session_duration_minutes`.
pub(crate) const SESSION_MINUTES: std::ops::RangeInclusive<i64> = 5..=527_040;

fn authorization_check(value: &Value) -> Result<(String, String, String), ApiError> {
    let get = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "authorization_check.{k} is required and must be a string."
                ))
            })
    };
    Ok((get("organization_id")?, get("resource_id")?, get("action")?))
}

/// The arguments of an authenticate call, checked in Stytch's order.
struct AuthenticateArgs {
    target: SessionRef,
    minutes: Option<i64>,
    check: Option<(String, String, String)>,
    new_claims: Option<Map<String, Value>>,
}

fn authenticate_args(
    shared: &Shared,
    body: &Map<String, Value>,
) -> Result<AuthenticateArgs, ApiError> {
    let token = lenient_str(body, "session_token")?;
    let jwt = lenient_str(body, "session_jwt")?;
    let minutes = match body.get("session_duration_minutes") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64().filter(|m| SESSION_MINUTES.contains(m)) {
            Some(m) => Some(m),
            None => {
                return Err(ApiError::new(
                    400,
                    "invalid_session_duration_minutes",
                    "session_duration_minutes must be between 5 and 527040.",
                ));
            }
        },
    };
    let check = match body.get("authorization_check") {
        None | Some(Value::Null) => None,
        Some(v) => Some(authorization_check(v)?),
    };
    let new_claims = match body.get("session_custom_claims") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(without_reserved_claims(m.clone())),
        Some(_) => {
            return Err(ApiError::bad_request(
                "session_custom_claims must be an object.",
            ));
        }
    };
    let target = match (token, jwt) {
        (None, None) => {
            return Err(ApiError::new(
                400,
                "no_session_arguments",
                "Either session_token or session_jwt must be provided.",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                400,
                "too_many_session_arguments",
                "Only one of session_token or session_jwt may be provided.",
            ));
        }
        (Some(t), None) => SessionRef::Token(t.to_owned()),
        (None, Some(j)) => SessionRef::Id(session_id_of_jwt(shared, j)?),
    };
    Ok(AuthenticateArgs {
        target,
        minutes,
        check,
        new_claims,
    })
}

/// `POST /v1/b2b/sessions/authenticate`.
pub(crate) fn authenticate(
    shared: &Shared,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let AuthenticateArgs {
        target,
        minutes,
        check,
        new_claims,
    } = authenticate_args(shared, body)?;
    let now = shared.now();
    let (view, verdict) = {
        let mut st = shared.lock();
        let id = find_live(&st, &target, now)?.id.clone();
        let view = st.view(&id).ok_or_else(ApiError::session_not_found)?;
        let verdict = match &check {
            None => None,
            Some((org, resource, action)) => {
                match st.authorize(&view.member, org, resource, action) {
                    Authz::Granted(roles) => Some(roles),
                    denied => return Err(authz_error(denied, &view.member.organization_id, org)),
                }
            }
        };
        let session = st
            .sessions
            .get_mut(&id)
            .ok_or_else(ApiError::session_not_found)?;
        session.last_accessed_at = now;
        if let Some(m) = minutes {
            session.expires_at = now + m * 60;
        }
        if let Some(claims) = new_claims {
            session.custom_claims.extend(claims);
        }
        (
            st.view(&id).ok_or_else(ApiError::session_not_found)?,
            verdict,
        )
    };

    let jwt = shared.mint(&view, now);
    let mut out = Map::new();
    out.insert("member_session".into(), member_session_json(&view));
    out.insert("session_token".into(), view.session.token.clone().into());
    out.insert("session_jwt".into(), jwt.into());
    out.insert("member".into(), member_json(&view.member));
    out.insert("organization".into(), organization_json(&view.organization));
    if let Some(roles) = verdict {
        out.insert(
            "verdict".into(),
            json!({"authorized": true, "granting_roles": roles}),
        );
    }
    Ok(out)
}

/// `GET /v1/b2b/sessions?organization_id=…&member_id=…` (Get Sessions): the member's live
/// sessions, oldest first. `organization_id` may also be the organization's slug.
pub(crate) fn get_sessions(shared: &Shared, query: &str) -> Result<Map<String, Value>, ApiError> {
    let (mut organization, mut member) = (None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "organization_id" => organization = Some(value.into_owned()),
            "member_id" => member = Some(value.into_owned()),
            _ => {}
        }
    }
    let required = |value: Option<String>, name: &str| {
        value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("{name} is a required query parameter.")))
    };
    let organization = required(organization, "organization_id")?;
    let member = required(member, "member_id")?;

    let now = shared.now();
    let st = shared.lock();
    let organization_id = st
        .organization_by_id_or_slug(&organization)
        .map(|o| o.id.clone())
        .ok_or_else(ApiError::organization_not_found)?;
    if st
        .members
        .get(&member)
        .is_none_or(|m| m.organization_id != organization_id)
    {
        return Err(ApiError::member_not_found());
    }
    let mut live: Vec<&Session> = st
        .sessions
        .values()
        .filter(|s| s.member_id == member && s.expires_at > now)
        .collect();
    live.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    let sessions: Vec<Value> = live
        .iter()
        .filter_map(|s| st.view(&s.id))
        .map(|view| member_session_json(&view))
        .collect();
    let mut out = Map::new();
    out.insert("member_sessions".into(), Value::Array(sessions));
    Ok(out)
}
