//! The emulated Stytch endpoints: sessions authenticate, revoke and JWKS, and the JSON shapes
//! (member session, member, organization, session JWT claims) they answer with.

use http::HeaderMap;
use serde_json::{Map, Value, json};

use super::Shared;
use super::keys::JwtError;
use super::server::ApiError;
use super::state::{
    ADMIN_ROLE, Authz, Member, Organization, Session, SessionView, State, effective_roles, rfc3339,
};
use super::{MEMBER_SESSION_HEADER, MEMBER_SESSION_JWT_HEADER};

/// Lifetime of a session JWT (seconds), as Stytch.
pub(crate) const JWT_LIFETIME_SECS: i64 = 300;
/// Bounds of `session_duration_minutes`.
pub(crate) const SESSION_MINUTES: std::ops::RangeInclusive<i64> = 5..=527_040;
const SESSION_CLAIM: &str = "https://stytch.com/session";
const ORGANIZATION_CLAIM: &str = "https://stytch.com/organization";
const RESERVED_CLAIMS: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// Custom claims without the reserved JWT claims and Stytch's namespaced ones.
pub(crate) fn without_reserved_claims(mut claims: Map<String, Value>) -> Map<String, Value> {
    claims.retain(|k, _| {
        !RESERVED_CLAIMS.contains(&k.as_str()) && !k.starts_with("https://stytch.com/")
    });
    claims
}

fn authentication_factors(view: &SessionView) -> Value {
    let at = rfc3339(view.session.started_at);
    json!([{
        "type": "magic_link",
        "delivery_method": "email",
        "last_authenticated_at": at,
        "created_at": at,
        "updated_at": at,
        "email_factor": {
            "email_id": view.member.email_id,
            "email_address": view.member.email,
        },
    }])
}

/// The `member_session` object.
pub(crate) fn member_session_json(view: &SessionView) -> Value {
    let s = &view.session;
    json!({
        "member_session_id": s.id,
        "member_id": s.member_id,
        "started_at": rfc3339(s.started_at),
        "last_accessed_at": rfc3339(s.last_accessed_at),
        "expires_at": rfc3339(s.expires_at),
        "authentication_factors": authentication_factors(view),
        "organization_id": view.organization.id,
        "organization_slug": view.organization.slug,
        "roles": view.roles,
        "custom_claims": s.custom_claims,
    })
}

/// The `member` object.
pub(crate) fn member_json(m: &Member) -> Value {
    let roles: Vec<Value> = effective_roles(&m.roles)
        .iter()
        .map(|r| json!({"role_id": r, "sources": [{"type": "direct_assignment", "details": {}}]}))
        .collect();
    json!({
        "organization_id": m.organization_id,
        "member_id": m.id,
        "email_address": m.email,
        "status": m.status,
        "name": m.name,
        "sso_registrations": [],
        "is_breakglass": false,
        "member_password_id": "",
        "oauth_registrations": [],
        "email_address_verified": true,
        "mfa_phone_number_verified": false,
        "is_admin": m.roles.iter().any(|r| r == ADMIN_ROLE),
        "totp_registration_id": "",
        "retired_email_addresses": [],
        "is_locked": false,
        "mfa_enrolled": false,
        "mfa_phone_number": "",
        "default_mfa_method": "",
        "roles": roles,
        "trusted_metadata": {},
        "untrusted_metadata": {},
        "created_at": rfc3339(m.created_at),
        "updated_at": rfc3339(m.updated_at),
    })
}

/// The `organization` object.
pub(crate) fn organization_json(o: &Organization) -> Value {
    json!({
        "organization_id": o.id,
        "organization_name": o.name,
        "organization_logo_url": "",
        "organization_slug": o.slug,
        "sso_jit_provisioning": "NOT_ALLOWED",
        "sso_jit_provisioning_allowed_connections": [],
        "sso_active_connections": [],
        "email_allowed_domains": [],
        "email_jit_provisioning": "NOT_ALLOWED",
        "email_invites": "ALL_ALLOWED",
        "auth_methods": "ALL_ALLOWED",
        "allowed_auth_methods": [],
        "mfa_policy": "OPTIONAL",
        "rbac_email_implicit_role_assignments": [],
        "mfa_methods": "ALL_ALLOWED",
        "allowed_mfa_methods": [],
        "oauth_tenant_jit_provisioning": "NOT_ALLOWED",
        "claimed_email_domains": [],
        "first_party_connected_apps_allowed_type": "ALL_ALLOWED",
        "allowed_first_party_connected_apps": [],
        "third_party_connected_apps_allowed_type": "ALL_ALLOWED",
        "allowed_third_party_connected_apps": [],
        "custom_roles": [],
        "trusted_metadata": {},
        "created_at": rfc3339(o.created_at),
        "updated_at": rfc3339(o.created_at),
    })
}

