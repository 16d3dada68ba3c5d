//! [`MemberSession`]: the authenticated Stytch member a request carries.

use std::ops::Deref;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod factors;
mod id;
mod intern;

pub use factors::AuthenticationFactors;
pub use id::{IdStr, StytchId};
use intern::Membership;

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
///
/// Laid out for a million cached sessions: the ids are [`StytchId`]s (no allocation for
/// Stytch's usual ids), the organization and the roles are shared by every session that has
/// the same ones (read them with [`organization_id`](Self::organization_id),
/// [`organization_slug`](Self::organization_slug) and [`roles`](Self::roles)), and the
/// authentication factors are held in a compact binary form; the times take 8 bytes each
/// (read them with [`started_at`](Self::started_at), [`last_accessed_at`](Self::last_accessed_at)
/// and [`expires_at`](Self::expires_at)) and the custom claims nothing when there are none
/// ([`custom_claims`](Self::custom_claims)).
///
/// Serializes (and deserializes) as Stytch's `member_session` object.
#[derive(Clone)]
#[non_exhaustive]
pub struct MemberSessionData {
    /// The session's id (`member_session_id`; the JWT's `https://stytch.com/session`.`id`).
    pub member_session_id: StytchId,
    /// The member's id (`member_id`; the JWT's `sub`).
    pub member_id: StytchId,
    /// The organization and the roles, shared (interned).
    membership: Arc<Membership>,
    started_at: Time,
    last_accessed_at: Time,
    expires_at: Time,
    /// The authentication factors, as Stytch sent them (the schema grows often).
    pub authentication_factors: AuthenticationFactors,
    /// `None` when there are none (nearly always).
    custom_claims: Option<Box<Claims>>,
}

/// A session's custom claims.
type Claims = serde_json::Map<String, serde_json::Value>;

/// A time as nanoseconds since the Unix epoch, exactly: 8 bytes where a `SystemTime` (or an
/// `Option` of one) takes 16. Before the epoch is the epoch; after 2554 is 2554.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Time(u64);

impl Time {
    /// Absent.
    const NONE: Self = Self(u64::MAX);

    fn new(at: SystemTime) -> Self {
        let nanos = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        Self(u64::try_from(nanos).unwrap_or(u64::MAX).min(u64::MAX - 1))
    }

    fn of(at: Option<SystemTime>) -> Self {
        at.map_or(Self::NONE, Self::new)
    }

    /// The time (`NONE` is the latest one).
    fn at(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }

    fn get(self) -> Option<SystemTime> {
        (self != Self::NONE).then(|| self.at())
    }
}

impl PartialEq for MemberSessionData {
    fn eq(&self, other: &Self) -> bool {
        self.member_session_id == other.member_session_id
            && self.member_id == other.member_id
            && self.membership == other.membership
            && self.started_at == other.started_at
            && self.last_accessed_at == other.last_accessed_at
            && self.expires_at == other.expires_at
            && self.authentication_factors == other.authentication_factors
            && self.custom_claims() == other.custom_claims()
    }
}

impl MemberSessionData {
    /// The member's organization (`organization_id`).
    pub fn organization_id(&self) -> &StytchId {
        &self.membership.organization_id
    }

    /// The organization's slug (empty when Stytch did not send it).
    pub fn organization_slug(&self) -> &str {
        &self.membership.organization_slug
    }

    /// The session's roles (role ids).
    pub fn roles(&self) -> &[String] {
        &self.membership.roles
    }

