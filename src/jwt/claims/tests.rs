//! The one-pass payload parse against the pipeline it replaced (`jsonwebtoken::decode` into a
//! `serde_json::Map`, jsonwebtoken's claim validation, then the claims read from the map),
//! kept here as the oracle.
//!
//! If these fail, a session JWT's claims are judged differently than before: a JWT refused
//! before is accepted (or the reverse), an error changes kind (an expired JWT no longer sent to
//! Stytch), or the session handed to the app changes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ORGANIZATION_CLAIM, Payload, SESSION_CLAIM, STYTCH_PREFIX, TimeClaims};
use crate::jwt::JwtError;
use crate::session::{MemberSession, MemberSessionData, rfc3339};

const PROJECT: &str = "project-test-00000000-0000-0000-0000-000000000000";
const ISSUER: &str = "stytch.com/project-test-00000000-0000-0000-0000-000000000000";
const OTHER_ISSUER: &str = "https://login.example.com";
const REGISTERED: &[&str] = &["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];
const SECRET: &[u8] = b"oracle-secret";

type Outcome = Result<(SystemTime, SystemTime, SystemTime, MemberSession), &'static str>;

fn issuers() -> Vec<String> {
    vec![ISSUER.to_owned(), OTHER_ISSUER.to_owned()]
}

/// The new path: one parse of the payload.
fn new(json: &str) -> Outcome {
    let run = || -> Result<_, JwtError> {
        let payload = Payload::parse(json.as_bytes())?;
        payload.check_registered(&issuers(), PROJECT)?;
        let t = payload.times()?;
        let session = payload.into_session()?;
        Ok((t.issued_at, t.not_before, t.expires_at, session))
    };
    run().map_err(|err| err.kind())
}

/// The old path, signed with HS256 so that only the payload's handling is compared.
fn old(json: &str) -> Outcome {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let message = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(json.as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = true;
    validation.set_audience(&[PROJECT]);
    validation.set_issuer(&issuers());
    validation.set_required_spec_claims(&["sub", "iss", "aud", "exp", "nbf"]);
    let run = || -> Result<_, JwtError> {
        let claims = jsonwebtoken::decode::<Map<String, Value>>(
            format!("{message}.{signature}"),
            &DecodingKey::from_secret(SECRET),
            &validation,
        )
        .map_err(|err| old_error(&err))?
        .claims;
        let t = old_times(&claims)?;
        let session = old_member_session(claims)?;
        Ok((t.issued_at, t.not_before, t.expires_at, session))
    };
    run().map_err(|err| err.kind())
}

fn old_error(err: &jsonwebtoken::errors::Error) -> JwtError {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::InvalidSignature => JwtError::InvalidSignature,
        ErrorKind::InvalidAudience => JwtError::InvalidAudience,
        ErrorKind::InvalidIssuer => JwtError::InvalidIssuer,
        ErrorKind::MissingRequiredClaim(_) => JwtError::MissingClaims,
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => JwtError::UnsupportedAlgorithm,
        _ => JwtError::Malformed,
    }
}

fn old_times(claims: &Map<String, Value>) -> Result<TimeClaims, JwtError> {
    Ok(TimeClaims {
        issued_at: old_numeric_date(claims.get("iat"))?,
        not_before: old_numeric_date(claims.get("nbf"))?,
        expires_at: old_numeric_date(claims.get("exp"))?,
    })
}

fn old_numeric_date(value: Option<&Value>) -> Result<SystemTime, JwtError> {
    let value = value.ok_or(JwtError::MissingClaims)?;
    let since_epoch = if let Some(secs) = value.as_u64() {
        Duration::from_secs(secs)
    } else {
        value
            .as_f64()
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or(JwtError::Malformed)?
    };
    UNIX_EPOCH
        .checked_add(since_epoch)
        .ok_or(JwtError::Malformed)
}

#[derive(Deserialize)]
struct OldSession {
    id: Option<String>,
    started_at: Option<String>,
    last_accessed_at: Option<String>,
    expires_at: Option<String>,
    authentication_factors: Option<Vec<Value>>,
    roles: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct OldOrganization {
    organization_id: Option<String>,
    slug: Option<String>,
}

fn take<T: for<'de> Deserialize<'de>>(
    claims: &mut Map<String, Value>,
    name: &str,
) -> Result<T, JwtError> {
    let value = claims.remove(name).ok_or(JwtError::MissingClaims)?;
    serde_json::from_value(value).map_err(|_| JwtError::Malformed)
}

fn required(value: Option<String>) -> Result<String, JwtError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or(JwtError::MissingClaims)
}

fn old_member_session(mut claims: Map<String, Value>) -> Result<MemberSession, JwtError> {
    let member_id = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        Some(Value::String(_)) | None => return Err(JwtError::MissingClaims),
        Some(_) => return Err(JwtError::Malformed),
    };
    let session: OldSession = take(&mut claims, SESSION_CLAIM)?;
    let organization: OldOrganization = take(&mut claims, ORGANIZATION_CLAIM)?;
    let expires_at = required(session.expires_at)?;
    let expires_at = rfc3339::parse(&expires_at).ok_or(JwtError::Malformed)?;
    claims
        .retain(|name, _| !REGISTERED.contains(&name.as_str()) && !name.starts_with(STYTCH_PREFIX));
    let member_session_id = required(session.id)?;
    let organization_id = required(organization.organization_id)?;
    Ok(MemberSession::new(MemberSessionData::from_parts(
        member_session_id.into(),
        member_id.into(),
        organization_id.into(),
        organization.slug.as_deref().unwrap_or_default(),
        session.roles.unwrap_or_default(),
        session.started_at.as_deref().and_then(rfc3339::parse),
        session.last_accessed_at.as_deref().and_then(rfc3339::parse),
        expires_at,
        session
            .authentication_factors
            .map(Into::into)
            .unwrap_or_default(),
        claims,
    )))
}

