//! Stytch B2B session authentication, logout and forced sign-out for tower, hyper and axum.
//!
//! See the README for the full guide (usage with axum and hyper, layer ordering, caching and
//! revocation semantics, what is logged).
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod config;
mod credential;
mod error;
#[cfg(feature = "jwt")]
mod jwt;
mod session;

pub use crate::client::{
    AuthenticateRequest, AuthenticateResponse, AuthorizationCheck, Jwk, Jwks,
    MEMBER_SESSION_HEADER, MEMBER_SESSION_JWT_HEADER, RetryDecision, RetryPolicy, RevokeResponse,
    RevokeSelector, StytchClient, USER_AGENT, Verdict,
};
pub use crate::config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, LIVE_BASE_URL, Secret, StytchConfig,
    StytchConfigBuilder, TEST_BASE_URL, default_base_url,
};
pub use crate::credential::{
    Credential, CredentialError, MAX_CREDENTIAL_LEN, SessionJwt, SessionToken,
};
pub use crate::error::{ApiError, ConfigError, DecodeError, Endpoint, StytchError};
#[cfg(feature = "jwt")]
pub use crate::jwt::{JwtConfig, JwtError, JwtVerifier, VerifiedJwt};
pub use crate::session::MemberSession;