    /// Whether the session holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().iter().any(|r| r == role)
    }

    /// Time left until the session expires (zero when it has).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at().duration_since(now).unwrap_or_default()
    }

    /// When the session started.
    pub fn started_at(&self) -> Option<SystemTime> {
        self.started_at.get()
    }

    /// When the session was last used.
    pub fn last_accessed_at(&self) -> Option<SystemTime> {
        self.last_accessed_at.get()
    }

    /// When the session (not its JWT) expires.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at.at()
    }

    /// Sets when the session started.
    pub fn set_started_at(&mut self, at: Option<SystemTime>) {
        self.started_at = Time::of(at);
    }

    /// Sets when the session was last used.
    pub fn set_last_accessed_at(&mut self, at: Option<SystemTime>) {
        self.last_accessed_at = Time::of(at);
    }

    /// Sets when the session expires.
    pub fn set_expires_at(&mut self, at: SystemTime) {
        self.expires_at = Time::new(at);
    }

    /// Custom claims of the session (every non-reserved JWT claim; empty when none).
    pub fn custom_claims(&self) -> &serde_json::Map<String, serde_json::Value> {
        static NONE: LazyLock<Claims> = LazyLock::new(Claims::new);
        self.custom_claims.as_deref().unwrap_or(&NONE)
    }

    /// The custom claims, writable.
    pub fn custom_claims_mut(&mut self) -> &mut serde_json::Map<String, serde_json::Value> {
        self.custom_claims.get_or_insert_default()
    }

    /// Moves the session to another organization (id and slug), keeping its roles.
    pub fn set_organization(&mut self, organization_id: impl Into<StytchId>, slug: &str) {
        self.membership = Membership::shared(
            organization_id.into(),
            slug.into(),
            self.membership.roles.clone(),
        );
    }

    /// Replaces the session's roles.
    pub fn set_roles<R: Into<String>>(&mut self, roles: impl IntoIterator<Item = R>) {
        self.membership = Membership::shared(
            self.membership.organization_id.clone(),
            self.membership.organization_slug.clone(),
            roles.into_iter().map(Into::into).collect(),
        );
    }

    /// A session from its parts (a verified JWT's claims), its organization and roles shared
    /// with every session that has the same.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        member_session_id: StytchId,
        member_id: StytchId,
        organization_id: StytchId,
        organization_slug: &str,
        roles: Vec<String>,
        started_at: Option<SystemTime>,
        last_accessed_at: Option<SystemTime>,
        expires_at: SystemTime,
        authentication_factors: AuthenticationFactors,
        custom_claims: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        Self {
            member_session_id,
            member_id,
            membership: Membership::shared(
                organization_id,
                organization_slug.into(),
                roles.into_boxed_slice(),
            ),
            started_at: Time::of(started_at),
            last_accessed_at: Time::of(last_accessed_at),
            expires_at: Time::new(expires_at),
            authentication_factors,
            custom_claims: (!custom_claims.is_empty()).then(|| Box::new(custom_claims)),
        }
    }
}

impl std::fmt::Debug for MemberSessionData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As the derived `Debug` of the fields Stytch sends (nothing in them is a secret).
        f.debug_struct("MemberSessionData")
            .field("member_session_id", &self.member_session_id)
            .field("member_id", &self.member_id)
            .field("organization_id", self.organization_id())
            .field("organization_slug", &self.organization_slug())
            .field("roles", &self.roles())
            .field("started_at", &self.started_at())
            .field("last_accessed_at", &self.last_accessed_at())
            .field("expires_at", &self.expires_at())
            .field("authentication_factors", &self.authentication_factors)
            .field("custom_claims", self.custom_claims())
            .finish()
    }
}

/// Stytch's `member_session` object, as it is read and written.
#[derive(Serialize, Deserialize)]
struct Wire<Id, Slug, Roles, Factors, Claims> {
    member_session_id: Id,
    member_id: Id,
    organization_id: Id,
    #[serde(default)]
    organization_slug: Slug,
    #[serde(default)]
    roles: Roles,
    #[serde(with = "rfc3339::option", default)]
    started_at: Option<SystemTime>,
    #[serde(with = "rfc3339::option", default)]
    last_accessed_at: Option<SystemTime>,
    #[serde(with = "rfc3339")]
    expires_at: SystemTime,
    #[serde(default)]
    authentication_factors: Factors,
    #[serde(default)]
    custom_claims: Claims,
}

