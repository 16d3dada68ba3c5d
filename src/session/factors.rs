//! [`AuthenticationFactors`]: a session's factors as Stytch sent them, in a compact binary
//! form (JSON rebuilt when asked), every field kept, known or not.
//!
//! The encoding is JSON's data model with Stytch's usual keys and values as one-byte codes,
//! Stytch ids as a prefix code and 16 bytes ([`StytchId`](super::StytchId)'s), and canonical
//! RFC 3339 timestamps as a difference from the previous one (in seconds when they have no
//! milliseconds). The top-level array is implied: its items follow each other. Anything else
//! (an unknown key, a string of another shape, a number, a nested object) is stored as it
//! is, so nothing a future schema adds is lost. Built straight from the JSON text (a verified
//! JWT's claim) or from parsed values, in one pass.
//!
//! ```text
//! value: 0x00 null | 0x01 false | 0x02 true | 0x03 varint (u64) | 0x04 varint (-1 - i64)
//!      | 0x05 f64 (8 bytes, LE) | 0x06 varint length, UTF-8 | 0x07 value* 0x0B (array)
//!      | 0x08 (key value)* 0x7F (object) | 0x09 prefix code, 16 bytes (a Stytch id)
//!      | 0x0A varint (zigzag(delta) << 1 | with millis) (a timestamp: delta in ms from the
//!        previous timestamp with millis, in seconds from the previous one's second without)
//!      | 0x10..=0x7F a known value (KNOWN_VALUES)
//! key:   0x80..=0xFF a known key (KNOWN_KEYS) | 0x00..=0x7D length, UTF-8 | 0x7E varint length, UTF-8
//! factors: value* (the items of the top-level array)
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::id;

const NULL: u8 = 0x00;
const FALSE: u8 = 0x01;
const TRUE: u8 = 0x02;
const UINT: u8 = 0x03;
const NEG_INT: u8 = 0x04;
const FLOAT: u8 = 0x05;
const STRING: u8 = 0x06;
const ARRAY: u8 = 0x07;
const OBJECT: u8 = 0x08;
const ID: u8 = 0x09;
const TIMESTAMP: u8 = 0x0A;
const ARRAY_END: u8 = 0x0B;
const KNOWN_VALUE: u8 = 0x10;
const OBJECT_END: u8 = 0x7F;
const LONG_KEY: u8 = 0x7E;
const KNOWN_KEY: u8 = 0x80;

/// Keys of Stytch's factor objects, coded as `KNOWN_KEY + index` (at most 128; append only).
const KNOWN_KEYS: [&str; 44] = [
    "type",
    "delivery_method",
    "last_authenticated_at",
    "created_at",
    "updated_at",
    "sequence_order",
    "email_factor",
    "email_id",
    "email_address",
    "phone_number_factor",
    "phone_id",
    "phone_number",
    "google_oauth_factor",
    "microsoft_oauth_factor",
    "github_oauth_factor",
    "hubspot_oauth_factor",
    "slack_oauth_factor",
    "id",
    "provider_subject",
    "saml_sso_factor",
    "oidc_sso_factor",
    "provider_id",
    "external_id",
    "authenticator_app_factor",
    "totp_id",
    "recovery_code_factor",
    "totp_recovery_code_id",
    "impersonated_factor",
    "impersonator_id",
    "impersonator_email_address",
    "trusted_auth_token_factor",
    "token_id",
    "oauth_access_token_factor",
    "provider",
    "email_otp_factor",
    "password_factor",
    "webauthn_factor",
    "webauthn_registration_id",
    "domain",
    "user_agent",
    "crypto_wallet_factor",
    "crypto_wallet_address",
    "crypto_wallet_type",
    "embeddable_magic_link_factor",
];

