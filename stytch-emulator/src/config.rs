//! The emulator's constants and its start-up configuration, [`EmulatorConfig`].

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::policy::RbacPolicy;
use crate::webhooks::{RetryPolicy, WebhookEndpoint, WebhookSecret};

/// Default project id of the emulator's test project.
pub const DEFAULT_PROJECT_ID: &str = "project-test-00000000-0000-4000-8000-000000000000";
/// Default secret of the emulator's test project.
pub const DEFAULT_SECRET: &str = "secret-test-emulator-0000000000000000000000";
/// How many requests the log keeps (the oldest are dropped; counts stay exact).
pub const REQUEST_LOG_CAPACITY: usize = 10_000;
/// Largest request body accepted (bytes); larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default session length of [`Emulator::create_session`](crate::Emulator::create_session).
pub const DEFAULT_SESSION_DURATION: Duration = Duration::from_secs(60 * 60);
/// Lifetime of an M2M access token by default: one hour, as Stytch ("valid for one hour
/// after issuance", python `stytch/consumer/api/m2m.py` `token`; node `lib/b2c/m2m.ts`).
pub const DEFAULT_M2M_TOKEN_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// Header carrying the acting member's session token on a revoke (Stytch then enforces that
/// member's RBAC).
pub const MEMBER_SESSION_HEADER: &str = "x-stytch-member-session";
/// Header carrying the acting member's session JWT on a revoke.
pub const MEMBER_SESSION_JWT_HEADER: &str = "x-stytch-member-sessionjwt";

/// How to start an [`Emulator`](crate::Emulator): project id, secret, listen address and webhooks.
#[derive(Clone)]
pub struct EmulatorConfig {
    pub(crate) project_id: String,
    pub(crate) secret: String,
    pub(crate) listen: SocketAddr,
    pub(crate) webhook_endpoints: Vec<WebhookEndpoint>,
    pub(crate) webhook_secret: Option<WebhookSecret>,
    pub(crate) webhook_policy: RetryPolicy,
    pub(crate) rbac_policy: RbacPolicy,
    pub(crate) m2m_token_lifetime: Duration,
}

impl fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("project_id", &self.project_id)
            .field("listen", &self.listen)
            .field("webhook_endpoints", &self.webhook_endpoints)
            .finish_non_exhaustive()
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            project_id: DEFAULT_PROJECT_ID.to_owned(),
            secret: DEFAULT_SECRET.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            webhook_endpoints: Vec::new(),
            webhook_secret: None,
            webhook_policy: RetryPolicy::default(),
            rbac_policy: RbacPolicy::default(),
            m2m_token_lifetime: DEFAULT_M2M_TOKEN_LIFETIME,
        }
    }
}

impl EmulatorConfig {
    /// The defaults: [`DEFAULT_PROJECT_ID`], [`DEFAULT_SECRET`], `127.0.0.1:0`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the project id (`project-live-…` ids make `…-live-…` ids, like Stytch).
    #[must_use]
    pub fn project_id(mut self, id: impl Into<String>) -> Self {
        self.project_id = id.into();
        self
    }

    /// Sets the project secret.
    #[must_use]
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = secret.into();
        self
    }

    /// Sets the listen address (port 0 picks a free port).
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Adds an endpoint that webhooks are sent to (repeat for several).
    #[must_use]
    pub fn webhook_endpoint(mut self, endpoint: WebhookEndpoint) -> Self {
        self.webhook_endpoints.push(endpoint);
        self
    }

    /// Signs webhooks with this secret (by default a fresh one is generated; see
    /// [`Emulator::webhook_secret`](crate::Emulator::webhook_secret)).
    #[must_use]
    pub fn webhook_secret(mut self, secret: WebhookSecret) -> Self {
        self.webhook_secret = Some(secret);
        self
    }

    /// The delays between the attempts of one webhook delivery (default
    /// [`DEFAULT_WEBHOOK_RETRY_DELAYS`](crate::DEFAULT_WEBHOOK_RETRY_DELAYS)); the number of attempts is one more. Empty: one
    /// attempt, no retry.
    #[must_use]
    pub fn webhook_retry_delays(mut self, delays: impl IntoIterator<Item = Duration>) -> Self {
        self.webhook_policy.delays = delays.into_iter().collect();
        self
    }

    /// How long one webhook attempt may take (default [`DEFAULT_WEBHOOK_TIMEOUT`](crate::DEFAULT_WEBHOOK_TIMEOUT)).
    #[must_use]
    pub fn webhook_timeout(mut self, timeout: Duration) -> Self {
        self.webhook_policy.timeout = timeout;
        self
    }

    /// The project's RBAC policy (default: [`RbacPolicy::default`], Stytch's defaults plus
    /// the demo resource `documents` and the roles `editor` and `viewer`).
    #[must_use]
    pub fn rbac_policy(mut self, policy: RbacPolicy) -> Self {
        self.rbac_policy = policy;
        self
    }

    /// How long M2M access tokens live (default [`DEFAULT_M2M_TOKEN_LIFETIME`], one hour).
    #[must_use]
    pub fn m2m_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.m2m_token_lifetime = lifetime;
        self
    }
}