fn claims() -> Value {
    json!({
        "sub": "member-test-fde03dd1-fff7-4b3c-9b31-ead3fbc224de",
        "iss": ISSUER,
        "aud": [PROJECT],
        "iat": 1_700_000_000u64, "nbf": 1_700_000_000u64, "exp": 1_700_000_300u64,
        "jti": "jti-1",
        SESSION_CLAIM: {
            "id": "session-test-e26a0ccb-0dc0-4edb-a4bb-e70210f43555",
            "started_at": "2023-11-14T22:13:20Z",
            "last_accessed_at": "2023-11-14T22:13:20Z",
            "expires_at": "2023-11-15T22:13:20Z",
            "attributes": { "user_agent": "", "ip_address": "" },
            "authentication_factors": [{ "type": "magic_link" }],
            "roles": ["stytch_member", "editor"]
        },
        ORGANIZATION_CLAIM: {
            "organization_id": "organization-test-bd49f916-180c-46fe-9535-d9acd5e30519",
            "slug": "acme"
        },
        "https://stytch.com/something_new": 1,
        "my_custom_claim": "value",
        "tier": { "plan": "gold" }
    })
}

/// Odd and ordinary values for any claim, as JSON text.
const POOL: &[&str] = &[
    "null",
    "true",
    "0",
    "5",
    "-5",
    "-0",
    "-0.0",
    "1.5",
    "-1.5",
    "1e19",
    "2e19",
    "1e300",
    "18446744073709551615",
    "18446744073709551616",
    "1700000000",
    "1700000000.5",
    "\"\"",
    "\"x\"",
    "\"1700000000\"",
    "\"2023-11-15T22:13:20Z\"",
    "\"2023-11-14T22:13:25Z\"",
    "[]",
    "[ ]",
    "[1]",
    "[\"x\"]",
    "[null]",
    "{}",
    "{ }",
    "{\"a\":1}",
    "[[]]",
    "\"project-test-00000000-0000-0000-0000-000000000000\"",
    "[\"project-test-00000000-0000-0000-0000-000000000000\"]",
    "[\"x\", \"project-test-00000000-0000-0000-0000-000000000000\"]",
    "[\"project-test-00000000-0000-0000-0000-000000000000\", 1]",
    "\"stytch.com/project-test-00000000-0000-0000-0000-000000000000\"",
    "[\"stytch.com/project-test-00000000-0000-0000-0000-000000000000\"]",
    "\"https://login.example.com\"",
    "[\"https:\\/\\/login.example.com\"]",
    "\"member-\\u0041\"",
    "[\"stytch_admin\"]",
    "{\"id\":\"s\",\"expires_at\":\"2023-11-15T22:13:20Z\"}",
    "{\"organization_id\":\"o\"}",
    "[\"s\", null, null, \"2023-11-15T22:13:20Z\"]",
];

const TOP: &[&str] = &[
    "sub",
    "iss",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    SESSION_CLAIM,
    ORGANIZATION_CLAIM,
    "https://stytch.com/something_new",
    "my_custom_claim",
    "\\u0073ub",
    "new_claim",
];
const INNER: &[(&str, &str)] = &[
    (SESSION_CLAIM, "id"),
    (SESSION_CLAIM, "expires_at"),
    (SESSION_CLAIM, "started_at"),
    (SESSION_CLAIM, "roles"),
    (SESSION_CLAIM, "authentication_factors"),
    (ORGANIZATION_CLAIM, "organization_id"),
    (ORGANIZATION_CLAIM, "slug"),
];

