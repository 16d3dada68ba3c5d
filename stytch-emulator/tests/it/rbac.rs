//! RBAC as the SDKs fetch and Stytch enforces it: the project policy, organizations' custom
//! roles, `authorization_check` on authenticate, and the control API that changes them.
//!
//! If these fail, a local RBAC check (the library's, or an official SDK's) proven against
//! the emulator could give another verdict than Stytch.

use reqwest::StatusCode;
use serde_json::{Value, json};
use stytch_emulator::{
    Emulator, EmulatorConfig, EmulatorEndpoint, Fault, RbacPermission, RbacPolicy, RbacRole,
    SessionInfo,
};

const AUTHENTICATE: &str = "v1/b2b/sessions/authenticate";
const POLICY: &str = "v1/b2b/rbac/policy";

pub(crate) struct Rbac {
    pub(crate) emu: Emulator,
    http: reqwest::Client,
    pub(crate) org: String,
    pub(crate) other_org: String,
}

pub(crate) async fn start() -> Rbac {
    let emu = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let org = emu.create_organization("Acme", "acme");
    let other_org = emu.create_organization("Globex", "globex");
    Rbac {
        emu,
        http: reqwest::Client::new(),
        org,
        other_org,
    }
}

impl Rbac {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url())
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req
            .basic_auth(self.emu.project_id(), Some(self.emu.secret()))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(self.url(path))).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.put(self.url(path)).json(&body)).await
    }

    pub(crate) fn session(&self, org: &str, email: &str, roles: &[&str]) -> SessionInfo {
        let member = self.emu.create_member(org, email, roles);
        self.emu.create_session(&member)
    }

    /// Stytch's remote verdict: `Ok(granting_roles)` or `Err((status, error_type))`.
    pub(crate) async fn check(
        &self,
        session: &SessionInfo,
        org: &str,
        resource: &str,
        action: &str,
    ) -> Result<Vec<String>, (u16, String)> {
        let (status, body) = self
            .post(
                AUTHENTICATE,
                json!({
                    "session_jwt": session.session_jwt.expose_secret(),
                    "authorization_check": {"organization_id": org, "resource_id": resource, "action": action},
                }),
            )
            .await;
        if status == 200 {
            assert_eq!(body["verdict"]["authorized"], true, "{body}");
            Ok(serde_json::from_value(body["verdict"]["granting_roles"].clone()).unwrap())
        } else {
            Err((
                status.as_u16(),
                body["error_type"].as_str().unwrap_or_default().to_owned(),
            ))
        }
    }
}

