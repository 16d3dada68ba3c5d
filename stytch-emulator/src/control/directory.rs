//! Control operations on the directory: organizations, custom roles, members, sessions.

use serde_json::{Map, Value};

use super::{Out, api_error, optional_str, source, str_field, string_list};
use crate::config::DEFAULT_SESSION_DURATION;
use crate::lifecycle::MemberUpdate;
use crate::parse;
use crate::render::member_json;
use crate::shared::Shared;
use crate::wire::{ApiError, one};

pub(super) fn create_organization(shared: &Shared, body: &Map<String, Value>) -> Out {
    let name = str_field(body, "organization_name")?;
    let slug = str_field(body, "organization_slug")?;
    let id = shared.create_organization(name, slug, source(body)?);
    Ok(one("organization_id", id.into()))
}

pub(super) fn create_role(shared: &Shared, body: &Map<String, Value>) -> Out {
    let org = str_field(body, "organization_id")?;
    let role = parse::role(&Value::Object(body.clone()))?;
    if !shared.create_role(org, role) {
        return Err(ApiError::organization_not_found());
    }
    Ok(Map::new())
}

pub(super) fn create_member(shared: &Shared, body: &Map<String, Value>) -> Out {
    let org = str_field(body, "organization_id")?;
    let email = str_field(body, "email_address")?;
    let roles = string_list(body.get("roles"), "roles")?;
    let name = optional_str(body, "name")?;
    let id = shared
        .create_member(org, email, roles, name, source(body)?)
        .map_err(api_error)?;
    Ok(one("member_id", id.into()))
}

pub(super) fn update_member(shared: &Shared, id: &str, body: &Map<String, Value>) -> Out {
    let mut update = MemberUpdate::new();
    if body.get("roles").is_some_and(|r| !r.is_null()) {
        update.roles = Some(string_list(body.get("roles"), "roles")?);
    }
    update.status = optional_str(body, "status")?;
    update.name = optional_str(body, "name")?;
    let member = shared
        .update_member(id, update, source(body)?)
        .map_err(api_error)?;
    Ok(one("member", member_json(&member)))
}

pub(super) fn create_session(shared: &Shared, body: &Map<String, Value>) -> Out {
    let member = str_field(body, "member_id")?;
    let secs = match body.get("session_duration_minutes") {
        None | Some(Value::Null) => {
            i64::try_from(DEFAULT_SESSION_DURATION.as_secs()).unwrap_or(3600)
        }
        Some(v) => v
            .as_i64()
            .filter(|m| *m > 0)
            .ok_or_else(|| {
                ApiError::bad_request("session_duration_minutes must be a positive integer.")
            })?
            .saturating_mul(60),
    };
    let claims = match body.get("custom_claims") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(ApiError::bad_request("custom_claims must be an object.")),
    };
    let info = shared
        .create_session(member, secs, claims, parse::factors(body)?)
        .ok_or_else(ApiError::member_not_found)?;
    let mut out = Map::new();
    out.insert("member_id".into(), info.member_id.into());
    out.insert("organization_id".into(), info.organization_id.into());
    out.insert("member_session_id".into(), info.member_session_id.into());
    out.insert(
        "session_token".into(),
        info.session_token.expose_secret().into(),
    );
    out.insert(
        "session_jwt".into(),
        info.session_jwt.expose_secret().into(),
    );
    Ok(out)
}
