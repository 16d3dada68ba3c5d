//! The client's wire form, against a local HTTP server (wiremock) over loopback, and against
//! the emulator.
//!
//! If these fail, the client sends Stytch what Stytch would refuse (null fields, two
//! selectors, a leaked secret), misreads its answers, or retries what must not be retried.

use std::time::Duration;

use base64::Engine as _;
use tower_stytch::client::{
    AuthenticateRequest, AuthorizationCheck, RetryPolicy, RevokeSelector, USER_AGENT,
};
use tower_stytch::credential::{Credential, SessionJwt, SessionToken};
use tower_stytch::{StytchClient, StytchConfig};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const PROJECT: &str = "project-test-11111111-2222-4333-8444-555555555555";
const SECRET: &str = "secret-test-DO-NOT-LEAK-abcdefghijklmnop";
const TOKEN: &str = "mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q";
const ACTING: &str = "aCtInGmEmBeRtOkEnaCtInGmEmBeRtOkEnaCtInGmEm";
const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtZW1iZXIifQ.c2lnbmF0dXJl";

fn client(server: &MockServer, retry: RetryPolicy) -> StytchClient {
    let config = StytchConfig::builder(PROJECT, SECRET)
        .base_url(server.uri())
        .request_timeout(Duration::from_millis(500))
        .retry_policy(retry)
        .build()
        .unwrap();
    StytchClient::new(config).unwrap()
}

fn session_json() -> serde_json::Value {
    serde_json::json!({
        "member_session_id": "session-test-fe6c042b-6286-479f-8a4f-b046a6c46509",
        "member_id": "member-test-32fc5024-9c09-4da3-bd2e-c9ce4da9375f",
        "organization_id": "organization-test-07971b06-ac8b-4cdb-9c15-63b17e653931",
        "organization_slug": "acme",
        "started_at": "2024-01-01T00:00:00Z",
        "last_accessed_at": "2024-01-01T01:00:00Z",
        "expires_at": "2099-01-01T02:00:00Z",
        "authentication_factors": [{"type": "magic_link", "delivery_method": "email"}],
        "roles": ["stytch_member"],
        "custom_claims": {}
    })
}

fn only_request(requests: &[Request]) -> &Request {
    assert_eq!(requests.len(), 1, "expected exactly one request");
    &requests[0]
}

fn assert_common_wire_form(req: &Request) {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{PROJECT}:{SECRET}"))
    );
    assert_eq!(req.headers.get("authorization").unwrap(), expected.as_str());
    assert_eq!(req.headers.get("user-agent").unwrap(), USER_AGENT);
    assert!(USER_AGENT.starts_with("tower-stytch/"));
}

#[tokio::test]
async fn revoke_sends_exactly_one_selector_and_the_acting_member_header() {
    // If this broke, Stytch would refuse our revokes or run them without the member's RBAC.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/b2b/sessions/revoke"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"request_id": "request-id-test-1", "status_code": 200}),
        ))
        .mount(&server)
        .await;
    let client = client(&server, RetryPolicy::none());
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
            RevokeSelector::SessionToken(SessionToken::new(TOKEN)),
            "session_token",
            TOKEN,
        ),
        (
            RevokeSelector::SessionJwt(SessionJwt::new(JWT)),
            "session_jwt",
            JWT,
        ),
    ];
    for (selector, field, value) in cases {
        server.reset().await;
        Mock::given(method("POST"))
            .and(path("/v1/b2b/sessions/revoke"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"request_id": "request-id-test-1", "status_code": 200}),
            ))
            .mount(&server)
            .await;
        let acting = Credential::Token(SessionToken::new(ACTING));
        let res = client.revoke(&selector, Some(&acting)).await.unwrap();
        assert_eq!(res.request_id, "request-id-test-1");
        assert_eq!(res.status_code, 200);
        let requests = server.received_requests().await.unwrap();
        let req = only_request(&requests);
        assert_eq!(req.method.as_str(), "POST");
        assert_eq!(req.url.path(), "/v1/b2b/sessions/revoke");
        assert_common_wire_form(req);
        assert_eq!(req.headers.get("content-type").unwrap(), "application/json");
        assert_eq!(req.headers.get("x-stytch-member-session").unwrap(), ACTING);
        assert!(req.headers.get("x-stytch-member-sessionjwt").is_none());
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body, serde_json::json!({ field: value }), "{field}");
    }
}