impl Serialize for MemberSessionData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            member_session_id: &self.member_session_id,
            member_id: &self.member_id,
            organization_id: self.organization_id(),
            organization_slug: self.organization_slug(),
            roles: self.roles(),
            started_at: self.started_at(),
            last_accessed_at: self.last_accessed_at(),
            expires_at: self.expires_at(),
            authentication_factors: &self.authentication_factors,
            custom_claims: self.custom_claims(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for MemberSessionData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = Wire::<
            StytchId,
            std::borrow::Cow<'de, str>,
            Vec<String>,
            AuthenticationFactors,
            serde_json::Map<String, serde_json::Value>,
        >::deserialize(d)?;
        Ok(Self::from_parts(
            wire.member_session_id,
            wire.member_id,
            wire.organization_id,
            &wire.organization_slug,
            wire.roles,
            wire.started_at,
            wire.last_accessed_at,
            wire.expires_at,
            wire.authentication_factors,
            wire.custom_claims,
        ))
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
        assert_eq!(s.organization_slug(), "");
        assert!(s.has_role("editor"));
        assert_eq!(
            humantime::format_rfc3339_seconds(s.expires_at()).to_string(),
            "2023-01-10T07:41:52Z"
        );
        assert!(s.last_accessed_at().is_some());
        assert_eq!(s.custom_claims()["claim1"], "value1");
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

    /// Stytch's `member_session` object, every field set.
    fn full() -> serde_json::Value {
        serde_json::json!({
            "member_session_id": "member-session-test-fe6c042b-6286-479f-8a4f-b046a6c46509",
            "member_id": "member-test-32fc5024-9c09-4da3-bd2e-c9ce4da9375f",
            "organization_id": "organization-test-07971b06-ac8b-4cdb-9c15-63b17e653931",
            "organization_slug": "acme",
            "roles": ["stytch_member", "editor"],
            "started_at": "2023-01-09T07:41:52Z",
            "last_accessed_at": "2023-01-09T07:42:52Z",
            "expires_at": "2023-01-10T07:41:52Z",
            "authentication_factors": [{"delivery_method": "email", "type": "magic_link", "last_authenticated_at": "2023-01-09T07:41:52Z", "email_factor": {"email_address": "sandbox@stytch.com", "email_id": "email-test-81bf03a8-86e1-4d95-bd44-bb3495224953"}}],
            "custom_claims": {"claim1": "value1"}
        })
    }

    #[test]
    fn a_session_writes_back_the_json_it_read() {
        // If this broke, a session serialized by the app (or the gateway) would not say what
        // Stytch said.
        let json = full();
        let s: MemberSession = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&s).unwrap(), json);
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<MemberSession>(&text).unwrap(), s);
        // Without custom claims: written as an empty object, as before.
        let mut bare = json.clone();
        bare["custom_claims"] = serde_json::json!({});
        let b: MemberSession = serde_json::from_value(bare.clone()).unwrap();
        assert!(b.custom_claims().is_empty());
        assert_eq!(serde_json::to_value(&b).unwrap(), bare);
        // The ids, the organization and the roles read as Stytch sent them.
        assert_eq!(
            s.member_id,
            "member-test-32fc5024-9c09-4da3-bd2e-c9ce4da9375f"
        );
        assert_eq!(
            *s.organization_id(),
            "organization-test-07971b06-ac8b-4cdb-9c15-63b17e653931"
        );
        assert_eq!(s.organization_slug(), "acme");
        assert_eq!(s.roles(), ["stytch_member", "editor"]);
        let debug = format!("{s:?}");
        for part in [
            "member-test-32fc5024",
            "organization_slug: \"acme\"",
            "editor",
            "claim1",
        ] {
            assert!(debug.contains(part), "{debug}");
        }
    }

    #[test]
    fn sessions_of_one_organization_and_roles_share_them() {
        // If this broke, a million cached sessions would each hold a copy of their
        // organization and roles (memory), or a changed one would leak into the others.
        let a: MemberSession = serde_json::from_value(full()).unwrap();
        let mut other = full();
        other["member_id"] = "member-test-00000000-9c09-4da3-bd2e-c9ce4da9375f".into();
        let b: MemberSession = serde_json::from_value(other).unwrap();
        assert!(Arc::ptr_eq(&a.membership, &b.membership));
        let mut c = b.clone();
        c.make_mut().set_roles(["stytch_admin"]);
        assert_eq!(c.roles(), ["stytch_admin"]);
        assert_eq!(b.roles(), ["stytch_member", "editor"]);
        assert_eq!(c.organization_slug(), "acme");
        c.make_mut()
            .set_organization("organization-test-2", "other");
        assert_eq!(*c.organization_id(), "organization-test-2");
        assert_eq!(c.roles(), ["stytch_admin"]);
        assert_eq!(*a.organization_id(), *b.organization_id());
    }

    #[test]
    fn times_are_kept_to_the_nanosecond() {
        // If this broke, a session's start would move, and a member-wide revocation could
        // end (or spare) the wrong sessions.
        let mut s: MemberSession = serde_json::from_value(full()).unwrap();
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        s.make_mut().set_started_at(Some(at));
        s.make_mut().set_expires_at(at);
        assert_eq!(s.started_at(), Some(at));
        assert_eq!(s.expires_at(), at);
        s.make_mut().set_last_accessed_at(None);
        assert_eq!(s.last_accessed_at(), None);
        // Before the epoch is the epoch; the far future is kept as far as 2554.
        s.make_mut()
            .set_started_at(Some(UNIX_EPOCH - Duration::from_secs(1)));
        assert_eq!(s.started_at(), Some(UNIX_EPOCH));
        let far = UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400);
        s.make_mut().set_expires_at(far);
        assert_eq!(s.expires_at(), far);
    }
}
