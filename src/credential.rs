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

/// Flags of one byte of a credential: not base64url, `.` or `=`, or a dot, or a pad. A
/// credential's flags are the OR of its bytes' flags; a base64url byte has none.
const BAD: u8 = 1;
const DOT: u8 = 2;
const PAD: u8 = 4;

/// The flags of `b`, without a table or a branch, so that the OR over a whole credential
/// compiles to a vector loop (a JWT is a kilobyte, and this runs on every request).
#[inline(always)]
fn byte_flags(b: u8) -> u8 {
    // `|`, never `||`: no branch per byte.
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    let dot = b == b'.';
    let pad = b == b'=';
    let ok = letter | digit | (b == b'-') | (b == b'_') | dot | pad;
    u8::from(!ok) | (u8::from(dot) << 1) | (u8::from(pad) << 2)
}

/// The OR of the flags of every byte, 32 bytes at a time (a fixed-size inner loop the
/// compiler turns into vector instructions).
fn flags_of(bytes: &[u8]) -> u8 {
    let chunks = bytes.chunks_exact(32);
    let mut flags = chunks
        .remainder()
        .iter()
        .fold(0u8, |acc, &b| acc | byte_flags(b));
    for chunk in chunks {
        flags |= chunk.iter().fold(0u8, |acc, &b| acc | byte_flags(b));
    }
    flags
}

/// What a well-formed credential is, told from its bytes alone (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Token,
    Jwt,
}

impl Kind {
    /// Checks `raw` as [`Credential::parse`] does, without building the credential.
    pub(crate) fn of(raw: &str) -> Result<Self, CredentialError> {
        if raw.is_empty() {
            return Err(CredentialError::Empty);
        }
        if raw.len() > MAX_CREDENTIAL_LEN {
            return Err(CredentialError::TooLong);
        }
        let flags = flags_of(raw.as_bytes());
        if flags & BAD != 0 {
            return Err(CredentialError::InvalidCharacters);
        }
        if flags & DOT != 0 {
            // Three non-empty segments, no padding.
            let mut segments = raw.split('.');
            let three = matches!(
                (segments.next(), segments.next(), segments.next(), segments.next()),
                (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() && !s.is_empty()
            );
            if !three || flags & PAD != 0 {
                return Err(CredentialError::MalformedJwt);
            }
            return Ok(Self::Jwt);
        }
        if flags & PAD != 0 {
            // Stytch's tokens are unpadded base64url.
            return Err(CredentialError::InvalidCharacters);
        }
        Ok(Self::Token)
    }
}

impl Credential {
    /// Classifies and checks a raw credential: three non-empty base64url segments joined by
    /// dots are a JWT; a single base64url run is an opaque token; anything else is refused.
    ///
    /// # Errors
    ///
    /// A [`CredentialError`] saying what is wrong, without the value.
    pub fn parse(raw: &str) -> Result<Self, CredentialError> {
        // One allocation: the bytes go straight into the shared `Arc<str>`.
        let shared = || std::sync::Arc::<str>::from(raw);
        Ok(match Kind::of(raw)? {
            Kind::Jwt => Self::Jwt(SessionJwt(shared())),
            Kind::Token => Self::Token(SessionToken(shared())),
        })
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

    /// The rule written out byte by byte, as plainly as possible: the reference the
    /// vectorised classification is checked against.
    fn reference(raw: &str) -> Result<Kind, CredentialError> {
        if raw.is_empty() {
            return Err(CredentialError::Empty);
        }
        if raw.len() > MAX_CREDENTIAL_LEN {
            return Err(CredentialError::TooLong);
        }
        let b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if !raw.chars().all(|c| b64(c) || c == '.' || c == '=') {
            return Err(CredentialError::InvalidCharacters);
        }
        if raw.contains('.') {
            let parts: Vec<&str> = raw.split('.').collect();
            let ok = parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(b64));
            return if ok {
                Ok(Kind::Jwt)
            } else {
                Err(CredentialError::MalformedJwt)
            };
        }
        if raw.contains('=') {
            return Err(CredentialError::InvalidCharacters);
        }
        Ok(Kind::Token)
    }

    #[test]
    fn every_byte_is_classified_as_the_reference_says() {
        // If this broke, a byte the branch-free flags misjudge (a neighbour of a range:
        // '/', ':', '@', '[', '`', '{', or a byte with the 0x20 bit that folds case) would
        // let junk through to Stytch, or refuse a real credential.
        for b in 0..=255u8 {
            let raw = String::from_utf8_lossy(&[b'a', b, b'b']).into_owned();
            assert_eq!(Kind::of(&raw), reference(&raw), "byte {b:#04x}");
        }
    }

    proptest::proptest! {
        #[test]
        fn classification_matches_the_reference(raw in "[A-Za-z0-9._=;/:@`{ \\-\\[\u{80}-\u{ff}]{0,64}") {
            // If this broke, the fast path would accept or refuse what the rule does not.
            proptest::prop_assert_eq!(Kind::of(&raw), reference(&raw));
            proptest::prop_assert_eq!(Credential::parse(&raw).is_ok(), reference(&raw).is_ok());
        }
    }
}