/// Values of Stytch's factor fields, coded as `KNOWN_VALUE + index` (at most 112; append
/// only).
const KNOWN_VALUES: [&str; 40] = [
    "magic_link",
    "otp",
    "oauth",
    "webauthn",
    "totp",
    "crypto",
    "password",
    "signature_challenge",
    "sso",
    "imported",
    "recovery_codes",
    "email_otp",
    "impersonated",
    "trusted_auth_token",
    "email",
    "sms",
    "whatsapp",
    "embedded",
    "authenticator_app",
    "recovery_code",
    "knowledge",
    "sso_saml",
    "sso_oidc",
    "oauth_google",
    "oauth_microsoft",
    "oauth_github",
    "oauth_hubspot",
    "oauth_slack",
    "oauth_apple",
    "oauth_facebook",
    "oauth_gitlab",
    "oauth_discord",
    "oauth_salesforce",
    "oauth_linkedin",
    "impersonation",
    "biometric",
    "PRIMARY",
    "SECONDARY",
    "",
    "unknown",
];

/// A session's authentication factors, as Stytch sent them (a JSON array of objects whose
/// schema grows often), in a compact binary form: Stytch's usual keys and values as one-byte
/// codes, ids and timestamps as numbers, everything else as sent. [`values`](Self::values)
/// and [`to_json`](Self::to_json) rebuild the JSON. A typical factor takes 40–80 bytes here,
/// against 150–300 as JSON text and about 800 as parsed JSON maps.
///
/// Serializes (and deserializes) as the JSON array. Two are equal when their factors are.
/// The default is no factors.
#[derive(Clone, Default)]
pub struct AuthenticationFactors(Box<[u8]>);

impl AuthenticationFactors {
    /// The factors, parsed.
    pub fn values(&self) -> Vec<Value> {
        let mut reader = Reader::new(&self.0);
        let mut values = Vec::new();
        while reader.at < self.0.len() {
            match reader.value() {
                Some(value) => values.push(value),
                // Only ever bytes this module wrote: not reached.
                None => return Vec::new(),
            }
        }
        values
    }

    /// The factors as compact JSON text (an array; object keys in the order they came).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.0.len() * 3 + 2);
        out.push('[');
        let mut reader = Reader::new(&self.0);
        while reader.at < self.0.len() {
            if out.len() > 1 {
                out.push(',');
            }
            if reader.write_json(&mut out).is_none() {
                // Only ever bytes this module wrote: not reached.
                return "[]".to_owned();
            }
        }
        out.push(']');
        out
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a factor has `"type": kind` (`"magic_link"`, `"sso"`, `"totp"`, …).
    pub fn has_type(&self, kind: &str) -> bool {
        self.values()
            .iter()
            .any(|factor| factor.get("type").and_then(Value::as_str) == Some(kind))
    }

    /// The factors from JSON text already parsed as valid JSON (a raw claim of a verified
    /// JWT), encoded in one pass (no JSON values built): `None` unless it is an array.
    #[cfg(feature = "jwt")]
    pub(crate) fn from_json_array(raw: &serde_json::value::RawValue) -> Option<Self> {
        let mut de = serde_json::Deserializer::from_str(raw.get());
        let factors = Top.deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(factors)
    }

    /// The encoded bytes' length (for the memory tests).
    #[cfg(test)]
    pub(crate) fn encoded_len(&self) -> usize {
        self.0.len()
    }
}

impl PartialEq for AuthenticationFactors {
    fn eq(&self, other: &Self) -> bool {
        // The bytes may differ (key order) for the same factors.
        self.0 == other.0 || self.values() == other.values()
    }
}

impl From<Vec<Value>> for AuthenticationFactors {
    fn from(values: Vec<Value>) -> Self {
        // A `Value` deserializes into anything that JSON does: this cannot fail.
        Top.deserialize(Value::Array(values)).unwrap_or_default()
    }
}

impl fmt::Debug for AuthenticationFactors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl Serialize for AuthenticationFactors {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.values().serialize(s)
    }
}

impl<'de> Deserialize<'de> for AuthenticationFactors {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Top.deserialize(d)
    }
}

/// Appends `n` as LEB128.
fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The encoder's state: the bytes, and the previous timestamp (milliseconds since the epoch).
#[derive(Default)]
struct Encoder {
    out: Vec<u8>,
    last_ms: i64,
}

