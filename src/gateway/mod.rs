//! The `stytch-gateway` building blocks: an authenticating reverse proxy around
//! [`StytchAuthLayer`](crate::StytchAuthLayer), its health and metrics endpoints, graceful
//! shutdown, and the emulator / demo commands.
//!
//! The binary `src/bin/stytch-gateway.rs` only parses the command line and calls
//! [`cli::main`]; everything here can be used and tested in-process.

pub mod app;
pub mod cli;
pub mod demo;
pub mod health;
pub mod identity;
pub mod metrics;
pub mod proxy;
pub mod serve;
pub mod server;
pub mod upstream;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};

pub use crate::body::BoxError;

/// The future of the gateway's own services: boxed, infallible.
pub type ServiceFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send>,
>;

/// The body of every response the gateway sends: the upstream's streamed body, or a short
/// body of its own.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub fn full_body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response with a short `text/plain` body.
pub fn text_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full_body(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Why the gateway could not start or run. Never holds the project secret or a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The Stytch or layer configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    /// The upstream URL cannot be used.
    #[error("invalid upstream URL {url:?}: {reason}")]
    InvalidUpstream {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A required setting is missing.
    #[error("missing setting: {setting}")]
    Missing {
        /// The setting, as its environment variable and flag.
        setting: &'static str,
    },
    /// Some other setting is invalid.
    #[error("invalid {name}: {reason}")]
    InvalidSetting {
        /// The setting (flag) name.
        name: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The metrics recorder could not be installed.
    #[error("metrics: {0}")]
    Metrics(String),
    /// Something failed while running (demo seeding, self-test transport).
    #[error("{0}")]
    Runtime(String),
}

impl GatewayError {
    /// Whether the error is a configuration problem (exit code 2) rather than a run-time
    /// failure (exit code 1).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::Config(_)
                | Self::Missing { .. }
                | Self::InvalidUpstream { .. }
                | Self::InvalidSetting { .. }
        )
    }
}

/// Binds a TCP listener, naming the address on failure.
///
/// # Errors
///
/// [`GatewayError::Bind`].
pub async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, GatewayError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { addr, source })
}
