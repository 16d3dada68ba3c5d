//! Finding the session credential in request headers (never the body).

use http::header::{AUTHORIZATION, COOKIE, HeaderName};
use http::{HeaderMap, HeaderValue};

use crate::credential::{Credential, CredentialError};
use crate::error::ConfigError;

/// Stytch's frontend SDK cookie holding the session JWT.
pub const DEFAULT_JWT_COOKIE: &str = "stytch_session_jwt";
/// Stytch's frontend SDK cookie holding the opaque session token.
pub const DEFAULT_TOKEN_COOKIE: &str = "stytch_session";

/// Where a credential may be found, tried in the configured order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialSource {
    /// A header holding `Bearer <credential>` (e.g. `Authorization`).
    Bearer(HeaderName),
    /// A header holding the bare credential (e.g. `X-Stytch-Session`).
    Header(HeaderName),
    /// A cookie.
    Cookie(String),
}

impl CredentialSource {
    /// `Authorization: Bearer …`.
    pub fn authorization_bearer() -> Self {
        Self::Bearer(AUTHORIZATION)
    }

    /// A bearer header by name.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidHeaderName`].
    pub fn bearer(name: &str) -> Result<Self, ConfigError> {
        Ok(Self::Bearer(header_name(name)?))
    }

    /// A bare-credential header by name.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidHeaderName`].
    pub fn header(name: &str) -> Result<Self, ConfigError> {
        Ok(Self::Header(header_name(name)?))
    }

    /// A cookie by name.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidCookieName`] unless the name is an RFC 6265 token.
    pub fn cookie(name: &str) -> Result<Self, ConfigError> {
        if is_cookie_name(name) {
            Ok(Self::Cookie(name.to_owned()))
        } else {
            Err(ConfigError::InvalidCookieName {
                name: name.to_owned(),
            })
        }
    }

    /// The default order: `Authorization: Bearer`, cookie `stytch_session_jwt`, cookie
    /// `stytch_session`.
    pub fn defaults() -> Vec<Self> {
        vec![
            Self::authorization_bearer(),
            Self::Cookie(DEFAULT_JWT_COOKIE.to_owned()),
            Self::Cookie(DEFAULT_TOKEN_COOKIE.to_owned()),
        ]
    }
}

fn header_name(name: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| ConfigError::InvalidHeaderName {
        name: name.to_owned(),
    })
}

/// An RFC 6265 cookie-name token.
pub(crate) fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'(' | b')'
                        | b'<'
                        | b'>'
                        | b'@'
                        | b','
                        | b';'
                        | b':'
                        | b'\\'
                        | b'"'
                        | b'/'
                        | b'['
                        | b']'
                        | b'?'
                        | b'='
                        | b'{'
                        | b'}'
                )
        })
}

/// A credential found in a request, and where.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) credential: Credential,
    /// The cookie it came from, when it came from a cookie: the index of its
    /// [`CredentialSource::Cookie`] in the sources searched (see [`Found::cookie_name`]).
    cookie: Option<usize>,
}

impl Found {
    /// A credential found by [`unchecked`], not checked: only for a cache lookup (a hit
    /// vouches for it; a miss goes through [`extract`]).
    pub(crate) fn unchecked(raw: &[u8]) -> Self {
        Self {
            credential: Credential::unchecked(raw),
            cookie: None,
        }
    }

    /// The name of the cookie the credential came from, when it came from one; `sources` are
    /// the ones [`extract`] searched.
    pub(crate) fn cookie_name<'s>(&self, sources: &'s [CredentialSource]) -> Option<&'s str> {
        match sources.get(self.cookie?)? {
            CredentialSource::Cookie(name) => Some(name),
            _ => None,
        }
    }
}

/// Why extraction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExtractError {
    /// The request itself is malformed (several Authorization headers, non-ASCII header).
    BadRequest,
    /// A credential was present but is not a well-formed Stytch credential.
    Invalid(CredentialError),
    /// Several different values of one credential cookie: which one the browser sent first
    /// is up to whoever set them (a sibling domain can plant one), so none is trusted.
    Ambiguous,
}

