//! A verified session JWT's payload, parsed once: the registered claims, the time claims and
//! the [`MemberSession`].
//!
//! The checks and their order are those of the `jsonwebtoken::decode` + `serde_json::Map`
//! pipeline this replaced (the unit tests below hold that pipeline as an oracle): a payload
//! that is not a JSON object, or names `sub`, `iss`, `aud`, `exp` or `nbf` twice, is
//! malformed; those five must be present and well typed, then `iss` and `aud` are checked,
//! then `iat`, `nbf` and `exp` are read, then the session. Stytch's session and organization
//! claims are kept as raw JSON until they are needed, so that an error in them never hides
//! an earlier one (an expired JWT stays [`Expired`](JwtError::Expired)).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::jwt::JwtError;
use crate::session::{AuthenticationFactors, MemberSession, MemberSessionData, StytchId, rfc3339};

/// Stytch's session claim.
pub(crate) const SESSION_CLAIM: &str = "https://stytch.com/session";
/// Stytch's organization claim.
pub(crate) const ORGANIZATION_CLAIM: &str = "https://stytch.com/organization";
/// Every claim under this prefix is Stytch's, never a custom claim.
const STYTCH_PREFIX: &str = "https://stytch.com/";
/// Registered claims, never custom claims.
const REGISTERED: &[&str] = &["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// The JWT's `iat`, `nbf` and `exp`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeClaims {
    pub(crate) issued_at: SystemTime,
    pub(crate) not_before: SystemTime,
    pub(crate) expires_at: SystemTime,
}

/// A claim that must be present and of one type: absent (or `null`), present but of another
/// type, or parsed.
#[derive(Default)]
enum Field<T> {
    #[default]
    Absent,
    Invalid,
    Parsed(T),
}

impl<T> Field<T> {
    fn parsed(&self) -> Option<&T> {
        match self {
            Self::Parsed(value) => Some(value),
            Self::Absent | Self::Invalid => None,
        }
    }
}

/// A NumericDate as `exp` and `nbf` are accepted: a non-negative integer, or a finite
/// non-negative number below 2^64.
#[derive(Clone, Copy)]
enum Seconds {
    Int(u64),
    Float(f64),
}

/// The payload of a session JWT whose signature verified, borrowing from its decoded bytes.
#[derive(Default)]
pub(crate) struct Payload<'a> {
    sub: Field<String>,
    iss: Field<Value>,
    aud: Field<Value>,
    exp: Field<Seconds>,
    nbf: Field<Seconds>,
    iat: Option<Value>,
    session: Option<&'a RawValue>,
    organization: Option<&'a RawValue>,
    custom: Map<String, Value>,
}

impl<'a> Payload<'a> {
    /// Parses the decoded payload; any JSON or shape error is [`JwtError::Malformed`].
    pub(crate) fn parse(json: &'a [u8]) -> Result<Self, JwtError> {
        serde_json::from_slice(json).map_err(|_| JwtError::Malformed)
    }

    /// `sub`, `iss`, `aud`, `exp` and `nbf` present and well typed; `iss` one of `issuers`
    /// (a string, or an array holding one); `aud` holding `audience` (likewise).
    pub(crate) fn check_registered(
        &self,
        issuers: &[String],
        audience: &str,
    ) -> Result<(), JwtError> {
        let (Some(_), Some(iss), Some(aud), Some(_), Some(_)) = (
            self.sub.parsed(),
            self.iss.parsed(),
            self.aud.parsed(),
            self.exp.parsed(),
            self.nbf.parsed(),
        ) else {
            return Err(JwtError::MissingClaims);
        };
        if !names_any(iss, |name| issuers.iter().any(|i| i == name)) {
            return Err(JwtError::InvalidIssuer);
        }
        if !names_any(aud, |name| name == audience) {
            return Err(JwtError::InvalidAudience);
        }
        Ok(())
    }

    /// The time claims, `iat` first (absent → [`JwtError::MissingClaims`]); call after
    /// [`check_registered`](Self::check_registered).
    pub(crate) fn times(&self) -> Result<TimeClaims, JwtError> {
        let seconds = |field: &Field<Seconds>| match field.parsed() {
            Some(Seconds::Int(secs)) => from_epoch(Duration::from_secs(*secs)),
            Some(Seconds::Float(secs)) => from_secs_f64(*secs),
            None => Err(JwtError::MissingClaims),
        };
        Ok(TimeClaims {
            issued_at: numeric_date(self.iat.as_ref())?,
            not_before: seconds(&self.nbf)?,
            expires_at: seconds(&self.exp)?,
        })
    }

