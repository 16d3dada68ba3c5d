//! An emulator of Stytch's B2B sessions API and its webhooks, for tests, benches and demos:
//! in process (this library) or on its own (the `stytch-emulator` binary).
//!
//! It is an independent implementation of Stytch's wire format: it shares no types with
//! `tower-stytch`, so that a misunderstanding of Stytch's API cannot pass on both sides.
//! Stytch's official Rust SDK is the check on the emulator (`tests/it/official_sdk.rs`), and
//! Svix's published test vectors the check on its webhook signatures.
//!
//! [`Emulator::start`] binds a loopback port and serves, over HTTP/1 and HTTP/2:
//!
//! - `POST /v1/b2b/sessions/authenticate`, `POST /v1/b2b/sessions/revoke`,
//!   `GET /v1/b2b/sessions?organization_id=…&member_id=…` (Get Sessions) and
//!   `GET /v1/b2b/sessions/jwks/{project_id}` with Stytch's field names, error JSON, RBAC
//!   rules (`stytch_member`, `stytch_admin`, custom roles) and RS256 session JWTs;
//! - a control API under `/emulator/v1/` (same Basic auth) mirroring the Rust methods of
//!   [`Emulator`]: organizations, members (create, update, delete), roles, sessions, request
//!   log, faults, key rotation, clock offset and webhooks (see the crate's README for the
//!   routes).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use stytch_emulator::{Emulator, EmulatorConfig};
//!
//! let emulator = Emulator::start(EmulatorConfig::new()).await?;
//! let org = emulator.create_organization("Acme", "acme");
//! let member = emulator.create_member(&org, "ada@acme.test", &["stytch_admin"]);
//! let session = emulator.create_session(&member);
//! // Point any Stytch client at it: project id, secret and base URL.
//! let (project_id, secret, base_url) =
//!     (emulator.project_id(), emulator.secret(), emulator.base_url());
//! # let _ = (session, project_id, secret, base_url);
//! # Ok(()) }
//! ```
//!
//! # Members over their lifetime, and webhooks
//!
//! [`Emulator::update_member`], [`Emulator::delete_member`] and
//! [`Emulator::delete_organization`] change the directory as Stytch does (a deleted member's
//! sessions end at once), and every create, update and delete is sent as a Stytch webhook
//! event, Svix-signed, to the endpoints configured with [`EmulatorConfig::webhook_endpoint`]
//! (or later). [`Emulator::via`] picks the event's `source` (`DASHBOARD`, `SCIM`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use stytch_emulator::{Emulator, EmulatorConfig, EventSource, MemberUpdate, WebhookEndpoint};
//!
//! let hook = WebhookEndpoint::new("http://127.0.0.1:8080/stytch/webhooks")?;
//! let emulator = Emulator::start(EmulatorConfig::new().webhook_endpoint(hook)).await?;
//! // Configure the receiver with this secret.
//! let secret = emulator.webhook_secret();
//! let org = emulator.create_organization("Acme", "acme");
//! let ada = emulator.create_member(&org, "ada@acme.test", &["stytch_admin"]);
//! emulator.via(EventSource::Dashboard).update_member(&ada, MemberUpdate::new().roles(&[]))?;
//! emulator.via(EventSource::Scim).delete_member(&ada)?;
//! # let _ = secret;
//! # Ok(()) }
//! ```
//!
//! Each event is one Svix message, delivered in the background to every endpoint subscribed
//! to its type:
//!
//! - the body is Stytch's event JSON: `project_id`, `event_id`, `action`
//!   (`CREATE`|`UPDATE`|`DELETE`), `object_type`, `source`, `id`, `timestamp` (RFC 3339),
//!   `vertical: "B2B"`, and for CREATE and UPDATE the object under `member` or `organization`;
//! - the headers are `svix-id` (the message id, the same on every attempt and redelivery),
//!   `svix-timestamp` (wall-clock seconds of the attempt) and `svix-signature`
//!   (`v1,<base64 HMAC-SHA256>` with the key inside [`Emulator::webhook_secret`]), signed
//!   afresh for each attempt;
//! - the event type, `{source}.{object_type}.{action}` in lower case (`scim.member.delete`),
//!   travels out of band as at Svix: Stytch's body has no `type` and Svix sends no type
//!   header. It selects the endpoints ([`WebhookEndpoint::event_types`]) and is listed in
//!   [`WebhookDelivery::event_type`]; receivers key on `source`, `object_type` and `action`.
//!
//! A non-2xx answer (redirects are not followed) or a timeout is retried after each of
//! [`DEFAULT_WEBHOOK_RETRY_DELAYS`] (Svix's schedule, scaled down; configurable), then the
//! delivery is failed. [`Emulator::webhook_deliveries`] lists them,
//! [`Emulator::redeliver_webhook`] sends a message again, and [`Emulator::send_webhook`]
//! sends any [`WebhookMessage`], also signed with a wrong secret or a stale timestamp.
//!
//! # Faults
//!
//! [`Emulator::inject_fault`] makes the next calls of an endpoint misbehave: latency, an
//! error status, a clean close, a TCP reset, a malformed, truncated or trickling body, a hang,
//! or refused connections. [`Fault`] lists what a client observes for each.
//!
//! The emulator never logs credentials, the project secret or the webhook secret: at most
//! method, path and status, at `debug` level.
#![forbid(unsafe_code)]

