//! A policy compiled for checks on the request path, and the check itself: allowed iff one of
//! the subject's roles has a permission whose `resource_id` equals the resource **exactly**
//! and whose actions contain the action or `"*"` (node `lib/shared/rbac_local.ts`
//! `performBaseRoleAuthorizationCheck`, python `stytch/shared/rbac_local.py`). An
//! organization's custom roles are added to the project's (node `lib/b2b/rbac_local.ts`).

use std::collections::HashMap;

use crate::client::{OrgPolicy, RbacPermission, RbacPolicy, RbacRole};

/// The hasher of the compiled maps: looked up on every authorized request.
type Hasher = foldhash::fast::RandomState;

/// What one role may do: resource → actions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Grants(HashMap<String, Actions, Hasher>);

/// The actions granted on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Actions {
    /// `"*"`: every action.
    All,
    /// These actions.
    Some(Vec<String>),
}

impl Actions {
    fn allows(&self, action: &str) -> bool {
        match self {
            Self::All => true,
            Self::Some(actions) => actions.iter().any(|a| a == action),
        }
    }

    fn add(&mut self, actions: &[String]) {
        if actions.iter().any(|a| a == "*") {
            *self = Self::All;
        } else if let Self::Some(mine) = self {
            mine.extend(actions.iter().cloned());
        }
    }
}

impl Grants {
    fn add(&mut self, permissions: &[RbacPermission]) {
        for permission in permissions {
            self.0
                .entry(permission.resource_id.clone())
                .or_insert_with(|| Actions::Some(Vec::new()))
                .add(&permission.actions);
        }
    }
}

/// Roles by id, each with every permission the policy's entries of that id grant.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Compiled {
    roles: HashMap<String, Grants, Hasher>,
}

impl Compiled {
    /// The project's roles.
    pub(crate) fn project(policy: &RbacPolicy) -> Self {
        Self::of(&policy.roles)
    }

    /// An organization's custom roles.
    pub(crate) fn organization(policy: &OrgPolicy) -> Self {
        Self::of(&policy.roles)
    }

    fn of(roles: &[RbacRole]) -> Self {
        let mut compiled = Self::default();
        for role in roles {
            compiled
                .roles
                .entry(role.role_id.clone())
                .or_default()
                .add(&role.permissions);
        }
        compiled
    }

    /// Whether `role` grants `action` on `resource` here.
    fn grants(&self, role: &str, resource: &str, action: &str) -> bool {
        self.roles
            .get(role)
            .and_then(|grants| grants.0.get(resource))
            .is_some_and(|actions| actions.allows(action))
    }
}

/// Whether a subject holding `roles` may do `action` on `resource`, by the project's policy
/// and (for a member) their organization's custom roles.
pub(crate) fn allows(
    project: &Compiled,
    organization: Option<&Compiled>,
    roles: &[String],
    resource: &str,
    action: &str,
) -> bool {
    roles.iter().any(|role| {
        project.grants(role, resource, action)
            || organization.is_some_and(|org| org.grants(role, resource, action))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::RbacScope;

    fn role(id: &str, permissions: &[(&str, &[&str])]) -> RbacRole {
        RbacRole::new(
            id,
            permissions
                .iter()
                .map(|(r, a)| RbacPermission::new(*r, a.iter().copied()))
                .collect(),
        )
    }

    fn policy() -> RbacPolicy {
        RbacPolicy {
            roles: vec![
                role("stytch_member", &[("stytch.self", &["*"])]),
                role(
                    "stytch_admin",
                    &[("stytch.member", &["*"]), ("stytch.organization", &["*"])],
                ),
                role("editor", &[("documents", &["read", "create"])]),
                // A second entry of the same role adds to it.
                role("editor", &[("documents", &["update"])]),
                role("viewer", &[("documents", &["read"])]),
            ],
            scopes: vec![RbacScope {
                scope: "read:documents".into(),
                description: String::new(),
                permissions: vec![RbacPermission::new("documents", ["read"])],
            }],
            ..RbacPolicy::default()
        }
    }

    fn roles(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|r| (*r).to_owned()).collect()
    }

    #[test]
    fn the_sdks_rule_resource_exact_action_listed_or_star() {
        // If this broke, the layer's verdict would differ from Stytch's SDKs': a wildcard on
        // resources (none exists), a missed `*` action, or a role's second entry ignored.
        let project = Compiled::project(&policy());
        let cases: &[(&[&str], &str, &str, bool)] = &[
            (&["editor"], "documents", "read", true),
            (&["editor"], "documents", "update", true),
            (&["editor"], "documents", "delete", false),
            (&["viewer"], "documents", "create", false),
            (&["viewer", "editor"], "documents", "create", true),
            (&["stytch_admin"], "stytch.member", "revoke-sessions", true),
            (&["stytch_admin"], "documents", "read", false),
            (&["stytch_admin"], "stytch.members", "read", false),
            (&["stytch_admin"], "stytch", "read", false),
            (&["stytch_member"], "stytch.self", "revoke-sessions", true),
            (
                &["stytch_member"],
                "stytch.member",
                "revoke-sessions",
                false,
            ),
            (&["unknown"], "documents", "read", false),
            (&[], "documents", "read", false),
            (&["editor"], "Documents", "read", false),
            (&["editor"], "documents", "READ", false),
            (&["editor"], "documents", "*", false),
        ];
        for (subject, resource, action, want) in cases {
            assert_eq!(
                allows(&project, None, &roles(subject), resource, action),
                *want,
                "{subject:?} {action} on {resource}"
            );
        }
    }

    #[test]
    fn an_organizations_custom_roles_are_added_to_the_projects() {
        // If this broke, a member holding an organization's custom role would be refused
        // (or a role of another organization would count).
        let project = Compiled::project(&policy());
        let org = Compiled::organization(&OrgPolicy {
            roles: vec![
                role("auditor", &[("documents", &["read", "export"])]),
                role("editor", &[("documents", &["delete"])]),
            ],
        });
        let check = |subject: &[&str], action: &str, org: Option<&Compiled>| {
            allows(&project, org, &roles(subject), "documents", action)
        };
        assert!(check(&["auditor"], "export", Some(&org)));
        assert!(!check(&["auditor"], "export", None));
        assert!(check(&["editor"], "delete", Some(&org)));
        assert!(check(&["editor"], "read", Some(&org)));
        assert!(!check(&["viewer"], "export", Some(&org)));
    }
}
