//! `GET /v1/b2b/rbac/policy` and `GET /v1/b2b/rbac/organizations/{organization_id}`: what
//! the SDKs fetch (and cache) to authorize locally.
//!
//! Shapes as the SDKs parse them: `{policy: {roles, resources, scopes}}` (python
//! `stytch/b2b/models/rbac.py` `PolicyResponse`, node `lib/b2b/rbac.ts`) and
//! `{org_policy: {roles}}` (python `stytch/b2b/models/rbac_organizations.py`
//! `GetOrgPolicyResponse`, node `lib/b2b/rbac_organizations.ts`).

use serde_json::{Map, Value, json};

use crate::parse::{list, role};
use crate::policy::RbacRole;
use crate::shared::Shared;
use crate::types::EmulatorError;
use crate::wire::{ApiError, one};

/// `GET /v1/b2b/rbac/policy`.
pub(crate) fn policy(shared: &Shared) -> Map<String, Value> {
    one("policy", shared.rbac_policy().json())
}

fn not_found(error: EmulatorError) -> ApiError {
    match error {
        EmulatorError::UnknownOrganization => ApiError::organization_not_found(),
        other => ApiError::bad_request(format!("{other}.")),
    }
}

/// `GET /v1/b2b/rbac/organizations/{organization_id}` (the id, or the slug as Stytch also
/// accepts).
pub(crate) fn organization(shared: &Shared, id: &str) -> Result<Map<String, Value>, ApiError> {
    let (_, roles) = shared.organization_roles(id).map_err(not_found)?;
    let roles: Vec<Value> = roles.iter().map(RbacRole::json).collect();
    Ok(one("org_policy", json!({ "roles": roles })))
}

/// `PUT /v1/b2b/rbac/organizations/{organization_id}` with `{org_policy: {roles}}`: replaces
/// the organization's custom roles (Stytch's Set Org Policy, the official Rust SDK's
/// `rbac.organizations.set_org_policy`, `src/b2b/rbac_organizations.rs`).
pub(crate) fn set_organization(
    shared: &Shared,
    id: &str,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let roles = body
        .get("org_policy")
        .and_then(Value::as_object)
        .map(|policy| list(policy, "roles", role))
        .transpose()?
        .flatten()
        .ok_or_else(|| {
            ApiError::bad_request("org_policy.roles is required and must be an array.")
        })?;
    let (id, _) = shared.organization_roles(id).map_err(not_found)?;
    shared
        .set_organization_roles(&id, roles)
        .map_err(not_found)?;
    organization(shared, &id)
}
