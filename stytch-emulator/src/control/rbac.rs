//! Control operations on RBAC and factors: the project's policy (roles, resources, scopes),
//! organizations' custom roles, and a second factor for a live session.
//!
//! Bodies use Stytch's own field names: a role is `{role_id, description?, permissions:
//! [{resource_id, actions}]}`, a resource `{resource_id, description?, actions}`, a scope
//! `{scope, description?, permissions}`, a factor `{type, delivery_method, phone_number?,
//! last_authenticated_at?}` (RFC 3339 or Unix seconds).

use serde_json::{Map, Value, json};

use super::{Out, api_error};
use crate::parse::{factor, list, resource, role, scope};
use crate::policy::RbacRole;
use crate::render::member_session_json;
use crate::shared::Shared;
use crate::wire::{ApiError, one};

/// `PUT rbac/policy`: each of `roles`, `resources`, `scopes` given replaces that list.
pub(super) fn set_policy(shared: &Shared, body: &Map<String, Value>) -> Out {
    let roles = list(body, "roles", role)?;
    let resources = list(body, "resources", resource)?;
    let scopes = list(body, "scopes", scope)?;
    let policy = shared.replace_policy(roles, resources, scopes);
    Ok(one("policy", policy.json()))
}

/// `POST rbac/roles`, `rbac/resources`, `rbac/scopes`: adds or replaces one item.
pub(super) fn set_policy_item(shared: &Shared, kind: &str, body: &Map<String, Value>) -> Out {
    let value = Value::Object(body.clone());
    match kind {
        "roles" => {
            let role = role(&value)?;
            shared.change_policy(|p| p.set_role(role));
        }
        "resources" => {
            let resource = resource(&value)?;
            shared.change_policy(|p| p.set_resource(resource));
        }
        _ => {
            let scope = scope(&value)?;
            shared.change_policy(|p| p.set_scope(scope));
        }
    }
    Ok(one("policy", shared.rbac_policy().json()))
}

/// `PUT rbac/organizations/{id}`: `{roles}` replaces the organization's custom roles.
pub(super) fn set_organization_roles(shared: &Shared, id: &str, body: &Map<String, Value>) -> Out {
    let roles = list(body, "roles", role)?
        .ok_or_else(|| ApiError::bad_request("roles is required and must be an array."))?;
    shared
        .set_organization_roles(id, roles)
        .map_err(api_error)?;
    let (_, roles) = shared.organization_roles(id).map_err(api_error)?;
    let roles: Vec<Value> = roles.iter().map(RbacRole::json).collect();
    Ok(one("org_policy", json!({ "roles": roles })))
}

/// `POST sessions/{id}/factors`: the MFA step; answers the session and a fresh JWT.
pub(super) fn add_session_factor(shared: &Shared, id: &str, body: &Map<String, Value>) -> Out {
    let factor = factor(&Value::Object(body.clone()))?;
    let view = shared.add_session_factor(id, factor).map_err(api_error)?;
    let mut out = one("member_session", member_session_json(&view));
    out.insert(
        "session_jwt".into(),
        shared.mint(&view, shared.now()).into(),
    );
    Ok(out)
}
