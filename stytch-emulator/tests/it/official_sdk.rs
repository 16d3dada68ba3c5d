//! Stytch's official Rust SDK (crate `stytch`), pointed at the emulator, works unchanged:
//! its strict response types decode the emulator's answers, and its `null`-valued request
//! fields are accepted as Stytch does.
//!
//! If this fails, the emulator has drifted from Stytch's real API: code proven against the
//! emulator could fail against Stytch.

use std::time::Duration;

use stytch::b2b::rbac::PolicyRequest;
use stytch::b2b::rbac_organizations::{GetOrgPolicyRequest, SetOrgPolicyRequest};
use stytch::b2b::sessions::{
    AuthenticateRequest, AuthorizationCheck, GetJWKSRequest, GetRequest, RevokeRequest,
};
use stytch::consumer::m2m::{AuthenticateTokenRequest, TokenRequest};
use stytch::consumer::m2m_clients::CreateRequest;
use stytch_emulator::{AuthenticationFactor, Emulator, EmulatorConfig};

fn official_client(emulator: &Emulator) -> stytch::b2b::client::Client {
    let base = reqwest::Url::parse(&emulator.base_url()).unwrap();
    let http = stytch::client::Client::new_with_base_url(
        emulator.project_id(),
        emulator.secret(),
        base.clone(),
        stytch::client::Vertical::B2B,
    )
    .unwrap();
    let fraud = stytch::client::Client::new_with_base_url(
        emulator.project_id(),
        emulator.secret(),
        base,
        stytch::client::Vertical::Consumer,
    )
    .unwrap();
    stytch::b2b::client::Client::new_with_http_client(http, fraud)
}