fn roles_of(policy: &Value) -> Vec<&str> {
    policy["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role_id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_policy_endpoint_serves_stytchs_defaults_and_the_demo_roles() {
    // If this failed, SDKs fetching the policy from the emulator would not parse it, or
    // would evaluate another policy than a fresh Stytch project's.
    let r = start().await;
    let (status, body) = r.get(POLICY).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status_code"], 200);
    assert!(
        body["request_id"]
            .as_str()
            .unwrap()
            .starts_with("request-id-test-")
    );
    let policy = &body["policy"];
    assert_eq!(
        roles_of(policy),
        ["stytch_member", "stytch_admin", "editor", "viewer"]
    );
    let resources: Vec<&str> = policy["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resource_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        resources,
        [
            "stytch.organization",
            "stytch.member",
            "stytch.sso",
            "stytch.self",
            "documents"
        ]
    );
    assert_eq!(
        policy["roles"][0]["permissions"],
        json!([{"resource_id": "stytch.self", "actions": ["*"]}])
    );
    assert_eq!(
        policy["roles"][1]["permissions"].as_array().unwrap().len(),
        3
    );
    assert!(
        policy["resources"][1]["actions"]
            .as_array()
            .unwrap()
            .contains(&json!("revoke-sessions"))
    );
    assert_eq!(policy["scopes"][0]["scope"], "read:documents");

    let anonymous = reqwest::get(r.url(POLICY)).await.unwrap();
    assert_eq!(
        anonymous.status(),
        401,
        "the policy needs the project's Basic auth"
    );
}

#[tokio::test]
async fn organization_policies_list_custom_roles_by_id_or_slug() {
    // If this failed, the SDKs' merge of organization roles (a custom role of one tenant)
    // would see nothing, and a member holding one would be denied locally.
    let r = start().await;
    let (status, body) = r.get(&format!("v1/b2b/rbac/organizations/{}", r.org)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["org_policy"], json!({"roles": []}));

    r.emu
        .create_role(&r.org, "auditor", &[("documents", &["read"])]);
    let (_, body) = r.get("v1/b2b/rbac/organizations/acme").await;
    assert_eq!(
        body["org_policy"]["roles"],
        json!([{"role_id": "auditor", "description": "", "permissions": [{"resource_id": "documents", "actions": ["read"]}]}])
    );
    let (_, other) = r
        .get(&format!("v1/b2b/rbac/organizations/{}", r.other_org))
        .await;
    assert_eq!(other["org_policy"]["roles"], json!([]), "per organization");

    let (status, body) = r
        .get("v1/b2b/rbac/organizations/organization-test-nope")
        .await;
    assert_eq!(
        (status.as_u16(), body["error_type"].as_str()),
        (404, Some("organization_not_found"))
    );
}

#[tokio::test]
async fn stytchs_set_org_policy_and_the_rust_api_replace_custom_roles() {
    // If this failed, tests could not give one tenant a role of its own, the way Stytch's
    // Set Org Policy endpoint does.
    let r = start().await;
    let (status, body) = r
        .put(
            &format!("v1/b2b/rbac/organizations/{}", r.org),
            json!({"organization_id": r.org, "org_policy": {"roles": [
                {"role_id": "owner", "description": "Owns", "permissions": [{"resource_id": "documents", "actions": ["*"]}]}
            ]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["org_policy"]["roles"][0]["role_id"], "owner");
    assert_eq!(
        r.emu.organization_roles("acme").unwrap()[0].description,
        "Owns"
    );

    r.emu
        .set_organization_roles(&r.org, vec![RbacRole::new("reader", Vec::new())])
        .unwrap();
    let (_, body) = r.get(&format!("v1/b2b/rbac/organizations/{}", r.org)).await;
    assert_eq!(roles_of(&body["org_policy"]), ["reader"]);
    assert!(r.emu.set_organization_roles("nope", Vec::new()).is_err());
}

#[tokio::test]
async fn authorization_check_follows_the_policy_and_custom_organization_roles() {
    // If this failed, Stytch's remote verdict (which the library and SDKs fall back to)
    // would differ from what the policy says.
    let r = start().await;
    r.emu.create_role(&r.org, "owner", &[("documents", &["*"])]);
    let member = r.session(&r.org, "m@acme.test", &[]);
    let admin = r.session(&r.org, "a@acme.test", &["stytch_admin"]);
    let editor = r.session(&r.org, "e@acme.test", &["editor"]);
    let viewer = r.session(&r.org, "v@acme.test", &["viewer"]);
    let owner = r.session(&r.org, "o@acme.test", &["owner", "viewer"]);
    let denied = Err((403, "session_authorization_error".to_owned()));
    let cases: Vec<(&SessionInfo, &str, &str, Result<Vec<String>, (u16, String)>)> = vec![
        (
            &member,
            "stytch.self",
            "update.info.name",
            Ok(vec!["stytch_member".into()]),
        ),
        (&member, "stytch.member", "revoke-sessions", denied.clone()),
        (
            &admin,
            "stytch.member",
            "revoke-sessions",
            Ok(vec!["stytch_admin".into()]),
        ),
        (&admin, "documents", "read", denied.clone()),
        (&editor, "documents", "create", Ok(vec!["editor".into()])),
        (&editor, "documents", "delete", denied.clone()),
        (&viewer, "documents", "read", Ok(vec!["viewer".into()])),
        (&viewer, "documents", "create", denied.clone()),
        (&owner, "documents", "delete", Ok(vec!["owner".into()])),
        (
            &owner,
            "documents",
            "read",
            Ok(vec!["owner".into(), "viewer".into()]),
        ),
        (&owner, "documents.archive", "read", denied.clone()),
    ];
    for (session, resource, action, want) in cases {
        let got = r.check(session, &r.org, resource, action).await;
        assert_eq!(got, want, "{resource} {action}");
    }
    let tenancy = r.check(&owner, &r.other_org, "documents", "read").await;
    assert_eq!(
        tenancy,
        Err((403, "session_authorization_tenancy_error".to_owned()))
    );
}

#[tokio::test]
async fn custom_roles_show_in_member_session_and_the_jwt_roles_claim() {
    // If this failed, a local check reading the JWT's roles would not see custom roles, and
    // would deny what Stytch grants.
    let r = start().await;
    r.emu.create_role(&r.org, "owner", &[("documents", &["*"])]);
    let s = r.session(&r.org, "o@acme.test", &["owner", "editor"]);
    let (_, body) = r
        .post(
            AUTHENTICATE,
            json!({"session_token": s.session_token.expose_secret()}),
        )
        .await;
    let want = json!(["stytch_member", "owner", "editor"]);
    assert_eq!(body["member_session"]["roles"], want);
    let claims = crate::decode_claims(body["session_jwt"].as_str().unwrap());
    assert_eq!(claims["https://stytch.com/session"]["roles"], want);
}

#[tokio::test]
async fn revoke_rbac_is_decided_by_the_policy() {
    // If this failed, the emulator would keep enforcing built-in rules after the policy
    // changed, unlike Stytch, whose RBAC is the policy.
    let r = start().await;
    let member = r.session(&r.org, "m@acme.test", &[]);
    let revoke_own = || json!({"member_session_id": member.member_session_id});
    let mut policy = RbacPolicy::default();
    policy.set_role(RbacRole::new(
        "stytch_member",
        vec![RbacPermission::new("stytch.self", &["update.info.name"])],
    ));
    r.emu.set_rbac_policy(policy);
    let resp = reqwest::Client::new()
        .post(r.url("v1/b2b/sessions/revoke"))
        .basic_auth(r.emu.project_id(), Some(r.emu.secret()))
        .header(
            "X-Stytch-Member-Session",
            member.session_token.expose_secret(),
        )
        .json(&revoke_own())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(r.emu.is_session_live(&member.member_session_id));

    r.emu.set_rbac_policy(RbacPolicy::stytch_default());
    let resp = reqwest::Client::new()
        .post(r.url("v1/b2b/sessions/revoke"))
        .basic_auth(r.emu.project_id(), Some(r.emu.secret()))
        .header(
            "X-Stytch-Member-Session",
            member.session_token.expose_secret(),
        )
        .json(&revoke_own())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!r.emu.is_session_live(&member.member_session_id));
}

#[tokio::test]
async fn the_control_api_changes_the_project_policy_and_organization_roles() {
    // If this failed, non-Rust tests (the Python SDK harness, demos) could not set up the
    // roles they check.
    let r = start().await;
    let (status, body) = r
        .post(
            "emulator/v1/rbac/roles",
            json!({"role_id": "publisher", "permissions": [{"resource_id": "documents", "actions": ["create", "delete"]}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(roles_of(&body["policy"]).contains(&"publisher"));
    let (status, _) = r
        .post(
            "emulator/v1/rbac/resources",
            json!({"resource_id": "invoices", "actions": ["pay"]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = r
        .post(
            "emulator/v1/rbac/scopes",
            json!({"scope": "pay:invoices", "permissions": [{"resource_id": "invoices", "actions": ["pay"]}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["policy"]["scopes"][2]["scope"], "pay:invoices");
    let publisher = r.session(&r.org, "p@acme.test", &["publisher"]);
    assert!(
        r.check(&publisher, &r.org, "documents", "delete")
            .await
            .is_ok()
    );

    let (status, body) = r
        .put(
            "emulator/v1/rbac/policy",
            json!({"roles": [], "scopes": []}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["policy"]["roles"], json!([]));
    assert_eq!(
        body["policy"]["resources"].as_array().unwrap().len(),
        6,
        "kept"
    );
    assert!(
        r.check(&publisher, &r.org, "documents", "delete")
            .await
            .is_err()
    );

    let (status, body) = r
        .put(
            &format!("emulator/v1/rbac/organizations/{}", r.org),
            json!({"roles": [{"role_id": "publisher", "permissions": [{"resource_id": "documents", "actions": ["*"]}]}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(roles_of(&body["org_policy"]), ["publisher"]);
    assert!(
        r.check(&publisher, &r.org, "documents", "delete")
            .await
            .is_ok()
    );

    let (status, body) = r
        .post("emulator/v1/rbac/roles", json!({"permissions": []}))
        .await;
    assert_eq!(
        (status.as_u16(), body["error_type"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, _) = r
        .put(
            "emulator/v1/rbac/organizations/organization-test-nope",
            json!({"roles": []}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn faults_apply_to_the_policy_endpoints() {
    // If this failed, a client's handling of a Stytch outage while fetching the policy (keep
    // the cached copy, fall back) could not be tested.
    let r = start().await;
    for endpoint in [
        EmulatorEndpoint::RbacPolicy,
        EmulatorEndpoint::RbacOrganization,
    ] {
        r.emu.inject_fault(
            endpoint,
            Fault::Status {
                status: 503,
                retry_after: None,
            },
            1,
        );
    }
    let (status, body) = r.get(POLICY).await;
    assert_eq!(
        (status.as_u16(), body["error_type"].as_str()),
        (503, Some("service_unavailable"))
    );
    assert_eq!(r.get(POLICY).await.0, 200, "only the next call");
    let org_path = format!("v1/b2b/rbac/organizations/{}", r.org);
    assert_eq!(r.get(&org_path).await.0, 503);
    assert_eq!(r.get(&org_path).await.0, 200);
    assert_eq!(r.emu.request_count(EmulatorEndpoint::RbacPolicy), 2);
    let (status, _) = r
        .post(
            "emulator/v1/faults",
            json!({"endpoint": "rbac_policy", "fault": {"type": "status", "status": 429}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(r.get(POLICY).await.0, 429);
}
