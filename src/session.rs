//! [`MemberSession`]: the authenticated Stytch member a request carries.

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The Stytch B2B member session behind a request, inserted into the request's extensions by
/// [`StytchAuth`](crate::service::StytchAuth): a cheap handle (one `Arc`) on a [`MemberSessionData`].
///
/// Cloning it (or extracting it) copies a pointer, not the session: the layer hands the
/// cached session to the inner service without a deep copy. Read its fields through `Deref`
/// (`session.member_id`); [`MemberSession::make_mut`] gives a private, writable copy.
///
/// Built either from Stytch's `member_session` object (remote authenticate) or from the claims
/// of a locally verified session JWT. It holds no credential. It serializes (and
/// deserializes) as the [`MemberSessionData`] it holds.
///
/// With feature `axum`, `MemberSession` and `Option<MemberSession>` are extractors.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberSession(Arc<MemberSessionData>);

impl MemberSession {
    /// Wraps `data` in a handle.
    pub fn new(data: MemberSessionData) -> Self {
        Self(Arc::new(data))
    }

    /// A writable view of the session: copies it first when other handles share it
    /// (copy-on-write, as [`Arc::make_mut`]).
    pub fn make_mut(&mut self) -> &mut MemberSessionData {
        Arc::make_mut(&mut self.0)
    }
}

impl From<MemberSessionData> for MemberSession {
    fn from(data: MemberSessionData) -> Self {
        Self::new(data)
    }
}

impl Deref for MemberSession {
    type Target = MemberSessionData;

    fn deref(&self) -> &MemberSessionData {
        &self.0
    }
}

impl Serialize for MemberSession {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for MemberSession {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MemberSessionData::deserialize(d).map(Self::new)
    }
}

/// The fields of a [`MemberSession`]: Stytch's `member_session` object, or what a session
/// JWT's claims say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MemberSessionData {
    /// The session's id (`member_session_id`; the JWT's `https://stytch.com/session`.`id`).
    pub member_session_id: String,
    /// The member's id (`member_id`; the JWT's `sub`).
    pub member_id: String,
    /// The member's organization.
    pub organization_id: String,
    /// The organization's slug (empty when Stytch did not send it).
    #[serde(default)]
    pub organization_slug: String,
    /// The session's roles (role ids).
    #[serde(default)]
    pub roles: Vec<String>,
    /// When the session started.
    #[serde(with = "rfc3339::option", default)]
    pub started_at: Option<SystemTime>,
    /// When the session was last used.
    #[serde(with = "rfc3339::option", default)]
    pub last_accessed_at: Option<SystemTime>,
    /// When the session (not its JWT) expires.
    #[serde(with = "rfc3339")]
    pub expires_at: SystemTime,
    /// The authentication factors, as Stytch sent them (the schema grows often).
    #[serde(default)]
    pub authentication_factors: AuthenticationFactors,
    /// Custom claims of the session (every non-reserved JWT claim).
    #[serde(default)]
    pub custom_claims: serde_json::Map<String, serde_json::Value>,
}

impl MemberSessionData {
    /// Whether the session holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Time left until the session expires (zero when it has).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at.duration_since(now).unwrap_or_default()
    }
}

/// A session's authentication factors, as Stytch sent them: a JSON array of objects whose
/// schema grows often, so kept as compact JSON text and parsed when asked
/// ([`values`](Self::values)). A million cached sessions each holding its factors as parsed
/// JSON maps would cost about 700 bytes more per session.
///
/// Serializes (and deserializes) as the JSON array. Two are equal when their factors are.
#[derive(Clone)]
pub struct AuthenticationFactors(Box<str>);

impl PartialEq for AuthenticationFactors {
    fn eq(&self, other: &Self) -> bool {
        // The text may differ (key order, spacing) for the same factors.
        self.0 == other.0 || self.values() == other.values()
    }
}

impl AuthenticationFactors {
    /// The factors, parsed.
    pub fn values(&self) -> Vec<serde_json::Value> {
        // The text was written by `serde_json` from a `Vec<Value>`: it parses back.
        serde_json::from_str(&self.0).unwrap_or_default()
    }

    /// The factors as JSON text (an array): as the session JWT carried it, or compact.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .is_some_and(|inside| inside.trim().is_empty())
    }

    /// The factors from JSON text already parsed as valid JSON (a raw claim of a verified
    /// JWT), kept as is: `None` unless it is an array. No round trip through JSON values.
    #[cfg(feature = "jwt")]
    pub(crate) fn from_json_array(raw: &serde_json::value::RawValue) -> Option<Self> {
        raw.get().starts_with('[').then(|| Self(raw.get().into()))
    }

    /// Whether a factor has `"type": kind` (`"magic_link"`, `"sso"`, `"totp"`, …).
    pub fn has_type(&self, kind: &str) -> bool {
        self.values()
            .iter()
            .any(|factor| factor.get("type").and_then(serde_json::Value::as_str) == Some(kind))
    }
}

