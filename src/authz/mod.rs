//! Authorization at the edge, from Stytch's own RBAC: per-route [`Rule`]s checked by the
//! layer after authentication, and the [`Authorizer`] a handler uses for checks that depend
//! on the body or the database. The verdict is the one Stytch's SDKs give locally: allowed
//! iff one of the session's roles (project roles, and the organization's custom roles) has a
//! permission whose `resource_id` equals the resource exactly and whose actions contain the
//! action or `"*"`.
//!
//! | the rule asks for | refused with |
//! |---|---|
//! | `permission(resource, action)` | 403 `insufficient_permission` (Stytch's `error_type` `session_authorization_error`) |
//! | `organization(param)`: the path parameter is the session's organization id or slug | 403 `wrong_organization` (`session_authorization_tenancy_error`) |
//! | `mfa()`: a second factor (`sms`, `whatsapp`, `authenticator_app`, `recovery_code`) | 401, `WWW-Authenticate: Bearer error="insufficient_user_authentication"` (RFC 9470) |
//! | `max_age(d)`: the newest factor at most `d` old | the same, with `max_age="<seconds>"` |
//!
//! A browser route may name a [`step_up_page`](Rule::step_up_page): a `GET` that accepts HTML
//! is redirected there (303, with `?return_to=` the original path) instead of a 401. Nothing
//! refused here is sent to Stytch. The policy is cached ([`PolicyConfig`]); a policy never
//! loaded answers 503 on the routes that need it, never 200.

mod cache;
mod policy;
pub(crate) mod rules;
mod scopes;
mod step_up;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use self::cache::PolicyCache;
use self::rules::RouteRule;
pub(crate) use self::scopes::scopes_grant;
use self::step_up::StepUp;
use crate::client::StytchClient;
use crate::error::ConfigError;
use crate::session::MemberSession;

/// What a route needs of the member beyond authentication. Built with [`Rule::new`] and its
/// setters; given to [`StytchAuthLayerBuilder::authorize`](crate::StytchAuthLayerBuilder::authorize)
/// with the route's pattern. A rule must ask for something.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct Rule {
    pub(crate) permission: Option<(String, String)>,
    pub(crate) organization: Option<String>,
    pub(crate) mfa: bool,
    pub(crate) max_age: Option<Duration>,
    pub(crate) step_up_page: Option<String>,
    pub(crate) principals: Principals,
}

/// Who a rule admits: members (Stytch sessions), machines (M2M access tokens), or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Principals {
    /// Members only (the default: no route starts taking machine tokens by surprise).
    #[default]
    Members,
    /// Machines only: a member session never satisfies the rule.
    Machines,
    /// Members and machines.
    Both,
}

impl Principals {
    /// Whether members are admitted.
    pub fn members(self) -> bool {
        matches!(self, Self::Members | Self::Both)
    }

    /// Whether machines are admitted.
    pub fn machines(self) -> bool {
        matches!(self, Self::Machines | Self::Both)
    }
}

impl Rule {
    /// A rule asking for nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The member's roles must grant `action` on `resource` in the project's RBAC policy (or
    /// the organization's custom roles).
    pub fn permission(mut self, resource: impl Into<String>, action: impl Into<String>) -> Self {
        self.permission = Some((resource.into(), action.into()));
        self
    }

    /// The path parameter `param` (a `{param}` capture of the pattern) must be the member's
    /// organization, by id or slug.
    pub fn organization(mut self, param: impl Into<String>) -> Self {
        self.organization = Some(param.into());
        self
    }

    /// The session must carry a second factor.
    pub fn mfa(mut self) -> Self {
        self.mfa = true;
        self
    }

