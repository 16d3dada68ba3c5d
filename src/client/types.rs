//! Request and response types of Stytch's B2B sessions endpoints.

use serde::{Deserialize, Serialize};

use crate::credential::{Credential, SessionJwt, SessionToken};
use crate::session::MemberSession;

/// Which session(s) `POST /v1/b2b/sessions/revoke` revokes. An enum, so that exactly one of
/// Stytch's four body fields is ever sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeSelector {
    /// One session, by `member_session_id`.
    MemberSessionId(String),
    /// One session, by its opaque token.
    SessionToken(SessionToken),
    /// One session, by one of its JWTs.
    SessionJwt(SessionJwt),
    /// Every session of a member, by `member_id`.
    MemberId(String),
}

impl RevokeSelector {
    /// The body field this selector is sent as; safe to log.
    pub fn field(&self) -> &'static str {
        match self {
            Self::MemberSessionId(_) => "member_session_id",
            Self::SessionToken(_) => "session_token",
            Self::SessionJwt(_) => "session_jwt",
            Self::MemberId(_) => "member_id",
        }
    }

    pub(crate) fn body(&self) -> serde_json::Value {
        let value = match self {
            Self::MemberSessionId(v) | Self::MemberId(v) => v.as_str(),
            Self::SessionToken(t) => t.expose_secret(),
            Self::SessionJwt(j) => j.expose_secret(),
        };
        let mut map = serde_json::Map::with_capacity(1);
        map.insert(self.field().to_owned(), value.into());
        serde_json::Value::Object(map)
    }
}

/// Stytch's answer to a successful revoke.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct RevokeResponse {
    /// Stytch's request id.
    #[serde(default)]
    pub request_id: String,
    /// The status Stytch reported (200).
    #[serde(default)]
    pub status_code: u16,
}

/// An RBAC check Stytch runs during authenticate: does the session's member hold a role that
/// grants `action` on `resource_id` in `organization_id`?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationCheck {
    /// The organization the resource belongs to.
    pub organization_id: String,
    /// The RBAC resource, e.g. `stytch.member` or one of the project's own.
    pub resource_id: String,
    /// The action, e.g. `revoke-sessions`.
    pub action: String,
}

/// A call to `POST /v1/b2b/sessions/authenticate`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthenticateRequest {
    /// The credential to authenticate (sent as `session_token` or `session_jwt`).
    pub credential: Credential,
    /// Extend the session by this many minutes from now (5 – 527040).
    pub session_duration_minutes: Option<u32>,
    /// An RBAC check to run.
    pub authorization_check: Option<AuthorizationCheck>,
}

impl AuthenticateRequest {
    /// Authenticate `credential`, without extending the session or checking a permission.
    pub fn new(credential: Credential) -> Self {
        Self {
            credential,
            session_duration_minutes: None,
            authorization_check: None,
        }
    }

    /// Extends the session by `minutes`.
    #[must_use]
    pub fn session_duration_minutes(mut self, minutes: u32) -> Self {
        self.session_duration_minutes = Some(minutes);
        self
    }

    /// Asks Stytch to check a permission too.
    #[must_use]
    pub fn authorization_check(mut self, check: AuthorizationCheck) -> Self {
        self.authorization_check = Some(check);
        self
    }

    pub(crate) fn body(&self) -> serde_json::Value {
        let mut map = serde_json::Map::with_capacity(3);
        let (field, value) = match &self.credential {
            Credential::Token(t) => ("session_token", t.expose_secret()),
            Credential::Jwt(j) => ("session_jwt", j.expose_secret()),
        };
        map.insert(field.to_owned(), value.into());
        if let Some(minutes) = self.session_duration_minutes {
            map.insert("session_duration_minutes".to_owned(), minutes.into());
        }
        if let Some(check) = &self.authorization_check {
            // Serializing three strings cannot fail.
            map.insert(
                "authorization_check".to_owned(),
                serde_json::to_value(check).unwrap_or_default(),
            );
        }
        serde_json::Value::Object(map)
    }
}

/// The `verdict` of an authorization check.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct Verdict {
    /// Whether the check passed.
    pub authorized: bool,
    /// The roles that granted it.
    #[serde(default)]
    pub granting_roles: Vec<String>,
}

/// Stytch's answer to a successful authenticate, parsed leniently: unknown fields are ignored
/// and `member` / `organization` are kept as JSON.
#[derive(Clone, Deserialize)]
#[non_exhaustive]
pub struct AuthenticateResponse {
    /// Stytch's request id.
    #[serde(default)]
    pub request_id: String,
    /// The session.
    pub member_session: MemberSession,
    /// The session's opaque token.
    #[serde(default, deserialize_with = "de_token")]
    pub session_token: Option<SessionToken>,
    /// A freshly minted session JWT.
    #[serde(default, deserialize_with = "de_jwt")]
    pub session_jwt: Option<SessionJwt>,
    /// The member object, as Stytch sent it.
    #[serde(default)]
    pub member: serde_json::Value,
    /// The organization object, as Stytch sent it.
    #[serde(default)]
    pub organization: serde_json::Value,
    /// The verdict of an authorization check, when one was asked for.
    #[serde(default)]
    pub verdict: Option<Verdict>,
}

