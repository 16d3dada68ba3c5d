//! Svix (Standard Webhooks) signature verification: [`WebhookSecrets`] and [`verify`].
//!
//! Implemented with `hmac` + `sha2` rather than a webhook crate: `standardwebhooks` reads only
//! the unbranded `webhook-*` header names (Stytch's Svix sends `svix-*`) and pulls an older
//! `base64` and `time`; the `svix` crate is an API client whose verifier comes with it. What
//! is verified is small and fully specified:
//!
//! - headers `svix-id`, `svix-timestamp`, `svix-signature` (or the unbranded `webhook-id`,
//!   `webhook-timestamp`, `webhook-signature`), one value each;
//! - signed content: the bytes `{id}.{timestamp}.{raw body}`; signature: base64 of its
//!   HMAC-SHA256 under the key, the base64-decoded part of the secret after `whsec_`;
//! - `svix-signature` is a space-separated list of `version,signature`: any `v1` signature
//!   matching under any configured secret (rotation) accepts; other versions are ignored;
//!   comparison is constant-time ([`Mac::verify_slice`]);
//! - the timestamp (Unix seconds) must be within [`TOLERANCE`] of this host's clock, both
//!   ways, so a captured delivery cannot be replayed later.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;

use crate::error::ConfigError;

/// How far a webhook's timestamp may be from this host's clock, in either direction.
pub(crate) const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Longest message id accepted (Svix's are ~30 characters); bounds what is remembered for
/// duplicate detection.
const MAX_ID_LEN: usize = 256;

/// Most signatures looked at in one header (rotation needs two or three).
const MAX_SIGNATURES: usize = 16;

/// The signing secrets of a webhook endpoint (`whsec_…`), several during a rotation. Their
/// `Debug` prints only how many there are.
#[derive(Clone)]
pub struct WebhookSecrets {
    keys: Vec<Vec<u8>>,
}

impl WebhookSecrets {
    /// Parses one secret or several, comma-separated (Stytch's dashboard shows each as
    /// `whsec_` followed by base64; spaces around commas are ignored).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidWebhookSecret`] when a part is empty, lacks the `whsec_` prefix
    /// or is not base64 (the message never repeats the value).
    pub fn parse(secrets: &str) -> Result<Self, ConfigError> {
        let keys = secrets
            .split(',')
            .map(|secret| {
                let encoded = secret
                    .trim()
                    .strip_prefix("whsec_")
                    .ok_or(ConfigError::InvalidWebhookSecret)?;
                match STANDARD.decode(encoded) {
                    Ok(key) if !key.is_empty() => Ok(key),
                    _ => Err(ConfigError::InvalidWebhookSecret),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys })
    }

    /// How many secrets are configured.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always `false`: parsing refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecrets({} secret(s), redacted)", self.keys.len())
    }
}

/// Why a delivery was refused (401, no effect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A signature header is missing.
    MissingHeader,
    /// A signature header is repeated, not ASCII, or not of the expected form.
    MalformedHeader,
    /// The timestamp is more than [`TOLERANCE`] in the past.
    Stale,
    /// The timestamp is more than [`TOLERANCE`] in the future.
    Future,
    /// No `v1` signature matches under any secret.
    BadSignature,
}

impl Refusal {
    /// For logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::MissingHeader => "missing_header",
            Self::MalformedHeader => "malformed_header",
            Self::Stale => "stale_timestamp",
            Self::Future => "future_timestamp",
            Self::BadSignature => "bad_signature",
        }
    }
}

/// A delivery's signature headers, well-formed and within the time window: what can be
/// checked before reading its body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signed<'h> {
    id: &'h str,
    timestamp: &'h str,
    signatures: &'h str,
}