    /// The member's newest authentication factor must be at most `max_age` old.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Who the rule admits (default [`Principals::Members`]). A machine (an M2M access token
    /// in `Authorization: Bearer`, verified locally against the project's JWKS) satisfies
    /// [`permission`](Self::permission) when its scopes grant `action:resource` by the rule of
    /// Stytch's SDKs (`read:documents`, or `read:*`); `organization`, `mfa` and `max_age` are
    /// about members, so a rule admitting machines cannot ask for them.
    pub fn principals(mut self, principals: Principals) -> Self {
        self.principals = principals;
        self
    }

    /// Where a browser is sent (303, `?return_to=` the original path and query) when the rule
    /// asks for a step-up (MFA or a recent authentication) the session lacks: a local path,
    /// allowed by the [redirect allowlist](crate::StytchAuthLayerBuilder::logout_redirect_allowlist).
    /// API requests still get the 401.
    pub fn step_up_page(mut self, path: impl Into<String>) -> Self {
        self.step_up_page = Some(path.into());
        self
    }

    /// Checks the rule against its route pattern.
    pub(crate) fn check(&self, pattern: &str, captures: &[&str]) -> Result<(), ConfigError> {
        let bad = |reason: &'static str| ConfigError::InvalidRoute {
            pattern: pattern.to_owned(),
            reason,
        };
        if self.permission.is_none()
            && self.organization.is_none()
            && !self.mfa
            && self.max_age.is_none()
        {
            return Err(bad(
                "a rule must ask for a permission, an organization, mfa or max_age",
            ));
        }
        if let Some((resource, action)) = &self.permission
            && (resource.is_empty() || action.is_empty())
        {
            return Err(bad("a permission needs a resource and an action"));
        }
        if let Some(param) = &self.organization
            && !captures.contains(&param.as_str())
        {
            return Err(bad(
                "the organization parameter is not a capture of the pattern",
            ));
        }
        if let Some(page) = &self.step_up_page
            && (!page.starts_with('/') || page.starts_with("//"))
        {
            return Err(bad("the step-up page must be a local path"));
        }
        if self.principals.machines() {
            if self.organization.is_some() || self.mfa || self.max_age.is_some() {
                return Err(bad(
                    "a rule admitting machines can ask only for a permission (organization, mfa and max_age are about members)",
                ));
            }
            if self.permission.is_none() {
                return Err(bad("a rule admitting machines needs a permission"));
            }
        }
        Ok(())
    }
}

/// How the RBAC policy is cached.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// How often the policy (and every organization's custom roles seen) is fetched again in
    /// the background (default 5 minutes, as Stytch's Node and Go SDKs).
    pub refresh_every: Duration,
    /// Most organizations whose custom roles are kept (default 10 000; beyond, the one
    /// loaded longest ago is fetched again on its next use).
    pub max_organizations: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            refresh_every: Duration::from_secs(300),
            max_organizations: 10_000,
        }
    }
}

/// Why a check refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// The member's roles do not grant the action on the resource.
    #[error("the member may not {action} on {resource}")]
    Permission {
        /// The resource checked.
        resource: String,
        /// The action checked.
        action: String,
    },
    /// The member belongs to another organization.
    #[error("the member belongs to another organization")]
    Organization,
    /// The policy could not be loaded (Stytch unreachable) and never was: nothing is allowed.
    #[error("the RBAC policy is not loaded")]
    Unavailable,
}

/// Checks Stytch RBAC permissions locally, against the layer's cached policy. In the
/// extensions of every authenticated request (an axum extractor with feature `axum`), and
/// from [`StytchAuthLayer::authorizer`](crate::StytchAuthLayer::authorizer). Cheap to clone.
#[derive(Clone)]
pub struct Authorizer {
    cache: Arc<PolicyCache>,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer")
            .field("policy_age", &self.cache.age())
            .finish_non_exhaustive()
    }
}

