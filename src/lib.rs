//! Stytch B2B session authentication, logout and forced sign-out for tower, hyper and axum.
//!
//! [`StytchAuthLayer`] sits in front of any `Service<http::Request<B>>`. On every request it
//! takes the Stytch session credential from the headers (`Authorization: Bearer`, cookies
//! `stytch_session_jwt` / `stytch_session`), authenticates it through a local cache (a session
//! JWT locally against Stytch's JWKS, an opaque token with `POST
//! /v1/b2b/sessions/authenticate`), and hands the [`MemberSession`] to the inner service in
//! the request's extensions. It serves `POST /logout`, `POST /logout/everywhere` and admin
//! revocation routes itself, and forces members out after the app's own admin actions.
//!
//! # axum
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tower_stytch::{MemberSession, StytchAuthLayer, StytchClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = StytchAuthLayer::builder(StytchClient::from_env()?)
//!     .public_prefix("/assets/")
//!     .forced_signout("DELETE /api/members/{member_id}")
//!     .build()?;
//! let app: Router = Router::new()
//!     // With feature `axum`, `MemberSession` is an extractor.
//!     .route("/whoami", get(|s: MemberSession| async move { s.member_id.to_string() }))
//!     .layer(auth);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # tower / hyper
//!
//! ```no_run
//! use std::convert::Infallible;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_stytch::{MemberSession, StytchAuthLayer, StytchClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = StytchAuthLayer::builder(StytchClient::from_env()?).build()?;
//! let svc = ServiceBuilder::new()
//!     .layer(auth)
//!     .service_fn(|req: http::Request<String>| async move {
//!         let member = req.extensions().get::<MemberSession>().map(|s| s.member_id.to_string());
//!         Ok::<_, Infallible>(http::Response::new(member.unwrap_or_default()))
//!     });
//! let res = svc
//!     .oneshot(http::Request::get("/").body(String::new())?)
//!     .await?;
//! assert_eq!(res.status(), 401); // no credential
//! # Ok(()) }
//! ```
//!
//! With hyper 1, wrap the service in `hyper_util::service::TowerToHyperService` and serve it
//! with `hyper_util::server::conn::auto::Builder` (see `examples/hyper.rs`).
//!
//! # Layer ordering
//!
//! `ServiceBuilder` runs layers top to bottom; `Router::layer` wraps what was added before
//! it, so the last `.layer` sees the request first. Keep tracing and
//! `SetSensitiveRequestHeaders` outside this layer, and anything needing the member inside.
//!
//! # Caching and revocation
//!
//! One cache per layer, **shared by every clone of the layer**, keyed by SHA-256 of the
//! credential. Concurrent misses of one credential make one Stytch call. Entries live
//! min(session expiry, [`CacheConfig::max_ttl`](config::CacheConfig::max_ttl)) for tokens and until the JWT's `exp` (or
//! `max_token_age`) for locally verified JWTs. A revocation through this crate (logout, admin
//! route, hook, [`Revoker`]) runs in a task of its own, so a dropped request never cancels
//! it. It evicts every entry of the session or member and puts it on a denylist checked by
//! every request until every JWT minted before it has expired, so even a still-valid JWT of
//! a revoked session is refused at once. It is applied here before Stytch answers only when
//! this process can verify the caller's right to it (the caller's own session, the app, or an
//! outage admin of the target's organization as known here), kept and retried while Stytch is
//! unreachable, and undone if Stytch refuses it; otherwise it waits for Stytch's confirmation.
//! Revocations made elsewhere are seen when the cache entry expires, or at once with Stytch's
//! webhooks (below). The README's "Caching and revocation semantics" has every rule.
//!
//! # Webhooks: revocations made outside the app
//!
//! With [`StytchAuthLayerBuilder::webhook`]`("/stytch/webhooks", `[`WebhookSecrets`](webhook::WebhookSecrets)`::parse(…)?)`
//! the layer answers Stytch's (Svix-signed) webhooks itself, before authentication, gated by
//! the signature alone: a member deleted or no longer `active` (dashboard, API, SCIM) is
//! signed out here at once, token and JWT; an organization deleted signs out all its members;
//! a member whose roles changed has their sessions re-validated at Stytch on their next
//! request, so the app sees the new roles. Nothing is sent to Stytch, which made the change.
//! With a revocation bus (feature `redis`) every instance applies what one instance received.
//! The README's "Revocations made outside your app" lists each event and how to enroll the
//! endpoint.
//!
//! # Live connections
//!
//! A WebSocket, server-sent-event or long-poll handler outlives the request that
//! authenticated it. [`SessionLiveness`](live::SessionLiveness) (an axum extractor with feature `axum`, or
//! [`SessionLiveness::from_extensions`](live::SessionLiveness::from_extensions)) resolves
//! [`revoked`](live::SessionLiveness::revoked) when
//! that session is revoked, whatever revoked it (logout, logout everywhere, admin route,
//! forced sign-out hook, [`Revoker`] call): every revocation is applied by the one pipeline,
//! which tells [`Revoker::events`] subscribers, and the handles are one. Nothing is registered
//! until a handler asks for a handle; the registration goes with the last handle of the
//! session. Close a WebSocket with code 4401 (the application range of RFC 6455, read as
//! "401: authenticate again"):
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # mod example {
//! use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
//! use axum::response::Response;
//! use tower_stytch::live::SessionLiveness;
//!
//! async fn live(ws: WebSocketUpgrade, liveness: SessionLiveness) -> Response {
//!     ws.on_upgrade(move |socket| serve(socket, liveness))
//! }
//!
//! async fn serve(mut socket: WebSocket, liveness: SessionLiveness) {
//!     loop {
//!         tokio::select! {
//!             () = liveness.revoked() => {
//!                 let close = CloseFrame { code: 4401, reason: "session revoked".into() };
//!                 let _ = socket.send(Message::Close(Some(close))).await;
//!                 return;
//!             }
//!             incoming = socket.recv() => match incoming {
//!                 Some(Ok(Message::Text(text))) => {
//!                     if socket.send(Message::Text(text)).await.is_err() { return; }
//!                 }
//!                 Some(Ok(Message::Close(_)) | Err(_)) | None => return,
//!                 Some(Ok(_)) => {}
//!             },
//!         }
//!     }
//! }
//! # }
//! ```
//!
//! `examples/axum_websocket.rs` runs it against the emulator.
//!
//! # What is logged
//!
//! `tracing` events with paths (no query), credential kinds, outcomes, Stytch `request_id`s
//! and member ids (debug); never a token, JWT, cookie or the project secret, at any level.
//! Metrics go through the `metrics` facade. The README lists both.
//!
//! # Where things are
//!
//! The crate root holds what an app writes: [`StytchAuthLayer`] and its builder, the
//! [`MemberSession`] and [`SessionCredential`] it hands the app (axum extractors with feature
//! `axum`), the [`Revoker`] with its [`RevokeOutcome`] and [`RevokeError`], the
//! [`StytchClient`] and its [`StytchConfig`], and the errors ([`ConfigError`],
//! [`StytchError`]). The rest, by job:
//!
//! | module | what is in it |
//! |---|---|
//! | [`config`] | every knob of the layer's builder: cache, revocation, cookies, credential sources, JWT |
//! | [`service`] | the tower types: the [`StytchAuth`](service::StytchAuth) service, its future and body, rejections and the headers the layer writes |
//! | [`session`] | what a session holds ([`MemberSessionData`](session::MemberSessionData), its authentication factors) |
//! | [`revoke`] | revocation's events, for subscribers |
//! | [`live`] | [`SessionLiveness`](live::SessionLiveness), for WebSocket, SSE and long-poll handlers |
//! | [`webhook`] | the secrets of Stytch's webhooks |
//! | `bus` | the Redis revocation bus (feature `redis`) |
//! | [`client`] | Stytch's requests and responses, the JWKS, retries |
//! | `jwt` | local JWT verification (feature `jwt`) |
//! | [`credential`], [`extract`] | credentials, and where the layer reads them ([`strip_credentials`](extract::strip_credentials) for proxies) |
//! | [`error`], [`metrics`] | every error type; every metric name |
//!
//! # Guides
//!
//! [Configuration](guide::configuration), [authorization](guide::authorization), [caching and
//! revocation](guide::caching_and_revocation), [several instances](guide::several_instances),
//! the [security model](guide::security), [the gateway](guide::gateway), [the
//! emulator](guide::emulator), [performance](guide::performance) and the
//! [architecture](guide::architecture), each in [`guide`].
//!
//! # Features
//!
//! `jwt` (default): local JWT verification. `axum`: extractors (`MemberSession`,
//! `Option<MemberSession>`, `SessionLiveness`). `redis`: the revocation bus shared by several
//! instances (`bus::RedisBus`). The Stytch emulator and the reverse proxy are packages of
//! their own: `stytch-emulator` and `stytch-gateway`.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The engine: the session store, its read side and its write side.
mod authenticator;
pub mod authz;
mod engine;
mod store;

#[cfg(feature = "axum")]
mod axum;
#[cfg(feature = "redis")]
pub mod bus;
pub mod client;
mod cookies;
pub mod credential;
pub mod error;
pub mod extract;
#[cfg(feature = "jwt")]
pub mod jwt;
pub mod live;
mod machine;
pub mod metrics;
mod middleware;
mod request;
pub mod revoke;
mod routing;
pub mod session;
pub mod webhook;

// What an app writes.
pub use crate::authz::Authorizer;
#[cfg(feature = "axum")]
pub use crate::axum::{
    AuthorizationRejection, MissingMachineClient, MissingMemberSession, MissingSessionLiveness,
};
pub use crate::client::{StytchClient, StytchConfig};
pub use crate::credential::SessionCredential;
pub use crate::error::{ConfigError, StytchError};
pub use crate::machine::{MachineClient, MachineClientData};
pub use crate::middleware::{StytchAuthLayer, StytchAuthLayerBuilder};
pub use crate::revoke::{RevokeError, RevokeOutcome, Revoker};
pub use crate::session::MemberSession;

/// Every knob of [`StytchAuthLayerBuilder`]: what the layer caches and for how long, how it
/// revokes, the cookies it writes, where it reads credentials, how it verifies JWTs.
pub mod config {
    pub use crate::authz::{PolicyConfig, Principals, Rule};
    pub use crate::cookies::{CookieSameSite, CookieSettings};
    pub use crate::extract::CredentialSource;
    #[cfg(feature = "jwt")]
    pub use crate::jwt::{JwtConfig, JwtConfigBuilder};
    pub use crate::revoke::RevokeConfig;
    pub use crate::store::cache::CacheConfig;
}

/// The tower types of the layer: the [`StytchAuth`](service::StytchAuth) service that
/// [`StytchAuthLayer`] builds, its [`ResponseFuture`](service::ResponseFuture) and
/// [`ResponseBody`](service::ResponseBody), the [`Rejection`](service::Rejection)s it answers
/// with (and a [`RejectionHandler`](service::RejectionHandler) to answer them your way), and
/// the headers it writes on its own routes.
pub mod service {
    pub use crate::middleware::{
        BoxError, DefaultRejection, FORCED_SIGNOUT_HEADER, LOGOUT_HEADER, Rejection,
        RejectionHandler, RejectionKind, ResponseBody, ResponseFuture, StytchAuth,
    };
}

/// The guides of the repository's `docs/` folder, here so that they are read beside the API
/// and their Rust examples are compiled (and run where they can) as doctests.
pub mod guide {
    #[doc = include_str!("../docs/configuration.md")]
    pub mod configuration {}
    #[doc = include_str!("../docs/authorization.md")]
    pub mod authorization {}
    #[doc = include_str!("../docs/caching-and-revocation.md")]
    pub mod caching_and_revocation {}
    #[doc = include_str!("../docs/several-instances.md")]
    pub mod several_instances {}
    #[doc = include_str!("../docs/security.md")]
    pub mod security {}
    #[doc = include_str!("../docs/gateway.md")]
    pub mod gateway {}
    #[doc = include_str!("../docs/emulator.md")]
    pub mod emulator {}
    #[doc = include_str!("../docs/performance.md")]
    pub mod performance {}
    #[doc = include_str!("../docs/architecture.md")]
    pub mod architecture {}
}

/// The README's examples, compiled as doctests.
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
