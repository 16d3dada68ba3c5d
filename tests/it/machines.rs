//! Machines: Stytch M2M access tokens (client credentials, minted by the emulator) on routes
//! whose rule admits machines, checked by scope as Stytch's SDKs do; members-only routes
//! refusing them; and an M2M client cut off at once.
//!
//! If these fail, a machine token reaches a route that never said it takes machines, a
//! machine gets what its scopes do not grant, or a compromised client's tokens are served
//! for the hour they live.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use stytch_emulator::{ClientSecret, NewM2mClient, RbacPermission, RbacRole};
use tower_stytch::config::{Principals, Rule};
use tower_stytch::revoke::AtStytch;
use tower_stytch::{MachineClient, MemberSession, StytchAuthLayerBuilder};

use crate::support::{Served, World, serve};

/// `/machine/*` answers with the client's id and scopes, `/member/*` with the member's id, and
/// `/either` with whichever came.
pub(crate) fn app() -> Router {
    Router::new()
        .route(
            "/api/reports",
            get(
                |m: MachineClient| async move { format!("{} {}", m.client_id, m.scopes.join(" ")) },
            ),
        )
        .route(
            "/api/documents",
            get(
                |m: Option<MachineClient>, s: Option<MemberSession>| async move {
                    match (m, s) {
                        (Some(m), None) => format!("machine {}", m.client_id),
                        (None, Some(s)) => format!("member {}", s.member_id),
                        _ => "confused".to_owned(),
                    }
                },
            ),
        )
        .route(
            "/whoami",
            get(|s: MemberSession| async move { s.member_id.to_string() }),
        )
}

pub(crate) fn rules(builder: StytchAuthLayerBuilder) -> StytchAuthLayerBuilder {
    builder
        .authorize(
            "GET /api/reports",
            Rule::new()
                .permission("reports", "read")
                .principals(Principals::Machines),
        )
        .authorize(
            "GET /api/documents",
            Rule::new()
                .permission("documents", "read")
                .principals(Principals::Both),
        )
}

/// A client with `scopes`, and a token of it.
pub(crate) fn machine(w: &World, scopes: &[&str]) -> (String, ClientSecret, String) {
    let creds = w
        .emulator
        .create_m2m_client(NewM2mClient::new(scopes))
        .unwrap();
    let token = w
        .emulator
        .m2m_token(&creds.client_id, &creds.client_secret, None)
        .unwrap();
    (
        creds.client_id,
        creds.client_secret,
        token.expose_secret().to_owned(),
    )
}

pub(crate) async fn get_as(s: &Served, path: &str, bearer: &str) -> (StatusCode, String) {
    let res = s.get_as(path, bearer).await;
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
async fn a_machine_token_is_admitted_by_scope_only_where_a_rule_admits_machines() {
    // If this broke, a machine token would pass where no rule said machines, or get what its
    // scopes do not grant, or a handler could take a machine for a member.
    let w = World::new().await;
    w.emulator
        .set_project_scope(stytch_emulator::RbacScope::new(
            "read:reports",
            vec![RbacPermission::new("reports", &["read"])],
        ));
    let s = serve(rules(w.builder()).build().unwrap(), app()).await;
    let (reader, _, reports) = machine(&w, &["read:reports", "read:documents"]);
    let (status, body) = get_as(&s, "/api/reports", &reports).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, format!("{reader} read:reports read:documents"));
    let (status, body) = get_as(&s, "/api/documents", &reports).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, format!("machine {reader}"))
    );
    // Another resource's scope, another action: 403.
    let (_, _, writer) = machine(&w, &["write:reports"]);
    assert_eq!(
        get_as(&s, "/api/reports", &writer).await.0,
        StatusCode::FORBIDDEN
    );
    let (_, _, other) = machine(&w, &["read:documents"]);
    assert_eq!(
        get_as(&s, "/api/reports", &other).await.0,
        StatusCode::FORBIDDEN
    );
    // A members-only route: refused (401), and no Stytch call is made for it.
    let authenticates = w
        .emulator
        .request_count(stytch_emulator::EmulatorEndpoint::Authenticate);
    assert_eq!(
        get_as(&s, "/whoami", &reports).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        w.emulator
            .request_count(stytch_emulator::EmulatorEndpoint::Authenticate),
        authenticates
    );
    // A member session never satisfies a machines-only route, but does a route of both.
    let member = w.member.session_token.expose_secret();
    assert_eq!(
        get_as(&s, "/api/reports", member).await.0,
        StatusCode::FORBIDDEN
    );
    let viewer = w
        .emulator
        .create_member(&w.org, "viewer@acme.test", &["viewer"]);
    let viewer_session = w.emulator.create_session(&viewer);
    let jwt = viewer_session.session_jwt.expose_secret();
    let (status, body) = get_as(&s, "/api/documents", jwt).await;
    assert_eq!((status, body), (StatusCode::OK, format!("member {viewer}")));
}

