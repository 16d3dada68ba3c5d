//! The Stytch emulator over real loopback sockets: one test per documented behaviour.
//!
//! If these fail, the emulator no longer answers as Stytch documents (field names, error JSON,
//! RBAC, JWTs, faults, control API), and every test of `tower-stytch` and `stytch-gateway`
//! built on it proves less than it claims.

use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use stytch_emulator::{Emulator, EmulatorConfig, EmulatorEndpoint, Fault};

const AUTHENTICATE: &str = "v1/b2b/sessions/authenticate";
const REVOKE: &str = "v1/b2b/sessions/revoke";

/// An emulator with one organization holding an admin and a plain member, and a second
/// organization with its own admin.
struct Fixture {
    emu: Emulator,
    http: reqwest::Client,
    org: String,
    admin: String,
    member: String,
    other_admin: String,
}

async fn fixture() -> Fixture {
    let emu = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let org = emu.create_organization("Acme", "acme");
    let admin = emu.create_member(&org, "admin@acme.test", &["stytch_admin"]);
    let member = emu.create_member(&org, "member@acme.test", &[]);
    let other = emu.create_organization("Globex", "globex");
    let other_admin = emu.create_member(&other, "admin@globex.test", &["stytch_admin"]);
    Fixture {
        emu,
        http: reqwest::Client::new(),
        org,
        admin,
        member,
        other_admin,
    }
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url())
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.basic_auth(self.emu.project_id(), Some(self.emu.secret()))
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.authed(self.http.post(self.url(path)))
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        assert_eq!(
            resp.headers()["content-type"],
            "application/json",
            "every answer is JSON"
        );
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["request_id"]
                .as_str()
                .unwrap()
                .starts_with("request-id-test-"),
            "{body}"
        );
        assert_eq!(body["status_code"], status.as_u16());
        (status, body)
    }

    async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(self.post(path).json(&body)).await
    }

    async fn revoke_as(&self, header: (&str, &str), body: Value) -> (StatusCode, Value) {
        self.call(self.post(REVOKE).header(header.0, header.1).json(&body))
            .await
    }

    fn jwks_url(&self) -> String {
        self.url(&format!("v1/b2b/sessions/jwks/{}", self.emu.project_id()))
    }

    async fn jwks(&self) -> Value {
        self.call(self.http.get(self.jwks_url())).await.1
    }
}

fn error_type(body: &Value) -> &str {
    body["error_type"].as_str().unwrap_or_default()
}

fn decode_unverified(jwt: &str) -> Value {
    use base64::Engine as _;
    let claims = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn unauthorized_credentials_have_stytchs_exact_error_shape() {
    // If this failed, clients could not tell a wrong project secret from a bad session.
    let f = fixture().await;
    for req in [
        f.http
            .post(f.url(AUTHENTICATE))
            .json(&json!({"session_token": "x"})),
        f.http
            .post(f.url(AUTHENTICATE))
            .basic_auth(f.emu.project_id(), Some("secret-test-wrong"))
            .json(&json!({"session_token": "x"})),
    ] {
        let (status, body) = f.call(req).await;
        assert_eq!(status, 401);
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "error_message",
                "error_type",
                "error_url",
                "request_id",
                "status_code"
            ]
        );
        assert_eq!(body["error_type"], "unauthorized_credentials");
        assert_eq!(body["error_message"], "Unauthorized credentials.");
        assert_eq!(body["error_url"], "https://stytch.com/docs/api/errors/401");
    }
}