impl Default for AuthenticationFactors {
    fn default() -> Self {
        Self("[]".into())
    }
}

impl From<Vec<serde_json::Value>> for AuthenticationFactors {
    fn from(values: Vec<serde_json::Value>) -> Self {
        // Serializing a `Vec<Value>` cannot fail (every map key is a string).
        Self(
            serde_json::to_string(&values)
                .unwrap_or_else(|_| "[]".to_owned())
                .into_boxed_str(),
        )
    }
}

impl std::fmt::Debug for AuthenticationFactors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for AuthenticationFactors {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.values().serialize(s)
    }
}

impl<'de> Deserialize<'de> for AuthenticationFactors {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <Vec<serde_json::Value>>::deserialize(d).map(Self::from)
    }
}

/// Whether `value` looks like a Stytch id (`member-test-<uuid>`, `session-live-<uuid>`): ASCII
/// letters, digits, `-` and `_`, 1 to 128 characters.
pub(crate) fn is_stytch_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Serde helpers for RFC 3339 timestamps as [`SystemTime`] (Stytch's `2021-12-29T12:33:09Z`).
pub(crate) mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_seconds(*t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse(&raw).ok_or_else(|| D::Error::custom("invalid RFC 3339 timestamp"))
    }

    /// Parses an RFC 3339 timestamp, with or without fractional seconds or an offset of `Z`.
    pub(crate) fn parse(raw: &str) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(raw.trim_end_matches('Z'))
            .ok()
            .filter(|_| raw.len() >= 19)
    }

    pub(crate) mod option {
        use std::time::SystemTime;

        use serde::{Deserialize, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            t: &Option<SystemTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<SystemTime>, D::Error> {
            let raw = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
            // Lenient: an unparsable optional timestamp is treated as absent.
            Ok(raw.as_deref().and_then(super::parse))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stytchs_member_session_object() {
        // If this broke, remote authenticate answers would fail to decode.
        let json = serde_json::json!({
            "member_session_id": "session-test-fe6c042b-6286-479f-8a4f-b046a6c46509",
            "member_id": "member-test-32fc5024-9c09-4da3-bd2e-c9ce4da9375f",
            "started_at": "2023-01-09T07:41:52Z",
            "last_accessed_at": "2023-01-09T07:41:52.123Z",
            "expires_at": "2023-01-10T07:41:52Z",
            "authentication_factors": [{"delivery_method": "email", "type": "magic_link", "sequence_order": "PRIMARY"}],
            "custom_claims": { "claim1": "value1" },
            "organization_id": "organization-test-07971b06-ac8b-4cdb-9c15-63b17e653931",
            "roles": ["stytch_member", "editor"],
            "some_future_field": 1
        });
        let s: MemberSession = serde_json::from_value(json).unwrap();
        assert_eq!(s.organization_slug, "");
        assert!(s.has_role("editor"));
        assert_eq!(
            humantime::format_rfc3339_seconds(s.expires_at).to_string(),
            "2023-01-10T07:41:52Z"
        );
        assert!(s.last_accessed_at.is_some());
        assert_eq!(s.custom_claims["claim1"], "value1");
        assert!(s.authentication_factors.has_type("magic_link"));
        assert!(!s.authentication_factors.has_type("sso"));
        assert_eq!(
            s.authentication_factors.values()[0]["sequence_order"],
            "PRIMARY"
        );
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["expires_at"], "2023-01-10T07:41:52Z");
        // The factors go back out as the array Stytch sent.
        assert_eq!(
            back["authentication_factors"],
            serde_json::json!([{"delivery_method": "email", "type": "magic_link", "sequence_order": "PRIMARY"}])
        );
    }

    #[test]
    fn stytch_id_charset() {
        // If this broke, odd path parameters would be forwarded to Stytch.
        assert!(is_stytch_id(
            "member-test-32fc5024-9c09-4da3-bd2e-c9ce4da9375f"
        ));
        for bad in ["", "a/b", "a%2Fb", "..", "a b", "é", &"a".repeat(129)] {
            assert!(!is_stytch_id(bad), "{bad}");
        }
    }

    #[test]
    fn rejects_a_session_without_expiry() {
        // If this broke, a session with unknown expiry could be cached forever.
        let json = serde_json::json!({
            "member_session_id": "s", "member_id": "m", "organization_id": "o",
            "expires_at": "yesterday"
        });
        assert!(serde_json::from_value::<MemberSession>(json).is_err());
    }
}