mod api;
mod control;
mod faults;
mod gate;
mod keys;
mod lifecycle;
mod server;
mod state;
mod webhooks;

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use self::faults::Faults;
pub use self::faults::{EmulatorEndpoint, Fault};
use self::gate::Gate;
use self::keys::KeyRing;
pub use self::lifecycle::{MEMBER_STATUSES, MemberUpdate, Via};
use self::state::State;
pub use self::webhooks::{
    DEFAULT_WEBHOOK_RETRY_DELAYS, DEFAULT_WEBHOOK_TIMEOUT, DELIVERY_LOG_CAPACITY, DeliveryState,
    EventSource, WebhookDelivery, WebhookEndpoint, WebhookMessage, WebhookSecret,
};
use self::webhooks::{RetryPolicy, Webhooks};

/// Default project id of the emulator's test project.
pub const DEFAULT_PROJECT_ID: &str = "project-test-00000000-0000-4000-8000-000000000000";
/// Default secret of the emulator's test project.
pub const DEFAULT_SECRET: &str = "secret-test-emulator-0000000000000000000000";
/// How many requests the log keeps (the oldest are dropped; counts stay exact).
pub const REQUEST_LOG_CAPACITY: usize = 10_000;
/// Largest request body accepted (bytes); larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default session length of [`Emulator::create_session`].
pub const DEFAULT_SESSION_DURATION: Duration = Duration::from_secs(60 * 60);
/// Header carrying the acting member's session token on a revoke (Stytch then enforces that
/// member's RBAC).
pub const MEMBER_SESSION_HEADER: &str = "x-stytch-member-session";
/// Header carrying the acting member's session JWT on a revoke.
pub const MEMBER_SESSION_JWT_HEADER: &str = "x-stytch-member-sessionjwt";

macro_rules! secret_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// The raw value, to send as a credential. Never log it.
            pub fn expose_secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

secret_string!(
    /// An opaque session token minted by the emulator. `Debug` prints `SessionToken(..)`.
    SessionToken
);
secret_string!(
    /// A session JWT minted by the emulator. `Debug` prints `SessionJwt(..)`.
    SessionJwt
);