/// Checks a delivery's headers at `now`, before its body is read: one family of headers
/// (`svix-*`, else `webhook-*`), an id of printable ASCII, a timestamp within
/// [`TOLERANCE`], and at least one `v1,` signature of an HMAC-SHA256's length. A delivery
/// failing this is refused without reading a byte of its body.
pub(crate) fn check_headers(headers: &HeaderMap, now: SystemTime) -> Result<Signed<'_>, Refusal> {
    // One family or the other, never a mix: svix-* when svix-id is present.
    let prefix = if headers.contains_key("svix-id") {
        "svix"
    } else {
        "webhook"
    };
    let id = header(headers, prefix, "id")?;
    let timestamp = header(headers, prefix, "timestamp")?;
    let signatures = header(headers, prefix, "signature")?;
    if id.is_empty() || id.len() > MAX_ID_LEN || id.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(Refusal::MalformedHeader);
    }
    check_timestamp(timestamp, now)?;
    let plausible = signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .take(MAX_SIGNATURES)
        .any(|encoded| STANDARD.decode(encoded).is_ok_and(|mac| mac.len() == 32));
    if !plausible {
        return Err(Refusal::MalformedHeader);
    }
    Ok(Signed {
        id,
        timestamp,
        signatures,
    })
}

/// Verifies the signature of checked headers over the delivery's raw `body`.
pub(crate) fn check_body<'h>(
    secrets: &WebhookSecrets,
    signed: &Signed<'h>,
    body: &[u8],
) -> Result<&'h str, Refusal> {
    let macs: Vec<Hmac<Sha256>> = secrets
        .keys
        .iter()
        .map(|key| {
            // HMAC takes keys of any length: this cannot fail.
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
            mac.update(signed.id.as_bytes());
            mac.update(b".");
            mac.update(signed.timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            mac
        })
        .collect();
    let matches = signed
        .signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .take(MAX_SIGNATURES)
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|signature| {
            macs.iter()
                .any(|mac| mac.clone().verify_slice(&signature).is_ok())
        });
    if matches {
        Ok(signed.id)
    } else {
        Err(Refusal::BadSignature)
    }
}

/// Verifies a delivery's signature over its raw `body` at `now`; returns its message id.
#[cfg(test)]
pub(crate) fn verify<'h>(
    secrets: &WebhookSecrets,
    headers: &'h HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<&'h str, Refusal> {
    check_body(secrets, &check_headers(headers, now)?, body)
}

/// The one value of header `{prefix}-{name}`, as ASCII.
fn header<'h>(headers: &'h HeaderMap, prefix: &str, name: &str) -> Result<&'h str, Refusal> {
    let name = format!("{prefix}-{name}");
    let mut values = headers.get_all(name.as_str()).iter();
    let value = values.next().ok_or(Refusal::MissingHeader)?;
    if values.next().is_some() {
        return Err(Refusal::MalformedHeader);
    }
    value.to_str().map_err(|_| Refusal::MalformedHeader)
}

