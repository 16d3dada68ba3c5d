//! Stytch B2B session authentication, logout and forced sign-out for tower, hyper and axum.
//!
//! See the README for the full guide (usage with axum and hyper, layer ordering, caching and
//! revocation semantics, what is logged).
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
#[doc(hidden)]
pub mod __bench {
    //! Hooks for the crate's benches; not a public API.
    pub use crate::bench_support::Cache;
}
#[cfg(feature = "axum")]
mod axum;
mod bench_support;
mod body;
mod cache;
mod client;
mod config;
mod cookies;
mod credential;
mod denylist;
mod error;
mod extract;
mod future;
mod handlers;
#[cfg(feature = "jwt")]
mod jwt;
mod layer;
mod policy;
mod rejection;
mod revoke;
mod routes;
mod service;
mod session;

#[cfg(feature = "axum")]
pub use crate::axum::MissingMemberSession;
pub use crate::body::{BoxError, ResponseBody};
pub use crate::cache::CacheConfig;
#[cfg(feature = "emulator")]
pub mod emulator;

#[cfg(feature = "gateway")]
pub mod gateway;

pub use crate::client::{
    AuthenticateRequest, AuthenticateResponse, AuthorizationCheck, Jwk, Jwks,
    MEMBER_SESSION_HEADER, MEMBER_SESSION_JWT_HEADER, RetryDecision, RetryPolicy, RevokeResponse,
    RevokeSelector, StytchClient, USER_AGENT, Verdict,
};
pub use crate::config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, LIVE_BASE_URL, Secret, StytchConfig,
    StytchConfigBuilder, TEST_BASE_URL, default_base_url,
};
pub use crate::cookies::{CookieSameSite, CookieSettings};
pub use crate::credential::{
    Credential, CredentialError, MAX_CREDENTIAL_LEN, SessionJwt, SessionToken,
};
pub use crate::error::{ApiError, ConfigError, DecodeError, Endpoint, StytchError};
pub use crate::extract::{CredentialSource, DEFAULT_JWT_COOKIE, DEFAULT_TOKEN_COOKIE};
pub use crate::future::{FORCED_SIGNOUT_HEADER, ResponseFuture};
pub use crate::handlers::LOGOUT_HEADER;
#[cfg(feature = "jwt")]
pub use crate::jwt::{JwtConfig, JwtError, JwtVerifier, VerifiedJwt};
pub use crate::layer::{StytchAuthLayer, StytchAuthLayerBuilder};
pub use crate::rejection::{DefaultRejection, Rejection, RejectionHandler, RejectionKind};
pub use crate::revoke::{RevokeConfig, RevokeError, RevokeOutcome, Revoker};
pub use crate::service::{SessionCredential, StytchAuth};
pub use crate::session::MemberSession;