impl Encoder {
    fn string(&mut self, s: &str) {
        if let Some(i) = KNOWN_VALUES.iter().position(|v| *v == s) {
            self.out.push(KNOWN_VALUE + i as u8);
        } else if let Some((prefix, uuid)) = id::compact_parts(s) {
            self.out.push(ID);
            self.out.push(prefix);
            self.out.extend_from_slice(&uuid);
        } else if let Some((ms, millis)) = canonical_timestamp(s) {
            self.out.push(TIMESTAMP);
            let delta = if millis {
                ms.wrapping_sub(self.last_ms)
            } else {
                (ms / 1000).wrapping_sub(self.last_ms.div_euclid(1000))
            };
            let zigzag = ((delta << 1) ^ (delta >> 63)) as u64;
            varint(&mut self.out, (zigzag << 1) | u64::from(millis));
            self.last_ms = ms;
        } else {
            self.out.push(STRING);
            varint(&mut self.out, s.len() as u64);
            self.out.extend_from_slice(s.as_bytes());
        }
    }

    fn key(&mut self, k: &str) {
        if let Some(i) = KNOWN_KEYS.iter().position(|v| *v == k) {
            self.out.push(KNOWN_KEY + i as u8);
        } else if k.len() < usize::from(LONG_KEY) {
            self.out.push(k.len() as u8);
            self.out.extend_from_slice(k.as_bytes());
        } else {
            self.out.push(LONG_KEY);
            varint(&mut self.out, k.len() as u64);
            self.out.extend_from_slice(k.as_bytes());
        }
    }
}

/// A timestamp written as `YYYY-MM-DDTHH:MM:SSZ` or `YYYY-MM-DDTHH:MM:SS.mmmZ` (what
/// Stytch sends), after 1970: milliseconds since the epoch, and whether it had millis. Only
/// when writing it back gives the same text.
fn canonical_timestamp(s: &str) -> Option<(i64, bool)> {
    let bytes = s.as_bytes();
    let millis = match bytes.len() {
        20 => false,
        24 => true,
        _ => return None,
    };
    if bytes[4] != b'-' || bytes[10] != b'T' || bytes[bytes.len() - 1] != b'Z' {
        return None;
    }
    let at = humantime::parse_rfc3339(s).ok()?;
    let written = if millis {
        humantime::format_rfc3339_millis(at).to_string()
    } else {
        humantime::format_rfc3339_seconds(at).to_string()
    };
    if written != s {
        return None;
    }
    let ms = i64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
    Some((ms, millis))
}

/// The top level: an array.
struct Top;

impl<'de> DeserializeSeed<'de> for Top {
    type Value = AuthenticationFactors;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Top {
    type Value = AuthenticationFactors;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of authentication factors")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut encoder = Encoder::default();
        while seq.next_element_seed(Encode(&mut encoder))?.is_some() {}
        Ok(AuthenticationFactors(encoder.out.into_boxed_slice()))
    }
}

/// One value, encoded as it is deserialized.
struct Encode<'a>(&'a mut Encoder);

impl<'de> DeserializeSeed<'de> for Encode<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Encode<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.out.push(NULL);
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        Encode(self.0).deserialize(d)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.out.push(if v { TRUE } else { FALSE });
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.out.push(UINT);
        varint(&mut self.0.out, v);
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        // As `serde_json::Number`: a non-negative integer is a `u64`.
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => {
                self.0.out.push(NEG_INT);
                varint(&mut self.0.out, !(v as u64));
                Ok(())
            }
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // As `serde_json::Value`: a non-finite float is `null`.
        if v.is_finite() {
            self.0.out.push(FLOAT);
            self.0.out.extend_from_slice(&v.to_le_bytes());
        } else {
            self.0.out.push(NULL);
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.string(v);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.out.push(ARRAY);
        while seq.next_element_seed(Encode(self.0))?.is_some() {}
        self.0.out.push(ARRAY_END);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.out.push(OBJECT);
        while map.next_key_seed(Key(self.0))?.is_some() {
            map.next_value_seed(Encode(self.0))?;
        }
        self.0.out.push(OBJECT_END);
        Ok(())
    }
}

/// An object's key, encoded as it is deserialized.
struct Key<'a>(&'a mut Encoder);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.key(v);
        Ok(())
    }
}