    /// Builds the session: `sub` is the member, Stytch's session and organization claims give
    /// the rest, and every other non-registered claim not under `https://stytch.com/` is a
    /// custom claim.
    pub(crate) fn into_session(self) -> Result<MemberSession, JwtError> {
        let member_id = match self.sub {
            Field::Parsed(sub) if !sub.is_empty() => sub,
            _ => return Err(JwtError::MissingClaims),
        };
        let session: SessionClaim = claim(self.session)?;
        let organization: OrganizationClaim = claim(self.organization)?;
        let expires_at = required(session.expires_at)?;
        let expires_at = rfc3339::parse(&expires_at).ok_or(JwtError::Malformed)?;
        let member_session_id = required(session.id)?;
        let organization_id = required(organization.organization_id)?;
        Ok(MemberSession::new(MemberSessionData::from_parts(
            StytchId::from(member_session_id),
            StytchId::from(member_id),
            StytchId::from(organization_id),
            organization.slug.as_deref().unwrap_or_default(),
            session.roles.unwrap_or_default(),
            session.started_at.as_deref().and_then(rfc3339::parse),
            session.last_accessed_at.as_deref().and_then(rfc3339::parse),
            expires_at,
            session.authentication_factors.unwrap_or_default(),
            self.custom,
        )))
    }
}

/// What an M2M access token carries (client credentials grant): `sub` is the client id,
/// `scope` its space-separated scopes, every other non-registered claim a custom claim.
#[derive(Debug)]
pub(crate) struct AccessTokenClaims {
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) custom_claims: Map<String, Value>,
}

impl Payload<'_> {
    /// Whether this is a member session's JWT (it carries Stytch's session claim).
    pub(crate) fn is_session(&self) -> bool {
        self.session.is_some()
    }

    /// The claims of an M2M access token: no session claim (a session JWT is never an
    /// access token), a client id in `sub`, and `scope` a string (possibly empty); anything
    /// else is [`JwtError::MissingClaims`].
    pub(crate) fn into_access_token(mut self) -> Result<AccessTokenClaims, JwtError> {
        if self.session.is_some() {
            return Err(JwtError::MissingClaims);
        }
        let client_id = match self.sub {
            Field::Parsed(sub) if !sub.is_empty() => sub,
            _ => return Err(JwtError::MissingClaims),
        };
        let scopes = match self.custom.remove("scope") {
            Some(Value::String(scope)) => scope.split_whitespace().map(str::to_owned).collect(),
            _ => return Err(JwtError::MissingClaims),
        };
        Ok(AccessTokenClaims {
            client_id,
            scopes,
            custom_claims: self.custom,
        })
    }
}

/// Whether `names` (a string, or an array of strings) holds a name `matches` accepts.
fn names_any(names: &Value, matches: impl Fn(&str) -> bool) -> bool {
    match names {
        Value::String(name) => matches(name),
        Value::Array(names) => names.iter().filter_map(Value::as_str).any(matches),
        _ => false,
    }
}

/// `iss` and `aud`: a string or an array of strings; `null` is absent.
fn names(value: Value) -> Field<Value> {
    match value {
        Value::Null => Field::Absent,
        Value::String(_) => Field::Parsed(value),
        Value::Array(ref items) if items.iter().all(Value::is_string) => Field::Parsed(value),
        _ => Field::Invalid,
    }
}

fn from_epoch(since_epoch: Duration) -> Result<SystemTime, JwtError> {
    UNIX_EPOCH
        .checked_add(since_epoch)
        .ok_or(JwtError::Malformed)
}

fn from_secs_f64(secs: f64) -> Result<SystemTime, JwtError> {
    Duration::try_from_secs_f64(secs)
        .map_err(|_| JwtError::Malformed)
        .and_then(from_epoch)
}

/// A JWT NumericDate (`iat`): seconds since the epoch, integer or not.
fn numeric_date(value: Option<&Value>) -> Result<SystemTime, JwtError> {
    let value = value.ok_or(JwtError::MissingClaims)?;
    match value.as_u64() {
        Some(secs) => from_epoch(Duration::from_secs(secs)),
        None => from_secs_f64(value.as_f64().ok_or(JwtError::Malformed)?),
    }
}

#[derive(Deserialize)]
struct SessionClaim {
    id: Option<String>,
    started_at: Option<String>,
    last_accessed_at: Option<String>,
    expires_at: Option<String>,
    /// Kept as the JWT's text: parsing the factors into JSON values only to write them back
    /// as text cost 5 % of a verification.
    #[serde(default, deserialize_with = "factors")]
    authentication_factors: Option<AuthenticationFactors>,
    roles: Option<Vec<String>>,
}

