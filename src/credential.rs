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

/// The bytes of a credential: held inline when short (an opaque token: no allocation, a copy
/// of 48 bytes), shared otherwise (a JWT: clones share one allocation). Only ever built from
/// UTF-8 text or from bytes [`Kind::of_bytes`] accepted (ASCII).
#[derive(Clone)]
enum Secret {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(std::sync::Arc<[u8]>),
}

/// Longest credential held inline: Stytch's opaque tokens are 44 characters.
const INLINE: usize = 46;

impl Secret {
    fn new(raw: &[u8]) -> Self {
        match u8::try_from(raw.len()) {
            Ok(len) if raw.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..raw.len()].copy_from_slice(raw);
                Self::Inline { len, bytes }
            }
            _ => Self::Shared(std::sync::Arc::from(raw)),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Shared(bytes) => bytes,
        }
    }

    fn as_str(&self) -> &str {
        // Built from text, or from ASCII: always UTF-8.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Secret {}

macro_rules! secret_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Cheap to clone: an opaque token is held inline (no allocation), a longer credential
        /// in one allocation the clones share.
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(Secret);

        impl $name {
            /// Wraps a raw value without checking it (see [`Credential::parse`] for checks).
            pub fn new(raw: impl Into<String>) -> Self {
                Self(Secret::new(raw.into().as_bytes()))
            }

            /// The raw value, for sending to Stytch or setting a cookie. Never log it.
            pub fn expose_secret(&self) -> &str {
                self.0.as_str()
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

/// The OR of the flags of every byte, and how many dots, 32 bytes at a time: 32 lanes
/// accumulated across the chunks and combined once at the end (a loop the compiler turns
/// into vector instructions). At most [`MAX_CREDENTIAL_LEN`] bytes: a lane counts at most 129
/// dots.
fn scan(bytes: &[u8]) -> (u8, usize) {
    /// One chunk into the lanes: a fixed-size loop, vectorised.
    #[inline(always)]
    fn lanes(chunk: &[u8; 32], flags: &mut [u8; 32], dots: &mut [u8; 32]) {
        for i in 0..32 {
            flags[i] |= byte_flags(chunk[i]);
            dots[i] = dots[i].wrapping_add(u8::from(chunk[i] == b'.'));
        }
    }
    let chunks = bytes.chunks_exact(32);
    // The tail padded with `A` (no flag, not a dot) to a chunk of its own: a credential is
    // mostly tail (a token is 44 bytes), and a byte-at-a-time loop costs more than a chunk.
    let mut tail = [b'A'; 32];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    let (mut flags, mut dots) = ([0u8; 32], [0u8; 32]);
    for chunk in chunks {
        if let Ok(chunk) = <&[u8; 32]>::try_from(chunk) {
            lanes(chunk, &mut flags, &mut dots);
        }
    }
    lanes(&tail, &mut flags, &mut dots);
    (
        flags.iter().fold(0, |acc, &f| acc | f),
        dots.iter().fold(0, |acc, &d| acc + usize::from(d)),
    )
}

/// Whether a 32-byte chunk holds a dot (vector compares, no branch per byte).
fn has_dot(chunk: &[u8]) -> bool {
    chunk.iter().fold(false, |acc, &b| acc | (b == b'.'))
}

/// The index of the first dot, 32 bytes at a time.
fn first_dot(bytes: &[u8]) -> Option<usize> {
    let chunks = bytes.chunks_exact(32);
    let tail = chunks.remainder();
    for (n, chunk) in chunks.enumerate() {
        if has_dot(chunk) {
            return chunk.iter().position(|&b| b == b'.').map(|i| n * 32 + i);
        }
    }
    let start = bytes.len() - tail.len();
    tail.iter().position(|&b| b == b'.').map(|i| start + i)
}

/// The index of the last dot, 32 bytes at a time from the end.
fn last_dot(bytes: &[u8]) -> Option<usize> {
    let chunks = bytes.rchunks_exact(32);
    let head = chunks.remainder();
    for (n, chunk) in chunks.enumerate() {
        if has_dot(chunk) {
            let start = bytes.len() - (n + 1) * 32;
            return chunk.iter().rposition(|&b| b == b'.').map(|i| start + i);
        }
    }
    head.iter().rposition(|&b| b == b'.')
}

/// What a well-formed credential is, told from its bytes alone (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Token,
    Jwt,
}

impl Kind {
    /// Checks `raw` as [`Credential::parse`] does, without building the credential.
    #[cfg(test)]
    pub(crate) fn of(raw: &str) -> Result<Self, CredentialError> {
        Self::of_bytes(raw.as_bytes())
    }

    /// [`of`](Self::of) on bytes: what it accepts is ASCII.
    pub(crate) fn of_bytes(raw: &[u8]) -> Result<Self, CredentialError> {
        if raw.is_empty() {
            return Err(CredentialError::Empty);
        }
        if raw.len() > MAX_CREDENTIAL_LEN {
            return Err(CredentialError::TooLong);
        }
        let (flags, dots) = scan(raw);
        if flags & BAD != 0 {
            return Err(CredentialError::InvalidCharacters);
        }
        if flags & DOT != 0 {
            // Three non-empty segments (two dots, neither first nor last nor side by side),
            // no padding. The dots are looked for from each end: a JWT's header and
            // signature are short, its payload long.
            let three = dots == 2
                && match (first_dot(raw), last_dot(raw)) {
                    (Some(first), Some(last)) => {
                        first > 0 && last > first + 1 && last < raw.len() - 1
                    }
                    _ => false,
                };
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
        Self::parse_bytes(raw.as_bytes())
    }

    /// [`parse`](Self::parse) on a header's bytes (what it accepts is ASCII: no UTF-8 check
    /// needed first). A token is copied inline, a JWT into one shared allocation.
    pub(crate) fn parse_bytes(raw: &[u8]) -> Result<Self, CredentialError> {
        Ok(match Kind::of_bytes(raw)? {
            Kind::Jwt => Self::Jwt(SessionJwt(Secret::new(raw))),
            Kind::Token => Self::Token(SessionToken(Secret::new(raw))),
        })
    }

    /// A credential found in a header, not checked: only for a cache lookup, where a hit
    /// vouches for it (the cache holds checked credentials only, keyed by the SHA-256 of their
    /// exact bytes); a miss checks it with [`parse_bytes`](Self::parse_bytes). A JWT if it has
    /// a dot (a checked credential with a dot is one).
    pub(crate) fn unchecked(raw: &[u8]) -> Self {
        if first_dot(raw).is_some() {
            Self::Jwt(SessionJwt(Secret::new(raw)))
        } else {
            Self::Token(SessionToken(Secret::new(raw)))
        }
    }

    /// The raw bytes (the SHA-256 input). Never log them.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Token(t) => t.0.as_bytes(),
            Self::Jwt(j) => j.0.as_bytes(),
        }
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
        key_of(self.as_bytes())
    }
}

/// SHA-256 of a credential's raw bytes: its cache and denylist key.
pub(crate) fn key_of(raw: &[u8]) -> CacheKey {
    Sha256::digest(raw).into()
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

    #[test]
    fn dots_are_found_wherever_they_fall() {
        // If this broke, a JWT whose dots fall at the edges of the 32-byte chunks the scan
        // works in would be misjudged (a malformed one accepted, a good one refused).
        for len in [2, 3, 31, 32, 33, 63, 64, 65, 100] {
            for i in 0..len {
                for j in i..len {
                    let mut raw = vec![b'a'; len];
                    raw[i] = b'.';
                    raw[j] = b'.';
                    let raw = String::from_utf8(raw).unwrap();
                    assert_eq!(Kind::of(&raw), reference(&raw), "{raw}");
                }
            }
        }
        let long = format!(
            "{}.{}.{}",
            "a".repeat(100),
            "b".repeat(700),
            "c".repeat(342)
        );
        assert_eq!(Kind::of(&long), Ok(Kind::Jwt));
        let many = "a.".repeat(2000) + "a";
        assert_eq!(Kind::of(&many), reference(&many));
    }

    #[test]
    fn short_and_long_credentials_hold_their_value() {
        // If this broke, a token held inline (or a JWT shared) would come back altered.
        for len in [1, 45, 46, 47, 1000] {
            let raw = "x".repeat(len);
            let c = Credential::parse(&raw).unwrap();
            assert_eq!(c.expose_secret(), raw);
            assert_eq!(c.as_bytes(), raw.as_bytes());
            assert_eq!(c.clone(), c);
            assert_eq!(SessionToken::new(raw.clone()).expose_secret(), raw);
        }
        assert_ne!(
            Credential::parse("abc").unwrap(),
            Credential::parse("abd").unwrap()
        );
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
