//! Logout, admin revocation and forced sign-out against the emulator: what Stytch received,
//! and what the app sees afterwards.
//!
//! If these fail, a logged-out or revoked session keeps working here (or everywhere), members
//! can sign each other out past Stytch's RBAC, or a revocation made during an outage is lost.

use std::time::Duration;

use crate::support::{Served, World, app, eventually, serve};
use axum::extract::Path;
use axum::routing::post;
use base64::Engine as _;
use http::StatusCode;
use stytch_emulator::{EmulatorEndpoint, Fault, RecordedRequest};
use tower_stytch::client::RevokeSelector;
use tower_stytch::config::CookieSettings;
use tower_stytch::{MemberSession, Revoker, SessionCredential};

fn revokes(w: &World) -> Vec<RecordedRequest> {
    w.emulator
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/b2b/sessions/revoke")
        .collect()
}

fn assert_basic_auth(w: &World, req: &RecordedRequest) {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            w.emulator.project_id(),
            w.emulator.secret()
        ))
    );
    assert_eq!(req.headers["authorization"], expected.as_str());
}

#[tokio::test]
async fn logout_revokes_the_own_session_and_its_jwt_is_refused_at_once() {
    // If this broke, a logged-out session (or its still-valid JWT) would keep working here.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    let token = w.member.session_token.expose_secret();
    let jwt = w.member.session_jwt.expose_secret();
    let other_session = w.emulator.create_session(&w.member.member_id);
    assert_eq!(s.whoami(token).await, StatusCode::OK);
    assert_eq!(s.whoami(jwt).await, StatusCode::OK);
    assert_eq!(
        s.whoami(other_session.session_token.expose_secret()).await,
        StatusCode::OK
    );
    assert_eq!(
        s.whoami(w.member2.session_token.expose_secret()).await,
        StatusCode::OK
    );
    w.emulator.clear_requests();

    let res = s.post_as("/logout", token).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["x-stytch-logout"], "revoked");

    // What Stytch received: one revoke, by member_session_id, acting as the member.
    let sent = revokes(&w);
    assert_eq!(sent.len(), 1);
    assert_basic_auth(&w, &sent[0]);
    assert_eq!(sent[0].headers["x-stytch-member-session"], token);
    assert_eq!(
        sent[0].body,
        serde_json::json!({"member_session_id": w.member.member_session_id})
    );
    assert!(!w.emulator.is_session_live(&w.member.member_session_id));

    // What the app sees: the token and the JWT refused at once, without asking Stytch.
    let before = w.emulator.request_count(EmulatorEndpoint::Authenticate);
    assert_eq!(s.whoami(token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(s.whoami(jwt).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        w.emulator.request_count(EmulatorEndpoint::Authenticate),
        before
    );
    // Other sessions of the same member, and other members, are untouched.
    assert_eq!(
        s.whoami(other_session.session_token.expose_secret()).await,
        StatusCode::OK
    );
    assert_eq!(
        s.whoami(w.member2.session_token.expose_secret()).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_everywhere_revokes_by_member_id() {
    // If this broke, "log out everywhere" would leave the member's other devices signed in.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    let second = w.emulator.create_session(&w.member.member_id);
    assert_eq!(
        s.whoami(second.session_jwt.expose_secret()).await,
        StatusCode::OK
    );
    let res = s
        .post_as("/logout/everywhere", w.member.session_token.expose_secret())
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let sent = revokes(&w);
    assert_eq!(
        sent.last().unwrap().body,
        serde_json::json!({"member_id": w.member.member_id})
    );
    assert_eq!(
        s.whoami(second.session_jwt.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.whoami(second.session_token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.whoami(w.member2.session_token.expose_secret()).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_clears_cookies_with_their_attributes_even_without_a_session() {
    // If this broke, the browser would keep a dead (or live) cookie after logout.
    let w = World::new().await;
    let layer = w
        .builder()
        .cookie_settings({
            let mut cookies = CookieSettings::default();
            cookies.path = "/app".into();
            cookies.domain = Some("acme.test".into());
            cookies
        })
        .build()
        .unwrap();
    let s = serve(layer, app()).await;
    for cookie in [
        None,
        Some("stytch_session=zZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q"),
    ] {
        let mut req = s.http.post(s.url("/logout"));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let set: Vec<String> = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(set.len(), 2, "{set:?}");
        for name in ["stytch_session_jwt=", "stytch_session="] {
            let c = set.iter().find(|c| c.starts_with(name)).unwrap();
            for attr in [
                "Path=/app",
                "Domain=acme.test",
                "Max-Age=0",
                "SameSite=Lax",
                "Secure",
            ] {
                assert!(c.contains(attr), "{attr} in {c}");
            }
        }
    }
}

#[tokio::test]
async fn cross_origin_cookie_logout_is_refused_and_redirects_follow_the_allowlist() {
    // If this broke, any site could log our users out, or logout would be an open redirect.
    let w = World::new().await;
    let layer = w
        .builder()
        .logout_redirect_allowlist(["/", "https://acme.test/bye"])
        .build()
        .unwrap();
    let s = serve(layer, app()).await;
    let cookie = format!("stytch_session={}", w.member.session_token.expose_secret());
    let res = s
        .http
        .post(s.url("/logout"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = s
        .http
        .post(s.url("/logout"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(revokes(&w).is_empty(), "a refused logout must not revoke");
    assert!(w.emulator.is_session_live(&w.member.member_session_id));

    let res = s
        .post_as(
            "/logout?return_to=https://evil.test/",
            w.member.session_token.expose_secret(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(revokes(&w).is_empty());

    let res = s
        .http
        .post(s.url("/logout?return_to=https%3A%2F%2Facme.test%2Fbye"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "https://acme.test/bye");
    assert!(!w.emulator.is_session_live(&w.member.member_session_id));

    // GET logout is off by default.
    let res = s.get("/logout").await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "POST");
}

/// The default stack, with `w.member`'s JWT cached: the path of the admin route revoking
/// `w.member`.
async fn member_revocation(w: &World) -> (Served, String) {
    let s = serve(w.builder().build().unwrap(), app()).await;
    assert_eq!(
        s.whoami(w.member.session_jwt.expose_secret()).await,
        StatusCode::OK
    );
    let path = format!("/admin/members/{}/revoke-sessions", w.member.member_id);
    (s, path)
}

#[tokio::test]
async fn a_member_cannot_revoke_another_members_sessions() {
    // If this broke, members could sign each other out.
    let w = World::new().await;
    let (s, path) = member_revocation(&w).await;
    let target = &w.member;
    // A member revoking another member: Stytch says 403, nothing changes here.
    let res = s
        .post_as(&path, w.member2.session_token.expose_secret())
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error_type"], "session_authorization_error");
    assert_eq!(
        s.whoami(target.session_jwt.expose_secret()).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_admin_of_another_organization_cannot_revoke_a_member() {
    // If this broke, one tenant's admin could sign another tenant's members out.
    let w = World::new().await;
    let (s, path) = member_revocation(&w).await;
    let res = s
        .post_as(&path, w.other_admin.session_token.expose_secret())
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error_type"], "session_authorization_tenancy_error");
}

#[tokio::test]
async fn an_admin_revokes_a_member_acting_as_the_admin() {
    // If this broke, admins could not force anyone out, or Stytch would not check their RBAC.
    let w = World::new().await;
    let (s, path) = member_revocation(&w).await;
    let target = &w.member;
    // The admin: 200 with Stytch's request id, acting as the admin.
    w.emulator.clear_requests();
    let res = s.post_as(&path, w.admin.session_jwt.expose_secret()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "revoked");
    assert!(
        body["request_id"]
            .as_str()
            .unwrap()
            .starts_with("request-id-")
    );
    let sent = revokes(&w);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].body,
        serde_json::json!({"member_id": target.member_id})
    );
    assert_eq!(
        sent[0].headers["x-stytch-member-sessionjwt"],
        w.admin.session_jwt.expose_secret()
    );
    assert_basic_auth(&w, &sent[0]);
    let before = w.emulator.request_count(EmulatorEndpoint::Authenticate);
    assert_eq!(
        s.whoami(target.session_jwt.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        w.emulator.request_count(EmulatorEndpoint::Authenticate),
        before,
        "the revoked JWT is refused without asking Stytch"
    );
    assert_eq!(
        s.whoami(target.session_token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.whoami(w.member2.session_token.expose_secret()).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn admin_revokes_one_session_and_validates_path_parameters() {
    // If this broke, odd ids would reach Stytch, or one-session revokes would hit the rest.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    let other = w.emulator.create_session(&w.member.member_id);
    let admin = w.admin.session_token.expose_secret();
    for bad in ["a%2Fb", "member%20x", "x'%3Bdrop", &"a".repeat(200)] {
        let res = s
            .post_as(&format!("/admin/sessions/{bad}/revoke"), admin)
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    assert!(revokes(&w).is_empty(), "nothing may reach Stytch");
    let res = s
        .post_as(
            &format!("/admin/sessions/{}/revoke", w.member.member_session_id),
            admin,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        revokes(&w)[0].body,
        serde_json::json!({"member_session_id": w.member.member_session_id})
    );
    assert_eq!(
        s.whoami(w.member.session_jwt.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.whoami(other.session_jwt.expose_secret()).await,
        StatusCode::OK
    );
    // Unauthenticated admin call: 401, nothing sent.
    let res = s
        .post(&format!(
            "/admin/members/{}/revoke-sessions",
            w.member2.member_id
        ))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forced_signout_hook_revokes_after_the_apps_2xx() {
    // If this broke, removing a member in the app would leave their sessions alive.
    let w = World::new().await;
    let s = serve(w.hooked_builder().build().unwrap(), app()).await;
    let victim = &w.member;
    assert_eq!(
        s.whoami(victim.session_jwt.expose_secret()).await,
        StatusCode::OK
    );
    let res = s
        .delete_as(
            &format!("/api/members/{}", victim.member_id),
            w.admin.session_token.expose_secret(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["x-stytch-forced-signout"], "revoked");
    let sent = revokes(&w);
    assert_eq!(
        sent[0].body,
        serde_json::json!({"member_id": victim.member_id})
    );
    assert_eq!(
        sent[0].headers["x-stytch-member-session"],
        w.admin.session_token.expose_secret()
    );
    assert_eq!(
        s.whoami(victim.session_jwt.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(!w.emulator.is_session_live(&victim.member_session_id));
}

#[tokio::test]
async fn the_revoker_in_request_extensions_acts_as_the_caller() {
    // If this broke, handlers doing their own admin actions could not sign members out.
    let w = World::new().await;
    let router = app().route(
        "/custom/remove/{member_id}",
        post(
            |Path(member_id): Path<String>,
             revoker: Revoker,
             caller: SessionCredential,
             _session: MemberSession| async move {
                match revoker
                    .revoke_member(&member_id, Some(caller.credential()))
                    .await
                {
                    Ok(outcome) => outcome.as_str().to_owned(),
                    Err(err) => format!("error: {err}"),
                }
            },
        ),
    );
    let s = serve(w.builder().build().unwrap(), router).await;
    let res = s
        .post_as(
            &format!("/custom/remove/{}", w.member.member_id),
            w.admin.session_token.expose_secret(),
        )
        .await;
    assert_eq!(res.text().await.unwrap(), "revoked");
    assert_eq!(
        s.whoami(w.member.session_token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn stytch_outage_during_logout_then_recovery_delivers_the_revoke() {
    // If this broke, a logout during a Stytch outage would be lost and the session live on.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    let token = w.member.session_token.expose_secret();
    assert_eq!(s.whoami(token).await, StatusCode::OK);
    w.emulator.inject_fault(
        EmulatorEndpoint::Revoke,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        3,
    );
    let res = s.post_as("/logout", token).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["x-stytch-logout"], "pending");
    assert!(res.headers().get_all("set-cookie").iter().count() >= 2);
    // Refused here at once, though Stytch still thinks it is live.
    assert_eq!(s.whoami(token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.whoami(w.member.session_jwt.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    // After the outage, the background retry reaches Stytch.
    let revoker = s.layer.revoker();
    assert!(
        w.ended_at_stytch(&w.member.member_session_id, Duration::from_secs(10))
            .await,
        "the pending revocation never reached Stytch"
    );
    assert!(eventually(Duration::from_secs(5), || revoker.pending() == 0).await);
    let last = revokes(&w).pop().unwrap();
    assert_eq!(
        last.body,
        serde_json::json!({"member_session_id": w.member.member_session_id})
    );
}

#[tokio::test]
async fn admin_revocation_during_an_outage_answers_202_pending_and_flush_delivers() {
    // If this broke, an admin's forced sign-out during an outage would be silently dropped.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    let admin = w.admin.session_token.expose_secret();
    assert_eq!(
        s.whoami(w.admin.session_token.expose_secret()).await,
        StatusCode::OK
    );
    assert_eq!(
        s.whoami(w.member.session_token.expose_secret()).await,
        StatusCode::OK
    );
    w.emulator.inject_fault(
        EmulatorEndpoint::Revoke,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        2,
    );
    let res = s
        .post_as(
            &format!("/admin/members/{}/revoke-sessions", w.member.member_id),
            admin,
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "pending");
    assert_eq!(
        s.whoami(w.member.session_token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.layer.revoker().flush(Duration::from_secs(5)).await, 0);
    assert!(!w.emulator.is_session_live(&w.member.member_session_id));
}

#[tokio::test]
async fn a_dead_admin_session_cannot_pass_as_already_revoked() {
    // If this broke, an admin revoked at Stytch (still cached here) could force members out.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    let admin = w.admin.session_token.expose_secret();
    assert_eq!(
        s.whoami(w.admin.session_token.expose_secret()).await,
        StatusCode::OK
    );
    assert_eq!(
        s.whoami(w.member.session_token.expose_secret()).await,
        StatusCode::OK
    );
    // The admin's session is revoked elsewhere (Stytch dashboard): our cache still has it.
    w.client()
        .revoke(
            &RevokeSelector::MemberSessionId(w.admin.member_session_id.clone()),
            None,
        )
        .await
        .unwrap();
    for path in [
        format!("/admin/sessions/{}/revoke", w.member.member_session_id),
        format!("/admin/members/{}/revoke-sessions", w.member.member_id),
    ] {
        let res = s.post_as(&path, admin).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // The member was not forced out, here or at Stytch; the dead admin session is refused.
    assert!(w.emulator.is_session_live(&w.member.member_session_id));
    assert_eq!(
        s.whoami(w.member.session_token.expose_secret()).await,
        StatusCode::OK
    );
    assert_eq!(
        s.whoami(w.admin.session_token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn unreadable_revoke_answer_keeps_the_revocation_pending_not_undone() {
    // If this broke, a 200 from Stytch whose body did not arrive whole (a proxy mangling it,
    // a connection cut mid-body) would count as a refusal: the logout undone here and
    // answered "failed" although Stytch may well have revoked the session, and a retry
    // never sent.
    for fault in [Fault::MalformedBody, Fault::TruncatedBody] {
        let w = World::new().await;
        let s = serve(w.builder().build().unwrap(), app()).await;
        let token = w.member.session_token.expose_secret();
        assert_eq!(s.whoami(token).await, StatusCode::OK);
        w.emulator
            .inject_fault(EmulatorEndpoint::Revoke, fault.clone(), 3);
        let res = s.post_as("/logout", token).await;
        assert_eq!(res.headers()["x-stytch-logout"], "pending", "{fault:?}");
        assert_eq!(s.whoami(token).await, StatusCode::UNAUTHORIZED, "{fault:?}");
        assert_eq!(s.layer.revoker().flush(Duration::from_secs(5)).await, 0);
        assert!(!w.emulator.is_session_live(&w.member.member_session_id));
    }
}

#[tokio::test]
async fn jwt_of_a_session_logged_out_by_token_during_an_authenticate_outage_is_refused() {
    // If this broke, a logout whose token could not be looked up (Stytch's authenticate
    // failing) would revoke the session at Stytch by its token, but nothing here would know
    // which session that was: its JWT, verified locally, would be served for up to 5 minutes
    // after the user signed out (found by the soak, #15: 4,884 such answers in 1M requests).
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    let token = w.member.session_token.expose_secret();
    let jwt = w.member.session_jwt.expose_secret();
    assert_eq!(s.whoami(jwt).await, StatusCode::OK);
    // The logout's lookup of the (uncached) token fails: Stytch's authenticate is down.
    w.emulator.inject_fault(
        EmulatorEndpoint::Authenticate,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        3,
    );
    let res = s.post_as("/logout", token).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_ne!(res.headers()["x-stytch-logout"], "failed");
    assert!(
        w.ended_at_stytch(&w.member.member_session_id, Duration::from_secs(10))
            .await,
        "the logout never reached Stytch"
    );
    let revoker = s.layer.revoker();
    assert!(eventually(Duration::from_secs(10), || revoker.pending() == 0).await);
    // The session is over: neither of its credentials is served here.
    assert_eq!(s.whoami(token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(s.whoami(jwt).await, StatusCode::UNAUTHORIZED);
}
