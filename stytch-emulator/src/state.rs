//! The emulator's data: organizations, members, roles and sessions, plus the RBAC rules.
//!
//! Everything here is plain data behind one `Mutex` held for short, await-free sections; JSON
//! building and RSA signing happen on snapshots outside the lock.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::factors::SessionFactor;
pub(crate) use crate::policy::{ADMIN_ROLE, MEMBER_ROLE};
use crate::policy::{RbacPolicy, RbacRole, granting_roles};

/// Unix seconds → RFC 3339 UTC with second precision (`2024-01-01T00:00:00Z`).
pub(crate) fn rfc3339(unix: i64) -> String {
    let t = if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix.unsigned_abs())
    } else {
        UNIX_EPOCH
    };
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Wall-clock unix seconds shifted by `offset` seconds.
pub(crate) fn now_with_offset(offset: i64) -> i64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    wall.saturating_add(offset)
}

/// A 44-character opaque session token: 33 random bytes, base64url without padding.
pub(crate) fn new_session_token() -> String {
    let mut bytes = [0u8; 33];
    aws_lc_rs::rand::fill(&mut bytes).expect("system RNG failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `stytch_member` followed by the assigned roles, without duplicates.
pub(crate) fn effective_roles(assigned: &[String]) -> Vec<String> {
    let mut roles = vec![MEMBER_ROLE.to_owned()];
    for r in assigned {
        if !roles.contains(r) {
            roles.push(r.clone());
        }
    }
    roles
}

#[derive(Debug, Clone)]
pub(crate) struct Organization {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) slug: String,
    pub(crate) created_at: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) organization_id: String,
    pub(crate) email: String,
    pub(crate) email_id: String,
    /// Display name.
    pub(crate) name: String,
    /// `active`, `invited`, `pending` or `deleted`.
    pub(crate) status: String,
    /// Explicitly assigned roles (without the implicit `stytch_member`).
    pub(crate) roles: Vec<String>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) member_id: String,
    pub(crate) token: String,
    pub(crate) started_at: i64,
    pub(crate) last_accessed_at: i64,
    pub(crate) expires_at: i64,
    pub(crate) custom_claims: Map<String, Value>,
    /// How the member authenticated, oldest first.
    pub(crate) factors: Vec<SessionFactor>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("member_id", &self.member_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A consistent copy of a session with its member, organization and roles.
#[derive(Debug, Clone)]
pub(crate) struct SessionView {
    pub(crate) session: Session,
    pub(crate) member: Member,
    pub(crate) organization: Organization,
    /// `stytch_member` + assigned roles.
    pub(crate) roles: Vec<String>,
}

/// The outcome of an RBAC check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Authz {
    /// Granted by these roles.
    Granted(Vec<String>),
    /// The organization differs from the member's.
    Tenancy,
    /// No role grants it.
    Denied,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) organizations: HashMap<String, Organization>,
    pub(crate) members: HashMap<String, Member>,
    /// The project's RBAC policy.
    pub(crate) policy: RbacPolicy,
    /// Each organization's custom roles (added to the project's roles).
    pub(crate) org_roles: HashMap<String, Vec<RbacRole>>,
    pub(crate) sessions: HashMap<String, Session>,
    /// Opaque token → member_session_id.
    pub(crate) by_token: HashMap<String, String>,
}

impl State {
    /// The roles of `member` granting `action` on `resource`: the project's roles and its
    /// organization's custom roles, as the SDKs merge them.
    pub(crate) fn granting_roles(
        &self,
        member: &Member,
        resource: &str,
        action: &str,
    ) -> Vec<String> {
        let organization = self
            .org_roles
            .get(&member.organization_id)
            .map_or(&[][..], Vec::as_slice);
        granting_roles(
            &self.policy,
            organization,
            &effective_roles(&member.roles),
            resource,
            action,
        )
    }

    /// RBAC check of `member` acting on `resource`/`action` inside `organization_id`.
    pub(crate) fn authorize(
        &self,
        member: &Member,
        organization_id: &str,
        resource: &str,
        action: &str,
    ) -> Authz {
        if member.organization_id != organization_id {
            return Authz::Tenancy;
        }
        let roles = self.granting_roles(member, resource, action);
        if roles.is_empty() {
            Authz::Denied
        } else {
            Authz::Granted(roles)
        }
    }