#[tokio::test]
async fn the_official_rust_sdk_authenticates_revokes_and_reads_the_jwks() {
    // If this broke, code proven against the emulator could fail against the real Stytch API.
    let emulator = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let org = emulator.create_organization("Acme", "acme");
    let admin = emulator.create_member(&org, "admin@acme.test", &["stytch_admin"]);
    let member = emulator.create_member(&org, "member@acme.test", &[]);
    let session = emulator.create_session(&member);
    let client = official_client(&emulator);

    let res = client
        .sessions
        .authenticate(AuthenticateRequest {
            session_token: Some(session.session_token.expose_secret().to_owned()),
            ..Default::default()
        })
        .await
        .expect("the official SDK decodes the emulator's authenticate answer");
    assert_eq!(res.member_session.member_id, member);
    assert_eq!(
        res.member_session.member_session_id,
        session.member_session_id
    );
    assert_eq!(res.organization.organization_id, org);
    assert!(!res.session_jwt.is_empty());

    let res = client
        .sessions
        .authenticate(AuthenticateRequest {
            session_jwt: Some(session.session_jwt.expose_secret().to_owned()),
            ..Default::default()
        })
        .await
        .expect("JWT authenticate");
    assert_eq!(res.member.member_id, member);

    let jwks = client
        .sessions
        .get_jwks(GetJWKSRequest {
            project_id: emulator.project_id().to_owned(),
        })
        .await
        .expect("the official SDK decodes the emulator's JWKS");
    assert!(!jwks.keys.is_empty());

    // The SDK sends every absent selector as `null`.
    let other = emulator.create_session(&admin);
    client
        .sessions
        .revoke(RevokeRequest {
            member_session_id: Some(other.member_session_id.clone()),
            ..Default::default()
        })
        .await
        .expect("revoke with null selectors");
    assert!(!emulator.is_session_live(&other.member_session_id));

    let err = client
        .sessions
        .authenticate(AuthenticateRequest {
            session_token: Some(other.session_token.expose_secret().to_owned()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let shown = format!("{err:?}");
    assert!(shown.contains("session_not_found"), "{shown}");
}

#[tokio::test]
async fn the_official_rust_sdk_lists_a_members_sessions() {
    // If this broke, the emulator's Get Sessions answer would not decode as Stytch's does
    // (field names, timestamps, the MemberSession shape), so code listing sessions could pass
    // here and fail against Stytch.
    let emulator = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let org = emulator.create_organization("Acme", "acme");
    let member = emulator.create_member(&org, "member@acme.test", &["stytch_admin"]);
    let a = emulator.create_session(&member);
    let b = emulator.create_session(&member);
    let client = official_client(&emulator);

    let res = client
        .sessions
        .get(GetRequest {
            organization_id: "acme".to_owned(),
            member_id: member.clone(),
        })
        .await
        .expect("the official SDK decodes the emulator's Get Sessions answer");
    let mut ids: Vec<String> = res
        .member_sessions
        .iter()
        .map(|s| s.member_session_id.clone())
        .collect();
    ids.sort();
    let mut want = vec![a.member_session_id, b.member_session_id];
    want.sort();
    assert_eq!(ids, want);
    assert!(
        res.member_sessions
            .iter()
            .all(|s| s.organization_id == org && s.roles == ["stytch_member", "stytch_admin"])
    );

    let err = client
        .sessions
        .get(GetRequest {
            organization_id: org,
            member_id: "member-test-unknown".to_owned(),
        })
        .await
        .unwrap_err();
    let shown = format!("{err:?}");
    assert!(shown.contains("member_not_found"), "{shown}");
}

#[tokio::test]
async fn the_official_rust_sdk_reads_and_sets_rbac_policies() {
    // If this broke, the emulator's policy JSON would not decode as Stytch's does, so an
    // SDK's (or the library's) cached policy could not be loaded from it.
    let emulator = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let org = emulator.create_organization("Acme", "acme");
    let client = official_client(&emulator);

    let res = client
        .rbac
        .policy(PolicyRequest {})
        .await
        .expect("the official SDK decodes the emulator's policy");
    let policy = res.policy.expect("a policy");
    let roles: Vec<&str> = policy.roles.iter().map(|r| r.role_id.as_str()).collect();
    assert_eq!(roles, ["stytch_member", "stytch_admin", "editor", "viewer"]);
    assert_eq!(policy.resources.len(), 5);

    let mut org_policy = client
        .rbac
        .organizations
        .get_org_policy(GetOrgPolicyRequest {
            organization_id: org.clone(),
        })
        .await
        .expect("the official SDK decodes an organization policy")
        .org_policy;
    assert!(org_policy.roles.is_empty());
    let mut owner = policy.roles[2].clone();
    owner.role_id = "owner".to_owned();
    org_policy.roles.push(owner);
    let set = client
        .rbac
        .organizations
        .set_org_policy(SetOrgPolicyRequest {
            organization_id: org.clone(),
            org_policy,
        })
        .await
        .expect("Set Org Policy");
    assert_eq!(set.org_policy.roles[0].role_id, "owner");
    assert_eq!(
        emulator.organization_roles(&org).unwrap()[0].role_id,
        "owner"
    );
}

#[tokio::test]
async fn the_official_rust_sdk_decodes_factors_and_a_verdict() {
    // If this broke, a factor type or delivery method of the emulator would be outside the
    // SDK's strict enums, or the verdict of an authorization check in another shape.
    let emulator = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let org = emulator.create_organization("Acme", "acme");
    let member = emulator.create_member(&org, "ada@acme.test", &["editor"]);
    let every_kind = vec![
        AuthenticationFactor::magic_link(),
        AuthenticationFactor::email_otp(),
        AuthenticationFactor::password(),
        AuthenticationFactor::sms_otp("+15555550123"),
        AuthenticationFactor::totp(),
        AuthenticationFactor::recovery_code(),
    ];
    let session = emulator
        .create_session_with_factors(
            &member,
            Duration::from_secs(600),
            Default::default(),
            every_kind,
        )
        .unwrap();
    let client = official_client(&emulator);
    let res = client
        .sessions
        .authenticate(AuthenticateRequest {
            session_token: Some(session.session_token.expose_secret().to_owned()),
            authorization_check: Some(AuthorizationCheck {
                organization_id: org.clone(),
                resource_id: "documents".to_owned(),
                action: "create".to_owned(),
            }),
            ..Default::default()
        })
        .await
        .expect("the official SDK decodes every factor kind and the verdict");
    assert_eq!(res.member_session.authentication_factors.len(), 6);
    let verdict = res.verdict.expect("a verdict");
    assert!(verdict.authorized);
    assert_eq!(verdict.granting_roles, ["editor"]);
}

#[tokio::test]
async fn the_official_rust_sdk_creates_a_client_gets_and_authenticates_a_token() {
    // If this broke, the emulator's M2M client JSON, token endpoint or token claims would
    // differ from what Stytch's SDK expects, and M2M code proven here could fail there.
    let emulator = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let client = official_client(&emulator);
    let created = client
        .m2m
        .clients
        .create(CreateRequest {
            scopes: vec!["read:documents".to_owned(), "write:*".to_owned()],
            ..Default::default()
        })
        .await
        .expect("the official SDK creates an M2M client")
        .m2m_client;
    let token = client
        .m2m
        .token(TokenRequest {
            client_id: created.client_id.clone(),
            client_secret: created.client_secret.clone(),
            scopes: None,
            grant_type: "client_credentials".to_owned(),
        })
        .await
        .expect("the official SDK gets a token");
    assert_eq!(token.token_type, "bearer");
    let verified = client
        .m2m
        .authenticate_token(AuthenticateTokenRequest {
            access_token: token.access_token.clone(),
            required_scopes: Some(vec!["write:documents".to_owned()]),
            ..Default::default()
        })
        .await
        .expect("the official SDK verifies the token against the emulator's JWKS");
    assert_eq!(verified.client_id, created.client_id);
    assert_eq!(verified.scopes, ["read:documents", "write:*"]);
    let denied = client
        .m2m
        .authenticate_token(AuthenticateTokenRequest {
            access_token: token.access_token,
            required_scopes: Some(vec!["delete:documents".to_owned()]),
            ..Default::default()
        })
        .await;
    assert!(denied.is_err(), "a scope the token lacks");
}