#[tokio::test]
async fn authenticate_by_token_and_by_jwt_returns_the_full_shape_and_a_fresh_jwt() {
    // If this failed, SDKs parsing Stytch's authenticate answer would break on the emulator.
    let f = fixture().await;
    let s = f.emu.create_session(&f.admin);
    // JWTs carry second-precision times and RS256 is deterministic: let the clock tick.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = f
        .post_json(
            AUTHENTICATE,
            json!({"session_token": s.session_token.expose_secret()}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ms = &body["member_session"];
    assert_eq!(ms["member_session_id"], s.member_session_id.as_str());
    assert_eq!(ms["member_id"], f.admin.as_str());
    assert_eq!(ms["organization_id"], f.org.as_str());
    assert_eq!(ms["organization_slug"], "acme");
    assert_eq!(ms["roles"], json!(["stytch_member", "stytch_admin"]));
    assert_eq!(ms["authentication_factors"][0]["type"], "magic_link");
    assert_eq!(ms["authentication_factors"][0]["delivery_method"], "email");
    assert_eq!(
        ms["authentication_factors"][0]["email_factor"]["email_address"],
        "admin@acme.test"
    );
    let expires = ms["expires_at"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(expires).is_ok() && expires.ends_with('Z'));
    assert_eq!(body["session_token"], s.session_token.expose_secret());
    assert_eq!(body["member"]["member_id"], f.admin.as_str());
    assert_eq!(body["member"]["status"], "active");
    assert_eq!(body["member"]["is_admin"], true);
    assert_eq!(body["member"]["roles"][1]["role_id"], "stytch_admin");
    assert_eq!(body["organization"]["organization_slug"], "acme");
    assert!(body.get("verdict").is_none());
    let jwt1 = body["session_jwt"].as_str().unwrap().to_owned();
    assert_ne!(jwt1, s.session_jwt.expose_secret());

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body2) = f
        .post_json(AUTHENTICATE, json!({"session_jwt": jwt1}))
        .await;
    assert_eq!(status, 200, "{body2}");
    assert_eq!(
        body2["member_session"]["member_session_id"],
        s.member_session_id.as_str()
    );
    assert_ne!(
        body2["session_jwt"].as_str().unwrap(),
        jwt1,
        "a new JWT on every call"
    );
    assert!(
        body2["member_session"]["last_accessed_at"]
            .as_str()
            .unwrap()
            > body["member_session"]["last_accessed_at"].as_str().unwrap()
    );
}

#[tokio::test]
async fn authenticate_argument_errors() {
    // If this failed, a client sending zero or two credentials would not be caught.
    let f = fixture().await;
    let s = f.emu.create_session(&f.member);
    let (status, body) = f.post_json(AUTHENTICATE, json!({})).await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (400, "no_session_arguments")
    );
    let both = json!({"session_token": s.session_token.expose_secret(), "session_jwt": s.session_jwt.expose_secret()});
    let (status, body) = f.post_json(AUTHENTICATE, both).await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (400, "too_many_session_arguments")
    );
    let (status, body) = f
        .post_json(AUTHENTICATE, json!({"session_jwt": "not-a-jwt"}))
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (400, "unable_to_parse_session_jwt")
    );
    let (status, body) = f.call(f.post(AUTHENTICATE).body("{nope")).await;
    assert_eq!((status.as_u16(), error_type(&body)), (400, "bad_request"));
}