/// The claims of a session JWT issued at `now`.
pub(crate) fn jwt_claims(project_id: &str, view: &SessionView, now: i64) -> Value {
    let s = &view.session;
    let mut claims = Map::new();
    for (k, v) in &s.custom_claims {
        claims.insert(k.clone(), v.clone());
    }
    claims.insert("sub".into(), s.member_id.clone().into());
    claims.insert("iss".into(), format!("stytch.com/{project_id}").into());
    claims.insert("aud".into(), json!([project_id]));
    claims.insert("iat".into(), now.into());
    claims.insert("nbf".into(), now.into());
    claims.insert("exp".into(), (now + JWT_LIFETIME_SECS).into());
    claims.insert(
        SESSION_CLAIM.into(),
        json!({
            "id": s.id,
            "started_at": rfc3339(s.started_at),
            "last_accessed_at": rfc3339(s.last_accessed_at),
            "expires_at": rfc3339(s.expires_at),
            "attributes": {"user_agent": "", "ip_address": ""},
            "authentication_factors": authentication_factors(view),
            "roles": view.roles,
        }),
    );
    claims.insert(
        ORGANIZATION_CLAIM.into(),
        json!({"organization_id": view.organization.id, "slug": view.organization.slug}),
    );
    Value::Object(claims)
}

/// Signs a fresh JWT for `view` with the current key (no lock held).
pub(crate) fn mint(shared: &Shared, view: &SessionView, now: i64) -> String {
    shared
        .keys
        .current()
        .sign(&jwt_claims(&shared.project_id, view, now))
}

/// How a request names a session.
enum SessionRef {
    Token(String),
    Id(String),
}

/// Verifies a JWT (signature only; an expired `exp` is fine) and returns its session id.
fn session_id_of_jwt(shared: &Shared, jwt: &str) -> Result<String, ApiError> {
    let claims = shared.keys.verify(jwt).map_err(|e| match e {
        JwtError::Malformed => ApiError::new(
            400,
            "unable_to_parse_session_jwt",
            "Unable to parse the session JWT.",
        ),
        JwtError::Unverifiable => ApiError::session_not_found(),
    })?;
    claims
        .get(SESSION_CLAIM)
        .and_then(|s| s.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(ApiError::session_not_found)
}

fn find_live<'s>(state: &'s State, target: &SessionRef, now: i64) -> Result<&'s Session, ApiError> {
    match target {
        SessionRef::Token(t) => state.live_session_by_token(t, now),
        SessionRef::Id(id) => state.live_session(id, now),
    }
    .ok_or_else(ApiError::session_not_found)
}

/// An optional string field where `null` counts as absent.
fn lenient_str<'a>(body: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_request(format!("{field} must be a string."))),
    }
}

fn authorization_check(value: &Value) -> Result<(String, String, String), ApiError> {
    let get = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "authorization_check.{k} is required and must be a string."
                ))
            })
    };
    Ok((get("organization_id")?, get("resource_id")?, get("action")?))
}

fn authz_error(authz: Authz, member_org: &str, asked_org: &str) -> ApiError {
    match authz {
        Authz::Tenancy => ApiError::new(
            403,
            "session_authorization_tenancy_error",
            format!(
                "Subject organization_id {member_org} does not match authZ request organization_id {asked_org}"
            ),
        ),
        _ => ApiError::new(
            403,
            "session_authorization_error",
            "The Member is not authorized to perform the requested action on that resource.",
        ),
    }
}

/// The arguments of an authenticate call, checked in Stytch's order.
struct AuthenticateArgs {
    target: SessionRef,
    minutes: Option<i64>,
    check: Option<(String, String, String)>,
    new_claims: Option<Map<String, Value>>,
}

