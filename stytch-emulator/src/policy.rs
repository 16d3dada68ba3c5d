//! Stytch's RBAC policy: roles, resources and scopes, as `GET /v1/b2b/rbac/policy` serves
//! them and the official SDKs evaluate them.
//!
//! The rule every SDK applies, and the emulator too (python `stytch/shared/rbac_local.py`
//! `is_authorized`, node `lib/shared/rbac_local.ts`): a role grants `action` on `resource`
//! when one of its permissions names that resource **exactly** and lists the action or `*`.
//! There is no wildcard or hierarchy on resources. An organization's custom roles are added
//! to the project's roles (python `stytch/shared/policy_cache.py` `_merge_policies`).
//!
//! A leaf: uses no other module of the crate.

use serde_json::{Value, json};

/// The role every member has implicitly (Stytch's `stytch_member`).
pub const MEMBER_ROLE: &str = "stytch_member";
/// The default admin role (Stytch's `stytch_admin`).
pub const ADMIN_ROLE: &str = "stytch_admin";

/// One permission: actions on a resource (`*`: every action).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RbacPermission {
    /// The resource, e.g. `documents` or `stytch.member`.
    pub resource_id: String,
    /// The actions, e.g. `read`; `*` means all of them.
    pub actions: Vec<String>,
}