/// Unix seconds, digits only, within [`TOLERANCE`] of `now`.
fn check_timestamp(timestamp: &str, now: SystemTime) -> Result<(), Refusal> {
    if timestamp.is_empty()
        || timestamp.len() > 19
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Refusal::MalformedHeader);
    }
    let seconds: u64 = timestamp.parse().map_err(|_| Refusal::MalformedHeader)?;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let tolerance = TOLERANCE.as_secs();
    if seconds.saturating_add(tolerance) < now {
        Err(Refusal::Stale)
    } else if seconds > now.saturating_add(tolerance) {
        Err(Refusal::Future)
    } else {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    // Svix's published test vector, as asserted by Svix's own library tests:
    // svix/svix-webhooks, php/tests/WebhookTest.php, `testSignFunctionWorks` (commit
    // 6cb9b4b933b61554eea607e4ad13d7cbb90c99dd); the same vector is the Standard Webhooks
    // specification's.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: u64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    /// Another secret (32 bytes of 0x01).
    const OTHER_SECRET: &str = "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// `v1,<signature>` of `body` under `secret`, computed by this module's own primitive.
    pub(crate) fn sign(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> String {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    pub(crate) fn headers(prefix: &str, id: &str, timestamp: u64, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::HeaderName::try_from(format!("{prefix}-id")).unwrap(),
            HeaderValue::from_str(id).unwrap(),
        );
        h.insert(
            http::HeaderName::try_from(format!("{prefix}-timestamp")).unwrap(),
            HeaderValue::from_str(&timestamp.to_string()).unwrap(),
        );
        h.insert(
            http::HeaderName::try_from(format!("{prefix}-signature")).unwrap(),
            HeaderValue::from_str(signature).unwrap(),
        );
        h
    }

    fn secrets(s: &str) -> WebhookSecrets {
        WebhookSecrets::parse(s).unwrap()
    }

    #[test]
    fn svix_published_test_vector_verifies() {
        // If this broke, no real Stytch (Svix) delivery would verify: every webhook 401.
        let h = headers("svix", VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE);
        let now = at(VECTOR_TIMESTAMP);
        assert_eq!(
            verify(&secrets(VECTOR_SECRET), &h, VECTOR_BODY, now),
            Ok(VECTOR_ID)
        );
        assert_eq!(
            sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            VECTOR_SIGNATURE
        );
    }

    #[test]
    fn unbranded_webhook_header_names_verify() {
        // If this broke, Svix customers on unbranded headers could not use the receiver.
        let h = headers("webhook", VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE);
        let now = at(VECTOR_TIMESTAMP + 10);
        assert!(verify(&secrets(VECTOR_SECRET), &h, VECTOR_BODY, now).is_ok());
    }

    #[test]
    fn forged_deliveries_are_refused() {
        // If this broke, anyone could sign members out (or keep them in with stale roles)
        // by posting a crafted event.
        let s = secrets(VECTOR_SECRET);
        let now = at(VECTOR_TIMESTAMP);
        let ok = |sig: &str| headers("svix", VECTOR_ID, VECTOR_TIMESTAMP, sig);
        let cases: Vec<(&str, HeaderMap, &[u8])> = vec![
            (
                "tampered body",
                ok(VECTOR_SIGNATURE),
                br#"{"test": 2432232315}"#,
            ),
            (
                "wrong secret",
                ok(&sign(
                    OTHER_SECRET,
                    VECTOR_ID,
                    VECTOR_TIMESTAMP,
                    VECTOR_BODY,
                )),
                VECTOR_BODY,
            ),
            (
                "other id",
                headers("svix", "msg_other", VECTOR_TIMESTAMP, VECTOR_SIGNATURE),
                VECTOR_BODY,
            ),
            (
                "other timestamp",
                headers("svix", VECTOR_ID, VECTOR_TIMESTAMP + 1, VECTOR_SIGNATURE),
                VECTOR_BODY,
            ),
        ];
        for (name, h, body) in cases {
            assert_eq!(
                verify(&s, &h, body, now),
                Err(Refusal::BadSignature),
                "{name}"
            );
        }
        // No plausible signature at all: refused on the headers alone, before the body.
        let malformed = [
            ("v2 only", "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
            ("truncated", "v1,g0hM9SsE"),
            ("just v1,", "v1,"),
            ("not base64", "v1,!!!"),
        ];
        for (name, signature) in malformed {
            assert_eq!(
                check_headers(&ok(signature), now).unwrap_err(),
                Refusal::MalformedHeader,
                "{name}"
            );
        }
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        // If this broke, a captured delivery could be replayed at any later time.
        let s = secrets(VECTOR_SECRET);
        let h = headers("svix", VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE);
        let tolerance = TOLERANCE.as_secs();
        let verify_at = |now| verify(&s, &h, VECTOR_BODY, at(now));
        assert!(verify_at(VECTOR_TIMESTAMP + tolerance).is_ok());
        assert!(verify_at(VECTOR_TIMESTAMP - tolerance).is_ok());
        assert_eq!(
            verify_at(VECTOR_TIMESTAMP + tolerance + 1),
            Err(Refusal::Stale)
        );
        assert_eq!(
            verify_at(VECTOR_TIMESTAMP - tolerance - 1),
            Err(Refusal::Future)
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_refused() {
        // If this broke, a delivery without a signature (or with two ids) could pass.
        let s = secrets(VECTOR_SECRET);
        let now = at(VECTOR_TIMESTAMP);
        for name in ["svix-timestamp", "svix-signature"] {
            let mut h = headers("svix", VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE);
            h.remove(name);
            assert_eq!(
                verify(&s, &h, VECTOR_BODY, now),
                Err(Refusal::MissingHeader),
                "{name}"
            );
        }
        assert_eq!(
            verify(&s, &HeaderMap::new(), VECTOR_BODY, now),
            Err(Refusal::MissingHeader)
        );
        // A mix of families is not accepted: svix-id decides.
        let mut mixed = headers("webhook", VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE);
        mixed.insert("svix-id", HeaderValue::from_static(VECTOR_ID));
        assert_eq!(
            verify(&s, &mixed, VECTOR_BODY, now),
            Err(Refusal::MissingHeader)
        );
        let mut twice = headers("svix", VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE);
        twice.append("svix-id", HeaderValue::from_static("msg_2"));
        assert_eq!(
            verify(&s, &twice, VECTOR_BODY, now),
            Err(Refusal::MalformedHeader)
        );
        for bad_ts in [
            "-1",
            "1614265330.0",
            "",
            " 1614265330",
            "99999999999999999999",
        ] {
            let mut h = headers("svix", VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE);
            h.insert("svix-timestamp", HeaderValue::from_str(bad_ts).unwrap());
            assert_eq!(
                verify(&s, &h, VECTOR_BODY, now),
                Err(Refusal::MalformedHeader),
                "{bad_ts:?}"
            );
        }
    }

    #[test]
    fn any_of_several_signatures_and_any_of_two_secrets() {
        // If this broke, a secret rotation would reject deliveries during the overlap.
        let now = at(VECTOR_TIMESTAMP);
        let other = sign(OTHER_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY);
        let several = format!("v2,abc v1,bm9wZQ== {other} {VECTOR_SIGNATURE}");
        let h = headers("svix", VECTOR_ID, VECTOR_TIMESTAMP, &several);
        assert!(verify(&secrets(VECTOR_SECRET), &h, VECTOR_BODY, now).is_ok());
        // Rotation: the endpoint knows both secrets, Svix signs with either.
        let both = secrets(&format!("{OTHER_SECRET}, {VECTOR_SECRET}"));
        assert_eq!(both.len(), 2);
        for sig in [other.as_str(), VECTOR_SIGNATURE] {
            let h = headers("svix", VECTOR_ID, VECTOR_TIMESTAMP, sig);
            assert!(verify(&both, &h, VECTOR_BODY, now).is_ok());
        }
        let h = headers("svix", VECTOR_ID, VECTOR_TIMESTAMP, &other);
        assert_eq!(
            verify(&secrets(VECTOR_SECRET), &h, VECTOR_BODY, now),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn secrets_parse_and_never_print() {
        // If this broke, a typo would go unnoticed until every webhook failed, or the secret
        // would reach logs through a Debug print.
        for bad in [
            "",
            "whsec_",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!",
            "whsec_a,",
        ] {
            let err = WebhookSecrets::parse(bad).unwrap_err();
            assert!(matches!(err, ConfigError::InvalidWebhookSecret), "{bad:?}");
        }
        let s = secrets(VECTOR_SECRET);
        let printed = format!("{s:?}");
        assert!(!printed.contains("MfKQ"), "{printed}");
    }

    proptest! {
        #[test]
        fn verification_never_panics(
            id in proptest::option::of("[ -~]{0,300}"),
            timestamp in proptest::option::of("[0-9a-z.-]{0,24}"),
            signature in proptest::option::of("[ -~]{0,200}"),
            prefix in prop_oneof![Just("svix"), Just("webhook")],
            body in proptest::collection::vec(any::<u8>(), 0..256),
            now in any::<u64>(),
        ) {
            // If this broke, a crafted request could panic the receiver's task.
            let mut h = HeaderMap::new();
            for (name, value) in [("id", id), ("timestamp", timestamp), ("signature", signature)] {
                if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                    h.insert(
                        http::HeaderName::try_from(format!("{prefix}-{name}")).unwrap(),
                        value,
                    );
                }
            }
            let now = UNIX_EPOCH.checked_add(Duration::from_secs(now / 2)).unwrap_or(UNIX_EPOCH);
            let result = verify(&secrets(VECTOR_SECRET), &h, &body, now);
            prop_assert!(result.is_err());
        }
    }
}
