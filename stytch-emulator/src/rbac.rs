//! RBAC operations on [`Shared`]: the project's policy, organizations' custom roles, and the
//! factors of a session, for the [`Emulator`](crate::Emulator) methods and the control API.
//!
//! Uses [`shared`](crate::shared), [`policy`](crate::policy) and [`state`](crate::state).

use crate::policy::{RbacPolicy, RbacResource, RbacRole, RbacScope};
use crate::shared::Shared;
use crate::types::EmulatorError;

impl Shared {
    /// A copy of the project's policy.
    pub(crate) fn rbac_policy(&self) -> RbacPolicy {
        self.lock().policy.clone()
    }

    /// Changes the project's policy in place.
    pub(crate) fn change_policy(&self, change: impl FnOnce(&mut RbacPolicy)) {
        change(&mut self.lock().policy);
    }

    /// Replaces parts of the project's policy: each `Some` list replaces that list.
    pub(crate) fn replace_policy(
        &self,
        roles: Option<Vec<RbacRole>>,
        resources: Option<Vec<RbacResource>>,
        scopes: Option<Vec<RbacScope>>,
    ) -> RbacPolicy {
        let mut st = self.lock();
        if let Some(roles) = roles {
            st.policy.roles = roles;
        }
        if let Some(resources) = resources {
            st.policy.resources = resources;
        }
        if let Some(scopes) = scopes {
            st.policy.scopes = scopes;
        }
        st.policy.clone()
    }

    /// An organization's custom roles (by id or slug).
    pub(crate) fn organization_roles(
        &self,
        id_or_slug: &str,
    ) -> Result<(String, Vec<RbacRole>), EmulatorError> {
        let st = self.lock();
        let id = st
            .organization_by_id_or_slug(id_or_slug)
            .map(|o| o.id.clone())
            .ok_or(EmulatorError::UnknownOrganization)?;
        let roles = st.org_roles.get(&id).cloned().unwrap_or_default();
        Ok((id, roles))
    }

    /// Replaces an organization's custom roles.
    pub(crate) fn set_organization_roles(
        &self,
        organization_id: &str,
        roles: Vec<RbacRole>,
    ) -> Result<(), EmulatorError> {
        let mut st = self.lock();
        if !st.organizations.contains_key(organization_id) {
            return Err(EmulatorError::UnknownOrganization);
        }
        st.org_roles.insert(organization_id.to_owned(), roles);
        Ok(())
    }

    /// Defines (or replaces) one custom role of an organization; `false` when the
    /// organization is unknown.
    pub(crate) fn create_role(&self, organization_id: &str, role: RbacRole) -> bool {
        let mut st = self.lock();
        if !st.organizations.contains_key(organization_id) {
            return false;
        }
        let roles = st.org_roles.entry(organization_id.to_owned()).or_default();
        match roles.iter_mut().find(|r| r.role_id == role.role_id) {
            Some(existing) => *existing = role,
            None => roles.push(role),
        }
        true
    }
}
