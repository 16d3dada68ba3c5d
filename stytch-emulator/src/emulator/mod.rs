//! [`Emulator`]: the handle a test holds. It starts the server and the webhook task, and its
//! methods mirror the control API.
//!
//! Uses [`shared`](crate::shared) for everything it changes, and the dispatcher
//! ([`server`](crate::server)) and webhook task only to spawn them.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{DEFAULT_SESSION_DURATION, EmulatorConfig};
use crate::faults::{EmulatorEndpoint, Fault};
use crate::lifecycle::{MemberUpdate, Via};
use crate::policy::{RbacPermission, RbacRole};
use crate::shared::Shared;
use crate::types::{EmulatorError, RecordedRequest, SessionInfo, SessionJwt};
use crate::webhooks::{
    EventSource, WebhookDelivery, WebhookEndpoint, WebhookMessage, WebhookSecret,
};
use crate::{server, webhooks};

mod m2m;
mod rbac;

/// A running emulator. Dropping it (or [`shutdown`](Self::shutdown)) stops the server.
pub struct Emulator {
    pub(crate) shared: Arc<Shared>,
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

/// An organization's custom role with these `(resource_id, actions)` permissions.
fn custom_role(role_id: &str, permissions: &[(&str, &[&str])]) -> RbacRole {
    RbacRole::new(
        role_id,
        permissions
            .iter()
            .map(|(resource, actions)| RbacPermission::new(*resource, actions))
            .collect(),
    )
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
        let webhook_task = tokio::spawn(webhooks::run(shared.webhooks.clone(), deliveries));
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
                .create_role(organization_id, custom_role(role_id, permissions)),
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
    /// [`DELIVERY_LOG_CAPACITY`](crate::DELIVERY_LOG_CAPACITY)).
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
            .create_session(member_id, secs, custom_claims, Vec::new())
            .unwrap_or_else(|| panic!("unknown member {member_id}"))
    }

    /// A fresh JWT for a live session, signed with the current key, `iat` = emulator now.
    pub fn mint_jwt(&self, member_session_id: &str) -> Option<SessionJwt> {
        self.shared.mint_jwt(member_session_id).map(SessionJwt)
    }

    /// The recorded API requests, oldest first (at most [`REQUEST_LOG_CAPACITY`](crate::REQUEST_LOG_CAPACITY)).
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
