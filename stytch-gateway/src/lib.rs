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

mod app;
mod auth_only;
mod cli;
mod credentials;
mod demo;
mod demo_app;
mod error;
mod forwarded;
mod health;
mod identity;
mod live;
mod metrics;
mod proxy;
mod serve;
mod server;
mod tls;
mod upgrade;
mod upstream;

#[cfg(test)]
mod tests;

pub use self::cli::main;
pub use self::error::GatewayError;
pub use self::serve::{Gateway, ServeOptions, ShutdownReport};
pub use self::server::Drain;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};

pub(crate) use tower_stytch::service::BoxError;

/// The future of the gateway's own services: boxed, infallible.
pub(crate) type ServiceFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send>,
>;

/// The body of every response the gateway sends: the upstream's streamed body, or a short
/// body of its own.
pub(crate) type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub(crate) fn full_body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response with a short `text/plain` body.
pub(crate) fn text_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full_body(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Binds a TCP listener, naming the address on failure.
///
/// # Errors
///
/// [`GatewayError::Bind`].
pub(crate) async fn bind(
    addr: std::net::SocketAddr,
) -> Result<tokio::net::TcpListener, GatewayError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { addr, source })
}