    /// The organization with this id, or else with this slug.
    pub(crate) fn organization_by_id_or_slug(&self, id_or_slug: &str) -> Option<&Organization> {
        self.organizations
            .get(id_or_slug)
            .or_else(|| self.organizations.values().find(|o| o.slug == id_or_slug))
    }

    /// The session with this id, if it exists and has not expired at `now`.
    pub(crate) fn live_session(&self, id: &str, now: i64) -> Option<&Session> {
        self.sessions.get(id).filter(|s| s.expires_at > now)
    }

    /// The id of the live session with this opaque token.
    pub(crate) fn live_session_by_token(&self, token: &str, now: i64) -> Option<&Session> {
        let id = self.by_token.get(token)?;
        self.live_session(id, now)
    }

    /// A snapshot of the session `id` (live or not) with its member and organization.
    pub(crate) fn view(&self, id: &str) -> Option<SessionView> {
        let session = self.sessions.get(id)?;
        let member = self.members.get(&session.member_id)?;
        let organization = self.organizations.get(&member.organization_id)?;
        Some(SessionView {
            session: session.clone(),
            member: member.clone(),
            organization: organization.clone(),
            roles: effective_roles(&member.roles),
        })
    }

    /// Creates a session for `member_id` lasting `duration_secs` from `now`.
    pub(crate) fn create_session(
        &mut self,
        id: String,
        member_id: &str,
        now: i64,
        duration_secs: i64,
        custom_claims: Map<String, Value>,
        factors: Vec<SessionFactor>,
    ) -> Option<SessionView> {
        if !self.members.contains_key(member_id) {
            return None;
        }
        let token = new_session_token();
        self.by_token.insert(token.clone(), id.clone());
        self.sessions.insert(
            id.clone(),
            Session {
                id: id.clone(),
                member_id: member_id.to_owned(),
                token,
                started_at: now,
                last_accessed_at: now,
                expires_at: now.saturating_add(duration_secs),
                custom_claims,
                factors,
            },
        );
        self.view(&id)
    }

    /// Removes one session; whether it existed.
    pub(crate) fn revoke_session(&mut self, id: &str) -> bool {
        match self.sessions.remove(id) {
            Some(s) => {
                self.by_token.remove(&s.token);
                true
            }
            None => false,
        }
    }