#[tokio::test]
async fn revoke_acting_with_a_jwt_uses_the_jwt_header_and_none_sends_no_header() {
    // If this broke, JWT-only apps could not make RBAC-scoped revokes.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/b2b/sessions/revoke"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"request_id": "r", "status_code": 200})),
        )
        .mount(&server)
        .await;
    let client = client(&server, RetryPolicy::none());
    let selector = RevokeSelector::MemberId("member-test-1".into());
    let acting = Credential::Jwt(SessionJwt::new(JWT));
    client.revoke(&selector, Some(&acting)).await.unwrap();
    client.revoke(&selector, None).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests[0]
            .headers
            .get("x-stytch-member-sessionjwt")
            .unwrap(),
        JWT
    );
    assert!(requests[0].headers.get("x-stytch-member-session").is_none());
    assert!(
        requests[1]
            .headers
            .get("x-stytch-member-sessionjwt")
            .is_none()
    );
    assert!(requests[1].headers.get("x-stytch-member-session").is_none());
}

#[tokio::test]
async fn authenticate_wire_form_and_lenient_response() {
    // If this broke, sessions would not authenticate, or schema growth at Stytch would break us.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/b2b/sessions/authenticate"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "status_code": 200,
            "request_id": "request-id-test-2",
            "member_session": session_json(),
            "session_token": TOKEN,
            "session_jwt": JWT,
            "member": {"member_id": "member-test-32fc5024-9c09-4da3-bd2e-c9ce4da9375f", "roles": [{"role_id": "stytch_member", "sources": []}], "brand_new_field": true},
            "organization": {"organization_id": "organization-test-07971b06-ac8b-4cdb-9c15-63b17e653931"},
            "verdict": {"authorized": true, "granting_roles": ["stytch_admin"]},
            "another_new_top_level_field": [1, 2, 3]
        })))
        .mount(&server)
        .await;
    let client = client(&server, RetryPolicy::none());
    let req = AuthenticateRequest::new(Credential::Token(SessionToken::new(TOKEN)))
        .session_duration_minutes(60)
        .authorization_check(AuthorizationCheck {
            organization_id: "organization-test-1".into(),
            resource_id: "stytch.member".into(),
            action: "revoke-sessions".into(),
        });
    let res = client.authenticate(&req).await.unwrap();
    assert_eq!(res.request_id, "request-id-test-2");
    assert_eq!(res.member_session.organization_slug(), "acme");
    assert_eq!(res.session_jwt.as_ref().unwrap().expose_secret(), JWT);
    assert!(res.verdict.unwrap().authorized);
    assert_eq!(res.member["brand_new_field"], true);

    let requests = server.received_requests().await.unwrap();
    let wire = only_request(&requests);
    assert_eq!(wire.method.as_str(), "POST");
    assert_common_wire_form(wire);
    assert_eq!(
        wire.headers.get("content-type").unwrap(),
        "application/json"
    );
    let body: serde_json::Value = serde_json::from_slice(&wire.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "session_token": TOKEN,
            "session_duration_minutes": 60,
            "authorization_check": {"organization_id": "organization-test-1", "resource_id": "stytch.member", "action": "revoke-sessions"}
        })
    );

    // A JWT is sent as session_jwt, alone.
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_json(serde_json::json!({
            "status_code": 404, "request_id": "request-id-test-3", "error_type": "session_not_found",
            "error_message": "Session could not be found.", "error_url": "https://stytch.com/docs/api/errors/404"})))
        .mount(&server)
        .await;
    let err = client
        .authenticate(&AuthenticateRequest::new(Credential::Jwt(SessionJwt::new(
            JWT,
        ))))
        .await
        .unwrap_err();
    assert!(err.is_session_invalid());
    assert_eq!(err.request_id(), Some("request-id-test-3"));
    let requests = server.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&only_request(&requests).body).unwrap();
    assert_eq!(body, serde_json::json!({"session_jwt": JWT}));
}

