//! Authorization at the edge against the emulator's RBAC policy (the emulator seeds Stytch's
//! default roles plus a `documents` resource, `editor` (read, create) and `viewer` (read)):
//! per-route rules (permission, organization, MFA, max age), the fail-closed start, the
//! background refresh, the path tricks, the step-up page, the admin routes' local pre-check,
//! and the `Authorizer` in handlers.
//!
//! If these fail, the app behind the layer serves a request the member's Stytch roles do not
//! allow, or refuses one they do; or a Stytch outage at start lets everything through.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use stytch_emulator::{
    AuthenticationFactor, EmulatorEndpoint, Fault, RbacPermission, RbacRole, SessionInfo,
};
use tower_stytch::authz::{Authorizer, Denied};
use tower_stytch::config::{PolicyConfig, Rule};
use tower_stytch::{MemberSession, StytchAuthLayerBuilder};

use crate::support::{Served, World, serve};

/// An app answering 200 to any path and method with the member's id, counting the requests
/// that reached it.
fn counting() -> (Router, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let router = Router::new().fallback(move |session: Option<MemberSession>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { session.map_or_else(|| "anonymous".to_owned(), |s| s.member_id.to_string()) }
    });
    (router, calls)
}

fn documents(builder: StytchAuthLayerBuilder) -> StytchAuthLayerBuilder {
    builder
        .authorize(
            "GET /api/orgs/{organization_id}/documents",
            Rule::new()
                .permission("documents", "read")
                .organization("organization_id"),
        )
        .authorize(
            "DELETE /api/orgs/{organization_id}/documents/{document_id}",
            Rule::new()
                .permission("documents", "delete")
                .organization("organization_id"),
        )
        .authorize("* /api/secure/{*rest}", Rule::new().mfa())
        .authorize(
            "POST /api/payouts",
            Rule::new().mfa().max_age(Duration::from_secs(600)),
        )
}

/// A member of `w.org` holding `roles`, with a live session.
fn member(w: &World, email: &str, roles: &[&str]) -> SessionInfo {
    let id = w.emulator.create_member(&w.org, email, roles);
    w.emulator.create_session(&id)
}

async fn status(s: &Served, method: &str, path: &str, credential: &str) -> StatusCode {
    let method = http::Method::from_bytes(method.as_bytes()).unwrap();
    s.http
        .request(method, s.url(path))
        .bearer_auth(credential)
        .send()
        .await
        .unwrap()
        .status()
}