/// `authentication_factors`: an array, kept as its JSON text (`null` is absent); anything
/// else fails the claim, as a `Vec` of values would.
fn factors<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<AuthenticationFactors>, D::Error> {
    match Option::<Box<RawValue>>::deserialize(d)? {
        None => Ok(None),
        Some(raw) => AuthenticationFactors::from_json_array(&raw)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("authentication_factors is not an array")),
    }
}

#[derive(Deserialize)]
struct OrganizationClaim {
    organization_id: Option<String>,
    slug: Option<String>,
}

/// Parses one of Stytch's claims; absent → [`JwtError::MissingClaims`]. One pass straight
/// into `T`; should that fail, the claim is read as it was before, through a JSON value (where
/// a duplicate key's last value wins instead of being an error), and that decides.
fn claim<T: for<'de> Deserialize<'de>>(raw: Option<&RawValue>) -> Result<T, JwtError> {
    let raw = raw.ok_or(JwtError::MissingClaims)?;
    serde_json::from_str(raw.get()).or_else(|_| {
        serde_json::from_str::<Value>(raw.get())
            .and_then(serde_json::from_value)
            .map_err(|_| JwtError::Malformed)
    })
}

fn required(value: Option<String>) -> Result<String, JwtError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or(JwtError::MissingClaims)
}

impl<'de> Deserialize<'de> for Payload<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(PayloadVisitor)
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JWT claims set")
    }

    /// One pass over the claims. Later duplicates of a claim replace earlier ones, except for
    /// `sub`, `iss`, `aud`, `exp` and `nbf`, which may appear once.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload<'de>, A::Error> {
        let mut payload = Payload::default();
        let mut seen = [false; 5];
        let mut once = |i: usize| {
            if std::mem::replace(&mut seen[i], true) {
                Err(de::Error::custom("duplicate registered claim"))
            } else {
                Ok(())
            }
        };
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "sub" => {
                    once(0)?;
                    payload.sub = map.next_value_seed(SubSeed)?;
                }
                "iss" => {
                    once(1)?;
                    payload.iss = names(map.next_value()?);
                }
                "aud" => {
                    once(2)?;
                    payload.aud = names(map.next_value()?);
                }
                "exp" => {
                    once(3)?;
                    payload.exp = map.next_value_seed(SecondsSeed)?;
                }
                "nbf" => {
                    once(4)?;
                    payload.nbf = map.next_value_seed(SecondsSeed)?;
                }
                "iat" => payload.iat = Some(map.next_value()?),
                SESSION_CLAIM => payload.session = Some(map.next_value()?),
                ORGANIZATION_CLAIM => payload.organization = Some(map.next_value()?),
                name if REGISTERED.contains(&name) || name.starts_with(STYTCH_PREFIX) => {
                    // Not used, but held to the same JSON limits as the claims that are.
                    map.next_value::<Value>()?;
                }
                _ => {
                    let value = map.next_value()?;
                    payload.custom.insert(key.into_owned(), value);
                }
            }
        }
        Ok(payload)
    }
}

/// A claim name, borrowed unless it holds escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(v.to_owned().into()))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// `sub`: a string; `null` is absent; a number or a boolean is invalid; an array or an object
/// makes the payload malformed (as it did the claims jsonwebtoken validated).
struct SubSeed;

impl<'de> DeserializeSeed<'de> for SubSeed {
    type Value = Field<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SubSeed {
    type Value = Field<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Parsed(v.to_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Absent)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::Invalid)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Field::Invalid)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Field::Invalid)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Field::Invalid)
    }
}

/// `exp` and `nbf`: a [`Seconds`]; anything else (`null`, a string, a negative number, an
/// empty array or object) is invalid, and a non-empty array or object makes the payload
/// malformed (as it did the claims jsonwebtoken validated).
struct SecondsSeed;

impl<'de> DeserializeSeed<'de> for SecondsSeed {
    type Value = Field<Seconds>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SecondsSeed {
    type Value = Field<Seconds>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a NumericDate")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Field::Parsed(Seconds::Int(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // `u64::MAX as f64` is 2^64: every smaller finite float is a u64 once rounded.
        if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
            Ok(Field::Parsed(Seconds::Float(v)))
        } else {
            Ok(Field::Invalid)
        }
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Field::Invalid)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::Invalid)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Field::Invalid)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Invalid)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        match seq.next_element::<IgnoredAny>()? {
            None => Ok(Field::Invalid),
            Some(_) => Err(de::Error::custom(
                "a NumericDate cannot be a non-empty array",
            )),
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        match map.next_key::<IgnoredAny>()? {
            None => Ok(Field::Invalid),
            Some(_) => Err(de::Error::custom(
                "a NumericDate cannot be a non-empty object",
            )),
        }
    }
}

#[cfg(test)]
mod tests;