fn authenticate_args(
    shared: &Shared,
    body: &Map<String, Value>,
) -> Result<AuthenticateArgs, ApiError> {
    let token = lenient_str(body, "session_token")?;
    let jwt = lenient_str(body, "session_jwt")?;
    let minutes = match body.get("session_duration_minutes") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64().filter(|m| SESSION_MINUTES.contains(m)) {
            Some(m) => Some(m),
            None => {
                return Err(ApiError::new(
                    400,
                    "invalid_session_duration_minutes",
                    "session_duration_minutes must be between 5 and 527040.",
                ));
            }
        },
    };
    let check = match body.get("authorization_check") {
        None | Some(Value::Null) => None,
        Some(v) => Some(authorization_check(v)?),
    };
    let new_claims = match body.get("session_custom_claims") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(without_reserved_claims(m.clone())),
        Some(_) => {
            return Err(ApiError::bad_request(
                "session_custom_claims must be an object.",
            ));
        }
    };
    let target = match (token, jwt) {
        (None, None) => {
            return Err(ApiError::new(
                400,
                "no_session_arguments",
                "Either session_token or session_jwt must be provided.",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                400,
                "too_many_session_arguments",
                "Only one of session_token or session_jwt may be provided.",
            ));
        }
        (Some(t), None) => SessionRef::Token(t.to_owned()),
        (None, Some(j)) => SessionRef::Id(session_id_of_jwt(shared, j)?),
    };
    Ok(AuthenticateArgs {
        target,
        minutes,
        check,
        new_claims,
    })
}

/// `POST /v1/b2b/sessions/authenticate`.
pub(crate) fn authenticate(
    shared: &Shared,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let AuthenticateArgs {
        target,
        minutes,
        check,
        new_claims,
    } = authenticate_args(shared, body)?;
    let now = shared.now();
    let (view, verdict) = {
        let mut st = shared.lock();
        let id = find_live(&st, &target, now)?.id.clone();
        let view = st.view(&id).ok_or_else(ApiError::session_not_found)?;
        let verdict = match &check {
            None => None,
            Some((org, resource, action)) => {
                match st.authorize(&view.member, org, resource, action) {
                    Authz::Granted(roles) => Some(roles),
                    denied => return Err(authz_error(denied, &view.member.organization_id, org)),
                }
            }
        };
        let session = st
            .sessions
            .get_mut(&id)
            .ok_or_else(ApiError::session_not_found)?;
        session.last_accessed_at = now;
        if let Some(m) = minutes {
            session.expires_at = now + m * 60;
        }
        if let Some(claims) = new_claims {
            session.custom_claims.extend(claims);
        }
        (
            st.view(&id).ok_or_else(ApiError::session_not_found)?,
            verdict,
        )
    };

    let jwt = mint(shared, &view, now);
    let mut out = Map::new();
    out.insert("member_session".into(), member_session_json(&view));
    out.insert("session_token".into(), view.session.token.clone().into());
    out.insert("session_jwt".into(), jwt.into());
    out.insert("member".into(), member_json(&view.member));
    out.insert("organization".into(), organization_json(&view.organization));
    if let Some(roles) = verdict {
        out.insert(
            "verdict".into(),
            json!({"authorized": true, "granting_roles": roles}),
        );
    }
    Ok(out)
}

const REVOKE_SELECTORS: [&str; 4] = [
    "member_session_id",
    "session_token",
    "session_jwt",
    "member_id",
];

/// What a revoke targets.
enum RevokeTarget {
    Session(SessionRef),
    Member(String),
}

/// The one selector of a revoke body (`null` counts as absent).
fn revoke_selector(body: &Map<String, Value>) -> Result<(&'static str, &str), ApiError> {
    let mut selected = Vec::with_capacity(1);
    for field in REVOKE_SELECTORS {
        match body.get(field) {
            None => {}
            Some(Value::String(s)) => selected.push((field, s.as_str())),
            // Stytch's official Rust SDK sends absent selectors as `null`; it must keep
            // working unchanged, so `null` counts as absent (as on authenticate).
            Some(Value::Null) => {}
            Some(_) => {
                return Err(ApiError::new(
                    400,
                    "invalid_request",
                    format!("{field} must be a string."),
                ));
            }
        }
    }
    match selected.as_slice() {
        [] => Err(ApiError::new(
            400,
            "no_session_revoke_arguments",
            "One of member_session_id, session_token, session_jwt or member_id must be provided.",
        )),
        [one] => Ok(*one),
        _ => Err(ApiError::new(
            400,
            "too_many_session_revoke_arguments",
            "Only one of member_session_id, session_token, session_jwt or member_id may be provided.",
        )),
    }
}

