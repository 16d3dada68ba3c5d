//! Members and organizations over their lifetime: create, update, delete, each announced by a
//! Stytch webhook event carrying who made the change (its [`EventSource`]).
//!
//! As at Stytch, deleting a member ends all its sessions (its tokens and JWTs then get
//! `404 session_not_found`, and a revoke by its id `404 member_not_found`), and deleting an
//! organization deletes its members. Deleting an organization sends one
//! `organization.delete` event and no event per member (Stytch documents none; a receiver
//! must sign out the organization's members itself). An update to a status other than
//! `active` also ends the member's sessions (the emulator's choice: Stytch does not document
//! what a deactivated member's sessions do; it does not let them authenticate).

use crate::render::{member_json, organization_json};
use crate::shared::Shared;
use crate::state::{Member, Organization};
use crate::types::EmulatorError;
use crate::webhooks::{Action, Event, EventSource};

/// The statuses a member can have at Stytch.
pub const MEMBER_STATUSES: [&str; 4] = ["active", "invited", "pending", "deleted"];

/// Changes to a member: any of roles, status and name.
///
/// ```
/// # use stytch_emulator::MemberUpdate;
/// let demote = MemberUpdate::new().roles(&[]).name("Ada L.");
/// # let _ = demote;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberUpdate {
    pub(crate) roles: Option<Vec<String>>,
    pub(crate) status: Option<String>,
    pub(crate) name: Option<String>,
}

impl MemberUpdate {
    /// No change yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the assigned roles (`stytch_member` stays implicit).
    #[must_use]
    pub fn roles(mut self, roles: &[&str]) -> Self {
        self.roles = Some(roles.iter().map(|r| (*r).to_owned()).collect());
        self
    }

    /// Sets the status: one of [`MEMBER_STATUSES`].
    #[must_use]
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }

    /// Sets the display name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Lifecycle operations whose events carry one [`EventSource`]: see
/// [`Emulator::via`](crate::Emulator::via).
#[derive(Debug, Clone, Copy)]
pub struct Via<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) source: EventSource,
}

impl Via<'_> {
    /// Creates an organization and returns its `organization_id`.
    pub fn create_organization(&self, name: &str, slug: &str) -> String {
        self.shared.create_organization(name, slug, self.source)
    }

    /// Adds a member with these assigned roles and returns its `member_id`.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownOrganization`].
    pub fn create_member(
        &self,
        organization_id: &str,
        email: &str,
        roles: &[&str],
    ) -> Result<String, EmulatorError> {
        let roles = roles.iter().map(|r| (*r).to_owned()).collect();
        self.shared
            .create_member(organization_id, email, roles, None, self.source)
    }

    /// Changes a member (see [`MemberUpdate`]).
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownMember`], [`EmulatorError::InvalidStatus`].
    pub fn update_member(
        &self,
        member_id: &str,
        update: MemberUpdate,
    ) -> Result<(), EmulatorError> {
        self.shared
            .update_member(member_id, update, self.source)
            .map(drop)
    }

    /// Deletes a member and ends all its sessions.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownMember`].
    pub fn delete_member(&self, member_id: &str) -> Result<(), EmulatorError> {
        self.shared.delete_member(member_id, self.source)
    }

    /// Deletes an organization, its members, their sessions and its custom roles.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownOrganization`].
    pub fn delete_organization(&self, organization_id: &str) -> Result<(), EmulatorError> {
        self.shared
            .delete_organization(organization_id, self.source)
    }
}

impl Shared {
    fn event<'a>(
        &'a self,
        source: EventSource,
        object_type: &'static str,
        action: Action,
        id: &'a str,
        object: Option<serde_json::Value>,
    ) -> Event<'a> {
        Event {
            project_id: &self.project_id,
            env: self.env,
            source,
            object_type,
            action,
            id,
            object,
        }
    }

    pub(crate) fn create_organization(
        &self,
        name: &str,
        slug: &str,
        source: EventSource,
    ) -> String {
        let now = self.now();
        let org = Organization {
            id: self.new_id("organization"),
            name: name.to_owned(),
            slug: slug.to_owned(),
            created_at: now,
        };
        let object = organization_json(&org);
        self.lock()
            .organizations
            .insert(org.id.clone(), org.clone());
        self.webhooks.emit(self.event(
            source,
            "organization",
            Action::Create,
            &org.id,
            Some(object),
        ));
        org.id
    }

    /// Adds a member; its name defaults to the local part of its email address.
    pub(crate) fn create_member(
        &self,
        organization_id: &str,
        email: &str,
        roles: Vec<String>,
        name: Option<String>,
        source: EventSource,
    ) -> Result<String, EmulatorError> {
        let now = self.now();
        let member = Member {
            id: self.new_id("member"),
            organization_id: organization_id.to_owned(),
            email: email.to_owned(),
            email_id: self.new_id("email"),
            name: name.unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned()),
            status: "active".to_owned(),
            roles,
            created_at: now,
            updated_at: now,
        };
        {
            let mut st = self.lock();
            if !st.organizations.contains_key(organization_id) {
                return Err(EmulatorError::UnknownOrganization);
            }
            st.members.insert(member.id.clone(), member.clone());
        }
        self.webhooks.emit(self.event(
            source,
            "member",
            Action::Create,
            &member.id,
            Some(member_json(&member)),
        ));
        Ok(member.id)
    }

    /// Applies `update` and returns the member as it is now.
    pub(crate) fn update_member(
        &self,
        member_id: &str,
        update: MemberUpdate,
        source: EventSource,
    ) -> Result<Member, EmulatorError> {
        if let Some(status) = &update.status
            && !MEMBER_STATUSES.contains(&status.as_str())
        {
            return Err(EmulatorError::InvalidStatus);
        }
        let now = self.now();
        let member = {
            let mut st = self.lock();
            let member = st
                .members
                .get_mut(member_id)
                .ok_or(EmulatorError::UnknownMember)?;
            if let Some(roles) = update.roles {
                member.roles = roles;
            }
            if let Some(name) = update.name {
                member.name = name;
            }
            if let Some(status) = update.status {
                member.status = status;
            }
            member.updated_at = now;
            let member = member.clone();
            if member.status != "active" {
                st.revoke_member(member_id);
            }
            member
        };
        self.webhooks.emit(self.event(
            source,
            "member",
            Action::Update,
            &member.id,
            Some(member_json(&member)),
        ));
        Ok(member)
    }

    pub(crate) fn delete_member(
        &self,
        member_id: &str,
        source: EventSource,
    ) -> Result<(), EmulatorError> {
        self.lock()
            .delete_member(member_id)
            .ok_or(EmulatorError::UnknownMember)?;
        self.webhooks
            .emit(self.event(source, "member", Action::Delete, member_id, None));
        Ok(())
    }

    pub(crate) fn delete_organization(
        &self,
        organization_id: &str,
        source: EventSource,
    ) -> Result<(), EmulatorError> {
        self.lock()
            .delete_organization(organization_id)
            .ok_or(EmulatorError::UnknownOrganization)?;
        self.webhooks.emit(self.event(
            source,
            "organization",
            Action::Delete,
            organization_id,
            None,
        ));
        Ok(())
    }
}