/// Decodes an encoding (only ever one this module wrote: `None` on anything else).
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    last_ms: i64,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            at: 0,
            last_ms: 0,
        }
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(slice)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(n);
            }
        }
        None
    }

    fn text(&mut self, len: u64) -> Option<&'a str> {
        std::str::from_utf8(self.take(usize::try_from(len).ok()?)?).ok()
    }

    /// A string value (after its tag): known, id, timestamp or text.
    fn string(&mut self, tag: u8) -> Option<String> {
        match tag {
            ID => {
                let prefix = self.byte()?;
                let uuid: [u8; 16] = self.take(16)?.try_into().ok()?;
                Some(id::render_parts(prefix, &uuid)?)
            }
            TIMESTAMP => {
                let n = self.varint()?;
                let zigzag = n >> 1;
                let delta = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
                let ms = if n & 1 == 1 {
                    self.last_ms.wrapping_add(delta)
                } else {
                    self.last_ms
                        .div_euclid(1000)
                        .wrapping_add(delta)
                        .wrapping_mul(1000)
                };
                self.last_ms = ms;
                let at = UNIX_EPOCH.checked_add(Duration::from_millis(u64::try_from(ms).ok()?))?;
                Some(timestamp(at, n & 1 == 1))
            }
            STRING => {
                let len = self.varint()?;
                self.text(len).map(str::to_owned)
            }
            _ => KNOWN_VALUES
                .get(usize::from(tag.checked_sub(KNOWN_VALUE)?))
                .map(|v| (*v).to_owned()),
        }
    }

    /// A key, or `Ok(None)` at the end of an object.
    fn key(&mut self) -> Option<Option<std::borrow::Cow<'a, str>>> {
        let b = self.byte()?;
        Some(match b {
            OBJECT_END => None,
            KNOWN_KEY..=u8::MAX => Some((*KNOWN_KEYS.get(usize::from(b - KNOWN_KEY))?).into()),
            LONG_KEY => {
                let len = self.varint()?;
                Some(self.text(len)?.into())
            }
            len => Some(self.text(u64::from(len))?.into()),
        })
    }

    fn value(&mut self) -> Option<Value> {
        let tag = self.byte()?;
        Some(match tag {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            UINT => self.varint()?.into(),
            NEG_INT => (!self.varint()? as i64).into(),
            FLOAT => Value::from(f64::from_le_bytes(self.take(8)?.try_into().ok()?)),
            ARRAY => {
                let mut items = Vec::new();
                while self.bytes.get(self.at) != Some(&ARRAY_END) {
                    items.push(self.value()?);
                }
                self.at += 1;
                Value::Array(items)
            }
            OBJECT => {
                let mut map = Map::new();
                while let Some(key) = self.key()? {
                    let value = self.value()?;
                    map.insert(key.into_owned(), value);
                }
                Value::Object(map)
            }
            _ => Value::String(self.string(tag)?),
        })
    }

    /// Writes the value as compact JSON, keys in their stored order.
    fn write_json(&mut self, out: &mut String) -> Option<()> {
        let tag = self.byte()?;
        match tag {
            NULL => out.push_str("null"),
            FALSE => out.push_str("false"),
            TRUE => out.push_str("true"),
            UINT => out.push_str(&self.varint()?.to_string()),
            NEG_INT => out.push_str(&(!self.varint()? as i64).to_string()),
            FLOAT => {
                let v = Value::from(f64::from_le_bytes(self.take(8)?.try_into().ok()?));
                out.push_str(&v.to_string());
            }
            ARRAY => {
                out.push('[');
                let mut first = true;
                while self.bytes.get(self.at) != Some(&ARRAY_END) {
                    if !std::mem::take(&mut first) {
                        out.push(',');
                    }
                    self.write_json(out)?;
                }
                self.at += 1;
                out.push(']');
            }
            OBJECT => {
                out.push('{');
                let mut first = true;
                while let Some(key) = self.key()? {
                    if !std::mem::take(&mut first) {
                        out.push(',');
                    }
                    out.push_str(&Value::from(&*key).to_string());
                    out.push(':');
                    self.write_json(out)?;
                }
                out.push('}');
            }
            _ => out.push_str(&Value::String(self.string(tag)?).to_string()),
        }
        Some(())
    }
}

