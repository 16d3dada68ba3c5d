//! The library's integration tests, in one test binary (one link, shared helpers compiled
//! once): the client's wire form, then the layer, revocation and local JWT verification
//! against the Stytch emulator over loopback.
//!
//! If these fail, an app behind `StytchAuthLayer` sees it: requests authenticated wrongly (or
//! not at all), sessions that survive a logout or an admin's revocation, or calls to Stytch
//! that Stytch would refuse. Each test says which behaviour it protects.
//!
//! The TRACE-capturing secrets test installs a global subscriber, so it has a binary of its
//! own (`tests/secrets.rs`), sharing `support.rs`.

#[cfg(all(feature = "axum", feature = "jwt"))]
mod authz;
#[cfg(all(feature = "axum", feature = "jwt", feature = "redis"))]
mod bus;
#[cfg(all(feature = "axum", feature = "jwt", feature = "redis"))]
mod bus_failover;
#[cfg(all(feature = "axum", feature = "jwt", feature = "redis"))]
mod bus_webhooks;
mod client;
#[cfg(feature = "axum")]
mod csrf;
#[cfg(feature = "axum")]
mod edge;
#[cfg(feature = "axum")]
mod fail_fast;
#[cfg(all(feature = "axum", feature = "jwt"))]
mod fault_matrix;
#[cfg(all(feature = "axum", feature = "jwt"))]
mod jwt;
#[cfg(feature = "axum")]
mod layer;
#[cfg(feature = "axum")]
mod live;
#[cfg(all(feature = "axum", feature = "jwt"))]
mod machines;
#[cfg(all(feature = "axum", feature = "jwt", feature = "redis"))]
mod machines_bus;
#[cfg(feature = "axum")]
mod paths;
#[cfg(feature = "redis")]
mod redis_cluster;
#[cfg(feature = "redis")]
mod redis_proc;
#[cfg(feature = "redis")]
mod redis_sentinel;
#[cfg(feature = "redis")]
mod redis_server;
#[cfg(feature = "axum")]
mod revoke;
#[cfg(all(feature = "axum", feature = "jwt"))]
mod revoke_engine;
#[cfg(all(feature = "axum", feature = "jwt"))]
mod sdk_verdicts;
#[cfg(feature = "axum")]
mod support;
#[cfg(all(feature = "axum", feature = "jwt"))]
mod webhooks;