/// A permission a handler needs, for the [`Authorized`] guard (feature `axum`):
///
/// ```
/// use tower_stytch::authz::Permission;
///
/// struct DeleteDocuments;
/// impl Permission for DeleteDocuments {
///     const RESOURCE: &'static str = "documents";
///     const ACTION: &'static str = "delete";
/// }
/// // async fn delete(Authorized(session, ..): Authorized<DeleteDocuments>) { … }
/// ```
pub trait Permission: Send + Sync + 'static {
    /// The resource (`documents`).
    const RESOURCE: &'static str;
    /// The action (`delete`).
    const ACTION: &'static str;
}

/// A guard (an axum extractor with feature `axum`): the request's member, whose roles grant
/// permission `P` by the layer's policy. Refuses with 403 otherwise (503 while the policy was
/// never loaded).
pub struct Authorized<P>(pub MemberSession, std::marker::PhantomData<P>);

impl<P> Authorized<P> {
    /// The guard over `session`, already checked.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn new(session: MemberSession) -> Self {
        Self(session, std::marker::PhantomData)
    }

    /// The member's session.
    pub fn session(&self) -> &MemberSession {
        &self.0
    }
}

impl<P> fmt::Debug for Authorized<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Authorized").field(&self.0).finish()
    }
}

/// The decision on one request with a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Allow,
    PermissionDenied,
    WrongOrganization,
    /// A step-up is needed: `max_age` when the rule's age limit was exceeded.
    StepUp {
        max_age: Option<Duration>,
    },
    Unavailable,
}

impl Decision {
    /// How many outcomes there are.
    pub(crate) const COUNT: usize = 6;
    /// Every `outcome` label, by [`index`](Self::index).
    pub(crate) const OUTCOMES: [&'static str; Self::COUNT] = [
        "allowed",
        "permission_denied",
        "wrong_organization",
        "mfa_required",
        "reauthentication_required",
        "unavailable",
    ];

    /// This outcome's place in [`OUTCOMES`](Self::OUTCOMES).
    pub(crate) fn index(self) -> usize {
        match self {
            Self::Allow => 0,
            Self::PermissionDenied => 1,
            Self::WrongOrganization => 2,
            Self::StepUp { max_age: None } => 3,
            Self::StepUp { max_age: Some(_) } => 4,
            Self::Unavailable => 5,
        }
    }

    /// The `outcome` label of the decision metric.
    pub(crate) fn as_str(self) -> &'static str {
        Self::OUTCOMES[self.index()]
    }

    #[cfg(test)]
    fn all() -> [Self; Self::COUNT] {
        [
            Self::Allow,
            Self::PermissionDenied,
            Self::WrongOrganization,
            Self::StepUp { max_age: None },
            Self::StepUp {
                max_age: Some(Duration::ZERO),
            },
            Self::Unavailable,
        ]
    }
}

impl Authorizer {
    pub(crate) fn new(client: StytchClient, config: &PolicyConfig) -> Self {
        Self {
            cache: PolicyCache::new(client, config.refresh_every, config.max_organizations),
        }
    }

    /// Loads the policy now and keeps it fresh in the background (within a Tokio runtime).
    pub(crate) fn start(&self) {
        self.cache.start();
    }

    /// Whether `session`'s roles grant `action` on `resource`, as Stytch's SDKs decide: the
    /// project's policy and the member's organization's custom roles (fetched on first use).
    ///
    /// # Errors
    ///
    /// [`Denied::Permission`], or [`Denied::Unavailable`] when the policy was never loaded.
    pub async fn check(
        &self,
        session: &MemberSession,
        resource: &str,
        action: &str,
    ) -> Result<(), Denied> {
        let denied = || Denied::Permission {
            resource: resource.to_owned(),
            action: action.to_owned(),
        };
        let project = self
            .cache
            .project()
            .await
            .map_err(|_| Denied::Unavailable)?;
        let org = self
            .cache
            .organization(&session.organization_id().as_str())
            .await
            .map_err(|_| Denied::Unavailable)?;
        if policy::allows(&project, Some(&org), session.roles(), resource, action) {
            Ok(())
        } else {
            Err(denied())
        }
    }