/// The acting member's session, from `X-Stytch-Member-Session` or
/// `X-Stytch-Member-SessionJWT` (not both).
fn acting_session(shared: &Shared, headers: &HeaderMap) -> Result<Option<SessionRef>, ApiError> {
    let header_str = |name: &str| -> Result<Option<&str>, ApiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| ApiError::bad_request(format!("{name} is not valid.")))
            })
            .transpose()
    };
    match (
        header_str(MEMBER_SESSION_HEADER)?,
        header_str(MEMBER_SESSION_JWT_HEADER)?,
    ) {
        (Some(_), Some(_)) => Err(ApiError::new(
            400,
            "too_many_session_arguments",
            "Only one of X-Stytch-Member-Session or X-Stytch-Member-SessionJWT may be provided.",
        )),
        (Some(t), None) => Ok(Some(SessionRef::Token(t.to_owned()))),
        (None, Some(j)) => Ok(Some(SessionRef::Id(session_id_of_jwt(shared, j)?))),
        (None, None) => Ok(None),
    }
}

/// `POST /v1/b2b/sessions/revoke`.
pub(crate) fn revoke(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let (field, value) = revoke_selector(body)?;
    let acting = acting_session(shared, headers)?;
    let target = match field {
        "member_session_id" => RevokeTarget::Session(SessionRef::Id(value.to_owned())),
        "session_token" => RevokeTarget::Session(SessionRef::Token(value.to_owned())),
        "session_jwt" => RevokeTarget::Session(SessionRef::Id(session_id_of_jwt(shared, value)?)),
        _ => RevokeTarget::Member(value.to_owned()),
    };

    let now = shared.now();
    let mut st = shared.lock();
    let actor = match &acting {
        Some(acting) => {
            let session = find_live(&st, acting, now)?;
            Some(
                st.members
                    .get(&session.member_id)
                    .cloned()
                    .ok_or_else(ApiError::session_not_found)?,
            )
        }
        None => None,
    };
    let (target_member, session_id) = match &target {
        RevokeTarget::Session(r) => {
            let s = find_live(&st, r, now)?;
            (s.member_id.clone(), Some(s.id.clone()))
        }
        RevokeTarget::Member(id) => {
            if !st.members.contains_key(id) {
                return Err(member_not_found());
            }
            (id.clone(), None)
        }
    };
    if let Some(actor) = &actor {
        may_revoke(&st, actor, &target_member)?;
    }
    match session_id {
        Some(id) => {
            st.revoke_session(&id);
        }
        None => {
            st.revoke_member(&target_member);
        }
    }
    Ok(Map::new())
}

/// `GET /v1/b2b/sessions?organization_id=…&member_id=…` (Get Sessions): the member's live
/// sessions, oldest first. `organization_id` may also be the organization's slug.
pub(crate) fn get_sessions(shared: &Shared, query: &str) -> Result<Map<String, Value>, ApiError> {
    let (mut organization, mut member) = (None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "organization_id" => organization = Some(value.into_owned()),
            "member_id" => member = Some(value.into_owned()),
            _ => {}
        }
    }
    let required = |value: Option<String>, name: &str| {
        value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("{name} is a required query parameter.")))
    };
    let organization = required(organization, "organization_id")?;
    let member = required(member, "member_id")?;

    let now = shared.now();
    let st = shared.lock();
    let organization_id = st
        .organization_by_id_or_slug(&organization)
        .map(|o| o.id.clone())
        .ok_or_else(organization_not_found)?;
    if st
        .members
        .get(&member)
        .is_none_or(|m| m.organization_id != organization_id)
    {
        return Err(member_not_found());
    }
    let mut live: Vec<&Session> = st
        .sessions
        .values()
        .filter(|s| s.member_id == member && s.expires_at > now)
        .collect();
    live.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    let sessions: Vec<Value> = live
        .iter()
        .filter_map(|s| st.view(&s.id))
        .map(|view| member_session_json(&view))
        .collect();
    let mut out = Map::new();
    out.insert("member_sessions".into(), Value::Array(sessions));
    Ok(out)
}