/// Finds the first credential in `sources` order. `Ok(None)` when there is none.
pub(crate) fn extract(
    headers: &HeaderMap,
    sources: &[CredentialSource],
) -> Result<Option<Found>, ExtractError> {
    for (index, source) in sources.iter().enumerate() {
        let raw = match source {
            CredentialSource::Bearer(name) => bearer(headers, name)?,
            CredentialSource::Header(name) => single(headers, name)?.map(<[u8]>::trim_ascii),
            CredentialSource::Cookie(name) => cookie(headers, name)?.map(str::as_bytes),
        };
        if let Some(raw) = raw {
            let credential = Credential::parse_bytes(raw).map_err(ExtractError::Invalid)?;
            let cookie = matches!(source, CredentialSource::Cookie(_)).then_some(index);
            return Ok(Some(Found { credential, cookie }));
        }
    }
    Ok(None)
}

/// The credential [`extract`] would find, located without checking it, when it comes from a
/// header ([`Bearer`](CredentialSource::Bearer) or [`Header`](CredentialSource::Header)):
/// for a cache lookup only, since the cache holds only credentials that were checked and
/// verified, keyed by the SHA-256 of their exact bytes. `None` whenever this cannot tell
/// cheaply what `extract` would find (the first source present is a cookie, a header is
/// repeated, a bearer header has another scheme): the caller then runs `extract`.
///
/// Only spaces and tabs are trimmed: any other byte `extract` would trim or refuse stays in
/// the candidate, which then matches no cache entry, and `extract` decides.
pub(crate) fn unchecked<'h>(
    headers: &'h HeaderMap,
    sources: &[CredentialSource],
) -> Option<&'h [u8]> {
    for source in sources {
        let (name, bearer) = match source {
            CredentialSource::Bearer(name) => (name, true),
            CredentialSource::Header(name) => (name, false),
            CredentialSource::Cookie(_) => return None,
        };
        let mut values = headers.get_all(name).iter();
        let Some(value) = values.next() else {
            continue;
        };
        if values.next().is_some() {
            return None;
        }
        let value = trim_blanks(value.as_bytes());
        let raw = if bearer {
            let space = value.iter().position(|&b| b == b' ')?;
            if !value[..space].eq_ignore_ascii_case(b"bearer") {
                return None;
            }
            trim_blanks(&value[space + 1..])
        } else {
            value
        };
        return (!raw.is_empty() && raw.len() <= crate::credential::MAX_CREDENTIAL_LEN)
            .then_some(raw);
    }
    None
}

/// `bytes` without leading and trailing spaces and tabs.
fn trim_blanks(bytes: &[u8]) -> &[u8] {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !blank(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Removes from `headers` every credential that `sources` would read, for a proxy that must
/// not hand the member's Stytch credential to the app behind it:
///
/// - each [`Bearer`](CredentialSource::Bearer) header whose scheme is `Bearer` (a header
///   with another scheme, `Basic` for instance, is not a Stytch credential and stays);
/// - each [`Header`](CredentialSource::Header), every copy;
/// - each named [`Cookie`](CredentialSource::Cookie), in every `Cookie` header (names
///   compared exactly, as bytes, so a non-UTF-8 header hides nothing). The other cookies
///   stay, each `Cookie` header written back as `a=1; b=2`; a header left empty goes.
pub fn strip_credentials(headers: &mut HeaderMap, sources: &[CredentialSource]) {
    let mut cookies: Vec<&[u8]> = Vec::new();
    for source in sources {
        match source {
            CredentialSource::Bearer(name) => {
                let kept: Vec<HeaderValue> = headers
                    .get_all(name)
                    .iter()
                    .filter(|v| !is_bearer(v))
                    .cloned()
                    .collect();
                replace_all(headers, name, kept);
            }
            CredentialSource::Header(name) => {
                headers.remove(name);
            }
            CredentialSource::Cookie(name) => cookies.push(name.as_bytes()),
        }
    }
    if cookies.is_empty() {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| without_cookies(v.as_bytes(), &cookies))
        .collect();
    replace_all(headers, &COOKIE, kept);
}

/// Whether a header value is `Bearer <anything>` (scheme case-insensitive).
fn is_bearer(value: &HeaderValue) -> bool {
    let value = value.as_bytes().trim_ascii_start();
    value.len() > 6 && value[..6].eq_ignore_ascii_case(b"bearer") && value[6] == b' '
}

/// A `Cookie` header without the cookies named in `names`, or `None` when nothing is left.
fn without_cookies(header: &[u8], names: &[&[u8]]) -> Option<HeaderValue> {
    let kept: Vec<&[u8]> = header
        .split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
            !names.contains(&name.trim_ascii())
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    // The pairs come from a valid header value, and "; " is valid: this cannot fail.
    HeaderValue::from_bytes(&kept.join(&b"; "[..])).ok()
}

/// Replaces every value of `name` with `values` (none: the header goes).
fn replace_all(headers: &mut HeaderMap, name: &HeaderName, values: Vec<HeaderValue>) {
    headers.remove(name);
    for value in values {
        headers.append(name.clone(), value);
    }
}

/// The one value of header `name` (several: [`ExtractError::BadRequest`]), as bytes that are
/// all visible ASCII or tabs (else `BadRequest`, as [`HeaderValue::to_str`] refuses them).
fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h [u8]>, ExtractError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ExtractError::BadRequest);
    }
    let bytes = value.as_bytes();
    if is_visible_ascii(bytes) {
        Ok(Some(bytes))
    } else {
        Err(ExtractError::BadRequest)
    }
}