/// Waits until the layer's policy is loaded (the first load runs in the background).
async fn loaded(s: &Served, credential: &str, path: &str) {
    for _ in 0..100 {
        if status(s, "GET", path, credential).await != StatusCode::SERVICE_UNAVAILABLE {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the policy never loaded");
}

#[tokio::test]
async fn permissions_follow_the_members_stytch_roles_and_refusals_never_reach_the_app() {
    // If this broke, a viewer could delete documents (or an editor could not read them).
    let w = World::new().await;
    let (router, calls) = counting();
    let s = serve(documents(w.builder()).build().unwrap(), router).await;
    let viewer = member(&w, "viewer@acme.test", &["viewer"]);
    let editor = member(&w, "editor@acme.test", &["editor"]);
    let docs = format!("/api/orgs/{}/documents", w.org);
    loaded(&s, viewer.session_token.expose_secret(), &docs).await;
    let before = calls.load(Ordering::SeqCst);
    for (who, method, path, want) in [
        (&viewer, "GET", docs.clone(), StatusCode::OK),
        (&editor, "GET", docs.clone(), StatusCode::OK),
        (
            &viewer,
            "DELETE",
            format!("{docs}/d1"),
            StatusCode::FORBIDDEN,
        ),
        (
            &editor,
            "DELETE",
            format!("{docs}/d1"),
            StatusCode::FORBIDDEN,
        ),
        (&w.admin, "GET", docs.clone(), StatusCode::FORBIDDEN),
        (&w.member, "GET", docs.clone(), StatusCode::FORBIDDEN),
    ] {
        assert_eq!(
            status(&s, method, &path, who.session_token.expose_secret()).await,
            want,
            "{} {method} {path}",
            who.member_id
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst) - before,
        2,
        "only the allowed reached the app"
    );
    let res = s
        .http
        .delete(s.url(&format!("{docs}/d1")))
        .bearer_auth(viewer.session_jwt.expose_secret())
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_permission");
    assert_eq!(body["error_type"], "session_authorization_error");
}

#[tokio::test]
async fn an_organization_in_the_path_must_be_the_members_by_id_or_slug() {
    // If this broke, a member of one organization could read another's documents by putting
    // its id in the URL (cross-tenant access).
    let w = World::new().await;
    let (router, _) = counting();
    let s = serve(documents(w.builder()).build().unwrap(), router).await;
    let editor = member(&w, "editor@acme.test", &["editor"]);
    let token = editor.session_token.expose_secret();
    let own = format!("/api/orgs/{}/documents", w.org);
    loaded(&s, token, &own).await;
    assert_eq!(
        status(&s, "GET", "/api/orgs/acme/documents", token).await,
        StatusCode::OK
    );
    let other = format!("/api/orgs/{}/documents", w.other_org);
    let res = s
        .http
        .get(s.url(&other))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error_type"], "session_authorization_tenancy_error");
    assert_eq!(
        status(&s, "GET", "/api/orgs/globex/documents", token).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_organizations_custom_role_grants_what_it_says() {
    // If this broke, members holding a custom role of their organization would be refused
    // (the SDKs add the organization's roles to the project's).
    let w = World::new().await;
    w.emulator
        .set_organization_roles(
            &w.org,
            vec![RbacRole::new(
                "librarian",
                vec![RbacPermission::new("documents", &["read", "delete"])],
            )],
        )
        .unwrap();
    let (router, _) = counting();
    let s = serve(documents(w.builder()).build().unwrap(), router).await;
    let librarian = member(&w, "lib@acme.test", &["librarian"]);
    let token = librarian.session_token.expose_secret();
    let docs = format!("/api/orgs/{}/documents", w.org);
    loaded(&s, token, &docs).await;
    assert_eq!(
        status(&s, "DELETE", &format!("{docs}/d1"), token).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_route_asking_for_mfa_answers_rfc_9470_until_the_member_steps_up() {
    // If this broke, a member signed in with a magic link only could reach a route that asks
    // for a second factor, or could never reach it after stepping up.
    let w = World::new().await;
    let (router, _) = counting();
    let s = serve(documents(w.builder()).build().unwrap(), router).await;
    let editor = member(&w, "editor@acme.test", &["editor"]);
    let res = s
        .http
        .get(s.url("/api/secure/report"))
        .bearer_auth(editor.session_jwt.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_user_authentication\""),
        "{challenge}"
    );
    assert!(!challenge.contains("max_age"), "{challenge}");
    // The member passes TOTP at Stytch: the fresh JWT carries it.
    let stepped = w
        .emulator
        .add_session_factor(&editor.member_session_id, AuthenticationFactor::totp())
        .unwrap();
    assert_eq!(
        status(&s, "GET", "/api/secure/report", stepped.expose_secret()).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_opaque_token_is_asked_of_stytch_again_after_a_step_up_refusal() {
    // If this broke, a member using an opaque session token would stay refused after stepping
    // up, until the cached entry expired (the token does not change when the session does).
    let w = World::new().await;
    let (router, _) = counting();
    let s = serve(documents(w.builder()).build().unwrap(), router).await;
    let editor = member(&w, "editor@acme.test", &["editor"]);
    let token = editor.session_token.expose_secret();
    assert_eq!(
        status(&s, "GET", "/api/secure/x", token).await,
        StatusCode::UNAUTHORIZED
    );
    w.emulator
        .add_session_factor(&editor.member_session_id, AuthenticationFactor::totp())
        .unwrap();
    // Refused once more from the cache (vouched for less than 5 s ago), then asked again.
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    assert_eq!(
        status(&s, "GET", "/api/secure/x", token).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        eventually_status(&s, "/api/secure/x", token, StatusCode::OK).await,
        "never asked Stytch again"
    );
}

async fn eventually_status(s: &Served, path: &str, credential: &str, want: StatusCode) -> bool {
    for _ in 0..50 {
        if status(s, "GET", path, credential).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_route_with_a_max_age_asks_for_a_recent_authentication() {
    // If this broke, a payout could be made an hour after the member last proved who they
    // are, on a route that asks for ten minutes.
    let w = World::new().await;
    let (router, _) = counting();
    let s = serve(documents(w.builder()).build().unwrap(), router).await;
    let an_hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 3600;
    let member_id = w
        .emulator
        .create_member(&w.org, "editor@acme.test", &["editor"]);
    let editor = w
        .emulator
        .create_session_with_factors(
            &member_id,
            Duration::from_secs(24 * 3600),
            serde_json::Map::new(),
            vec![
                AuthenticationFactor::magic_link().at(an_hour_ago),
                AuthenticationFactor::totp().at(an_hour_ago),
            ],
        )
        .unwrap();
    let old = editor.session_jwt.clone();
    let res = s
        .http
        .post(s.url("/api/payouts"))
        .bearer_auth(old.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("max_age=\"600\""), "{challenge}");
    let fresh = w
        .emulator
        .add_session_factor(&editor.member_session_id, AuthenticationFactor::totp())
        .unwrap();
    assert_eq!(
        status(&s, "POST", "/api/payouts", fresh.expose_secret()).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_browser_is_sent_to_the_step_up_page_and_back() {
    // If this broke, a member opening an MFA page in the browser would see a bare 401 instead
    // of the page that lets them step up and come back.
    let w = World::new().await;
    let (router, _) = counting();
    let layer = w
        .builder()
        .logout_redirect_allowlist(["/"])
        .authorize("GET /billing", Rule::new().mfa().step_up_page("/step-up"))
        .build()
        .unwrap();
    let s = serve(layer, router).await;
    let token = w.member.session_token.expose_secret();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client
        .get(s.url("/billing?tab=invoices"))
        .header("accept", "text/html,application/xhtml+xml")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()["location"],
        "/step-up?return_to=%2Fbilling%3Ftab%3Dinvoices"
    );
    // An API client gets the 401.
    assert_eq!(
        status(&s, "GET", "/billing", token).await,
        StatusCode::UNAUTHORIZED
    );
    // A step-up page off the redirect allowlist is a configuration error.
    let off = w
        .builder()
        .logout_redirect_allowlist(["/account/"])
        .authorize("GET /billing", Rule::new().mfa().step_up_page("/step-up"))
        .build();
    assert!(off.is_err());
}

#[tokio::test]
async fn a_policy_never_loaded_fails_closed_and_recovers_without_a_restart() {
    // If this broke, a Stytch outage when the layer starts would let every request through
    // routes with a permission rule (or keep them closed after Stytch is back).
    let w = World::new().await;
    w.emulator.inject_fault(
        EmulatorEndpoint::RbacPolicy,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        usize::MAX,
    );
    let (router, calls) = counting();
    let s = serve(documents(w.builder()).build().unwrap(), router).await;
    let editor = member(&w, "editor@acme.test", &["editor"]);
    let token = editor.session_token.expose_secret();
    let docs = format!("/api/orgs/{}/documents", w.org);
    for _ in 0..3 {
        assert_eq!(
            status(&s, "GET", &docs, token).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // Routes without a rule are not affected.
    assert_eq!(status(&s, "GET", "/whoami", token).await, StatusCode::OK);
    // A flood during the outage asks Stytch about once a second, not once a request.
    let asked = w.emulator.request_count(EmulatorEndpoint::RbacPolicy);
    assert!(asked <= 6, "{asked} policy fetches");
    w.emulator.clear_faults();
    assert!(eventually_status(&s, &docs, token, StatusCode::OK).await);
}

#[tokio::test]
async fn a_changed_policy_is_seen_after_the_refresh_and_a_failed_refresh_keeps_the_last() {
    // If this broke, a role granted (or taken away) in Stytch's dashboard would never reach
    // the layer, or one failed refresh would close every authorized route.
    let w = World::new().await;
    let (router, _) = counting();
    let mut policy = PolicyConfig::default();
    policy.refresh_every = Duration::from_millis(300);
    let s = serve(
        documents(w.builder()).policy(policy).build().unwrap(),
        router,
    )
    .await;
    let viewer = member(&w, "viewer@acme.test", &["viewer"]);
    let token = viewer.session_token.expose_secret();
    let delete = format!("/api/orgs/{}/documents/d1", w.org);
    let docs = format!("/api/orgs/{}/documents", w.org);
    loaded(&s, token, &docs).await;
    assert_eq!(
        status(&s, "DELETE", &delete, token).await,
        StatusCode::FORBIDDEN
    );
    w.emulator.set_project_role(RbacRole::new(
        "viewer",
        vec![RbacPermission::new("documents", &["read", "delete"])],
    ));
    assert!(
        eventually_delete(&s, &delete, token, StatusCode::OK).await,
        "the new policy was never seen"
    );
    // Stytch fails every refresh from now on: the last good policy stays.
    w.emulator.inject_fault(
        EmulatorEndpoint::RbacPolicy,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        usize::MAX,
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        w.emulator
            .injected_fault_count(EmulatorEndpoint::RbacPolicy)
            >= 1
    );
    assert_eq!(status(&s, "DELETE", &delete, token).await, StatusCode::OK);
}

async fn eventually_delete(s: &Served, path: &str, credential: &str, want: StatusCode) -> bool {
    for _ in 0..60 {
        if status(s, "DELETE", path, credential).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_rule_cannot_be_dodged_by_case_a_trailing_slash_or_dot_segments() {
    // If this broke, `/API/orgs/…/DOCUMENTS/d1/` (routed by a case-insensitive, lenient
    // router) or `/api/orgs/o/x/../documents/d1` (resolved by a normalising proxy) would reach
    // the handler without the rule.
    let w = World::new().await;
    let (router, calls) = counting();
    let s = serve(documents(w.builder()).build().unwrap(), router).await;
    let viewer = member(&w, "viewer@acme.test", &["viewer"]);
    let token = viewer.session_token.expose_secret();
    loaded(&s, token, &format!("/api/orgs/{}/documents", w.org)).await;
    let before = calls.load(Ordering::SeqCst);
    let org = &w.org;
    for (path, want) in [
        (
            format!("/API/Orgs/{org}/DOCUMENTS/d1/"),
            StatusCode::FORBIDDEN,
        ),
        (
            format!("/api/orgs/{org}//documents/d1"),
            StatusCode::FORBIDDEN,
        ),
        (
            format!("/api/orgs/{org}/x/../documents/d1"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/orgs/{org}/documents;v=1/d1"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/orgs/{org}/%2e/documents/d1"),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, _) = raw(
            &s,
            &format!("DELETE {path} HTTP/1.1\r\nauthorization: Bearer {token}\r\n"),
        )
        .await;
        assert_eq!(status, want.as_u16(), "{path}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), before, "the app ran");
    // A rule wins over a public prefix: it needs a member.
    let layer = w
        .builder()
        .public_prefix("/open/")
        .authorize("GET /open/admin", Rule::new().mfa())
        .build()
        .unwrap();
    let (router, _) = counting();
    let open = serve(layer, router).await;
    assert_eq!(
        open.http
            .get(open.url("/open/admin"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn raw(s: &Served, head: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let request = format!(
        "{head}host: {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        s.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

#[tokio::test]
async fn the_admin_route_refuses_a_member_without_the_permission_without_calling_stytch() {
    // If this broke, every member could make the layer call Stytch's revoke acting as
    // themselves for other members (Stytch refuses, but each is a Stytch call), or an admin
    // would be refused locally.
    let w = World::new().await;
    let s = serve(
        documents(w.builder()).build().unwrap(),
        crate::support::app(),
    )
    .await;
    let docs = format!("/api/orgs/{}/documents", w.org);
    loaded(&s, w.admin.session_token.expose_secret(), &docs).await;
    // The member's organization's custom roles are loaded on first use.
    let _ = status(&s, "GET", &docs, w.member.session_token.expose_secret()).await;
    let revokes = w.emulator.request_count(EmulatorEndpoint::Revoke);
    let path = format!("/admin/members/{}/revoke-sessions", w.member2.member_id);
    let res = s
        .post_as(&path, w.member.session_token.expose_secret())
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Revoke), revokes);
    assert!(w.emulator.is_session_live(&w.member2.member_session_id));
    let res = s
        .post_as(&path, w.admin.session_token.expose_secret())
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!w.emulator.is_session_live(&w.member2.member_session_id));
}

#[tokio::test]
async fn a_handler_checks_a_permission_with_the_layers_authorizer() {
    // If this broke, a handler deciding from the body or the database (which document, whose)
    // would have no way to ask the same policy the layer uses.
    let w = World::new().await;
    let router = Router::new().route(
        "/documents/{id}/share",
        get(
            |session: MemberSession, authorizer: Authorizer| async move {
                match authorizer.check(&session, "documents", "create").await {
                    Ok(()) => StatusCode::OK,
                    Err(Denied::Permission { .. }) => StatusCode::FORBIDDEN,
                    Err(_) => StatusCode::SERVICE_UNAVAILABLE,
                }
            },
        ),
    );
    let s = serve(w.builder().build().unwrap(), router).await;
    let editor = member(&w, "editor@acme.test", &["editor"]);
    let viewer = member(&w, "viewer@acme.test", &["viewer"]);
    assert_eq!(
        status(
            &s,
            "GET",
            "/documents/d1/share",
            editor.session_token.expose_secret()
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        status(
            &s,
            "GET",
            "/documents/d1/share",
            viewer.session_token.expose_secret()
        )
        .await,
        StatusCode::FORBIDDEN
    );
}
