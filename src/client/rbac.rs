//! Stytch's RBAC policy, as `GET /v1/b2b/rbac/policy` and
//! `GET /v1/b2b/rbac/organizations/{organization_id}` send it (node `lib/b2b/rbac.ts`,
//! `lib/b2b/rbac_organizations.ts`; python `stytch/b2b/models/rbac.py`). Unknown fields are
//! ignored; absent lists are empty.

use serde::{Deserialize, Serialize};

/// A project's RBAC policy: roles (each a list of permissions), the resources they act on,
/// and the scopes machine-to-machine clients and connected apps may hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct RbacPolicy {
    /// The project's roles, the default `stytch_member` and `stytch_admin` among them.
    #[serde(default)]
    pub roles: Vec<RbacRole>,
    /// The resources permissions name.
    #[serde(default)]
    pub resources: Vec<RbacResource>,
    /// The scopes (`action:resource` strings) and the permissions each grants.
    #[serde(default)]
    pub scopes: Vec<RbacScope>,
}

/// A role: its id and the permissions it grants.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct RbacRole {
    /// The role's id, as sessions carry it in `roles`.
    pub role_id: String,
    /// What the role is for.
    #[serde(default)]
    pub description: String,
    /// What the role may do.
    #[serde(default)]
    pub permissions: Vec<RbacPermission>,
}

impl RbacRole {
    /// A role granting `permissions`.
    pub fn new(role_id: impl Into<String>, permissions: Vec<RbacPermission>) -> Self {
        Self {
            role_id: role_id.into(),
            description: String::new(),
            permissions,
        }
    }
}

/// Actions on one resource: `"*"` stands for every action.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct RbacPermission {
    /// The resource, compared exactly (no wildcard, no hierarchy).
    pub resource_id: String,
    /// The actions allowed on it, or `"*"`.
    #[serde(default)]
    pub actions: Vec<String>,
}

impl RbacPermission {
    /// `actions` on `resource_id`.
    pub fn new<I, A>(resource_id: impl Into<String>, actions: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        Self {
            resource_id: resource_id.into(),
            actions: actions.into_iter().map(Into::into).collect(),
        }
    }
}

/// A resource of the policy and its actions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct RbacResource {
    /// The resource's id (`documents`, `stytch.member`).
    pub resource_id: String,
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// Its actions.
    #[serde(default)]
    pub actions: Vec<String>,
}

/// A scope and the permissions it grants.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct RbacScope {
    /// The scope (`read:documents`).
    pub scope: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// What it grants.
    #[serde(default)]
    pub permissions: Vec<RbacPermission>,
}

/// Stytch's answer to `GET /v1/b2b/rbac/policy`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct RbacPolicyResponse {
    /// Stytch's request id.
    #[serde(default)]
    pub request_id: String,
    /// The project's policy.
    #[serde(default)]
    pub policy: RbacPolicy,
}

/// An organization's custom roles (added to the project's for its members).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct OrgPolicy {
    /// The organization's custom roles.
    #[serde(default)]
    pub roles: Vec<RbacRole>,
}

/// Stytch's answer to `GET /v1/b2b/rbac/organizations/{organization_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct OrgPolicyResponse {
    /// Stytch's request id.
    #[serde(default)]
    pub request_id: String,
    /// The organization's custom roles.
    #[serde(default)]
    pub org_policy: OrgPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stytchs_policy_json_parses_with_unknown_fields_and_absent_lists() {
        // If this broke, a policy Stytch sends (with fields this crate does not know, or a
        // project without scopes) would not load, and every authorized route would answer 503.
        let raw = r#"{"request_id":"request-id-test-1","status_code":200,"policy":{
            "roles":[{"role_id":"stytch_admin","description":"","permissions":[
                {"resource_id":"stytch.member","actions":["*"]}],"extra":1}],
            "resources":[{"resource_id":"documents","description":"docs","actions":["read"]}]}}"#;
        let parsed: RbacPolicyResponse = serde_json::from_str(raw).unwrap();
        assert_eq!(parsed.policy.roles[0].role_id, "stytch_admin");
        assert_eq!(parsed.policy.roles[0].permissions[0].actions, ["*"]);
        assert!(parsed.policy.scopes.is_empty());
        let org: OrgPolicyResponse =
            serde_json::from_str(r#"{"request_id":"r","org_policy":{"roles":[]}}"#).unwrap();
        assert!(org.org_policy.roles.is_empty());
    }
}