/// Why an emulator operation was refused. Messages never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// No organization has this id.
    #[error("unknown organization")]
    UnknownOrganization,
    /// No member has this id.
    #[error("unknown member")]
    UnknownMember,
    /// A member status other than those in [`MEMBER_STATUSES`].
    #[error("invalid member status: one of active, invited, pending, deleted")]
    InvalidStatus,
    /// A webhook secret that is not `whsec_` followed by standard base64.
    #[error("invalid webhook secret: expected whsec_ followed by base64")]
    InvalidWebhookSecret,
    /// A webhook URL that is not an absolute `http` or `https` URL.
    #[error("invalid webhook URL: expected an absolute http or https URL")]
    InvalidWebhookUrl,
    /// No message with this id in the delivery log.
    #[error("unknown webhook message")]
    UnknownMessage,
}

/// How to start an [`Emulator`]: project id, secret, listen address and webhooks.
#[derive(Clone)]
pub struct EmulatorConfig {
    project_id: String,
    secret: String,
    listen: SocketAddr,
    webhook_endpoints: Vec<WebhookEndpoint>,
    webhook_secret: Option<WebhookSecret>,
    webhook_policy: RetryPolicy,
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
    /// [`Emulator::webhook_secret`]).
    #[must_use]
    pub fn webhook_secret(mut self, secret: WebhookSecret) -> Self {
        self.webhook_secret = Some(secret);
        self
    }

    /// The delays between the attempts of one webhook delivery (default
    /// [`DEFAULT_WEBHOOK_RETRY_DELAYS`]); the number of attempts is one more. Empty: one
    /// attempt, no retry.
    #[must_use]
    pub fn webhook_retry_delays(mut self, delays: impl IntoIterator<Item = Duration>) -> Self {
        self.webhook_policy.delays = delays.into_iter().collect();
        self
    }

    /// How long one webhook attempt may take (default [`DEFAULT_WEBHOOK_TIMEOUT`]).
    #[must_use]
    pub fn webhook_timeout(mut self, timeout: Duration) -> Self {
        self.webhook_policy.timeout = timeout;
        self
    }
}

/// A session created through the control API, with its credentials.
///
/// `Debug` does not show the token or JWT.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The session's member.
    pub member_id: String,
    /// The member's organization.
    pub organization_id: String,
    /// The session id.
    pub member_session_id: String,
    /// The opaque session token.
    pub session_token: SessionToken,
    /// A session JWT, valid for 5 minutes.
    pub session_jwt: SessionJwt,
}

/// One request the emulated Stytch API received (control API calls are not recorded).
///
/// `Debug` shows method, path, header names and body field names only; credential headers
/// are marked sensitive.
#[derive(Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: http::Method,
    /// Path, without query.
    pub path: String,
    /// Headers as received.
    pub headers: http::HeaderMap,
    /// The body parsed as JSON; `Null` when empty or not JSON.
    pub body: Value,
}

impl fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.keys().map(http::HeaderName::as_str).collect();
        let fields: Vec<&str> = self
            .body
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        f.debug_struct("RecordedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &headers)
            .field("body_fields", &fields)
            .finish()
    }
}

/// State shared by the handle and the server tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) project_id: String,
    secret: String,
    /// `test` or `live`, used in ids.
    pub(crate) env: &'static str,
    state: Mutex<State>,
    pub(crate) keys: KeyRing,
    pub(crate) faults: Faults,
    pub(crate) gate: Gate,
    log: Mutex<VecDeque<RecordedRequest>>,
    clock_offset: AtomicI64,
    pub(crate) webhooks: Webhooks,
}

impl Shared {
    /// The shared state, and the queue of webhook deliveries for [`webhooks::run`].
    fn new(config: EmulatorConfig) -> (Self, tokio::sync::mpsc::UnboundedReceiver<webhooks::Job>) {
        let env = if config.project_id.starts_with("project-live-") {
            "live"
        } else {
            "test"
        };
        let (webhooks, queue) = Webhooks::new(
            config
                .webhook_secret
                .unwrap_or_else(WebhookSecret::generate),
            config.webhook_endpoints,
            config.webhook_policy,
        );
        let shared = Self {
            project_id: config.project_id,
            secret: config.secret,
            env,
            state: Mutex::new(State::default()),
            keys: KeyRing::new(env),
            faults: Faults::default(),
            gate: Gate::default(),
            log: Mutex::new(VecDeque::new()),
            clock_offset: AtomicI64::new(0),
            webhooks,
        };
        (shared, queue)
    }

