//! [`Emulator`] methods for RBAC (the project's policy, organizations' custom roles) and for
//! sessions' authentication factors. Each has a control-API twin (`/emulator/v1/rbac/…`,
//! `/emulator/v1/sessions/…`).

use std::time::Duration;

use serde_json::{Map, Value};

use super::Emulator;
use crate::factors::AuthenticationFactor;
use crate::policy::{RbacPolicy, RbacResource, RbacRole, RbacScope};
use crate::types::{EmulatorError, SessionInfo, SessionJwt};

impl Emulator {
    /// The project's RBAC policy, as `GET /v1/b2b/rbac/policy` serves it.
    pub fn rbac_policy(&self) -> RbacPolicy {
        self.shared.rbac_policy()
    }

    /// Replaces the project's RBAC policy (authorization checks use it at once; SDKs see it
    /// when they refresh their cached copy).
    pub fn set_rbac_policy(&self, policy: RbacPolicy) {
        self.shared.change_policy(|p| *p = policy);
    }

    /// Adds a project role, or replaces the one with the same `role_id` (also
    /// `stytch_member` and `stytch_admin`).
    pub fn set_project_role(&self, role: RbacRole) {
        self.shared.change_policy(|p| p.set_role(role));
    }

    /// Adds a project resource, or replaces the one with the same `resource_id`.
    pub fn set_project_resource(&self, resource: RbacResource) {
        self.shared.change_policy(|p| p.set_resource(resource));
    }

    /// Adds a project scope, or replaces the one with the same name.
    pub fn set_project_scope(&self, scope: RbacScope) {
        self.shared.change_policy(|p| p.set_scope(scope));
    }

    /// An organization's custom roles, as `GET /v1/b2b/rbac/organizations/{id}` serves them
    /// (`organization_id` may also be the slug).
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownOrganization`].
    pub fn organization_roles(
        &self,
        organization_id: &str,
    ) -> Result<Vec<RbacRole>, EmulatorError> {
        self.shared
            .organization_roles(organization_id)
            .map(|(_, roles)| roles)
    }

    /// Replaces an organization's custom roles; they are added to the project's roles for its
    /// members (as the SDKs merge them).
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownOrganization`].
    pub fn set_organization_roles(
        &self,
        organization_id: &str,
        roles: Vec<RbacRole>,
    ) -> Result<(), EmulatorError> {
        self.shared.set_organization_roles(organization_id, roles)
    }

    /// Starts a session authenticated with these factors (none: a magic link, now), of the
    /// given length, with custom claims.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownMember`].
    pub fn create_session_with_factors(
        &self,
        member_id: &str,
        duration: Duration,
        custom_claims: Map<String, Value>,
        factors: Vec<AuthenticationFactor>,
    ) -> Result<SessionInfo, EmulatorError> {
        let secs = i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
        self.shared
            .create_session(member_id, secs, custom_claims, factors)
            .ok_or(EmulatorError::UnknownMember)
    }

    /// Adds a factor to a live session as Stytch's MFA step does (e.g. TOTP or SMS OTP after
    /// a magic link); a method the session already has gets its `last_authenticated_at`
    /// updated instead. Returns a fresh session JWT carrying it; JWTs minted before do not.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownSession`] when the session does not exist or has expired.
    pub fn add_session_factor(
        &self,
        member_session_id: &str,
        factor: AuthenticationFactor,
    ) -> Result<SessionJwt, EmulatorError> {
        let view = self.shared.add_session_factor(member_session_id, factor)?;
        Ok(SessionJwt(self.shared.mint(&view, self.shared.now())))
    }
}