#[tokio::test]
async fn wildcard_scopes_follow_the_sdks_rule() {
    // If this broke, `read:*` would not grant a read (or `*:reports` would grant every
    // action), unlike Stytch's SDKs.
    let w = World::new().await;
    let s = serve(rules(w.builder()).build().unwrap(), app()).await;
    let (_, _, any_read) = machine(&w, &["read:*"]);
    assert_eq!(
        get_as(&s, "/api/reports", &any_read).await.0,
        StatusCode::OK
    );
    let (_, _, any_action) = machine(&w, &["*:reports"]);
    assert_eq!(
        get_as(&s, "/api/reports", &any_action).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_client_cut_off_is_refused_at_once_and_gets_no_new_token_from_stytch() {
    // If this broke, a leaked M2M client's tokens (valid for an hour) would keep working after
    // it was cut off, or the cut-off would reach other clients.
    let w = World::new().await;
    let s = serve(rules(w.builder()).build().unwrap(), app()).await;
    let (leaked, secret, token) = machine(&w, &["read:reports"]);
    let (_, _, other) = machine(&w, &["read:reports"]);
    assert_eq!(get_as(&s, "/api/reports", &token).await.0, StatusCode::OK);
    let cut = s
        .layer
        .revoker()
        .revoke_client(&leaked, AtStytch::Suspend)
        .await
        .unwrap();
    assert!(cut.suspended_at_stytch);
    assert!(cut.until > std::time::SystemTime::now() + Duration::from_secs(3500));
    assert_eq!(
        get_as(&s, "/api/reports", &token).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get_as(&s, "/api/reports", &other).await.0, StatusCode::OK);
    assert!(
        w.emulator.m2m_token(&leaked, &secret, None).is_err(),
        "Stytch still mints tokens for the suspended client"
    );
}

#[tokio::test]
async fn the_admin_route_cuts_a_client_off_for_a_member_holding_the_permission_only() {
    // If this broke, any member could cut the project's machines off (or no one could).
    let w = World::new().await;
    w.emulator.set_project_role(RbacRole::new(
        "machine_admin",
        vec![RbacPermission::new("m2m_clients", &["revoke"])],
    ));
    let s = serve(rules(w.builder()).build().unwrap(), app()).await;
    let (client_id, _, token) = machine(&w, &["read:reports"]);
    let path = format!("/admin/m2m-clients/{client_id}/revoke");
    let res = s
        .post_as(&path, w.admin.session_token.expose_secret())
        .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "stytch_admin lacks m2m_clients:revoke"
    );
    assert_eq!(get_as(&s, "/api/reports", &token).await.0, StatusCode::OK);
    let id = w
        .emulator
        .create_member(&w.org, "ops@acme.test", &["machine_admin"]);
    let ops = w.emulator.create_session(&id);
    let res = s.post_as(&path, ops.session_token.expose_secret()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "cut_off");
    assert_eq!(body["suspended_at_stytch"], true);
    assert_eq!(
        get_as(&s, "/api/reports", &token).await.0,
        StatusCode::UNAUTHORIZED
    );
}
