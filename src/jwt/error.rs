//! [`JwtError`]: why a session JWT was not verified locally.

use crate::error::StytchError;

/// Why a session JWT was not verified locally. Never holds any part of the JWT.
///
/// [`needs_remote`](Self::needs_remote) errors may still be a live session: ask Stytch
/// (`POST /v1/b2b/sessions/authenticate`), which also mints a fresh JWT.
/// [`is_unavailable`](Self::is_unavailable) means Stytch could not be reached for its keys.
/// Every other error means the JWT is not a valid session JWT of this project.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Not a well-formed JWT (segments, base64url, JSON, claim types).
    #[error("the session JWT is malformed")]
    Malformed,
    /// The header's `alg` is not `RS256` (`none`, `HS256`, `ES256`, …).
    #[error("the session JWT's algorithm is not RS256")]
    UnsupportedAlgorithm,
    /// The header has no `kid`, or its `kid` is not in Stytch's JWKS even after a refresh.
    #[error("the session JWT's key id is unknown")]
    UnknownKey,
    /// The `kid` is not among the keys loaded, and the JWKS was fetched too recently to fetch
    /// it again (cooldown): a key Stytch rotated in moments ago, or a forged `kid`. Stytch's
    /// authenticate endpoint decides ([`needs_remote`](Self::needs_remote)), so a rotation
    /// never locks users out and forged kids never hammer the JWKS endpoint.
    #[error("the session JWT's key id is not loaded yet")]
    KeyNotLoaded,
    /// The signature does not verify with the key named by `kid`.
    #[error("the session JWT's signature is invalid")]
    InvalidSignature,
    /// `aud` does not contain this project's id.
    #[error("the session JWT is for another audience")]
    InvalidAudience,
    /// `iss` is not one of this project's issuers.
    #[error("the session JWT has an unexpected issuer")]
    InvalidIssuer,
    /// `exp` has passed (or the session it carries has expired).
    #[error("the session JWT has expired")]
    Expired,
    /// `nbf` or `iat` is further in the future than the
    /// [clock skew](crate::jwt::JwtConfig::clock_skew): this host's clock may be behind
    /// Stytch's by more than that, so Stytch decides ([`needs_remote`](Self::needs_remote)).
    #[error("the session JWT is not valid yet")]
    NotYetValid,
    /// `iat` is at least `max_token_age` ago.
    #[error("the session JWT is older than the maximum token age")]
    TooOld,
    /// A required claim is missing: `sub`, `iss`, `aud`, `exp`, `iat`, `nbf`, or the session's
    /// id, organization or expiry.
    #[error("the session JWT lacks a required claim")]
    MissingClaims,
    /// Stytch's JWKS could not be fetched.
    #[error("stytch's JWKS could not be fetched")]
    Jwks(#[source] StytchError),
}

impl JwtError {
    /// Stytch must decide: the JWT is authentic but expired or too old (Stytch may still
    /// accept its session), not yet valid by this host's clock (which may be behind
    /// Stytch's), signed with a key we could not load yet, or Stytch's keys could not be
    /// fetched ([`is_unavailable`](Self::is_unavailable)): Stytch's authenticate answers
    /// for it, so a JWKS blip costs a round trip, not a 503 for the fetch cooldown (and when
    /// Stytch is down altogether, authenticate fails too: 503).
    pub fn needs_remote(&self) -> bool {
        matches!(
            self,
            Self::Expired | Self::TooOld | Self::NotYetValid | Self::KeyNotLoaded | Self::Jwks(_)
        )
    }

    /// Stytch could not be reached for its keys: neither accept nor reject the user here.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Jwks(_))
    }

    /// A short stable name, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::KeyNotLoaded => "key_not_loaded",
            Self::InvalidSignature => "invalid_signature",
            Self::InvalidAudience => "invalid_audience",
            Self::InvalidIssuer => "invalid_issuer",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::TooOld => "too_old",
            Self::MissingClaims => "missing_claims",
            Self::Jwks(_) => "jwks_unavailable",
        }
    }
}