#[tokio::test]
async fn jwks_is_a_get_on_the_project_path() {
    // If this broke, local JWT verification could not load keys.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/b2b/sessions/jwks/{PROJECT}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "keys": [{"kty": "RSA", "use": "sig", "key_ops": ["verify"], "alg": "RS256", "kid": "jwk-test-1",
                      "x5c": [], "x5tS256": "", "n": "AQAB", "e": "AQAB"}],
            "request_id": "r", "status_code": 200})))
        .expect(1)
        .mount(&server)
        .await;
    let jwks = client(&server, RetryPolicy::none()).jwks().await.unwrap();
    assert_eq!(jwks.keys[0].kid, "jwk-test-1");
    let requests = server.received_requests().await.unwrap();
    let req = only_request(&requests);
    assert_common_wire_form(req);
    assert!(req.body.is_empty(), "a GET carries no body");
}

#[tokio::test]
async fn retries_5xx_and_429_with_retry_after_but_never_4xx() {
    // If this broke, a blip at Stytch would log users out, or we would hammer Stytch on 4xx.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>upstream down</html>"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_json(
                    serde_json::json!({"status_code": 429, "error_type": "too_many_requests",
                    "error_message": "Too many requests have been made.", "request_id": "r"}),
                ),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"request_id": "ok", "status_code": 200})),
        )
        .mount(&server)
        .await;
    let mut retry = RetryPolicy::default();
    retry.max_attempts = 3;
    retry.base_delay = Duration::from_millis(10);
    retry.max_delay = Duration::from_millis(20);
    retry.deadline = Duration::from_secs(5);
    let c = client(&server, retry.clone());
    let res = c
        .revoke(&RevokeSelector::MemberId("member-test-1".into()), None)
        .await
        .unwrap();
    assert_eq!(res.request_id, "ok");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);

    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({"status_code": 403,
            "error_type": "session_authorization_error", "error_message": "no", "request_id": "r403"})))
        .mount(&server)
        .await;
    let err = c
        .revoke(&RevokeSelector::MemberId("member-test-1".into()), None)
        .await
        .unwrap_err();
    assert!(err.is_forbidden());
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn non_json_5xx_and_truncated_bodies_are_clean_errors() {
    // If this broke, a proxy's HTML error page or a cut connection could panic the client.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/b2b/sessions/revoke"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad gateway</html>"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/b2b/sessions/authenticate"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(format!("{{\"session_token\": \"{TOKEN}\", \"member_sess")),
        )
        .mount(&server)
        .await;
    let c = client(&server, RetryPolicy::none());
    let err = c
        .revoke(&RevokeSelector::MemberId("member-test-1".into()), None)
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(502));
    assert!(err.is_retryable());
    let err = c
        .authenticate(&AuthenticateRequest::new(Credential::Token(
            SessionToken::new(TOKEN),
        )))
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        matches!(err, tower_stytch::StytchError::Decode { .. }),
        "{shown}"
    );
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[tokio::test]
async fn timeouts_are_typed_and_retryable() {
    // If this broke, a hung Stytch would hang every request instead of failing fast.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let err = client(&server, RetryPolicy::none())
        .jwks()
        .await
        .unwrap_err();
    assert!(
        matches!(err, tower_stytch::StytchError::Timeout { .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn secrets_never_appear_in_debug_or_display() {
    // If this broke, logging a client, a request or an error would leak credentials.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            serde_json::json!({"status_code": 401,
            "error_type": "unauthorized_credentials", "error_message": "Unauthorized credentials.",
            "request_id": "r401", "error_url": "https://stytch.com/docs/api/errors/401"}),
        ))
        .mount(&server)
        .await;
    let c = client(&server, RetryPolicy::none());
    let req = AuthenticateRequest::new(Credential::Token(SessionToken::new(TOKEN)));
    let err = c.authenticate(&req).await.unwrap_err();
    assert!(err.is_misconfigured());
    let acting = Credential::Jwt(SessionJwt::new(JWT));
    let revoke_err = c
        .revoke(
            &RevokeSelector::SessionToken(SessionToken::new(TOKEN)),
            Some(&acting),
        )
        .await
        .unwrap_err();
    let shown = format!(
        "{c:?} {:?} {req:?} {err} {err:?} {revoke_err} {revoke_err:?} {:?}",
        c.config(),
        RevokeSelector::SessionJwt(SessionJwt::new(JWT))
    );
    for secret in [SECRET, TOKEN, JWT, ACTING] {
        assert!(!shown.contains(secret), "{secret} leaked in {shown}");
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{PROJECT}:{SECRET}"));
    assert!(!shown.contains(&basic));
}

#[tokio::test]
async fn an_acting_credential_that_cannot_be_a_header_is_refused_before_sending() {
    // If this broke, a hand-built credential could panic the client or be sent mangled.
    let server = MockServer::start().await;
    let c = client(&server, RetryPolicy::none());
    let acting = Credential::Token(SessionToken::new("bad\nvalue-DO-NOT-LEAK"));
    let err = c
        .revoke(
            &RevokeSelector::MemberId("member-test-1".into()),
            Some(&acting),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, tower_stytch::StytchError::InvalidRequest { .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(!format!("{err} {err:?}").contains("DO-NOT-LEAK"));
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_crates_own_client_works_against_the_emulator() {
    // If this failed, the crate's client and the emulator would disagree on Stytch's shapes.
    let emu = stytch_emulator::Emulator::start(stytch_emulator::EmulatorConfig::new())
        .await
        .unwrap();
    let org = emu.create_organization("Acme", "acme");
    let member = emu.create_member(&org, "member@acme.test", &[]);
    let config = StytchConfig::builder(emu.project_id(), emu.secret())
        .base_url(emu.base_url())
        .build()
        .unwrap();
    let client = StytchClient::new(config).unwrap();
    let s = emu.create_session(&member);
    let answer = client
        .authenticate(&AuthenticateRequest::new(Credential::Token(
            SessionToken::new(s.session_token.expose_secret()),
        )))
        .await
        .unwrap();
    assert_eq!(answer.member_session.member_session_id, s.member_session_id);
    assert_eq!(client.jwks().await.unwrap().keys.len(), 1);
    client
        .revoke(
            &RevokeSelector::MemberSessionId(s.member_session_id.clone()),
            Some(&Credential::Jwt(SessionJwt::new(
                s.session_jwt.expose_secret(),
            ))),
        )
        .await
        .unwrap();
    assert!(!emu.is_session_live(&s.member_session_id));
}

#[tokio::test]
#[cfg(feature = "axum")]
async fn get_sessions_lists_a_members_live_sessions_from_the_emulator() {
    // If this failed, the client's Get Sessions would send the wrong query, misread Stytch's
    // `member_sessions`, list revoked sessions, or hide Stytch's member_not_found.
    let world = crate::support::World::new().await;
    let client = world.client();
    let member = &world.member;
    let second = world.emulator.create_session(&member.member_id);
    let answer = client
        .sessions(&world.org, &member.member_id)
        .await
        .unwrap();
    // Both live sessions, in the emulator's order (started_at, then id: two sessions started
    // within one second come in id order), so compared as a set.
    let mut ids: Vec<String> = answer
        .member_sessions
        .iter()
        .map(|s| s.member_session_id.to_string())
        .collect();
    ids.sort_unstable();
    let mut want = [
        member.member_session_id.as_str(),
        second.member_session_id.as_str(),
    ];
    want.sort_unstable();
    assert_eq!(ids, want);
    assert!(answer.member_sessions.iter().all(|s| {
        s.member_id == member.member_id
            && *s.organization_id() == world.org
            && s.started_at().is_some()
    }));
    assert!(!answer.request_id.is_empty());

    // By slug too; and a revoked session is no longer listed.
    client
        .revoke(
            &RevokeSelector::MemberSessionId(second.member_session_id.clone()),
            None,
        )
        .await
        .unwrap();
    let by_slug = client.sessions("acme", &member.member_id).await.unwrap();
    assert_eq!(by_slug.member_sessions.len(), 1);
    assert_eq!(
        by_slug.member_sessions[0].member_session_id,
        member.member_session_id
    );

    // A member of another organization is Stytch's 404 member_not_found.
    let err = client
        .sessions(&world.other_org, &member.member_id)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), Some("member_not_found"), "{err:?}");
}
