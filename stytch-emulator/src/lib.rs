//! An emulator of Stytch's B2B sessions API and its webhooks, for tests, benches and demos:
//! in process (this library) or on its own (the `stytch-emulator` binary).
//!
//! It is an independent implementation of Stytch's wire format: it shares no types with
//! `tower-stytch`, so that a misunderstanding of Stytch's API cannot pass on both sides.
//! Stytch's official Rust SDK is the check on the emulator (`tests/it/official_sdk.rs`), so is
//! its official Python SDK's local RBAC and M2M verdicts (`tests/it/python_sdk.rs` with
//! `tests/sdk/verdict.py`), and Svix's published test vectors the check on its webhook
//! signatures.
//!
//! [`Emulator::start`] binds a loopback port and serves, over HTTP/1 and HTTP/2:
//!
//! - `POST /v1/b2b/sessions/authenticate`, `POST /v1/b2b/sessions/revoke`,
//!   `GET /v1/b2b/sessions?organization_id=…&member_id=…` (Get Sessions) and
//!   `GET /v1/b2b/sessions/jwks/{project_id}` with Stytch's field names, error JSON, RBAC
//!   rules (`stytch_member`, `stytch_admin`, custom roles) and RS256 session JWTs;
//! - `GET /v1/b2b/rbac/policy` and `GET`/`PUT /v1/b2b/rbac/organizations/{id}`: the RBAC
//!   policy ([`RbacPolicy`]) that the SDKs fetch to authorize locally, with organizations'
//!   custom roles; sessions carry [`AuthenticationFactor`]s (MFA step included);
//! - Stytch's M2M API: clients (`/v1/m2m/clients…`, secret rotation) and the OAuth token
//!   endpoint `POST /v1/public/{project_id}/oauth2/token`, whose access tokens
//!   ([`M2mAccessToken`]) verify against the same JWKS;
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
//!
//! # Inside: the module graph
//!
//! The modules form a DAG: the dispatcher uses the handlers, the handlers use the shared
//! helpers and the state, never the other way round. One line per module, with what it may
//! use (besides the leaves `types`, `config`, `faults`):
//!
//! | module | job | may use |
//! |---|---|---|
//! | `server` (+ `dispatch`, `faulty`) | accept loop, connections, per-request steps (body limit, log, faults, Basic auth), fault answers | `route`, `api`, `control`, `wire`, `shared`, `gate` |
//! | `route` | method + path → `Route` (Stytch endpoints) or control `Op` | `faults` |
//! | `api` (+ `sessions`, `revoke`, `rbac`, `m2m`) | the emulated Stytch endpoints | `wire`, `parse`, `render`, `shared`, `state`, `keys` |
//! | `control` (+ `directory`, `ops`, `webhooks`, `rbac`, `m2m`) | the control API under `/emulator/v1/` | `route` (`Op`), `wire`, `parse`, `render`, `shared`, `lifecycle`, `api::m2m` (client creation) |
//! | `emulator` (+ `rbac`, `m2m`) | the [`Emulator`] handle: starts the tasks, mirrors the control API | `shared`, `lifecycle`, `server` (to spawn it) |
//! | `parse` | request-body fields, roles, resources, scopes, factors in Stytch's names | `wire`, `policy`, `factors` |
//! | `rbac` | policy, organization-role and factor operations on `Shared` | `shared`, `policy` |
//! | `lifecycle` | members and organizations created, updated, deleted, with webhook events | `shared`, `render`, `state`, `webhooks` |
//! | `shared` | `Shared`, the state the handle and the tasks share; JWT minting (sessions, M2M) | `state`, `keys`, `gate`, `render`, `webhooks`, `m2m` |
//! | `render` | Stytch's JSON shapes and JWT claims from state snapshots | `state` |
//! | `wire` | Stytch's error JSON (`ApiError`), success bodies, the body type and parser | nothing |
//! | `state` | organizations, members, roles, sessions and the RBAC rules, behind one lock | `policy`, `factors` |
//! | `policy`, `factors` | the RBAC policy and its rule; authentication factors | nothing |
//! | `m2m` (+ `registry`) | M2M clients, secret rotation, what a token request is granted | nothing |
//! | `keys`, `gate`, `faults` | signing keys, the refused-connections gate, injected faults and counts | nothing |
//! | `webhooks` (+ `log`, `deliver`, `sign`) | Svix-signed webhook events, their log and delivery task | `types` |
//! | `config`, `types` | constants, [`EmulatorConfig`]; public plain types and [`EmulatorError`] | `webhooks` (config) |
#![forbid(unsafe_code)]

mod api;
mod config;
mod control;
mod emulator;
mod factors;
mod faults;
mod gate;
mod keys;
mod lifecycle;
mod m2m;
mod parse;
mod policy;
mod rbac;
mod render;
mod route;
mod server;
mod shared;
mod state;
mod types;
mod webhooks;
mod wire;

pub use self::config::{
    DEFAULT_M2M_TOKEN_LIFETIME, DEFAULT_PROJECT_ID, DEFAULT_SECRET, DEFAULT_SESSION_DURATION,
    EmulatorConfig, MAX_BODY_BYTES, MEMBER_SESSION_HEADER, MEMBER_SESSION_JWT_HEADER,
    REQUEST_LOG_CAPACITY,
};
pub use self::emulator::Emulator;
pub use self::factors::{AuthenticationFactor, FactorKind};
pub use self::faults::{EmulatorEndpoint, Fault};
pub use self::lifecycle::{MEMBER_STATUSES, MemberUpdate, Via};
pub use self::m2m::{ClientSecret, M2mAccessToken, M2mClient, M2mCredentials, NewM2mClient};
pub use self::policy::{
    ADMIN_ROLE, MEMBER_ROLE, RbacPermission, RbacPolicy, RbacResource, RbacRole, RbacScope,
};
pub use self::types::{EmulatorError, RecordedRequest, SessionInfo, SessionJwt, SessionToken};
pub use self::webhooks::{
    DEFAULT_WEBHOOK_RETRY_DELAYS, DEFAULT_WEBHOOK_TIMEOUT, DELIVERY_LOG_CAPACITY, DeliveryState,
    EventSource, WebhookDelivery, WebhookEndpoint, WebhookMessage, WebhookSecret,
};