    /// [`check`](Self::check), also requiring `organization` (an id or a slug, from the
    /// request) to be the session's.
    ///
    /// # Errors
    ///
    /// [`Denied::Organization`], or those of [`check`](Self::check).
    pub async fn check_in(
        &self,
        session: &MemberSession,
        organization: &str,
        resource: &str,
        action: &str,
    ) -> Result<(), Denied> {
        if !is_own_organization(session, organization) {
            return Err(Denied::Organization);
        }
        self.check(session, resource, action).await
    }

    /// What the policy loaded now says (`None`: not loaded; nothing is fetched). For the
    /// admin routes' pre-check, which lets Stytch decide when nothing is known here.
    pub(crate) fn allows_now(
        &self,
        session: &MemberSession,
        resource: &str,
        action: &str,
    ) -> Option<bool> {
        self.cache
            .allows_loaded(session.organization_id(), session.roles(), resource, action)
    }

    /// The decision on a request covered by `rule`, with only what is loaded (`None`: a
    /// policy must be fetched first: see [`decide`](Self::decide)).
    pub(crate) fn decide_now(
        &self,
        rule: &RouteRule,
        session: &MemberSession,
        organization: Option<&str>,
    ) -> Option<Decision> {
        let rule = &rule.rule;
        if !rule.principals.members() {
            // A machines-only route: a member session never satisfies it.
            return Some(Decision::PermissionDenied);
        }
        if let Some(organization) = organization
            && !is_own_organization(session, organization)
        {
            return Some(Decision::WrongOrganization);
        }
        if let Some((resource, action)) = &rule.permission
            && !self.allows_now(session, resource, action)?
        {
            return Some(Decision::PermissionDenied);
        }
        Some(step_up(rule, session))
    }

    /// The decision on a request covered by `rule`, fetching what it needs.
    pub(crate) async fn decide(
        &self,
        rule: &RouteRule,
        session: &MemberSession,
        organization: Option<&str>,
    ) -> Decision {
        if rule.rule.permission.is_some()
            && (self.cache.project().await.is_err()
                || self
                    .cache
                    .organization(&session.organization_id().as_str())
                    .await
                    .is_err())
        {
            return Decision::Unavailable;
        }
        self.decide_now(rule, session, organization)
            .unwrap_or(Decision::Unavailable)
    }
}

impl Authorizer {
    /// The decision on a machine's request covered by `rule` (its scopes against the rule's
    /// permission; nothing to fetch).
    pub(crate) fn decide_machine(
        &self,
        rule: &RouteRule,
        machine: &crate::MachineClient,
    ) -> Decision {
        match &rule.rule.permission {
            Some((resource, action)) if scopes_grant(&machine.scopes, resource, action) => {
                Decision::Allow
            }
            _ => Decision::PermissionDenied,
        }
    }
}

/// Whether `organization` (an id or a slug) is `session`'s.
fn is_own_organization(session: &MemberSession, organization: &str) -> bool {
    *session.organization_id() == *organization
        || (!session.organization_slug().is_empty() && organization == session.organization_slug())
}

/// What the rule's step-up settings say of the session.
fn step_up(rule: &Rule, session: &MemberSession) -> Decision {
    if !rule.mfa && rule.max_age.is_none() {
        return Decision::Allow;
    }
    let factors = StepUp::of(&session.authentication_factors);
    if rule.mfa && !factors.second_factor {
        return Decision::StepUp { max_age: None };
    }
    match rule.max_age {
        Some(max_age) if !factors.is_recent(max_age, SystemTime::now()) => Decision::StepUp {
            max_age: Some(max_age),
        },
        _ => Decision::Allow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_its_own_label() {
        // If this broke, two outcomes would be counted under one label (or one not at all).
        let labels: std::collections::HashSet<_> = Decision::all().map(Decision::as_str).into();
        assert_eq!(labels.len(), Decision::COUNT);
    }
}
