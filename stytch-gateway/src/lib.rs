//! `stytch-gateway`: an authenticating reverse proxy for Stytch B2B sessions, built on
//! [`tower_stytch::StytchAuthLayer`], with health and metrics endpoints, graceful shutdown,
//! and the `emulator` / `demo` commands.
//!
//! The binary (`src/main.rs`) calls [`main`]. The library exposes only what an embedder
//! needs to run the proxy in-process: [`Gateway`] built from [`ServeOptions`], and how it
//! ended ([`ShutdownReport`], [`Drain`], [`GatewayError`]). Every other module is private
//! to this crate; its in-process tests live in `src/tests.rs`.
//!
//! The service stack, outermost first: `health` (`/healthz`, `/readyz`, before auth) →
//! `auth_only` (the auth-only endpoint's refusals without a body) → `StytchAuth` (logout,
//! admin revoke, forced sign-out hooks, public routes, authentication) → `app` (auth-only endpoint, else `proxy`), served by `server` (hyper-util
//! auto HTTP/1 + HTTP/2, graceful shutdown). `cli` parses the command line, `demo` runs the
//! emulator, the echo `upstream` and the gateway together, `metrics` serves Prometheus,
//! `identity` owns the headers the upstream receives, `credentials` what of the client's
//! credentials it receives, and `forwarded` the forwarding headers and trusted proxies.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod app;
mod auth_only;
mod body;
mod cli;
mod credentials;
#[cfg(feature = "demo")]
mod demo;
mod error;
mod forwarded;
mod health;
mod identity;
mod live;
mod metrics;
mod options;
mod proxy;
mod serve;
mod server;
mod service;
mod tls;
mod upgrade;

#[cfg(test)]
mod tests;

pub use self::cli::main;
pub use self::error::GatewayError;
pub use self::options::ServeOptions;
pub use self::serve::{Gateway, ShutdownReport};
pub use self::server::Drain;