impl std::fmt::Debug for AuthenticateResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticateResponse")
            .field("request_id", &self.request_id)
            .field("member_session", &self.member_session)
            .field("session_token", &self.session_token)
            .field("session_jwt", &self.session_jwt)
            .field("verdict", &self.verdict)
            .finish_non_exhaustive()
    }
}

fn de_token<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SessionToken>, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    Ok(raw.filter(|s| !s.is_empty()).map(SessionToken::new))
}

fn de_jwt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SessionJwt>, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    Ok(raw.filter(|s| !s.is_empty()).map(SessionJwt::new))
}

/// Stytch's answer to Get Sessions: the member's active sessions.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct SessionsResponse {
    /// Stytch's request id.
    #[serde(default)]
    pub request_id: String,
    /// The member's active sessions (no credential: Stytch sends none here).
    #[serde(default)]
    pub member_sessions: Vec<MemberSession>,
    /// The status Stytch reported (200).
    #[serde(default)]
    pub status_code: u16,
}

/// One JSON Web Key of Stytch's JWKS (RSA). Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Jwk {
    /// Key type (`RSA`).
    pub kty: String,
    /// Key id, matched against the JWT header's `kid`.
    pub kid: String,
    /// Algorithm (`RS256`).
    #[serde(default)]
    pub alg: Option<String>,
    /// Public key use (`sig`).
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    /// Key operations (`["verify"]`).
    #[serde(default)]
    pub key_ops: Vec<String>,
    /// RSA modulus, base64url.
    #[serde(default)]
    pub n: String,
    /// RSA public exponent, base64url.
    #[serde(default)]
    pub e: String,
    /// X.509 certificate chain.
    #[serde(default)]
    pub x5c: Vec<String>,
    /// X.509 SHA-256 thumbprint.
    #[serde(default, rename = "x5tS256")]
    pub x5t_s256: Option<String>,
}

impl Jwk {
    /// Builds an RSA verification key as Stytch publishes them.
    pub fn rsa(kid: impl Into<String>, n: impl Into<String>, e: impl Into<String>) -> Self {
        Self {
            kty: "RSA".to_owned(),
            kid: kid.into(),
            alg: Some("RS256".to_owned()),
            use_: Some("sig".to_owned()),
            key_ops: vec!["verify".to_owned()],
            n: n.into(),
            e: e.into(),
            x5c: Vec::new(),
            x5t_s256: None,
        }
    }
}

/// Stytch's JWKS answer: `{keys, request_id, status_code}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Jwks {
    /// The keys, current and (during rotation) previous.
    pub keys: Vec<Jwk>,
    /// Stytch's request id.
    #[serde(default)]
    pub request_id: String,
    /// The status Stytch reported.
    #[serde(default)]
    pub status_code: u16,
}

impl Jwks {
    /// A JWKS with these keys.
    pub fn new(keys: Vec<Jwk>) -> Self {
        Self {
            keys,
            request_id: String::new(),
            status_code: 200,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoke_body_holds_exactly_one_selector() {
        // If this broke, Stytch would answer too_many_session_revoke_arguments (or null fields).
        let cases = [
            (
                RevokeSelector::MemberId("member-test-1".into()),
                "member_id",
                "member-test-1",
            ),
            (
                RevokeSelector::MemberSessionId("session-test-1".into()),
                "member_session_id",
                "session-test-1",
            ),
            (
                RevokeSelector::SessionToken(SessionToken::new("tok")),
                "session_token",
                "tok",
            ),
            (
                RevokeSelector::SessionJwt(SessionJwt::new("a.b.c")),
                "session_jwt",
                "a.b.c",
            ),
        ];
        for (sel, field, value) in cases {
            let body = sel.body();
            let obj = body.as_object().unwrap();
            assert_eq!(obj.len(), 1);
            assert_eq!(obj[field], value);
        }
    }

    #[test]
    fn authenticate_body_omits_absent_fields() {
        // If this broke, we would send `null`s Stytch may not treat as absent.
        let req = AuthenticateRequest::new(Credential::Token(SessionToken::new("tok")));
        assert_eq!(req.body(), serde_json::json!({"session_token": "tok"}));
        let req = AuthenticateRequest::new(Credential::Jwt(SessionJwt::new("a.b.c")))
            .session_duration_minutes(60)
            .authorization_check(AuthorizationCheck {
                organization_id: "o".into(),
                resource_id: "r".into(),
                action: "a".into(),
            });
        assert_eq!(
            req.body(),
            serde_json::json!({"session_jwt": "a.b.c", "session_duration_minutes": 60,
                "authorization_check": {"organization_id": "o", "resource_id": "r", "action": "a"}})
        );
    }

    #[test]
    fn parses_the_documented_jwks() {
        // If this broke, local JWT verification could never load Stytch's keys.
        let jwks: Jwks = serde_json::from_str(
            r#"{ "keys": [ { "kty": "RSA", "use": "sig", "key_ops": ["verify"], "alg": "RS256",
              "kid": "jwk-test-78d89caa", "x5c": ["MIICv..."], "x5tS256": "FyV...=", "n": "0000", "e": "AQAB" } ],
              "request_id": "request-id-test-b05c992f", "status_code": 200 }"#,
        )
        .unwrap();
        assert_eq!(jwks.keys[0].kid, "jwk-test-78d89caa");
        assert_eq!(jwks.keys[0].x5t_s256.as_deref(), Some("FyV...="));
        assert_eq!(jwks.request_id, "request-id-test-b05c992f");
    }
}
