//! [`StytchId`]: a Stytch id (`member-test-<uuid>`, `member-session-live-<uuid>`,
//! `organization-…`) in 24 bytes, without an allocation when it is one of Stytch's usual
//! prefixes and a canonical UUID.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The prefixes Stytch puts before a UUID, in test and live projects: an id with one of them
/// and a lowercase, hyphenated UUID is held as the prefix's index and the UUID's 16 bytes.
/// Appending is compatible (an index is never reused); nothing else depends on the order.
const PREFIXES: [&str; 30] = [
    "member-test-",
    "member-live-",
    "member-session-test-",
    "member-session-live-",
    "session-test-",
    "session-live-",
    "organization-test-",
    "organization-live-",
    "request-id-test-",
    "request-id-live-",
    "email-test-",
    "email-live-",
    "member-email-test-",
    "member-email-live-",
    "phone-number-test-",
    "phone-number-live-",
    "totp-test-",
    "totp-live-",
    "recovery-code-test-",
    "recovery-code-live-",
    "saml-connection-test-",
    "saml-connection-live-",
    "oidc-connection-test-",
    "oidc-connection-live-",
    "oauth-user-registration-test-",
    "oauth-user-registration-live-",
    "m2m-client-test-",
    "m2m-client-live-",
    "user-test-",
    "user-live-",
];

/// Length of a hyphenated UUID.
const UUID_LEN: usize = 36;
/// Longest id held compactly: the longest prefix and a UUID.
const MAX_COMPACT_LEN: usize = 29 + UUID_LEN;

/// A Stytch id, as Stytch sent it: `member-test-32fc5024-9c09-4da3-bd2e-c9ce4da9375f` is held
/// as a prefix tag and the UUID's 16 bytes (24 bytes, no allocation); any other text as
/// text. Compares, hashes, prints and serializes as the text.
///
/// Read it as text with [`as_str`](Self::as_str) (rendered on the stack when compact),
/// [`Display`](fmt::Display) or [`to_string`](ToString::to_string); compare it with a `&str`
/// directly (`session.member_id() == "member-test-…"`).
#[derive(Clone, PartialEq, Eq)]
pub struct StytchId(Repr);

/// One representation per text (a compact one whenever the text allows), so that the derived
/// equality is the text's.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Uuid { prefix: u8, uuid: [u8; 16] },
    Text(Box<str>),
}

impl StytchId {
    /// The id `text`, compact when it is one of Stytch's usual prefixes and a canonical
    /// (lowercase, hyphenated) UUID.
    pub fn new(text: &str) -> Self {
        Self(compact(text).unwrap_or_else(|| Repr::Text(text.into())))
    }

    /// The id as text: borrowed when it is held as text, rendered into a buffer on the stack
    /// when compact (no allocation). Dereferences to `str`.
    pub fn as_str(&self) -> IdStr<'_> {
        match &self.0 {
            Repr::Text(text) => IdStr(IdStrRepr::Borrowed(text)),
            Repr::Uuid { prefix, uuid } => {
                let mut buf = [0u8; MAX_COMPACT_LEN];
                let len = render(*prefix, uuid, &mut buf);
                IdStr(IdStrRepr::Rendered { buf, len })
            }
        }
    }

    /// Whether the id is empty.
    pub fn is_empty(&self) -> bool {
        matches!(&self.0, Repr::Text(text) if text.is_empty())
    }

    /// Whether this is the id `text`, without rendering it.
    fn is(&self, text: &str) -> bool {
        match &self.0 {
            Repr::Text(own) => **own == *text,
            Repr::Uuid { .. } => compact(text).is_some_and(|other| other == self.0),
        }
    }
}

