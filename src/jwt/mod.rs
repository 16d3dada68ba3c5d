//! Local verification of Stytch session JWTs against the project's JWKS (feature `jwt`).
//!
//! [`JwtVerifier`] checks an `RS256` session JWT's signature, audience, issuer and time claims
//! without calling Stytch, and maps its claims to a [`MemberSession`](crate::MemberSession).
//! JWTs that are authentic but expired, older than [`JwtConfig::max_token_age`], or not yet
//! valid beyond the [`CLOCK_SKEW`] yield an error whose [`JwtError::needs_remote`] is true:
//! authenticate those with Stytch.

mod claims;
mod config;
mod error;
mod jwks;
mod verify;

pub use self::config::{CLOCK_SKEW, JwtConfig, JwtConfigBuilder};
pub use self::error::JwtError;
pub use self::verify::{JwtVerifier, VerifiedAccessToken, VerifiedJwt};

#[cfg(test)]
mod tests;
