//! The JSON shapes Stytch answers with, built from snapshots of the emulator's data: the
//! `member_session`, `member` and `organization` objects and the session JWT's claims.
//!
//! Pure functions over [`state`](crate::state) types: no lock, no I/O, no other module.

use serde_json::{Map, Value, json};

use crate::factors::{FactorKind, SessionFactor};
use crate::state::{ADMIN_ROLE, Member, Organization, SessionView, effective_roles, rfc3339};

/// Lifetime of a session JWT (seconds), as Stytch.
pub(crate) const JWT_LIFETIME_SECS: i64 = 300;
pub(crate) const SESSION_CLAIM: &str = "https://stytch.com/session";
pub(crate) const ORGANIZATION_CLAIM: &str = "https://stytch.com/organization";
const RESERVED_CLAIMS: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// Custom claims without the reserved JWT claims and Stytch's namespaced ones.
pub(crate) fn without_reserved_claims(mut claims: Map<String, Value>) -> Map<String, Value> {
    claims.retain(|k, _| {
        !RESERVED_CLAIMS.contains(&k.as_str()) && !k.starts_with("https://stytch.com/")
    });
    claims
}

/// One authentication factor as Stytch lists it.
pub(crate) fn factor_json(factor: &SessionFactor, member: &Member) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), factor.kind.factor_type().into());
    out.insert(
        "delivery_method".into(),
        factor.kind.delivery_method().into(),
    );
    out.insert(
        "last_authenticated_at".into(),
        rfc3339(factor.last_authenticated_at).into(),
    );
    out.insert("created_at".into(), rfc3339(factor.created_at).into());
    out.insert(
        "updated_at".into(),
        rfc3339(factor.last_authenticated_at).into(),
    );
    let email = || json!({"email_id": member.email_id, "email_address": member.email});
    let sso = || json!({"id": factor.id, "provider_id": factor.id, "external_id": member.email});
    let (key, value) = match &factor.kind {
        FactorKind::MagicLink | FactorKind::EmailOtp | FactorKind::Password => {
            ("email_factor", email())
        }
        FactorKind::SamlSso => ("saml_sso_factor", sso()),
        FactorKind::OidcSso => ("oidc_sso_factor", sso()),
        FactorKind::SmsOtp { phone_number } => (
            "phone_number_factor",
            json!({"phone_id": factor.id, "phone_number": phone_number}),
        ),
        FactorKind::Totp => ("authenticator_app_factor", json!({"totp_id": factor.id})),
        FactorKind::RecoveryCode => (
            "recovery_code_factor",
            json!({"totp_recovery_code_id": factor.id}),
        ),
    };
    out.insert(key.into(), value);
    Value::Object(out)
}

fn authentication_factors(view: &SessionView) -> Value {
    view.session
        .factors
        .iter()
        .map(|f| factor_json(f, &view.member))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Session;

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
                factors: vec![SessionFactor {
                    kind: FactorKind::MagicLink,
                    id: "email-test-1".into(),
                    created_at: 1_704_067_200,
                    last_authenticated_at: 1_704_067_200,
                }],
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