/// `text` as a prefix index and a UUID, when it is one.
fn compact(text: &str) -> Option<Repr> {
    let split = text.len().checked_sub(UUID_LEN)?;
    let (prefix, uuid) = (text.get(..split)?, text.as_bytes().get(split..)?);
    let index = PREFIXES.iter().position(|p| *p == prefix)?;
    let mut bytes = [0u8; 16];
    let mut nibbles = uuid
        .iter()
        .enumerate()
        .filter(|(i, _)| !matches!(i, 8 | 13 | 18 | 23));
    for byte in &mut bytes {
        let (_, &hi) = nibbles.next()?;
        let (_, &lo) = nibbles.next()?;
        *byte = (hex(hi)? << 4) | hex(lo)?;
    }
    let hyphens = [8, 13, 18, 23].iter().all(|&i| uuid[i] == b'-');
    Some(Repr::Uuid {
        prefix: u8::try_from(index).ok()?,
        uuid: bytes,
    })
    .filter(|_| hyphens)
}

/// `text` as a prefix code and a UUID's bytes, when it is a compact id.
pub(super) fn compact_parts(text: &str) -> Option<(u8, [u8; 16])> {
    match compact(text)? {
        Repr::Uuid { prefix, uuid } => Some((prefix, uuid)),
        Repr::Text(_) => None,
    }
}

/// The text of the id of a prefix code and a UUID's bytes (`None` for an unknown code).
pub(super) fn render_parts(prefix: u8, uuid: &[u8; 16]) -> Option<String> {
    PREFIXES.get(usize::from(prefix))?;
    let mut buf = [0u8; MAX_COMPACT_LEN];
    let len = render(prefix, uuid, &mut buf);
    std::str::from_utf8(&buf[..len]).ok().map(str::to_owned)
}

/// A lowercase hex digit's value (an uppercase one is not canonical: kept as text).
fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// Writes the prefix and the hyphenated UUID into `buf`; their length.
fn render(prefix: u8, uuid: &[u8; 16], buf: &mut [u8; MAX_COMPACT_LEN]) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let prefix = PREFIXES[usize::from(prefix)].as_bytes();
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut at = prefix.len();
    for (i, byte) in uuid.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            buf[at] = b'-';
            at += 1;
        }
        buf[at] = DIGITS[usize::from(byte >> 4)];
        buf[at + 1] = DIGITS[usize::from(byte & 0xf)];
        at += 2;
    }
    at
}

/// A [`StytchId`] as text ([`StytchId::as_str`]): dereferences to `str`.
#[derive(Clone)]
pub struct IdStr<'a>(IdStrRepr<'a>);

#[derive(Clone)]
enum IdStrRepr<'a> {
    Borrowed(&'a str),
    Rendered {
        buf: [u8; MAX_COMPACT_LEN],
        len: usize,
    },
}

impl Deref for IdStr<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match &self.0 {
            IdStrRepr::Borrowed(text) => text,
            // Rendered from ASCII: always UTF-8.
            IdStrRepr::Rendered { buf, len } => std::str::from_utf8(&buf[..*len]).unwrap_or(""),
        }
    }
}

impl AsRef<str> for IdStr<'_> {
    fn as_ref(&self) -> &str {
        self
    }
}

impl fmt::Display for IdStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl fmt::Debug for IdStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for StytchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl fmt::Debug for StytchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.as_str(), f)
    }
}

impl Hash for StytchId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The representation is unique per text: hashing it is hashing the text's identity.
        self.0.hash(state);
    }
}

impl Default for StytchId {
    fn default() -> Self {
        Self(Repr::Text(Box::default()))
    }
}

impl PartialEq<str> for StytchId {
    fn eq(&self, other: &str) -> bool {
        self.is(other)
    }
}

impl PartialEq<&str> for StytchId {
    fn eq(&self, other: &&str) -> bool {
        self.is(other)
    }
}

impl PartialEq<String> for StytchId {
    fn eq(&self, other: &String) -> bool {
        self.is(other)
    }
}

impl PartialEq<StytchId> for str {
    fn eq(&self, other: &StytchId) -> bool {
        other.is(self)
    }
}

impl PartialEq<StytchId> for &str {
    fn eq(&self, other: &StytchId) -> bool {
        other.is(self)
    }
}