impl RbacPermission {
    /// `actions` on `resource_id`.
    pub fn new(resource_id: impl Into<String>, actions: &[&str]) -> Self {
        Self {
            resource_id: resource_id.into(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// Whether this permission grants `action` on `resource` (exact resource, action or `*`).
    pub fn grants(&self, resource: &str, action: &str) -> bool {
        self.resource_id == resource && self.actions.iter().any(|a| a == "*" || a == action)
    }

    fn json(&self) -> Value {
        json!({"resource_id": self.resource_id, "actions": self.actions})
    }
}

/// A role: a named set of permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RbacRole {
    /// The role id members are assigned, e.g. `editor`.
    pub role_id: String,
    /// Its description.
    pub description: String,
    /// What it grants.
    pub permissions: Vec<RbacPermission>,
}

impl RbacRole {
    /// A role with these permissions and an empty description.
    pub fn new(role_id: impl Into<String>, permissions: Vec<RbacPermission>) -> Self {
        Self {
            role_id: role_id.into(),
            description: String::new(),
            permissions,
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Whether one of its permissions grants `action` on `resource`.
    pub fn grants(&self, resource: &str, action: &str) -> bool {
        self.permissions.iter().any(|p| p.grants(resource, action))
    }

    /// The role as Stytch's JSON: `{role_id, description, permissions: [{resource_id, actions}]}`.
    pub(crate) fn json(&self) -> Value {
        let permissions: Vec<Value> = self.permissions.iter().map(RbacPermission::json).collect();
        json!({
            "role_id": self.role_id,
            "description": self.description,
            "permissions": permissions,
        })
    }
}

/// A resource and the actions it has.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RbacResource {
    /// The resource id, e.g. `documents`.
    pub resource_id: String,
    /// Its description.
    pub description: String,
    /// Every action it has.
    pub actions: Vec<String>,
}

impl RbacResource {
    /// A resource with these actions and an empty description.
    pub fn new(resource_id: impl Into<String>, actions: &[&str]) -> Self {
        Self {
            resource_id: resource_id.into(),
            description: String::new(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    fn json(&self) -> Value {
        json!({
            "resource_id": self.resource_id,
            "description": self.description,
            "actions": self.actions,
        })
    }
}

/// A scope (Connected Apps, M2M): a named set of permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RbacScope {
    /// The scope, e.g. `read:documents`.
    pub scope: String,
    /// Its description.
    pub description: String,
    /// What it grants.
    pub permissions: Vec<RbacPermission>,
}

impl RbacScope {
    /// A scope with these permissions and an empty description.
    pub fn new(scope: impl Into<String>, permissions: Vec<RbacPermission>) -> Self {
        Self {
            scope: scope.into(),
            description: String::new(),
            permissions,
        }
    }

    fn json(&self) -> Value {
        let permissions: Vec<Value> = self.permissions.iter().map(RbacPermission::json).collect();
        json!({
            "scope": self.scope,
            "description": self.description,
            "permissions": permissions,
        })
    }
}

/// A project's RBAC policy.
///
/// [`RbacPolicy::default`] is what a new emulator serves: [`stytch_default`]
/// (Stytch's reserved resources and roles) plus a demo resource `documents` with the roles
/// `editor` and `viewer` and the scopes `read:documents` and `write:documents`.
///
/// [`stytch_default`]: RbacPolicy::stytch_default
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RbacPolicy {
    /// The project's roles (`stytch_member`, `stytch_admin` and custom ones).
    pub roles: Vec<RbacRole>,
    /// The resources (Stytch's reserved `stytch.*` ones and custom ones).
    pub resources: Vec<RbacResource>,
    /// The scopes.
    pub scopes: Vec<RbacScope>,
}

/// Actions of `stytch.organization`, as listed in the SDKs' `PolicyResource` docs (python
/// `stytch/b2b/models/rbac.py`, node `lib/b2b/rbac.ts`).
const ORGANIZATION_ACTIONS: [&str; 12] = [
    "update.info.name",
    "update.info.slug",
    "update.info.untrusted_metadata",
    "update.info.email_jit_provisioning",
    "update.info.logo_url",
    "update.info.email_invites",
    "update.info.allowed_domains",
    "update.info.default_sso_connection",
    "update.info.sso_jit_provisioning",
    "update.info.mfa_policy",
    "update.info.implicit_roles",
    "delete",
];
/// Actions of `stytch.member`: the SDKs' list plus `revoke-sessions`, which Stytch's
/// frontend SDK checks (`@rbac action="revoke-sessions", resource="stytch.member"` in
/// stytch-browser `packages/core/src/public/b2b/sessions.ts`).
const MEMBER_ACTIONS: [&str; 11] = [
    "create",
    "update.info.name",
    "update.info.untrusted_metadata",
    "update.info.mfa-phone",
    "update.info.delete.mfa-phone",
    "update.settings.is-breakglass",
    "update.settings.mfa_enrolled",
    "update.settings.roles",
    "search",
    "delete",
    "revoke-sessions",
];
/// Actions of `stytch.sso`.
const SSO_ACTIONS: [&str; 3] = ["create", "update", "delete"];
/// Actions of `stytch.self`: the SDKs' list plus `revoke-sessions` (the admin portal checks
/// `useRbac('stytch.self', 'revoke-sessions')`).
const SELF_ACTIONS: [&str; 8] = [
    "update.info.name",
    "update.info.untrusted_metadata",
    "update.info.mfa-phone",
    "update.info.delete.mfa-phone",
    "update.info.delete.password",
    "update.settings.mfa_enrolled",
    "delete",
    "revoke-sessions",
];

impl RbacPolicy {
    /// Stytch's defaults only: the reserved resources `stytch.organization`, `stytch.member`,
    /// `stytch.sso`, `stytch.self`, and the roles `stytch_member` (every `stytch.self`
    /// action) and `stytch_admin` (every action on `stytch.organization`, `stytch.member`
    /// and `stytch.sso`), as Stytch's guide describes them
    /// (stytch.com/docs/b2b/guides/rbac/stytch-default). "Every action" is written `*`.
    /// `stytch_admin` gets nothing on custom resources: the guide grants it the three
    /// `stytch.*` resources only.
    pub fn stytch_default() -> Self {
        Self {
            roles: vec![
                RbacRole::new(MEMBER_ROLE, vec![RbacPermission::new("stytch.self", &["*"])])
                    .description("Granted to all Members upon creation; grants permissions already implicitly granted to logged in Members via the SDK. Cannot be deleted."),
                RbacRole::new(
                    ADMIN_ROLE,
                    vec![
                        RbacPermission::new("stytch.organization", &["*"]),
                        RbacPermission::new("stytch.member", &["*"]),
                        RbacPermission::new("stytch.sso", &["*"]),
                    ],
                )
                .description("Granted to Members who create an organization through the Stytch discovery flow. Admins will also have the stytch_member role. Cannot be deleted."),
            ],
            resources: vec![
                RbacResource::new("stytch.organization", &ORGANIZATION_ACTIONS)
                    .description("Stytch Organization: the logged-in Member's organization."),
                RbacResource::new("stytch.member", &MEMBER_ACTIONS)
                    .description("Stytch Members of the logged-in Member's organization."),
                RbacResource::new("stytch.sso", &SSO_ACTIONS)
                    .description("Stytch SSO connections of the logged-in Member's organization."),
                RbacResource::new("stytch.self", &SELF_ACTIONS)
                    .description("The logged-in Member."),
            ],
            scopes: Vec::new(),
        }
    }

    /// The role with this id.
    pub fn role(&self, role_id: &str) -> Option<&RbacRole> {
        self.roles.iter().find(|r| r.role_id == role_id)
    }

    /// Adds a role, or replaces the one with the same id.
    pub fn set_role(&mut self, role: RbacRole) {
        match self.roles.iter_mut().find(|r| r.role_id == role.role_id) {
            Some(existing) => *existing = role,
            None => self.roles.push(role),
        }
    }

    /// Adds a resource, or replaces the one with the same id.
    pub fn set_resource(&mut self, resource: RbacResource) {
        match self
            .resources
            .iter_mut()
            .find(|r| r.resource_id == resource.resource_id)
        {
            Some(existing) => *existing = resource,
            None => self.resources.push(resource),
        }
    }

    /// Adds a scope, or replaces the one with the same name.
    pub fn set_scope(&mut self, scope: RbacScope) {
        match self.scopes.iter_mut().find(|s| s.scope == scope.scope) {
            Some(existing) => *existing = scope,
            None => self.scopes.push(scope),
        }
    }

    /// The policy as Stytch's JSON: `{roles, resources, scopes}`.
    pub(crate) fn json(&self) -> Value {
        json!({
            "roles": self.roles.iter().map(RbacRole::json).collect::<Vec<_>>(),
            "resources": self.resources.iter().map(RbacResource::json).collect::<Vec<_>>(),
            "scopes": self.scopes.iter().map(RbacScope::json).collect::<Vec<_>>(),
        })
    }
}

impl Default for RbacPolicy {
    /// [`RbacPolicy::stytch_default`] plus the demo resource `documents` (`read`, `create`,
    /// `delete`), the roles `editor` (read, create) and `viewer` (read), and the scopes
    /// `read:documents` and `write:documents`.
    fn default() -> Self {
        let mut policy = Self::stytch_default();
        policy.set_resource(
            RbacResource::new("documents", &["read", "create", "delete"])
                .description("Demo documents."),
        );
        policy.set_role(
            RbacRole::new(
                "editor",
                vec![RbacPermission::new("documents", &["read", "create"])],
            )
            .description("Reads and creates documents."),
        );
        policy.set_role(
            RbacRole::new("viewer", vec![RbacPermission::new("documents", &["read"])])
                .description("Reads documents."),
        );
        policy.set_scope(RbacScope::new(
            "read:documents",
            vec![RbacPermission::new("documents", &["read"])],
        ));
        policy.set_scope(RbacScope::new(
            "write:documents",
            vec![RbacPermission::new("documents", &["create", "delete"])],
        ));
        policy
    }
}

/// The ids among `roles` that grant `action` on `resource` in the project's roles or the
/// organization's (each id once, in the order of `roles`).
pub(crate) fn granting_roles(
    project: &RbacPolicy,
    organization: &[RbacRole],
    roles: &[String],
    resource: &str,
    action: &str,
) -> Vec<String> {
    roles
        .iter()
        .filter(|id| {
            project
                .roles
                .iter()
                .chain(organization)
                .any(|r| &r.role_id == *id && r.grants(resource, action))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(roles: &[&str]) -> Vec<String> {
        roles.iter().map(|r| (*r).to_owned()).collect()
    }

    #[test]
    fn stytch_defaults_grant_what_the_guide_says() {
        // If this broke, the emulator's default RBAC would differ from a fresh Stytch
        // project's, and local checks proven here would fail there.
        let p = RbacPolicy::stytch_default();
        let member = ids(&[MEMBER_ROLE]);
        let admin = ids(&[MEMBER_ROLE, ADMIN_ROLE]);
        let grants = |roles: &[String], resource: &str, action: &str| {
            granting_roles(&p, &[], roles, resource, action)
        };
        assert_eq!(
            grants(&member, "stytch.self", "revoke-sessions"),
            [MEMBER_ROLE]
        );
        assert!(grants(&member, "stytch.member", "revoke-sessions").is_empty());
        assert_eq!(
            grants(&admin, "stytch.member", "revoke-sessions"),
            [ADMIN_ROLE]
        );
        assert_eq!(grants(&admin, "stytch.sso", "create"), [ADMIN_ROLE]);
        assert!(
            grants(&admin, "documents", "read").is_empty(),
            "no custom resources"
        );
        let resources: Vec<&str> = p.resources.iter().map(|r| r.resource_id.as_str()).collect();
        assert_eq!(
            resources,
            [
                "stytch.organization",
                "stytch.member",
                "stytch.sso",
                "stytch.self"
            ]
        );
    }

    #[test]
    fn resources_match_exactly_and_star_means_every_action() {
        // If this broke, the emulator would grant what the SDKs deny (a prefix or wildcard
        // resource) or deny what `*` grants.
        let p = RbacPolicy::default();
        let org = [RbacRole::new(
            "owner",
            vec![RbacPermission::new("documents", &["*"])],
        )];
        let roles = ids(&[MEMBER_ROLE, "viewer", "owner"]);
        assert_eq!(
            granting_roles(&p, &org, &roles, "documents", "read"),
            ["viewer", "owner"]
        );
        assert_eq!(
            granting_roles(&p, &org, &roles, "documents", "delete"),
            ["owner"]
        );
        assert!(granting_roles(&p, &org, &roles, "documents.secret", "read").is_empty());
        assert!(granting_roles(&p, &[], &ids(&["editor"]), "documents", "delete").is_empty());
        assert_eq!(
            granting_roles(&p, &[], &ids(&["editor"]), "documents", "create"),
            ["editor"]
        );
    }

    #[test]
    fn policy_json_has_the_sdk_field_names() {
        // If this broke, the SDKs' strict policy types (python pydantic) would refuse it.
        let json = RbacPolicy::default().json();
        let role = &json["roles"][2];
        assert_eq!(role["role_id"], "editor");
        assert_eq!(role["permissions"][0]["resource_id"], "documents");
        assert_eq!(role["permissions"][0]["actions"], json!(["read", "create"]));
        assert!(role["description"].is_string());
        assert_eq!(json["resources"][4]["actions"][2], "delete");
        assert_eq!(json["scopes"][0]["scope"], "read:documents");
    }

    #[test]
    fn setters_replace_by_id() {
        // If this broke, redefining a role through the control API would add a duplicate
        // whose permissions still applied.
        let mut p = RbacPolicy::default();
        p.set_role(RbacRole::new("editor", Vec::new()));
        assert_eq!(p.roles.iter().filter(|r| r.role_id == "editor").count(), 1);
        assert!(p.role("editor").unwrap().permissions.is_empty());
    }
}