#[tokio::test]
async fn jwt_signed_by_another_key_is_session_not_found() {
    // If this failed, a forged JWT could authenticate against the emulator.
    let f = fixture().await;
    let other = fixture().await;
    let s = other.emu.create_session(&other.member);
    let (status, body) = f
        .post_json(
            AUTHENTICATE,
            json!({"session_jwt": s.session_jwt.expose_secret()}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (404, "session_not_found")
    );
}

#[tokio::test]
async fn unknown_and_expired_sessions_are_not_found() {
    // If this failed, an expired session would keep authenticating.
    let f = fixture().await;
    let s = f
        .emu
        .create_session_with(&f.member, Duration::from_secs(120), Map::new());
    let (status, body) = f
        .post_json(
            AUTHENTICATE,
            json!({"session_token": "mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q"}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (404, "session_not_found")
    );
    assert_eq!(body["error_message"], "Session could not be found.");
    f.emu.set_clock_offset(180);
    assert!(!f.emu.is_session_live(&s.member_session_id));
    for body in [
        json!({"session_token": s.session_token.expose_secret()}),
        json!({"session_jwt": s.session_jwt.expose_secret()}),
    ] {
        let (status, answer) = f.post_json(AUTHENTICATE, body).await;
        assert_eq!(
            (status.as_u16(), error_type(&answer)),
            (404, "session_not_found")
        );
    }
}

#[tokio::test]
async fn expired_jwt_of_a_live_session_is_refreshed() {
    // If this failed, the middleware's remote fallback for expired JWTs would log users out.
    let f = fixture().await;
    let s = f.emu.create_session(&f.member);
    f.emu.set_clock_offset(600);
    let (status, body) = f
        .post_json(
            AUTHENTICATE,
            json!({"session_jwt": s.session_jwt.expose_secret()}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let fresh = decode_unverified(body["session_jwt"].as_str().unwrap());
    let old = decode_unverified(s.session_jwt.expose_secret());
    assert!(fresh["exp"].as_i64().unwrap() >= old["exp"].as_i64().unwrap() + 600);
}

#[tokio::test]
async fn session_duration_minutes_extends_the_session_from_now() {
    // If this failed, "keep me signed in" extensions would be lost or wrong.
    let f = fixture().await;
    let s = f.emu.create_session(&f.member);
    let body =
        json!({"session_token": s.session_token.expose_secret(), "session_duration_minutes": 600});
    let (status, answer) = f.post_json(AUTHENTICATE, body).await;
    assert_eq!(status, 200);
    let expires =
        humantime::parse_rfc3339(answer["member_session"]["expires_at"].as_str().unwrap()).unwrap();
    let want = SystemTime::now() + Duration::from_secs(600 * 60);
    let diff = want
        .duration_since(expires)
        .unwrap_or_else(|e| e.duration());
    assert!(diff < Duration::from_secs(5), "{diff:?}");
    f.emu.set_clock_offset(2 * 3600);
    assert!(f.emu.is_session_live(&s.member_session_id));
    for bad in [4, 527_041] {
        let body = json!({"session_token": s.session_token.expose_secret(), "session_duration_minutes": bad});
        let (status, answer) = f.post_json(AUTHENTICATE, body).await;
        assert_eq!(
            (status.as_u16(), error_type(&answer)),
            (400, "invalid_session_duration_minutes")
        );
    }
}

#[tokio::test]
async fn authorization_check_grants_denies_and_checks_tenancy() {
    // If this failed, RBAC decisions delegated to Stytch would be wrong.
    let f = fixture().await;
    f.emu
        .create_role(&f.org, "editor", &[("documents", &["read", "write"])]);
    let editor = f.emu.create_member(&f.org, "editor@acme.test", &["editor"]);
    let s = f.emu.create_session(&editor);
    let check = |org: &str, resource: &str, action: &str| {
        json!({
            "session_token": s.session_token.expose_secret(),
            "authorization_check": {"organization_id": org, "resource_id": resource, "action": action},
        })
    };
    let (status, body) = f
        .post_json(AUTHENTICATE, check(&f.org, "documents", "write"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["verdict"],
        json!({"authorized": true, "granting_roles": ["editor"]})
    );
    assert_eq!(
        body["member_session"]["roles"],
        json!(["stytch_member", "editor"])
    );

    let (status, body) = f
        .post_json(AUTHENTICATE, check(&f.org, "documents", "delete"))
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (403, "session_authorization_error")
    );

    let (status, body) = f
        .post_json(
            AUTHENTICATE,
            check("organization-test-other", "documents", "read"),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (403, "session_authorization_tenancy_error")
    );
}

#[tokio::test]
async fn revoke_argument_errors_none_too_many_and_null() {
    // If this failed, a client sending no or several selectors would not be caught, or an
    // official SDK sending `null` for absent selectors would break.
    let f = fixture().await;
    let s = f.emu.create_session(&f.member);
    let (status, body) = f.post_json(REVOKE, json!({})).await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (400, "no_session_revoke_arguments")
    );
    let (status, body) = f
        .post_json(
            REVOKE,
            json!({"member_id": f.member, "member_session_id": s.member_session_id}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (400, "too_many_session_revoke_arguments")
    );
    let (status, body) = f
        .post_json(
            REVOKE,
            json!({"member_id": null, "member_session_id": s.member_session_id,
                   "session_token": null, "session_jwt": null}),
        )
        .await;
    assert_eq!(status.as_u16(), 200, "{body}");
    assert!(!f.emu.is_session_live(&s.member_session_id));
    let (status, body) = f
        .post_json(REVOKE, json!({"member_id": null, "session_token": null}))
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (400, "no_session_revoke_arguments")
    );
}

#[tokio::test]
async fn revoke_by_each_selector() {
    // If this failed, one of the four revoke forms Stytch supports would not sign out.
    let f = fixture().await;
    let by_id = f.emu.create_session(&f.member);
    let by_token = f.emu.create_session(&f.member);
    let by_jwt = f.emu.create_session(&f.member);
    let bodies = [
        (
            &by_id,
            json!({"member_session_id": by_id.member_session_id}),
        ),
        (
            &by_token,
            json!({"session_token": by_token.session_token.expose_secret()}),
        ),
        (
            &by_jwt,
            json!({"session_jwt": by_jwt.session_jwt.expose_secret()}),
        ),
    ];
    // The JWT is expired by its `exp`, but correctly signed and its session live.
    f.emu.set_clock_offset(400);
    for (session, body) in bodies {
        let (status, answer) = f.post_json(REVOKE, body.clone()).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer.as_object().unwrap().len(),
            2,
            "only request_id and status_code"
        );
        assert!(!f.emu.is_session_live(&session.member_session_id));
        let (status, answer) = f.post_json(REVOKE, body).await;
        assert_eq!(
            (status.as_u16(), error_type(&answer)),
            (404, "session_not_found")
        );
    }
    let (status, body) = f
        .post_json(
            AUTHENTICATE,
            json!({"session_token": by_token.session_token.expose_secret()}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (404, "session_not_found")
    );
}

#[tokio::test]
async fn revoke_by_member_id_revokes_all_of_that_members_sessions_only() {
    // If this failed, forced sign-out would miss sessions or sign out bystanders.
    let f = fixture().await;
    let a = f.emu.create_session(&f.member);
    let b = f.emu.create_session(&f.member);
    let bystander = f.emu.create_session(&f.admin);
    let (status, _) = f.post_json(REVOKE, json!({"member_id": f.member})).await;
    assert_eq!(status, 200);
    assert!(!f.emu.is_session_live(&a.member_session_id));
    assert!(!f.emu.is_session_live(&b.member_session_id));
    assert!(f.emu.is_session_live(&bystander.member_session_id));
    let (status, _) = f.post_json(REVOKE, json!({"member_id": f.member})).await;
    assert_eq!(status, 200, "200 even when no session is live");
    let (status, body) = f
        .post_json(REVOKE, json!({"member_id": "member-test-unknown"}))
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (404, "member_not_found")
    );
}

#[tokio::test]
async fn rbac_member_may_revoke_own_session_but_not_anothers() {
    // If this failed, plain members could sign others out (or not even themselves).
    let f = fixture().await;
    let own = f.emu.create_session(&f.member);
    let acting = f.emu.create_session(&f.member);
    let victim = f.emu.create_session(&f.admin);
    let header = (
        "X-Stytch-Member-Session",
        acting.session_token.expose_secret(),
    );
    let (status, body) = f
        .revoke_as(
            header,
            json!({"member_session_id": victim.member_session_id}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (403, "session_authorization_error")
    );
    let (status, body) = f.revoke_as(header, json!({"member_id": f.admin})).await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (403, "session_authorization_error")
    );
    assert!(f.emu.is_session_live(&victim.member_session_id));
    let (status, body) = f
        .revoke_as(header, json!({"member_session_id": own.member_session_id}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!f.emu.is_session_live(&own.member_session_id));
}

#[tokio::test]
async fn rbac_admin_may_revoke_members_of_own_organization_only() {
    // If this failed, admins could not force sign-out, or could across tenants.
    let f = fixture().await;
    let admin = f.emu.create_session(&f.admin);
    let foreign_admin = f.emu.create_session(&f.other_admin);
    let victim = f.emu.create_session(&f.member);
    let (status, body) = f
        .revoke_as(
            (
                "X-Stytch-Member-Session",
                foreign_admin.session_token.expose_secret(),
            ),
            json!({"member_id": f.member}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (403, "session_authorization_tenancy_error")
    );
    assert!(f.emu.is_session_live(&victim.member_session_id));
    let (status, body) = f
        .revoke_as(
            (
                "X-Stytch-Member-Session",
                admin.session_token.expose_secret(),
            ),
            json!({"member_id": f.member}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!f.emu.is_session_live(&victim.member_session_id));
}

#[tokio::test]
async fn rbac_acting_by_jwt_and_without_header() {
    // If this failed, the JWT form of the acting header or secret-only revokes would break.
    let f = fixture().await;
    let admin = f.emu.create_session(&f.admin);
    let v1 = f.emu.create_session(&f.member);
    let v2 = f.emu.create_session(&f.member);
    let (status, body) = f
        .revoke_as(
            (
                "X-Stytch-Member-SessionJWT",
                admin.session_jwt.expose_secret(),
            ),
            json!({"member_session_id": v1.member_session_id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = f
        .post_json(REVOKE, json!({"member_session_id": v2.member_session_id}))
        .await;
    assert_eq!(status, 200, "no header: the project secret suffices");
    assert!(!f.emu.is_session_live(&v1.member_session_id));
    assert!(!f.emu.is_session_live(&v2.member_session_id));
}

#[tokio::test]
async fn rbac_revoked_acting_session_is_not_found_and_both_headers_refused() {
    // If this failed, a signed-out admin could still act, or ambiguous actors be accepted.
    let f = fixture().await;
    let admin = f.emu.create_session(&f.admin);
    let victim = f.emu.create_session(&f.member);
    let (status, _) = f
        .post_json(
            REVOKE,
            json!({"member_session_id": admin.member_session_id}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = f
        .revoke_as(
            (
                "X-Stytch-Member-Session",
                admin.session_token.expose_secret(),
            ),
            json!({"member_session_id": victim.member_session_id}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (404, "session_not_found")
    );
    let other = f.emu.create_session(&f.admin);
    let (status, body) = f
        .call(
            f.post(REVOKE)
                .header(
                    "X-Stytch-Member-Session",
                    other.session_token.expose_secret(),
                )
                .header(
                    "X-Stytch-Member-SessionJWT",
                    other.session_jwt.expose_secret(),
                )
                .json(&json!({"member_session_id": victim.member_session_id})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (400, "too_many_session_arguments")
    );
    assert!(f.emu.is_session_live(&victim.member_session_id));
}

#[tokio::test]
async fn jwks_shape_auth_and_rotation() {
    // If this failed, JWKS clients (ours and the SDKs') could not verify emulator JWTs.
    let f = fixture().await;
    let jwks = f.jwks().await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    for (field, want) in [
        ("kty", "RSA"),
        ("use", "sig"),
        ("alg", "RS256"),
        ("x5tS256", ""),
    ] {
        assert_eq!(k[field], want);
    }
    assert_eq!(k["key_ops"], json!(["verify"]));
    assert_eq!(k["x5c"], json!([]));
    assert_eq!(k["e"], "AQAB");
    assert!(k["kid"].as_str().unwrap().starts_with("jwk-test-"));
    assert!(!k["n"].as_str().unwrap().contains('='));

    let url = f.jwks_url();
    let (status, body) = f
        .call(
            f.http
                .get(&url)
                .basic_auth(f.emu.project_id(), Some("wrong")),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (401, "unauthorized_credentials")
    );
    let (status, _) = f.call(f.authed(f.http.get(&url))).await;
    assert_eq!(status, 200);
    let (status, body) = f
        .call(f.http.get(f.url("v1/b2b/sessions/jwks/project-test-other")))
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (400, "invalid_project_id")
    );

    let old_kid = k["kid"].as_str().unwrap().to_owned();
    let new_kid = f.emu.rotate_key();
    let jwks = f.jwks().await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);
    let s = f.emu.create_session(&f.member);
    let header = jsonwebtoken::decode_header(s.session_jwt.expose_secret()).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
}

#[tokio::test]
async fn minted_jwt_verifies_with_jsonwebtoken_against_the_jwks() {
    // If this failed, local JWT verification in the middleware could not be tested here.
    let f = fixture().await;
    let mut claims_in = Map::new();
    claims_in.insert("tenant".into(), json!("acme"));
    claims_in.insert("iss".into(), json!("evil"));
    let s = f
        .emu
        .create_session_with(&f.admin, Duration::from_secs(3600), claims_in);
    let jwt = f.emu.mint_jwt(&s.member_session_id).unwrap();
    let jwks = f.jwks().await;
    let header = jsonwebtoken::decode_header(jwt.expose_secret()).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"].as_str() == header.kid.as_deref())
        .unwrap();
    let decoding =
        DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap())
            .unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[f.emu.project_id()]);
    validation.set_issuer(&[format!("stytch.com/{}", f.emu.project_id())]);
    let data = jsonwebtoken::decode::<Value>(jwt.expose_secret(), &decoding, &validation).unwrap();
    let c = data.claims;
    assert_eq!(c["sub"], f.admin.as_str());
    assert_eq!(c["aud"], json!([f.emu.project_id()]));
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
    assert_eq!(c["nbf"], c["iat"]);
    assert_eq!(c["tenant"], "acme");
    let session = &c["https://stytch.com/session"];
    assert_eq!(session["id"], s.member_session_id.as_str());
    assert_eq!(session["roles"], json!(["stytch_member", "stytch_admin"]));
    assert_eq!(
        session["attributes"],
        json!({"user_agent": "", "ip_address": ""})
    );
    assert!(session["started_at"].is_string() && session["expires_at"].is_string());
    assert_eq!(
        c["https://stytch.com/organization"]["organization_id"],
        f.org.as_str()
    );
    assert_eq!(c["https://stytch.com/organization"]["slug"], "acme");
    assert_eq!(s.session_token.expose_secret().len(), 44);
    assert!(s.member_session_id.starts_with("session-test-"));
    let shown = format!("{s:?}");
    assert!(shown.contains("SessionToken(..)"));
    assert!(!shown.contains(s.session_token.expose_secret()));
    f.emu.set_clock_offset(7200);
    assert!(
        f.emu.mint_jwt(&s.member_session_id).is_none(),
        "expired session"
    );
}

#[tokio::test]
async fn status_fault_with_retry_after_applies_to_the_next_n_calls_only() {
    // If this failed, retry/fail-closed tests against the emulator would be meaningless.
    let f = fixture().await;
    let s = f.emu.create_session(&f.member);
    let body = json!({"session_token": s.session_token.expose_secret()});
    f.emu.inject_fault(
        EmulatorEndpoint::Authenticate,
        Fault::Status {
            status: 429,
            retry_after: Some(7),
        },
        2,
    );
    for _ in 0..2 {
        let resp = f.post(AUTHENTICATE).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "7");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["error_type"], "too_many_requests");
    }
    let (status, _) = f.post_json(AUTHENTICATE, body).await;
    assert_eq!(status, 200);
    let (status, _) = f.post_json(REVOKE, json!({"member_id": f.member})).await;
    assert_eq!(status, 200, "other endpoints are unaffected");
    assert_eq!(f.emu.request_count(EmulatorEndpoint::Authenticate), 3);
    assert_eq!(f.emu.request_count(EmulatorEndpoint::Revoke), 1);
}

#[tokio::test]
async fn latency_fault_delays_the_answer() {
    // If this failed, timeout handling could not be tested against the emulator.
    let f = fixture().await;
    f.emu.inject_fault(
        EmulatorEndpoint::Jwks,
        Fault::Latency(Duration::from_millis(300)),
        1,
    );
    let start = Instant::now();
    f.jwks().await;
    assert!(start.elapsed() >= Duration::from_millis(300));
    let start = Instant::now();
    f.jwks().await;
    assert!(start.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn malformed_truncated_and_reset_faults() {
    // If this failed, clients' handling of broken answers could not be tested.
    let f = fixture().await;
    let url = f.jwks_url();
    f.emu
        .inject_fault(EmulatorEndpoint::Jwks, Fault::MalformedBody, 1);
    f.emu
        .inject_fault(EmulatorEndpoint::Jwks, Fault::TruncatedBody, 1);
    f.emu
        .inject_fault(EmulatorEndpoint::Jwks, Fault::ConnectionReset, 1);

    let resp = f.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    let resp = f.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.is_err(), "truncated body is an error");

    assert!(f.http.get(&url).send().await.is_err(), "reset connection");

    f.jwks().await;
    assert_eq!(f.emu.request_count(EmulatorEndpoint::Jwks), 4);
}

#[tokio::test]
async fn request_log_captures_method_path_headers_body() {
    // If this failed, tests could not assert what the middleware sent to Stytch.
    let f = fixture().await;
    let s = f.emu.create_session(&f.member);
    f.emu.clear_requests();
    f.revoke_as(
        ("X-Stytch-Member-Session", s.session_token.expose_secret()),
        json!({"member_session_id": s.member_session_id}),
    )
    .await;
    f.http.get(f.url("nope")).send().await.unwrap();
    let log = f.emu.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].method, http::Method::POST);
    assert_eq!(log[0].path, "/v1/b2b/sessions/revoke");
    assert_eq!(
        log[0].body,
        json!({"member_session_id": s.member_session_id})
    );
    assert_eq!(
        log[0].headers["x-stytch-member-session"],
        s.session_token.expose_secret()
    );
    assert!(log[0].headers.contains_key("authorization"));
    assert!(!format!("{:?}", log[0]).contains(s.session_token.expose_secret()));
    assert_eq!(log[1].path, "/nope");
    assert_eq!(log[1].body, Value::Null);
    f.emu.clear_requests();
    assert!(f.emu.requests().is_empty());
    assert_eq!(f.emu.request_count(EmulatorEndpoint::Revoke), 1);
}

#[tokio::test]
async fn unknown_route_wrong_method_and_oversized_body() {
    // If this failed, clients hitting wrong paths would get non-Stytch answers.
    let f = fixture().await;
    let (status, body) = f.call(f.post("v1/b2b/nope")).await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (404, "route_not_found")
    );
    let (status, body) = f.call(f.http.get(f.url(REVOKE))).await;
    assert_eq!(status, 405, "{body}");
    let big = vec![b' '; 1024 * 1024 + 1];
    let (status, _) = f.call(f.post(AUTHENTICATE).body(big)).await;
    assert_eq!(status, 413);
}

/// A member and a 30-minute session with custom claims, made through the HTTP control API
/// in a new organization with a custom role `reader` (`read` on `docs`): (organization id,
/// member id, the session's JSON).
async fn control_api_session(f: &Fixture) -> (String, String, Value) {
    let (status, body) = f
        .post_json(
            "emulator/v1/organizations",
            json!({"organization_name": "Initech", "organization_slug": "initech"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let org = body["organization_id"].as_str().unwrap().to_owned();
    let (status, _) = f
        .post_json(
            "emulator/v1/roles",
            json!({"organization_id": org, "role_id": "reader", "permissions": [{"resource_id": "docs", "actions": ["read"]}]}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = f
        .post_json(
            "emulator/v1/members",
            json!({"organization_id": org, "email_address": "p@initech.test", "roles": ["reader"]}),
        )
        .await;
    let member = body["member_id"].as_str().unwrap().to_owned();
    let (_, session) = f
        .post_json(
            "emulator/v1/sessions",
            json!({"member_id": member, "session_duration_minutes": 30, "custom_claims": {"k": "v"}}),
        )
        .await;
    assert_eq!(session["organization_id"], org.as_str());
    (org, member, session)
}

#[tokio::test]
async fn http_control_api_creates_organizations_roles_members_and_sessions() {
    // If this failed, non-Rust tests and the demo could not seed the emulator.
    let f = fixture().await;
    let (org, _, session) = control_api_session(&f).await;
    let (status, body) = f
        .post_json(
            AUTHENTICATE,
            json!({"session_token": session["session_token"], "authorization_check": {"organization_id": org, "resource_id": "docs", "action": "read"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"]["granting_roles"], json!(["reader"]));
    assert_eq!(body["member_session"]["custom_claims"], json!({"k": "v"}));
}

#[tokio::test]
async fn http_control_api_injects_faults_and_counts_requests() {
    // If this failed, non-Rust tests could not simulate a Stytch outage or count calls.
    let f = fixture().await;
    let (_, member, session) = control_api_session(&f).await;
    let (status, _) = f
        .post_json(
            AUTHENTICATE,
            json!({"session_token": session["session_token"]}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = f
        .post_json(
            "emulator/v1/faults",
            json!({"endpoint": "revoke", "fault": {"type": "status", "status": 503}, "times": 1}),
        )
        .await;
    assert_eq!(body["status_code"], 200);
    let (status, _) = f.post_json(REVOKE, json!({"member_id": member})).await;
    assert_eq!(status, 503);
    let (_, counts) = f
        .call(f.authed(f.http.get(f.url("emulator/v1/counts"))))
        .await;
    assert_eq!(
        (counts["authenticate"].as_u64(), counts["revoke"].as_u64()),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn http_control_api_sets_a_fault_rate_and_counts_the_faults_shown() {
    // If this failed, a load run (the gateway's soak) could not make a steady share of
    // Stytch's calls fail, nor compare its 503s with the faults Stytch showed.
    let f = fixture().await;
    let (_, _, session) = control_api_session(&f).await;
    let fault = json!({"type": "status", "status": 503});
    let (status, _) = f
        .post_json(
            "emulator/v1/faults",
            json!({"endpoint": "authenticate", "fault": fault, "percent": 25}),
        )
        .await;
    assert_eq!(status, 200);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let body = json!({"session_token": session["session_token"]});
        statuses.push(f.post_json(AUTHENTICATE, body).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 503, 200, 200, 200, 503]);
    let (_, counts) = f
        .call(f.authed(f.http.get(f.url("emulator/v1/counts"))))
        .await;
    assert_eq!(counts["injected"]["authenticate"], 2);
    assert_eq!(counts["injected"]["revoke"], 0);
    let (status, _) = f
        .post_json(
            "emulator/v1/faults",
            json!({"endpoint": "authenticate", "fault": fault, "percent": 101}),
        )
        .await;
    assert_eq!(status, 400, "a percent above 100 is refused");
}

#[tokio::test]
async fn http_control_api_lists_and_clears_the_request_log() {
    // If this failed, non-Rust tests could not check what a client sent to Stytch.
    let f = fixture().await;
    let (_, member, session) = control_api_session(&f).await;
    f.post_json(
        AUTHENTICATE,
        json!({"session_token": session["session_token"]}),
    )
    .await;
    f.post_json(REVOKE, json!({"member_id": member})).await;
    let list = || f.authed(f.http.get(f.url("emulator/v1/requests")));
    let (_, log) = f.call(list()).await;
    assert_eq!(
        log["requests"].as_array().unwrap().len(),
        2,
        "control calls are not logged"
    );
    assert_eq!(log["requests"][1]["path"], "/v1/b2b/sessions/revoke");
    assert_eq!(log["requests"][1]["body"], json!({"member_id": member}));
    f.call(f.authed(f.http.delete(f.url("emulator/v1/requests"))))
        .await;
    let (_, log) = f.call(list()).await;
    assert_eq!(log["requests"], json!([]));
}

#[tokio::test]
async fn http_control_api_rotates_keys() {
    // If this failed, non-Rust tests could not exercise a Stytch key rotation.
    let f = fixture().await;
    let (_, body) = f.post_json("emulator/v1/keys/rotate", json!({})).await;
    assert_eq!(f.jwks().await["keys"][0]["kid"], body["kid"]);
}

#[tokio::test]
async fn http_control_api_shifts_the_clock() {
    // If this failed, non-Rust tests could not expire sessions without waiting.
    let f = fixture().await;
    let (_, _, session) = control_api_session(&f).await;
    let (status, _) = f
        .post_json("emulator/v1/clock", json!({"offset_seconds": 3600}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = f
        .post_json(
            AUTHENTICATE,
            json!({"session_token": session["session_token"]}),
        )
        .await;
    assert_eq!(status, 404, "30-minute session expired by the clock offset");
}

#[tokio::test]
async fn http_control_api_needs_the_project_credentials() {
    // If this failed, anyone reaching the emulator's port could drive it.
    let f = fixture().await;
    let (status, body) = f
        .call(
            f.http
                .post(f.url("emulator/v1/organizations"))
                .json(&json!({})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (401, "unauthorized_credentials")
    );
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    // If this failed, emulators would leak ports and tasks across tests.
    let f = fixture().await;
    let url = f.jwks_url();
    f.jwks().await;
    let Fixture { emu, .. } = f;
    emu.shutdown().await;
    let fresh = reqwest::Client::new();
    assert!(fresh.get(&url).send().await.is_err());
}

#[tokio::test]
async fn live_project_ids_make_live_ids() {
    // If this failed, emulated live projects would hand out test-looking ids.
    let emu = Emulator::start(
        EmulatorConfig::new()
            .project_id("project-live-1234")
            .secret("secret-live-x"),
    )
    .await
    .unwrap();
    let org = emu.create_organization("L", "l");
    assert!(org.starts_with("organization-live-"));
    let member = emu.create_member(&org, "a@l.test", &[]);
    assert!(member.starts_with("member-live-"));
    assert!(
        emu.create_session(&member)
            .member_session_id
            .starts_with("session-live-")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_up_under_concurrent_load() {
    // If this failed, benches and load tests against the emulator would see spurious errors.
    let f = fixture().await;
    let s = f.emu.create_session(&f.member);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let req = f
            .post(AUTHENTICATE)
            .json(&json!({"session_token": s.session_token.expose_secret()}));
        let jwks = f.http.get(f.jwks_url());
        tasks.spawn(async move {
            for _ in 0..16 {
                let a = req.try_clone().unwrap().send().await.unwrap();
                assert_eq!(a.status(), 200);
                let j = jwks.try_clone().unwrap().send().await.unwrap();
                assert_eq!(j.status(), 200);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(f.emu.request_count(EmulatorEndpoint::Authenticate), 512);
    assert_eq!(f.emu.request_count(EmulatorEndpoint::Jwks), 512);
}

fn get_sessions_url(f: &Fixture, organization: &str, member: &str) -> String {
    f.url(&format!(
        "v1/b2b/sessions?organization_id={organization}&member_id={member}"
    ))
}

#[tokio::test]
async fn get_sessions_lists_the_members_live_sessions_only() {
    // If this failed, an app's "your active sessions" page would show revoked or expired
    // sessions, miss live ones, or show another member's.
    let f = fixture().await;
    let first = f.emu.create_session(&f.member);
    let revoked = f.emu.create_session(&f.member);
    let short = f
        .emu
        .create_session_with(&f.member, Duration::from_secs(120), Map::new());
    let second = f.emu.create_session(&f.member);
    f.emu.create_session(&f.admin);
    let (status, _) = f
        .post_json(
            REVOKE,
            json!({"member_session_id": revoked.member_session_id}),
        )
        .await;
    assert_eq!(status, 200);
    f.emu.set_clock_offset(180);
    assert!(!f.emu.is_session_live(&short.member_session_id));

    for organization in [f.org.as_str(), "acme"] {
        let (status, body) = f
            .call(f.authed(f.http.get(get_sessions_url(&f, organization, &f.member))))
            .await;
        assert_eq!(status, 200, "{body}");
        let sessions = body["member_sessions"].as_array().unwrap();
        let mut ids: Vec<&str> = sessions
            .iter()
            .map(|s| s["member_session_id"].as_str().unwrap())
            .collect();
        ids.sort_unstable();
        let mut want = [
            first.member_session_id.as_str(),
            second.member_session_id.as_str(),
        ];
        want.sort_unstable();
        assert_eq!(ids, want, "by {organization}");
        let s = &sessions[0];
        assert_eq!(s["member_id"], f.member.as_str());
        assert_eq!(s["organization_id"], f.org.as_str());
        assert_eq!(s["organization_slug"], "acme");
        assert_eq!(s["roles"], json!(["stytch_member"]));
        assert_eq!(s["authentication_factors"][0]["type"], "magic_link");
        assert!(humantime::parse_rfc3339(s["expires_at"].as_str().unwrap()).is_ok());
        assert_eq!(
            body.as_object().unwrap().len(),
            3,
            "member_sessions, request_id, status_code"
        );
    }

    // A member without sessions has an empty list, not an error.
    let (status, body) = f
        .call(f.authed(f.http.get(get_sessions_url(&f, &f.org, &f.admin))))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["member_sessions"].as_array().unwrap().len(), 1);
    f.post_json(REVOKE, json!({"member_id": f.admin})).await;
    let (_, body) = f
        .call(f.authed(f.http.get(get_sessions_url(&f, &f.org, &f.admin))))
        .await;
    assert_eq!(body["member_sessions"], json!([]));
}

#[tokio::test]
async fn get_sessions_errors_follow_stytch() {
    // If this failed, a client would not learn a wrong organization or member from the
    // answer, or could list sessions without the project secret.
    let f = fixture().await;
    let cases = [
        (
            f.url(&format!("v1/b2b/sessions?member_id={}", f.member)),
            400,
            "bad_request",
        ),
        (
            f.url(&format!("v1/b2b/sessions?organization_id={}", f.org)),
            400,
            "bad_request",
        ),
        (
            get_sessions_url(&f, "organization-test-unknown", &f.member),
            404,
            "organization_not_found",
        ),
        (
            get_sessions_url(&f, &f.org, "member-test-unknown"),
            404,
            "member_not_found",
        ),
        (
            get_sessions_url(&f, &f.org, &f.other_admin),
            404,
            "member_not_found",
        ),
    ];
    for (url, want_status, want_type) in cases {
        let (status, body) = f.call(f.authed(f.http.get(&url))).await;
        assert_eq!(
            (status.as_u16(), error_type(&body)),
            (want_status, want_type),
            "{url}"
        );
    }
    let url = get_sessions_url(&f, &f.org, &f.member);
    let (status, body) = f.call(f.http.get(&url)).await;
    assert_eq!(
        (status.as_u16(), error_type(&body)),
        (401, "unauthorized_credentials")
    );
    let (status, _) = f.call(f.authed(f.http.post(&url))).await;
    assert_eq!(status, 405);
}