impl PartialEq<StytchId> for String {
    fn eq(&self, other: &StytchId) -> bool {
        other.is(self)
    }
}

impl From<&str> for StytchId {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for StytchId {
    fn from(text: String) -> Self {
        Self(compact(&text).unwrap_or_else(|| Repr::Text(text.into_boxed_str())))
    }
}

impl From<&String> for StytchId {
    fn from(text: &String) -> Self {
        Self::new(text)
    }
}

impl From<&StytchId> for String {
    fn from(id: &StytchId) -> Self {
        id.as_str().to_string()
    }
}

impl From<StytchId> for String {
    fn from(id: StytchId) -> Self {
        match id.0 {
            Repr::Text(text) => text.into_string(),
            Repr::Uuid { .. } => id.as_str().to_string(),
        }
    }
}

impl Serialize for StytchId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

impl<'de> Deserialize<'de> for StytchId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Self::new(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_text_however_it_is_held() {
        // If this broke, a session id would print, compare or serialize as something else
        // than what Stytch sent (a revocation would miss it, a header would lie).
        let cases = [
            "member-test-32fc5024-9c09-4da3-bd2e-c9ce4da9375f",
            "member-session-live-fe6c042b-6286-479f-8a4f-b046a6c46509",
            "organization-test-07971b06-ac8b-4cdb-9c15-63b17e653931",
            "request-id-test-b05c992f-ebdc-489d-a754-c7e70ba13141",
            "oauth-user-registration-live-00000000-0000-0000-0000-000000000000",
            // Not compact: uppercase, unknown prefix, no UUID, a UUID without its hyphens.
            "member-test-32FC5024-9C09-4DA3-BD2E-C9CE4DA9375F",
            "widget-test-32fc5024-9c09-4da3-bd2e-c9ce4da9375f",
            "member-test-1",
            "member-test-32fc50249c094da3bd2ec9ce4da9375f0000",
            "member-test-32fc5024-9c09-4da3-bd2e-c9ce4da9375g",
            "32fc5024-9c09-4da3-bd2e-c9ce4da9375f",
            "",
            "m",
            "é-32fc5024-9c09-4da3-bd2e-c9ce4da9375f",
        ];
        for text in cases {
            let id = StytchId::new(text);
            assert_eq!(&*id.as_str(), text);
            assert_eq!(id.to_string(), text);
            assert_eq!(format!("{id:?}"), format!("{text:?}"));
            let owned = text.to_owned();
            assert!(id == text, "{text}");
            assert!(text == id, "{text}");
            assert!(id == owned, "{text}");
            assert!(owned == id, "{text}");
            assert_eq!(id, StytchId::from(text.to_owned()));
            assert_eq!(String::from(id.clone()), text);
            assert_eq!(serde_json::to_value(&id).unwrap(), text);
            assert_eq!(serde_json::from_value::<StytchId>(text.into()).unwrap(), id);
            assert_eq!(id.is_empty(), text.is_empty());
            for other in cases.iter().filter(|o| **o != text) {
                assert!(id != *other, "{text} == {other}");
                assert_ne!(id, StytchId::new(other));
            }
        }
        assert!(matches!(StytchId::new(cases[0]).0, Repr::Uuid { .. }));
        assert!(matches!(StytchId::new(cases[5]).0, Repr::Text(_)));
        assert_eq!(size_of::<StytchId>(), 24);
        assert_eq!(size_of::<Option<StytchId>>(), 24);
    }

    #[test]
    fn every_prefix_renders_back() {
        // If this broke, ids of one kind would come back with another kind's prefix.
        assert!(
            PREFIXES
                .iter()
                .all(|p| p.len() + UUID_LEN <= MAX_COMPACT_LEN)
        );
        for prefix in PREFIXES {
            let text = format!("{prefix}0123abcd-ef01-2345-6789-abcdef012345");
            let id = StytchId::new(&text);
            assert!(matches!(id.0, Repr::Uuid { .. }), "{text}");
            assert_eq!(id.to_string(), text);
        }
    }
}