    /// Removes a member and its sessions; the member, if it existed.
    pub(crate) fn delete_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        self.revoke_member(member_id);
        Some(member)
    }

    /// Removes an organization, its members (and their sessions) and its custom roles.
    pub(crate) fn delete_organization(&mut self, organization_id: &str) -> Option<Organization> {
        let organization = self.organizations.remove(organization_id)?;
        let members: Vec<String> = self
            .members
            .values()
            .filter(|m| m.organization_id == organization_id)
            .map(|m| m.id.clone())
            .collect();
        for member in members {
            self.delete_member(&member);
        }
        self.org_roles.remove(organization_id);
        Some(organization)
    }

    /// Removes every session of `member_id`; how many there were.
    pub(crate) fn revoke_member(&mut self, member_id: &str) -> usize {
        let ids: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.member_id == member_id)
            .map(|s| s.id.clone())
            .collect();
        for id in &ids {
            self.revoke_session(id);
        }
        ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RbacPermission;

    fn member(org: &str, roles: &[&str]) -> Member {
        Member {
            id: "member-test-1".into(),
            organization_id: org.into(),
            email: "a@example.com".into(),
            email_id: "email-test-1".into(),
            name: "a".into(),
            status: "active".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn rfc3339_has_second_precision_and_z() {
        // If this broke, clients parsing expires_at as Stytch formats it would fail.
        assert_eq!(rfc3339(1_704_067_200), "2024-01-01T00:00:00Z");
    }

    #[test]
    fn tokens_are_44_url_safe_characters() {
        // If this broke, emulator tokens would not look like Stytch's and parsers would differ.
        let t = new_session_token();
        assert_eq!(t.len(), 44);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(t, new_session_token());
    }

    #[test]
    fn default_roles_follow_stytch() {
        // If this broke, RBAC decisions of the emulator would differ from Stytch's defaults.
        let state = State::default();
        let plain = member("org-1", &[]);
        let admin = member("org-1", &[ADMIN_ROLE]);
        assert_eq!(
            state.authorize(&plain, "org-1", "stytch.self", "revoke-sessions"),
            Authz::Granted(vec![MEMBER_ROLE.to_owned()])
        );
        assert_eq!(
            state.authorize(&plain, "org-1", "stytch.member", "revoke-sessions"),
            Authz::Denied
        );
        assert_eq!(
            state.authorize(&admin, "org-1", "stytch.member", "revoke-sessions"),
            Authz::Granted(vec![ADMIN_ROLE.to_owned()])
        );
        assert_eq!(
            state.authorize(&admin, "org-2", "stytch.member", "revoke-sessions"),
            Authz::Tenancy
        );
    }

    #[test]
    fn custom_roles_grant_listed_actions_and_star() {
        // If this broke, custom roles created by tests would grant too much or nothing.
        let mut state = State::default();
        state.org_roles.insert(
            "org-1".into(),
            vec![
                RbacRole::new(
                    "editor",
                    vec![RbacPermission::new("documents", &["read", "write"])],
                ),
                RbacRole::new("owner", vec![RbacPermission::new("documents", &["*"])]),
            ],
        );
        let editor = member("org-1", &["editor"]);
        let owner = member("org-1", &["owner", "editor"]);
        assert!(matches!(
            state.authorize(&editor, "org-1", "documents", "write"),
            Authz::Granted(_)
        ));
        assert_eq!(
            state.authorize(&editor, "org-1", "documents", "delete"),
            Authz::Denied
        );
        assert_eq!(
            state.authorize(&owner, "org-1", "documents", "read"),
            Authz::Granted(vec!["owner".to_owned(), "editor".to_owned()])
        );
    }

    #[test]
    fn revoke_member_only_touches_that_member() {
        // If this broke, revoking one member would sign out others.
        let mut state = State::default();
        state.organizations.insert(
            "o".into(),
            Organization {
                id: "o".into(),
                name: "O".into(),
                slug: "o".into(),
                created_at: 0,
            },
        );
        for id in ["m1", "m2"] {
            let mut m = member("o", &[]);
            m.id = id.into();
            state.members.insert(id.into(), m);
        }
        for (sid, mid) in [("s1", "m1"), ("s2", "m1"), ("s3", "m2")] {
            state
                .create_session(sid.into(), mid, 0, 60, Map::new(), Vec::new())
                .unwrap();
        }
        assert_eq!(state.revoke_member("m1"), 2);
        assert!(state.live_session("s3", 0).is_some());
        assert!(state.live_session("s1", 0).is_none());
        assert_eq!(state.by_token.len(), 1);
    }

    #[test]
    fn deleting_an_organization_deletes_its_members_sessions_and_roles_only() {
        // If this broke, a deleted organization's members could still authenticate, or
        // another organization would lose members.
        let mut state = State::default();
        for org in ["o1", "o2"] {
            state.organizations.insert(
                org.into(),
                Organization {
                    id: org.into(),
                    name: org.into(),
                    slug: org.into(),
                    created_at: 0,
                },
            );
            state
                .org_roles
                .insert(org.into(), vec![RbacRole::new("editor", Vec::new())]);
        }
        for (id, org) in [("m1", "o1"), ("m2", "o1"), ("m3", "o2")] {
            let mut m = member(org, &[]);
            m.id = id.into();
            state.members.insert(id.into(), m);
            state
                .create_session(format!("s-{id}"), id, 0, 60, Map::new(), Vec::new())
                .unwrap();
        }
        assert!(state.delete_organization("o1").is_some());
        assert!(state.delete_organization("o1").is_none());
        let left: Vec<&String> = state.members.keys().collect();
        assert_eq!(left, ["m3"]);
        assert_eq!(state.sessions.len(), 1);
        assert_eq!(state.by_token.len(), 1);
        assert_eq!(state.org_roles.len(), 1);
    }
}
