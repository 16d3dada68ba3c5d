//! Session credentials: opaque session tokens and session JWTs, with redacted `Debug`.
//!
//! A credential is never logged, never a cache key (its SHA-256 is) and never part of an
//! error message.

use std::fmt;

use sha2::{Digest, Sha256};

/// Longest credential accepted (bytes). Stytch's tokens are 44 characters and its JWTs about
/// 1–2 KiB; anything longer is rejected before Stytch is asked.
pub const MAX_CREDENTIAL_LEN: usize = 4096;

/// A cache key: SHA-256 of a credential.
pub(crate) type CacheKey = [u8; 32];

macro_rules! secret_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Cheap to clone: clones share one allocation.
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(std::sync::Arc<str>);

        impl $name {
            /// Wraps a raw value without checking it (see [`Credential::parse`] for checks).
            pub fn new(raw: impl Into<String>) -> Self {
                Self(std::sync::Arc::from(raw.into()))
            }

            /// The raw value, for sending to Stytch or setting a cookie. Never log it.
            pub fn expose_secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

secret_string!(
    /// An opaque Stytch session token (the `stytch_session` cookie). `Debug` prints `SessionToken(..)`.
    SessionToken
);
secret_string!(
    /// A Stytch session JWT (the `stytch_session_jwt` cookie). `Debug` prints `SessionJwt(..)`.
    SessionJwt
);

/// A session credential as presented by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// An opaque session token, only verifiable by Stytch.
    Token(SessionToken),
    /// A session JWT, verifiable locally against Stytch's JWKS.
    Jwt(SessionJwt),
}

/// Why a presented credential was refused before asking Stytch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// Empty value.
    #[error("the credential is empty")]
    Empty,
    /// Longer than [`MAX_CREDENTIAL_LEN`].
    #[error("the credential is too long")]
    TooLong,
    /// Characters no Stytch token or JWT has.
    #[error("the credential has invalid characters")]
    InvalidCharacters,
    /// Looks like a JWT (has dots) but is not three base64url segments.
    #[error("the credential is a malformed JWT")]
    MalformedJwt,
}

/// Byte classes of a credential: base64url, `.`, `=`, or invalid.
const INVALID: u8 = 0;
const B64: u8 = 1;
const DOT: u8 = 2;
const PAD: u8 = 3;

static CLASS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            B64
        } else if c == b'.' {
            DOT
        } else if c == b'=' {
            PAD
        } else {
            INVALID
        };
        b += 1;
    }
    table
};

impl Credential {
    /// Classifies and checks a raw credential: three non-empty base64url segments joined by
    /// dots are a JWT; a single base64url run is an opaque token; anything else is refused.
    ///
    /// # Errors
    ///
    /// A [`CredentialError`] saying what is wrong, without the value.
    pub fn parse(raw: &str) -> Result<Self, CredentialError> {
        if raw.is_empty() {
            return Err(CredentialError::Empty);
        }
        if raw.len() > MAX_CREDENTIAL_LEN {
            return Err(CredentialError::TooLong);
        }
        // One pass over the bytes (this runs on every request): classify, count dots, and
        // check that no JWT segment is empty.
        let mut dots = 0usize;
        let mut pad = false;
        let mut segment_len = 0usize;
        let mut empty_segment = false;
        for &b in raw.as_bytes() {
            match CLASS[b as usize] {
                B64 => segment_len += 1,
                DOT => {
                    empty_segment |= segment_len == 0;
                    segment_len = 0;
                    dots += 1;
                }
                PAD => pad = true,
                _ => return Err(CredentialError::InvalidCharacters),
            }
        }
        if dots > 0 {
            empty_segment |= segment_len == 0;
            if dots != 2 || empty_segment || pad {
                return Err(CredentialError::MalformedJwt);
            }
            return Ok(Self::Jwt(SessionJwt::new(raw)));
        }
        if pad {
            // Stytch's tokens are unpadded base64url.
            return Err(CredentialError::InvalidCharacters);
        }
        Ok(Self::Token(SessionToken::new(raw)))
    }

    /// The raw value. Never log it.
    pub fn expose_secret(&self) -> &str {
        match self {
            Self::Token(t) => t.expose_secret(),
            Self::Jwt(j) => j.expose_secret(),
        }
    }

    /// Whether this is a session JWT.
    pub fn is_jwt(&self) -> bool {
        matches!(self, Self::Jwt(_))
    }

    /// `"session_token"` or `"session_jwt"`: the kind, safe to log.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Token(_) => "session_token",
            Self::Jwt(_) => "session_jwt",
        }
    }

    /// SHA-256 of the raw value: the cache and denylist key.
    pub(crate) fn cache_key(&self) -> CacheKey {
        let digest = Sha256::digest(self.expose_secret().as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(&digest);
        key
    }
}

/// The credential an authenticated request carried, in its extensions, for handlers that
/// revoke acting as the caller (see [`Revoker`](crate::Revoker)). `Debug` never shows it.
#[derive(Debug, Clone)]
pub struct SessionCredential(pub(crate) Credential);

impl SessionCredential {
    /// The credential.
    pub fn credential(&self) -> &Credential {
        &self.0
    }
}

impl From<SessionToken> for Credential {
    fn from(t: SessionToken) -> Self {
        Self::Token(t)
    }
}

impl From<SessionJwt> for Credential {
    fn from(j: SessionJwt) -> Self {
        Self::Jwt(j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q";

    #[test]
    fn tells_a_jwt_from_a_token() {
        // If this broke, JWTs would be sent as tokens (or skip local verification).
        assert!(matches!(Credential::parse(TOKEN), Ok(Credential::Token(_))));
        assert!(matches!(
            Credential::parse("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"),
            Ok(Credential::Jwt(_))
        ));
    }

    #[test]
    fn refuses_junk_before_stytch_sees_it() {
        // If this broke, junk would be forwarded to Stytch and burn its rate limit.
        assert_eq!(Credential::parse(""), Err(CredentialError::Empty));
        assert_eq!(
            Credential::parse(&"a".repeat(MAX_CREDENTIAL_LEN + 1)),
            Err(CredentialError::TooLong)
        );
        for bad in ["a b", "tok\u{e9}n", "a;b", "a\"b", "abc=="] {
            assert_eq!(
                Credential::parse(bad),
                Err(CredentialError::InvalidCharacters),
                "{bad}"
            );
        }
        for bad in ["a.b", "a..b", ".a.b", "a.b.c.d", "a.b=.c"] {
            assert!(Credential::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_value() {
        // If this broke, a `{:?}` in a log line would leak a session.
        let c = Credential::parse(TOKEN).unwrap();
        let shown = format!("{c:?} {:?}", SessionJwt::new("a.b.c"));
        assert!(!shown.contains(TOKEN));
        assert!(!shown.contains("a.b.c"));
        assert_eq!(format!("{c:?}"), "Token(SessionToken(..))");
    }

    #[test]
    fn cache_key_is_the_sha256_of_the_value() {
        // If this broke, two different tokens could share a cache entry.
        let a = Credential::parse(TOKEN).unwrap().cache_key();
        let b = Credential::parse("other").unwrap().cache_key();
        assert_ne!(a, b);
        assert_eq!(a, Credential::parse(TOKEN).unwrap().cache_key());
        assert_ne!(&a[..], TOKEN.as_bytes().get(..32).unwrap());
    }
}