/// `claims()` with edits: (claim index, op) where op 0 removes, 1.. sets `POOL[op - 1]`;
/// inner edits likewise inside Stytch's claims; `dup` adds a claim (from `POOL`) before the
/// others, so that a later duplicate follows it.
fn payload(
    top: &[(usize, usize)],
    inner: &[(usize, usize)],
    dup: Option<(usize, usize)>,
) -> String {
    let mut c = claims();
    let pool = |i: usize| serde_json::from_str::<Value>(POOL[i % POOL.len()]).ok();
    for &(claim, op) in inner {
        let (outer, name) = INNER[claim % INNER.len()];
        if let Some(object) = c[outer].as_object_mut() {
            match op % (POOL.len() + 1) {
                0 => drop(object.remove(name)),
                op => drop(pool(op - 1).map(|v| object.insert(name.to_owned(), v))),
            }
        }
    }
    let mut text = c.to_string();
    for &(claim, op) in top {
        let name = TOP[claim % TOP.len()];
        let mut object: Map<String, Value> = serde_json::from_str(&text).unwrap();
        object.remove(name);
        let rest = Value::Object(object).to_string();
        let rest = &rest[1..rest.len() - 1];
        text = match op % (POOL.len() + 1) {
            0 => format!("{{{rest}}}"),
            op => {
                let sep = if rest.is_empty() { "" } else { "," };
                format!("{{{rest}{sep}\"{name}\":{}}}", POOL[op - 1])
            }
        };
    }
    if let Some((claim, value)) = dup {
        let name = TOP[claim % TOP.len()];
        text = format!("{{\"{name}\":{},{}", POOL[value % POOL.len()], &text[1..]);
    }
    text
}

#[test]
fn the_genuine_payload_verifies_the_same() {
    // If this broke, a genuine session JWT would be refused or map to another session.
    let text = claims().to_string();
    let new = new(&text).unwrap();
    assert_eq!(Ok(new.clone()), old(&text));
    assert_eq!(
        new.3.member_id,
        "member-test-fde03dd1-fff7-4b3c-9b31-ead3fbc224de"
    );
}

#[test]
fn edited_payloads_are_judged_as_the_old_pipeline_judged_them() {
    // If this broke, some payload (a claim missing, duplicated, or of an odd type) would be
    // accepted where the old pipeline refused it, refused with another error, or carry
    // another session.
    let edit = || (any::<usize>(), any::<usize>());
    let strategy = (
        prop::collection::vec(edit(), 0..3),
        prop::collection::vec(edit(), 0..3),
        prop::option::weighted(0.2, edit()),
    );
    let mut runner = TestRunner::new(Config {
        cases: 4000,
        ..Config::default()
    });
    runner
        .run(&strategy, |(top, inner, dup)| {
            let text = payload(&top, &inner, dup);
            prop_assert_eq!(new(&text), old(&text), "{}", text);
            Ok(())
        })
        .unwrap();
}

#[test]
fn malformed_payload_text_is_judged_as_before() {
    // If this broke, payload text the old pipeline refused as malformed (not an object,
    // trailing bytes, invalid numbers) would pass, or the reverse.
    let genuine = claims().to_string();
    for text in [
        String::new(),
        "[]".to_owned(),
        "null".to_owned(),
        "\"x\"".to_owned(),
        format!("{genuine} "),
        format!("{genuine}x"),
        format!(" {genuine}"),
        genuine.replacen("1700000300", "1e400", 1),
        genuine.replacen('}', "},", 1),
        genuine[..genuine.len() - 1].to_owned(),
        genuine.replacen("\"sub\"", "\"sub\":[],\"x\"", 1),
        genuine.replacen("\"sub\"", "\"exp\":[1],\"x\"", 1),
        genuine.replacen("\"sub\"", "\"exp\":{\"a\":1},\"x\"", 1),
        // Duplicate keys inside Stytch's claims: the last one wins, whatever the first.
        genuine.replacen("\"id\":", "\"id\":5,\"id\":", 1),
        genuine.replacen("\"id\":", "\"id\":\"first\",\"id\":", 1),
        genuine.replacen("\"slug\":", "\"slug\":[],\"slug\":", 1),
        genuine.replacen("\"id\":", "\"id\":\"first\",\"id\":[],\"x\":", 1),
    ] {
        assert_eq!(new(&text), old(&text), "{text}");
    }
}
