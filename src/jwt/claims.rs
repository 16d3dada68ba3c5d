//! Session JWT claims → [`MemberSession`] and the JWT's time claims.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::jwt::JwtError;
use crate::session::{MemberSession, MemberSessionData, rfc3339};

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

impl TimeClaims {
    pub(crate) fn from_claims(claims: &Map<String, Value>) -> Result<Self, JwtError> {
        Ok(Self {
            issued_at: numeric_date(claims.get("iat"))?,
            not_before: numeric_date(claims.get("nbf"))?,
            expires_at: numeric_date(claims.get("exp"))?,
        })
    }
}

/// A JWT NumericDate: seconds since the epoch, integer or not.
fn numeric_date(value: Option<&Value>) -> Result<SystemTime, JwtError> {
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
struct SessionClaim {
    id: Option<String>,
    started_at: Option<String>,
    last_accessed_at: Option<String>,
    expires_at: Option<String>,
    authentication_factors: Option<Vec<Value>>,
    roles: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct OrganizationClaim {
    organization_id: Option<String>,
    slug: Option<String>,
}

/// Takes a claim out of `claims` and parses it; absent → [`JwtError::MissingClaims`].
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

/// Builds the session from verified claims: `sub` is the member, Stytch's session and
/// organization claims give the rest, and every other non-registered claim not under
/// `https://stytch.com/` is a custom claim.
pub(crate) fn member_session(mut claims: Map<String, Value>) -> Result<MemberSession, JwtError> {
    let member_id = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        Some(Value::String(_)) | None => return Err(JwtError::MissingClaims),
        Some(_) => return Err(JwtError::Malformed),
    };
    let session: SessionClaim = take(&mut claims, SESSION_CLAIM)?;
    let organization: OrganizationClaim = take(&mut claims, ORGANIZATION_CLAIM)?;
    let expires_at = required(session.expires_at)?;
    let expires_at = rfc3339::parse(&expires_at).ok_or(JwtError::Malformed)?;
    claims
        .retain(|name, _| !REGISTERED.contains(&name.as_str()) && !name.starts_with(STYTCH_PREFIX));
    Ok(MemberSession::new(MemberSessionData {
        member_session_id: required(session.id)?,
        member_id,
        organization_id: required(organization.organization_id)?,
        organization_slug: organization.slug.unwrap_or_default(),
        roles: session.roles.unwrap_or_default(),
        started_at: session.started_at.as_deref().and_then(rfc3339::parse),
        last_accessed_at: session.last_accessed_at.as_deref().and_then(rfc3339::parse),
        expires_at,
        authentication_factors: session
            .authentication_factors
            .map(Into::into)
            .unwrap_or_default(),
        custom_claims: claims,
    }))
}