/// Whether every byte is visible ASCII (`0x20..=0x7e`) or a tab, what
/// [`HeaderValue::to_str`] accepts, told in one vectorised pass: 32 lanes accumulated across
/// the chunks and combined once (`to_str` tests each byte with a branch, about 5 instructions
/// a byte: 5,000 for a 1 KB JWT on every request).
fn is_visible_ascii(bytes: &[u8]) -> bool {
    /// 1 when `b` is neither visible ASCII nor a tab; `&`, never `&&`: no branch.
    #[inline(always)]
    fn bad(b: u8) -> u8 {
        u8::from((b.wrapping_sub(0x20) > 0x5e) & (b != b'\t'))
    }
    /// One chunk into the lanes: a fixed-size loop, vectorised.
    #[inline(always)]
    fn fold(chunk: &[u8; 32], lanes: &mut [u8; 32]) {
        for i in 0..32 {
            lanes[i] |= bad(chunk[i]);
        }
    }
    let chunks = bytes.chunks_exact(32);
    // The tail padded with a visible byte to a chunk of its own (cheaper than byte by byte).
    let mut tail = [b'a'; 32];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    let mut lanes = [0u8; 32];
    for chunk in chunks {
        if let Ok(chunk) = <&[u8; 32]>::try_from(chunk) {
            fold(chunk, &mut lanes);
        }
    }
    fold(&tail, &mut lanes);
    lanes.iter().fold(0, |acc, &lane| acc | lane) == 0
}

/// `bytes` as text when [`is_visible_ascii`].
fn visible_ascii_str(bytes: &[u8]) -> Option<&str> {
    // Visible ASCII is UTF-8: this only turns the bytes into text (safely).
    is_visible_ascii(bytes)
        .then(|| std::str::from_utf8(bytes).ok())
        .flatten()
}

/// The credential of a `Bearer <credential>` header, as bytes (visible ASCII: no UTF-8 check
/// and no copy before the credential's own check). Spaces and tabs around the scheme and the
/// credential are ignored (on visible ASCII, `trim_ascii` trims what `str::trim` does).
fn bearer<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h [u8]>, ExtractError> {
    let Some(value) = single(headers, name)? else {
        return Ok(None);
    };
    let value = value.trim_ascii();
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return Ok(None);
    };
    let (scheme, rest) = (&value[..space], &value[space + 1..]);
    if scheme.eq_ignore_ascii_case(b"bearer") {
        Ok(Some(rest.trim_ascii()))
    } else {
        // Another scheme (Basic, …) is not ours: look at the next source.
        Ok(None)
    }
}

/// The first well-formed value of cookie `name` over every `Cookie` header (HTTP/2 splits
/// them). Junk pairs and non-UTF-8 headers are skipped; surrounding double quotes are removed.
/// The value of cookie `name`: `Ok(None)` when absent, [`ExtractError::Ambiguous`] when the
/// request carries several different values of it. Browsers send every cookie that matches
/// the request, longest path first, whatever domain set it: a sibling subdomain (or one that
/// can write cookies for the parent domain) can plant `stytch_session` for a longer path and
/// have it sent first, signing the member into the planter's session (cookie tossing). So
/// two different values are refused (400, and logout, which clears the cookies, still works),
/// the same value twice is one. `__Host-` cookie names rule tossing out altogether.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ExtractError> {
    let mut found: Option<&str> = None;
    for header in headers.get_all(COOKIE) {
        let Some(header) = visible_ascii_str(header.as_bytes()) else {
            continue;
        };
        for pair in header.split(';') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            if key.trim() != name {
                continue;
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if value.is_empty() {
                continue;
            }
            match found {
                Some(first) if first != value => return Err(ExtractError::Ambiguous),
                _ => found = Some(value),
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
