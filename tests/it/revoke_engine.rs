//! The revocation engine under attack (issue 11): each test is named for an attack that
//! worked against an earlier version, and runs it against the emulator.
//!
//! If these fail, a revocation can be lost (a dropped request, a retry that misreads Stytch),
//! misapplied (an admin of another tenant signs a member out during an outage; a refusal by
//! Stytch stays in force here), or bypassed (a session started just before a member-wide
//! revocation survives it), or the logout header lies about what happened.

use std::time::Duration;

use crate::support::{World, app, bearer, eventually, serve};
use http::StatusCode;
use stytch_emulator::{EmulatorEndpoint, Fault, RecordedRequest};

/// Stytch's revoke endpoint answers 503 until [`recover`].
fn revoke_outage(w: &World) {
    w.emulator.inject_fault(
        EmulatorEndpoint::Revoke,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        100_000,
    );
}

fn recover(w: &World) {
    w.emulator.clear_faults();
}

fn revokes(w: &World) -> Vec<RecordedRequest> {
    w.emulator
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/b2b/sessions/revoke")
        .collect()
}

fn member_route(member_id: &str) -> String {
    format!("/admin/members/{member_id}/revoke-sessions")
}

#[tokio::test]
async fn retry_after_outage_does_not_take_dead_admin_404_as_already_revoked() {
    // If this broke, an admin whose session ended while their revocation was pending would
    // leave the member signed in at Stytch: the retry would read Stytch's 404 about the
    // admin's session as "the member is already revoked", and the member's sessions would be
    // accepted again here once the short denylist window ended.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    // A short admin session, which expires during the outage.
    let admin = w.emulator.create_session_with(
        &w.admin.member_id,
        Duration::from_secs(5 * 60),
        serde_json::Map::new(),
    );
    let admin_token = admin.session_token.expose_secret();
    let member_token = w.member.session_token.expose_secret();
    assert_eq!(s.whoami(admin_token).await, StatusCode::OK);
    assert_eq!(s.whoami(member_token).await, StatusCode::OK);

    revoke_outage(&w);
    let res = s
        .post_as(&member_route(&w.member.member_id), admin_token)
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(s.whoami(member_token).await, StatusCode::UNAUTHORIZED);

    // Ten minutes pass at Stytch: the admin's session has expired, the member's has not.
    w.emulator.set_clock_offset(10 * 60);
    assert!(!w.emulator.is_session_live(&admin.member_session_id));
    assert!(w.emulator.is_session_live(&w.member.member_session_id));
    recover(&w);

    assert!(
        w.ended_at_stytch(&w.member.member_session_id, Duration::from_secs(10))
            .await,
        "the pending revocation never revoked the member at Stytch"
    );
    // It was completed with the project secret alone: the dead admin's credential is not
    // what authorized it.
    let last = revokes(&w).pop().unwrap();
    assert_eq!(
        last.body,
        serde_json::json!({"member_id": w.member.member_id})
    );
    assert!(last.headers.get("x-stytch-member-session").is_none());
    assert!(eventually(Duration::from_secs(5), || s.layer.revoker().pending() == 0).await);
}

#[tokio::test]
async fn outage_admin_of_other_org_cannot_sign_out_member() {
    // If this broke, during a Stytch outage an admin of organization B could sign out a
    // member of organization A here (202 pending), on nobody's authority.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    let intruder = w.other_admin.session_token.expose_secret();
    let member_token = w.member.session_token.expose_secret();
    assert_eq!(s.whoami(intruder).await, StatusCode::OK);
    assert_eq!(s.whoami(member_token).await, StatusCode::OK);

    revoke_outage(&w);
    let res = s
        .post_as(&member_route(&w.member.member_id), intruder)
        .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(s.whoami(member_token).await, StatusCode::OK);

    // Nothing was kept to send later either.
    recover(&w);
    assert_eq!(s.layer.revoker().flush(Duration::from_secs(2)).await, 0);
    assert!(w.emulator.is_session_live(&w.member.member_session_id));
    assert_eq!(s.whoami(member_token).await, StatusCode::OK);
}