    /// Emulator time, unix seconds.
    pub(crate) fn now(&self) -> i64 {
        state::now_with_offset(self.clock_offset.load(Ordering::Relaxed))
    }

    pub(crate) fn new_id(&self, kind: &str) -> String {
        format!("{kind}-{}-{}", self.env, uuid::Uuid::new_v4())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `user:password` of a Basic `Authorization` value are the project's.
    pub(crate) fn basic_auth_ok(&self, header: &http::HeaderValue) -> bool {
        use base64::Engine as _;
        let Ok(value) = header.to_str() else {
            return false;
        };
        let Some((scheme, encoded)) = value.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(decoded) = std::str::from_utf8(&decoded) else {
            return false;
        };
        decoded.split_once(':') == Some((self.project_id.as_str(), self.secret.as_str()))
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if log.len() >= REQUEST_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(request);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        let log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.iter().cloned().collect()
    }

    pub(crate) fn clear_requests(&self) {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Queues a fault, or, for [`Fault::Refused`], closes the listener at once.
    pub(crate) fn inject_fault(&self, endpoint: EmulatorEndpoint, fault: Fault, times: usize) {
        match fault {
            Fault::Refused { duration } => self.gate.refuse(duration),
            fault => self.faults.inject(endpoint, fault, times),
        }
    }

    /// Drops queued faults and accepts connections again.
    pub(crate) fn clear_faults(&self) {
        self.faults.clear();
        self.gate.open();
    }

    pub(crate) fn set_clock_offset(&self, seconds: i64) {
        self.clock_offset.store(seconds, Ordering::Relaxed);
    }

    /// Defines (or replaces) a custom role; `false` when the organization is unknown.
    pub(crate) fn create_role(
        &self,
        organization_id: &str,
        role_id: &str,
        permissions: Vec<(String, Vec<String>)>,
    ) -> bool {
        let mut st = self.lock();
        if !st.organizations.contains_key(organization_id) {
            return false;
        }
        st.roles.insert(
            (organization_id.to_owned(), role_id.to_owned()),
            permissions,
        );
        true
    }

    /// Creates a session; `None` when the member is unknown.
    pub(crate) fn create_session(
        &self,
        member_id: &str,
        duration_secs: i64,
        custom_claims: Map<String, Value>,
    ) -> Option<SessionInfo> {
        let now = self.now();
        let id = self.new_id("session");
        let claims = api::without_reserved_claims(custom_claims);
        let view = self
            .lock()
            .create_session(id, member_id, now, duration_secs, claims)?;
        let jwt = api::mint(self, &view, now);
        Some(SessionInfo {
            member_id: view.member.id.clone(),
            organization_id: view.organization.id.clone(),
            member_session_id: view.session.id.clone(),
            session_token: SessionToken(view.session.token.clone()),
            session_jwt: SessionJwt(jwt),
        })
    }

    pub(crate) fn mint_jwt(&self, member_session_id: &str) -> Option<String> {
        let now = self.now();
        let view = {
            let st = self.lock();
            st.live_session(member_session_id, now)?;
            st.view(member_session_id)?
        };
        Some(api::mint(self, &view, now))
    }

    pub(crate) fn is_session_live(&self, member_session_id: &str) -> bool {
        let now = self.now();
        self.lock().live_session(member_session_id, now).is_some()
    }
}

/// A running emulator. Dropping it (or [`shutdown`](Self::shutdown)) stops the server.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    webhook_task: JoinHandle<()>,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("project_id", &self.shared.project_id)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn owned_permissions(permissions: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    permissions
        .iter()
        .map(|(r, actions)| {
            (
                (*r).to_owned(),
                actions.iter().map(|a| (*a).to_owned()).collect(),
            )
        })
        .collect()
}

impl Emulator {
    /// Binds the configured address and starts serving on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let (shared, deliveries) = Shared::new(config);
        let shared = Arc::new(shared);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server::serve(listener, shared.clone(), stopped));
        let webhook_task = tokio::spawn(webhooks::run(shared.clone(), deliveries));
        Ok(Emulator {
            shared,
            addr,
            stop: Some(stop),
            task: Some(task),
            webhook_task,
        })
    }

    /// The base URL to point clients at, e.g. `http://127.0.0.1:4010/`.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The project id.
    pub fn project_id(&self) -> &str {
        &self.shared.project_id
    }

    /// The project secret.
    pub fn secret(&self) -> &str {
        &self.shared.secret
    }

    /// Lifecycle operations whose webhook events carry `source` (`DASHBOARD`, `SCIM`): the
    /// methods of [`Emulator`] itself send `DIRECT` events.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// # use stytch_emulator::{Emulator, EmulatorConfig, EventSource};
    /// # let emulator = Emulator::start(EmulatorConfig::new()).await?;
    /// # let org = emulator.create_organization("Acme", "acme");
    /// # let member = emulator.create_member(&org, "ada@acme.test", &[]);
    /// // The customer's IdP deprovisions Ada: sends `scim.member.delete`.
    /// emulator.via(EventSource::Scim).delete_member(&member).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn via(&self, source: EventSource) -> Via<'_> {
        Via {
            shared: &self.shared,
            source,
        }
    }

    /// Creates an organization and returns its `organization_id` (sends
    /// `direct.organization.create`).
    pub fn create_organization(&self, name: &str, slug: &str) -> String {
        self.via(EventSource::Direct)
            .create_organization(name, slug)
    }

    /// Defines (or replaces) a custom role of an organization: `(resource_id, actions)` pairs,
    /// where the action `*` means all.
    ///
    /// # Panics
    ///
    /// If the organization does not exist.
    pub fn create_role(
        &self,
        organization_id: &str,
        role_id: &str,
        permissions: &[(&str, &[&str])],
    ) {
        assert!(
            self.shared
                .create_role(organization_id, role_id, owned_permissions(permissions)),
            "unknown organization {organization_id}"
        );
    }

    /// Adds a member with these assigned roles (`stytch_member` is implicit) and returns its
    /// `member_id`.
    ///
    /// # Panics
    ///
    /// If the organization does not exist.
    pub fn create_member(&self, organization_id: &str, email: &str, roles: &[&str]) -> String {
        self.via(EventSource::Direct)
            .create_member(organization_id, email, roles)
            .unwrap_or_else(|_| panic!("unknown organization {organization_id}"))
    }

    /// Changes a member's roles, status or name (sends `direct.member.update`). A status
    /// other than `active` ends the member's sessions.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownMember`], [`EmulatorError::InvalidStatus`].
    pub fn update_member(
        &self,
        member_id: &str,
        update: MemberUpdate,
    ) -> Result<(), EmulatorError> {
        self.via(EventSource::Direct)
            .update_member(member_id, update)
    }

    /// Deletes a member and ends all its sessions (sends `direct.member.delete`).
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownMember`].
    pub fn delete_member(&self, member_id: &str) -> Result<(), EmulatorError> {
        self.via(EventSource::Direct).delete_member(member_id)
    }

    /// Deletes an organization with its members and their sessions (sends one
    /// `direct.organization.delete`).
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownOrganization`].
    pub fn delete_organization(&self, organization_id: &str) -> Result<(), EmulatorError> {
        self.via(EventSource::Direct)
            .delete_organization(organization_id)
    }

    /// The secret webhooks are signed with (`whsec_…`), to configure the receiver with.
    pub fn webhook_secret(&self) -> WebhookSecret {
        self.shared.webhooks.secret()
    }

    /// Signs webhooks with another secret from now on (attempts already scheduled too).
    pub fn set_webhook_secret(&self, secret: WebhookSecret) {
        self.shared.webhooks.set_secret(secret);
    }

    /// The endpoints webhooks are sent to.
    pub fn webhook_endpoints(&self) -> Vec<WebhookEndpoint> {
        self.shared.webhooks.endpoints()
    }

    /// Replaces the endpoints webhooks are sent to (later messages only).
    pub fn set_webhook_endpoints(&self, endpoints: Vec<WebhookEndpoint>) {
        self.shared.webhooks.set_endpoints(endpoints);
    }

    /// Adds an endpoint webhooks are sent to (later messages only).
    pub fn add_webhook_endpoint(&self, endpoint: WebhookEndpoint) {
        let mut endpoints = self.webhook_endpoints();
        endpoints.push(endpoint);
        self.set_webhook_endpoints(endpoints);
    }

    /// The webhook deliveries so far, one per message and endpoint, oldest first (at most
    /// [`DELIVERY_LOG_CAPACITY`]).
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.shared.webhooks.deliveries()
    }

    /// Sends message `msg_id` again to the endpoints it went to: the same `svix-id` and body,
    /// a fresh `svix-timestamp` and signature (as Svix's "resend").
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownMessage`] when it is not in the delivery log.
    pub fn redeliver_webhook(&self, msg_id: &str) -> Result<(), EmulatorError> {
        if self.shared.webhooks.redeliver(msg_id) {
            Ok(())
        } else {
            Err(EmulatorError::UnknownMessage)
        }
    }

    /// Sends an arbitrary signed message (see [`WebhookMessage`]) and returns its `svix-id`.
    pub fn send_webhook(&self, message: WebhookMessage) -> String {
        self.shared.webhooks.send(message)
    }

    /// Starts a 60-minute session for a member.
    ///
    /// # Panics
    ///
    /// If the member does not exist.
    pub fn create_session(&self, member_id: &str) -> SessionInfo {
        self.create_session_with(member_id, DEFAULT_SESSION_DURATION, Map::new())
    }

    /// Starts a session of the given length with custom claims (reserved JWT claims are
    /// dropped, as Stytch does).
    ///
    /// # Panics
    ///
    /// If the member does not exist.
    pub fn create_session_with(
        &self,
        member_id: &str,
        duration: Duration,
        custom_claims: Map<String, Value>,
    ) -> SessionInfo {
        let secs = i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
        self.shared
            .create_session(member_id, secs, custom_claims)
            .unwrap_or_else(|| panic!("unknown member {member_id}"))
    }

    /// A fresh JWT for a live session, signed with the current key, `iat` = emulator now.
    pub fn mint_jwt(&self, member_session_id: &str) -> Option<SessionJwt> {
        self.shared.mint_jwt(member_session_id).map(SessionJwt)
    }

    /// The recorded API requests, oldest first (at most [`REQUEST_LOG_CAPACITY`]).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Empties the request log (counts are kept).
    pub fn clear_requests(&self) {
        self.shared.clear_requests();
    }

    /// Requests received by an endpoint since start (exact, including faulted ones).
    pub fn request_count(&self, endpoint: EmulatorEndpoint) -> usize {
        self.shared.faults.count(endpoint)
    }

    /// Makes the next `times` calls of `endpoint` show `fault` (queued after earlier faults).
    ///
    /// [`Fault::Refused`] is the exception: it takes effect at once on every endpoint (the
    /// emulator is one port) and `endpoint` and `times` are ignored; see its documentation.
    pub fn inject_fault(&self, endpoint: EmulatorEndpoint, fault: Fault, times: usize) {
        self.shared.inject_fault(endpoint, fault, times);
    }

    /// Makes `percent` % of the calls of `endpoint` show `fault` from now on, spread evenly
    /// (at 1 %: the 100th, 200th, … call), after any queued faults; 0 stops it, and so does
    /// [`clear_faults`](Self::clear_faults). For load runs ("1 % of Stytch calls fail").
    /// [`Fault::Refused`] is not a per-call fault: it is ignored here.
    pub fn inject_fault_rate(&self, endpoint: EmulatorEndpoint, fault: Fault, percent: f64) {
        if !matches!(fault, Fault::Refused { .. }) {
            self.shared.faults.set_rate(endpoint, fault, percent);
        }
    }

    /// Faults shown so far on calls of `endpoint`, queued and rated (refusals, which never
    /// reach an endpoint, are not counted).
    pub fn injected_fault_count(&self, endpoint: EmulatorEndpoint) -> usize {
        self.shared.faults.injected(endpoint)
    }

    /// Drops every queued fault and fault rate and, if connections were being refused,
    /// listens again on the same port.
    pub fn clear_faults(&self) {
        self.shared.clear_faults();
    }

    /// Closes the listening socket (connects get `ECONNREFUSED`) for `duration`, or until
    /// [`accept_connections`](Self::accept_connections) when `None`: the same as injecting
    /// [`Fault::Refused`].
    pub fn refuse_connections(&self, duration: Option<Duration>) {
        self.shared.gate.refuse(duration);
    }

    /// Listens again on the same port after [`refuse_connections`](Self::refuse_connections).
    /// Queued faults are kept.
    pub fn accept_connections(&self) {
        self.shared.gate.open();
    }

    /// Whether connections are being refused at the moment.
    pub fn is_refusing_connections(&self) -> bool {
        self.shared.gate.is_refusing()
    }

    /// Generates a new signing key and returns its kid; the old keys stay in the JWKS.
    pub fn rotate_key(&self) -> String {
        self.shared.keys.rotate()
    }

    /// Shifts the emulator's clock by `seconds` (negative: into the past) from wall time.
    pub fn set_clock_offset(&self, seconds: i64) {
        self.shared.set_clock_offset(seconds);
    }

    /// Whether a session exists and has not expired (by the emulator's clock).
    pub fn is_session_live(&self, member_session_id: &str) -> bool {
        self.shared.is_session_live(member_session_id)
    }

    /// Stops accepting connections, closes the open ones and waits for the server task.
    /// Webhook deliveries still pending are dropped.
    pub async fn shutdown(mut self) {
        self.webhook_task.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.webhook_task.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_log_is_bounded_and_keeps_the_newest() {
        // If this failed, a long benchmark against the emulator would grow memory without bound.
        let (shared, _) = Shared::new(EmulatorConfig::new());
        for i in 0..REQUEST_LOG_CAPACITY + 5 {
            shared.record(RecordedRequest {
                method: http::Method::GET,
                path: format!("/{i}"),
                headers: http::HeaderMap::new(),
                body: Value::Null,
            });
        }
        let log = shared.requests();
        assert_eq!(log.len(), REQUEST_LOG_CAPACITY);
        assert_eq!(log[0].path, "/5");
    }

    #[test]
    fn basic_auth_needs_this_projects_id_and_secret() {
        // If this failed, the emulator would accept wrong secrets or refuse right ones.
        use base64::Engine as _;
        let (shared, _) = Shared::new(EmulatorConfig::new().project_id("p").secret("s"));
        let header = |raw: &str| {
            http::HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            ))
            .unwrap()
        };
        assert!(shared.basic_auth_ok(&header("p:s")));
        assert!(!shared.basic_auth_ok(&header("p:x")));
        assert!(!shared.basic_auth_ok(&header("q:s")));
        assert!(!shared.basic_auth_ok(&http::HeaderValue::from_static("Bearer p:s")));
    }
}