/// A timestamp written back as Stytch wrote it.
fn timestamp(at: SystemTime, millis: bool) -> String {
    if millis {
        humantime::format_rfc3339_millis(at).to_string()
    } else {
        humantime::format_rfc3339_seconds(at).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Stytch's session object example's factor, and others of other shapes.
    fn samples() -> Vec<Value> {
        vec![
            json!([]),
            json!([{
                "delivery_method": "email",
                "email_factor": {
                    "email_address": "sandbox@stytch.com",
                    "email_id": "email-test-81bf03a8-86e1-4d95-bd44-bb3495224953"
                },
                "last_authenticated_at": "2023-01-09T07:41:52Z",
                "created_at": "2023-01-09T07:41:52Z",
                "updated_at": "2023-01-09T07:41:52.123Z",
                "sequence_order": "PRIMARY",
                "type": "magic_link"
            }]),
            json!([
                {"type": "sso", "delivery_method": "sso_saml", "saml_sso_factor": {"id": "saml-connection-live-0123abcd-ef01-2345-6789-abcdef012345", "provider_id": "x", "external_id": "ext"}},
                {"type": "totp", "delivery_method": "authenticator_app", "last_authenticated_at": "1999-12-31T23:59:59Z", "authenticator_app_factor": {"totp_id": "totp-test-0123abcd-ef01-2345-6789-abcdef012345"}},
                {"type": "future_type", "delivery_method": "future", "a_new_field": {"nested": [1, -2, 3.5, true, false, null, "x", {"k": []}]}, "": "", "é": "ü"},
                {"n": u64::MAX, "m": i64::MIN, "f": -0.0, "s": "2023-01-09T07:41:52.1Z", "t": "2023-01-09t07:41:52Z", "u": "member-test-32FC5024-9c09-4da3-bd2e-c9ce4da9375f"},
                {"long_key_______________________________________________________________________________________________________________________________": "v".repeat(300)},
                {"before": "1960-01-01T00:00:00Z", "back": "2023-01-09T07:41:52Z", "and_forth": "2099-01-09T07:41:52Z"}
            ]),
        ]
    }

    #[test]
    fn the_factors_come_back_as_stytch_sent_them() {
        // If this broke, a field of a factor (known or not) would be lost or altered between
        // Stytch's answer and the app (or the step-up check).
        for sample in samples() {
            let Value::Array(values) = sample.clone() else {
                unreachable!()
            };
            let text = sample.to_string();
            let from_values = AuthenticationFactors::from(values.clone());
            let from_text: AuthenticationFactors = serde_json::from_str(&text).unwrap();
            // The JWT path (feature `jwt`) encodes the claim's raw text.
            #[cfg(feature = "jwt")]
            let from_raw = {
                let raw = serde_json::value::RawValue::from_string(text.clone()).unwrap();
                AuthenticationFactors::from_json_array(&raw).unwrap()
            };
            #[cfg(not(feature = "jwt"))]
            let from_raw = from_text.clone();
            for factors in [&from_values, &from_text, &from_raw] {
                assert_eq!(factors.values(), values);
                assert_eq!(
                    serde_json::from_str::<Value>(&factors.to_json()).unwrap(),
                    sample
                );
                assert_eq!(serde_json::to_value(factors).unwrap(), sample);
                assert_eq!(factors.is_empty(), values.is_empty());
            }
            assert_eq!(from_values, from_text);
            assert_eq!(from_text, from_raw);
        }
        #[cfg(feature = "jwt")]
        {
            let raw = serde_json::value::RawValue::from_string("{}".into()).unwrap();
            assert!(AuthenticationFactors::from_json_array(&raw).is_none());
        }
        assert!(serde_json::from_str::<AuthenticationFactors>("{}").is_err());
        assert!(serde_json::from_str::<AuthenticationFactors>("null").is_err());
    }

    #[test]
    fn a_typical_factor_is_small() {
        // If this broke, a million cached sessions would take a lot more memory (see
        // BENCHMARKS.md): Stytch's example factor is 280 bytes of JSON text, 65 here.
        let factors = AuthenticationFactors::from(samples()[1].as_array().unwrap().clone());
        assert!(factors.encoded_len() <= 65, "{}", factors.encoded_len());
        assert!(factors.has_type("magic_link"));
        assert!(!factors.has_type("sso"));
    }
}