#[tokio::test]
async fn outage_admin_of_other_org_cannot_sign_out_member_through_the_hook() {
    // If this broke, during a Stytch outage an admin of organization B calling the app's
    // member-removal route would sign out a member of organization A here.
    let w = World::new().await;
    let s = serve(w.hooked_builder().build().unwrap(), app()).await;
    let intruder = w.other_admin.session_token.expose_secret();
    let member_token = w.member.session_token.expose_secret();
    assert_eq!(s.whoami(intruder).await, StatusCode::OK);
    assert_eq!(s.whoami(member_token).await, StatusCode::OK);

    revoke_outage(&w);
    let res = s
        .delete_as(&format!("/api/members/{}", w.member.member_id), intruder)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["x-stytch-forced-signout"], "failed");
    assert_eq!(s.whoami(member_token).await, StatusCode::OK);
    assert_eq!(s.layer.revoker().pending(), 0);
}

#[tokio::test]
async fn client_hangup_during_slow_stytch_still_completes_revocation() {
    // If this broke, a client hanging up (or an HTTP/2 reset, an outer timeout, the drain
    // deadline: all drop the response future) while Stytch was slow would cancel the
    // revocation half-way: Stytch could end up revoking the member while this process kept
    // serving the member's still-valid JWT.
    use tower::ServiceExt as _;
    let w = World::new().await;
    let layer = w.builder().build().unwrap();
    let s = serve(layer.clone(), app()).await;
    let member_jwt = w.member.session_jwt.expose_secret();
    let admin = w.admin.session_token.expose_secret();
    assert_eq!(s.whoami(member_jwt).await, StatusCode::OK);
    assert_eq!(s.whoami(admin).await, StatusCode::OK);

    w.emulator.inject_fault(
        EmulatorEndpoint::Revoke,
        Fault::Latency(Duration::from_millis(400)),
        1,
    );
    let request = http::Request::post(member_route(&w.member.member_id))
        .header("authorization", bearer(admin))
        .body(axum::body::Body::empty())
        .unwrap();
    // The request's future is dropped while Stytch is still thinking.
    let svc = app().layer(layer);
    let hung_up = tokio::time::timeout(Duration::from_millis(100), svc.oneshot(request)).await;
    assert!(hung_up.is_err(), "the request should still be in flight");

    assert!(
        w.ended_at_stytch(&w.member.member_session_id, Duration::from_secs(3))
            .await,
        "the revocation never reached Stytch"
    );
    assert_eq!(s.whoami(member_jwt).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn stytch_refusal_undoes_local_revocation() {
    // If this broke, a revocation applied here during an outage (the caller looked like an
    // admin of the member's organization) would stay in force after Stytch refused it: a
    // member signed out here on a right Stytch says the caller does not have.
    use tower_stytch::{config::RevokeConfig, revoke::RevocationEvent, revoke::RevokedTarget};
    let w = World::new().await;
    // "support" may see members but not revoke their sessions; this app trusts it as an
    // outage admin all the same.
    w.emulator
        .create_role(&w.org, "support", &[("stytch.member", &["search"])]);
    let support_id = w
        .emulator
        .create_member(&w.org, "support@acme.test", &["support"]);
    let support = w.emulator.create_session(&support_id);
    let mut config = RevokeConfig::default();
    config.outage_admin_roles = vec!["support".to_owned()];
    let s = serve(w.builder().revoke_config(config).build().unwrap(), app()).await;
    let support_token = support.session_token.expose_secret();
    let member_token = w.member.session_token.expose_secret();
    assert_eq!(s.whoami(support_token).await, StatusCode::OK);
    assert_eq!(s.whoami(member_token).await, StatusCode::OK);

    let mut events = s.layer.revoker().events();
    revoke_outage(&w);
    let res = s
        .post_as(&member_route(&w.member.member_id), support_token)
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(s.whoami(member_token).await, StatusCode::UNAUTHORIZED);

    recover(&w);
    assert_eq!(s.layer.revoker().flush(Duration::from_secs(5)).await, 0);
    assert!(w.emulator.is_session_live(&w.member.member_session_id));
    assert_eq!(
        s.whoami(member_token).await,
        StatusCode::OK,
        "Stytch refused the revocation: it must be undone here"
    );
    // Subscribers (peers, live connections) heard both.
    let applied = match events.try_recv().unwrap() {
        RevocationEvent::Applied { revocation, target } => {
            assert_eq!(target, RevokedTarget::Member(w.member.member_id.clone()));
            revocation
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        events.try_recv().unwrap(),
        RevocationEvent::Undone {
            revocation: applied
        }
    );
}

/// A well-formed opaque token no session has.
fn junk_token(n: usize) -> String {
    format!("junk{n:0>40}")
}

#[tokio::test]
async fn junk_logout_flood_during_outage_is_bounded_and_does_not_delay_real_revocation() {
    // If this broke, anyone could fill memory with random-token logouts during an outage, and
    // after Stytch recovered a real user's logout would wait behind every junk retry.
    use tower_stytch::config::RevokeConfig;
    let w = World::new().await;
    let mut config = RevokeConfig::default();
    config.max_pending_unverified = 100;
    config.max_retry_backoff = Duration::from_secs(2);
    let s = serve(w.builder().revoke_config(config).build().unwrap(), app()).await;
    let member_token = w.member.session_token.expose_secret();
    assert_eq!(s.whoami(member_token).await, StatusCode::OK);

    w.emulator.refuse_connections(None);
    let mut headers = Vec::new();
    for batch in 0..20 {
        let mut logouts = tokio::task::JoinSet::new();
        for n in 0..15 {
            let (http, url) = (s.http.clone(), s.url("/logout"));
            let token = junk_token(batch * 15 + n);
            logouts.spawn(async move {
                let res = http.post(url).header("authorization", bearer(&token));
                let res = res.send().await.unwrap();
                assert_eq!(res.status(), StatusCode::NO_CONTENT);
                res.headers()["x-stytch-logout"]
                    .to_str()
                    .unwrap()
                    .to_owned()
            });
        }
        headers.extend(logouts.join_all().await);
    }
    // Bounded: 100 are held here and queued; the rest could not be kept, and say so.
    let pending = headers.iter().filter(|h| *h == "pending").count();
    assert_eq!(pending, 100, "{headers:?}");
    assert!(headers.iter().all(|h| h == "pending" || h == "failed"));
    assert_eq!(s.layer.revoker().pending(), 100);
    let res = s.post_as("/logout", member_token).await;
    assert_eq!(res.headers()["x-stytch-logout"], "pending");

    // Stytch comes back, slow: 200 ms per revoke.
    w.emulator.inject_fault(
        EmulatorEndpoint::Revoke,
        Fault::Latency(Duration::from_millis(200)),
        1_000,
    );
    w.emulator.accept_connections();
    // The longest backoff (2 s) plus a few seconds.
    assert!(
        w.ended_at_stytch(&w.member.member_session_id, Duration::from_secs(5))
            .await,
        "the real logout did not reach Stytch in time"
    );
    assert_eq!(s.whoami(member_token).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn relogin_just_after_logout_everywhere_is_not_locked_out() {
    // If this broke, a member who logs out everywhere and signs in again at once (or is
    // signed in again by SSO) would be refused for the whole denylist window: a 401 loop.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    let old = w.member.session_jwt.expose_secret();
    assert_eq!(s.whoami(old).await, StatusCode::OK);
    let res = s.post_as("/logout/everywhere", old).await;
    assert_eq!(res.headers()["x-stytch-logout"], "revoked");

    let fresh = w.emulator.create_session(&w.member.member_id);
    assert_eq!(
        s.whoami(fresh.session_jwt.expose_secret()).await,
        StatusCode::OK
    );
    assert_eq!(
        s.whoami(fresh.session_token.expose_secret()).await,
        StatusCode::OK
    );
    assert_eq!(s.whoami(old).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn session_started_just_before_member_revocation_is_refused_with_skewed_clock() {
    // If this broke, with this host's clock 20 s behind Stytch's, a session started just
    // before a member-wide revocation would look (by its `started_at`) as if it started after
    // it, and its still-valid JWT would be accepted here though Stytch revoked it.
    let w = World::new().await;
    w.emulator.set_clock_offset(20);
    let jwt = tower_stytch::jwt::JwtConfig::builder()
        .clock_skew(Duration::from_secs(30))
        .build();
    let s = serve(w.builder().jwt(jwt).build().unwrap(), app()).await;
    // The victim's JWT was minted before the revocation and reaches this process only after
    // it (another instance served it before, or the request was in flight).
    let victim = w.emulator.create_session(&w.member.member_id);
    let victim_jwt = victim.session_jwt.expose_secret();

    let res = s
        .post_as(
            &member_route(&w.member.member_id),
            w.admin.session_token.expose_secret(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!w.emulator.is_session_live(&victim.member_session_id));
    assert_eq!(s.whoami(victim_jwt).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn session_started_while_member_revocation_was_pending_is_refused_after_confirmation() {
    // If this broke, a session started while a "log out everywhere" waited for Stytch (which
    // revokes it when the revocation finally reaches it) would be accepted here, or a session
    // started after the confirmation refused.
    let w = World::new().await;
    let jwt = tower_stytch::jwt::JwtConfig::builder()
        .clock_skew(Duration::from_secs(30))
        .build();
    let s = serve(w.builder().jwt(jwt).build().unwrap(), app()).await;
    let token = w.member.session_token.expose_secret();
    assert_eq!(s.whoami(token).await, StatusCode::OK);
    revoke_outage(&w);
    let res = s.post_as("/logout/everywhere", token).await;
    assert_eq!(res.headers()["x-stytch-logout"], "pending");

    // Ten seconds later (by Stytch's clock), the member signs in again: refused while the
    // revocation is pending, since Stytch will end this session too.
    w.emulator.set_clock_offset(10);
    let during = w.emulator.create_session(&w.member.member_id);
    assert_eq!(
        s.whoami(during.session_jwt.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    recover(&w);
    assert_eq!(s.layer.revoker().flush(Duration::from_secs(5)).await, 0);
    assert!(!w.emulator.is_session_live(&during.member_session_id));
    assert_eq!(
        s.whoami(during.session_jwt.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    // After the confirmation, a new sign-in works.
    let after = w.emulator.create_session(&w.member.member_id);
    assert_eq!(
        s.whoami(after.session_jwt.expose_secret()).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_header_tells_the_truth() {
    // If this broke, `x-stytch-logout` would claim what did not happen: `local` with nothing
    // applied, `already_revoked` without Stytch saying so.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    let header = |res: &reqwest::Response| res.headers()["x-stytch-logout"].to_owned();

    // none: no credential came.
    assert_eq!(header(&s.post("/logout").await), "none");

    // revoked: Stytch confirmed.
    let token = w.member.session_token.expose_secret();
    assert_eq!(s.whoami(token).await, StatusCode::OK);
    assert_eq!(header(&s.post_as("/logout", token).await), "revoked");
    assert!(!w.emulator.is_session_live(&w.member.member_session_id));

    // already_revoked: Stytch said this session does not exist.
    let gone = w.emulator.create_session(&w.member2.member_id);
    w.client()
        .revoke(
            &tower_stytch::client::RevokeSelector::MemberSessionId(gone.member_session_id.clone()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        header(
            &s.post_as("/logout", gone.session_token.expose_secret())
                .await
        ),
        "already_revoked"
    );

    // pending: applied here, Stytch told later.
    let pending = w.emulator.create_session(&w.member2.member_id);
    let pending_token = pending.session_token.expose_secret();
    assert_eq!(s.whoami(pending_token).await, StatusCode::OK);
    revoke_outage(&w);
    assert_eq!(
        header(&s.post_as("/logout", pending_token).await),
        "pending"
    );
    assert_eq!(s.whoami(pending_token).await, StatusCode::UNAUTHORIZED);
    assert!(w.emulator.is_session_live(&pending.member_session_id));
    recover(&w);
    assert_eq!(s.layer.revoker().flush(Duration::from_secs(5)).await, 0);

    // A forged JWT (HS256, which Stytch never uses): refused here without asking anyone.
    // Nothing was revoked and Stytch said nothing about it.
    let forged = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2ln";
    let before = revokes(&w).len();
    assert_eq!(header(&s.post_as("/logout", forged).await), "none");
    assert_eq!(revokes(&w).len(), before);

    // Stytch cannot authenticate the credential for the logout's lookup (three attempts,
    // each a 503), names its session when asked again, and then refuses to revoke it: nothing
    // stays applied here, and the header says `failed`.
    let member2 = w.member2.session_token.expose_secret();
    w.emulator.inject_fault(
        EmulatorEndpoint::Authenticate,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        3,
    );
    w.emulator.inject_fault(
        EmulatorEndpoint::Revoke,
        Fault::Status {
            status: 400,
            retry_after: None,
        },
        100,
    );
    assert_eq!(header(&s.post_as("/logout", member2).await), "failed");
    recover(&w);
    assert_eq!(s.whoami(member2).await, StatusCode::OK);
}