/// Stytch's 404 for an unknown member.
pub(crate) fn member_not_found() -> ApiError {
    ApiError::new(404, "member_not_found", "Member could not be found.")
}

/// Stytch's 404 for an unknown organization.
pub(crate) fn organization_not_found() -> ApiError {
    ApiError::new(
        404,
        "organization_not_found",
        "Organization could not be found.",
    )
}

/// Stytch's RBAC for a revoke acting as `actor`: `revoke-sessions` on `stytch.self` for
/// their own sessions, on `stytch.member` for another member's, in the same organization.
fn may_revoke(st: &State, actor: &Member, target_member: &str) -> Result<(), ApiError> {
    let target_org = st
        .members
        .get(target_member)
        .map(|m| m.organization_id.clone())
        .unwrap_or_default();
    let resource = if actor.id == target_member {
        "stytch.self"
    } else {
        "stytch.member"
    };
    match st.authorize(actor, &target_org, resource, "revoke-sessions") {
        denied @ (Authz::Tenancy | Authz::Denied) => {
            Err(authz_error(denied, &actor.organization_id, &target_org))
        }
        _ => Ok(()),
    }
}

/// `GET /v1/b2b/sessions/jwks/{project_id}`.
pub(crate) fn jwks(shared: &Shared, project_id: &str) -> Result<Map<String, Value>, ApiError> {
    if project_id != shared.project_id {
        return Err(ApiError::new(
            400,
            "invalid_project_id",
            "The project_id in the path is not this project's.",
        ));
    }
    let mut out = Map::new();
    out.insert("keys".into(), Value::Array(shared.keys.jwks()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> SessionView {
        SessionView {
            session: Session {
                id: "session-test-1".into(),
                member_id: "member-test-1".into(),
                token: "t".into(),
                started_at: 1_704_067_200,
                last_accessed_at: 1_704_067_200,
                expires_at: 1_704_070_800,
                custom_claims: without_reserved_claims(
                    json!({"tenant": "acme", "sub": "evil", "exp": 1})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
            },
            member: Member {
                id: "member-test-1".into(),
                organization_id: "organization-test-1".into(),
                email: "ada@acme.test".into(),
                email_id: "email-test-1".into(),
                name: "ada".into(),
                status: "active".into(),
                roles: vec!["stytch_admin".into()],
                created_at: 0,
                updated_at: 0,
            },
            organization: Organization {
                id: "organization-test-1".into(),
                name: "Acme".into(),
                slug: "acme".into(),
                created_at: 0,
            },
            roles: vec!["stytch_member".into(), "stytch_admin".into()],
        }
    }

    #[test]
    fn jwt_claims_have_stytchs_shape() {
        // If this broke, local JWT verification of emulator JWTs would differ from real Stytch.
        let c = jwt_claims("project-test-1", &view(), 1_704_067_200);
        assert_eq!(c["sub"], "member-test-1");
        assert_eq!(c["iss"], "stytch.com/project-test-1");
        assert_eq!(c["aud"], json!(["project-test-1"]));
        assert_eq!(c["exp"], json!(1_704_067_500));
        assert_eq!(c["tenant"], "acme");
        assert_eq!(c[SESSION_CLAIM]["id"], "session-test-1");
        assert_eq!(c[SESSION_CLAIM]["expires_at"], "2024-01-01T01:00:00Z");
        assert_eq!(
            c[SESSION_CLAIM]["roles"],
            json!(["stytch_member", "stytch_admin"])
        );
        assert_eq!(c[ORGANIZATION_CLAIM]["slug"], "acme");
    }

    #[test]
    fn member_json_has_role_objects_and_admin_flag() {
        // If this broke, SDKs deserializing member.roles as objects would fail.
        let m = member_json(&view().member);
        assert_eq!(m["roles"][1]["role_id"], "stytch_admin");
        assert_eq!(m["roles"][1]["sources"][0]["type"], "direct_assignment");
        assert_eq!(m["is_admin"], true);
        assert_eq!(m["status"], "active");
    }
}
