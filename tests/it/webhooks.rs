//! Stytch's webhooks through the layer: the emulator changes its directory (dashboard, SCIM,
//! direct) and sends Svix-signed events to an axum app behind `StytchAuthLayer` on loopback.
//!
//! If these fail, a member deleted, deprovisioned or demoted at Stytch keeps being served
//! here with the old roles until the cache entry (60 s) or the JWT (5 min) ages out, or a
//! forged or replayed delivery changes who is signed in.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use serde_json::json;
use stytch_emulator::{
    DeliveryState, EventSource, MemberUpdate, WebhookDelivery, WebhookEndpoint, WebhookMessage,
    WebhookSecret,
};
use tower_stytch::{
    MemberSession, revoke::RevocationEvent, revoke::RevokedTarget, webhook::WebhookSecrets,
};

use crate::support::{Served, World, app, eventually, serve};

const PATH: &str = "/stytch/webhooks";
const WITHIN: Duration = Duration::from_secs(5);

/// The world's layer with the webhook receiver on [`PATH`], the emulator sending to it, and
/// `GET /roles` answering the member's roles, comma separated.
async fn world() -> (World, Served) {
    let world = World::new().await;
    let secret = world.emulator.webhook_secret();
    let secrets = WebhookSecrets::parse(secret.expose_secret()).unwrap();
    let layer = world.builder().webhook(PATH, secrets).build().unwrap();
    let router: Router = app().route(
        "/roles",
        get(|s: MemberSession| async move { s.roles().join(",") }),
    );
    let served = serve(layer, router).await;
    let endpoint = WebhookEndpoint::new(served.url(PATH)).unwrap();
    world.emulator.add_webhook_endpoint(endpoint);
    (world, served)
}

/// The delivery of the last message of `event_type`, once it is no longer pending.
pub(crate) async fn delivered(world: &World, event_type: &str) -> WebhookDelivery {
    let done =
        |d: &WebhookDelivery| d.event_type == event_type && d.state != DeliveryState::Pending;
    let found = eventually(WITHIN, || {
        world.emulator.webhook_deliveries().iter().any(done)
    })
    .await;
    assert!(found, "no delivery of {event_type}");
    let deliveries = world.emulator.webhook_deliveries();
    deliveries.into_iter().rev().find(done).unwrap()
}

/// Whether `credential` is refused (401 on `/whoami`) within [`WITHIN`].
async fn refused_soon(served: &Served, credential: &str) -> bool {
    let end = tokio::time::Instant::now() + WITHIN;
    while tokio::time::Instant::now() < end {
        if served.whoami(credential).await == StatusCode::UNAUTHORIZED {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn revoke_calls(world: &World) -> usize {
    world
        .emulator
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/sessions/revoke"))
        .count()
}

#[tokio::test]
async fn member_deleted_in_the_dashboard_is_signed_out_at_once_token_and_jwt() {
    // If this broke, a member deleted in Stytch's dashboard would keep being served from the
    // cache (token, 60 s) and by local JWT verification (5 min).
    let (world, served) = world().await;
    let token = world.member.session_token.expose_secret().to_owned();
    let jwt = world.member.session_jwt.expose_secret().to_owned();
    assert_eq!(served.whoami(&token).await, StatusCode::OK);
    assert_eq!(served.whoami(&jwt).await, StatusCode::OK);
    world
        .emulator
        .via(EventSource::Dashboard)
        .delete_member(&world.member.member_id)
        .unwrap();
    assert_eq!(
        delivered(&world, "dashboard.member.delete")
            .await
            .last_status,
        Some(204)
    );
    assert!(refused_soon(&served, &token).await);
    assert!(refused_soon(&served, &jwt).await);
    // Other members are untouched, and Stytch was not asked to revoke what it revoked.
    let other = world.member2.session_jwt.expose_secret();
    assert_eq!(served.whoami(other).await, StatusCode::OK);
    assert_eq!(revoke_calls(&world), 0);
}

#[tokio::test]
async fn scim_deprovisioning_signs_the_member_out() {
    // If this broke, the customer's IdP deactivating or deleting a member through SCIM would
    // leave their sessions served here.
    let (world, served) = world().await;
    let deactivated = world.member.session_jwt.expose_secret().to_owned();
    let deleted = world.member2.session_jwt.expose_secret().to_owned();
    assert_eq!(served.whoami(&deactivated).await, StatusCode::OK);
    assert_eq!(served.whoami(&deleted).await, StatusCode::OK);
    let scim = world.emulator.via(EventSource::Scim);
    scim.update_member(
        &world.member.member_id,
        MemberUpdate::new().status("deleted"),
    )
    .unwrap();
    scim.delete_member(&world.member2.member_id).unwrap();
    assert_eq!(
        delivered(&world, "scim.member.update").await.last_status,
        Some(204)
    );
    assert_eq!(
        delivered(&world, "scim.member.delete").await.last_status,
        Some(204)
    );
    assert!(refused_soon(&served, &deactivated).await);
    assert!(refused_soon(&served, &deleted).await);
}

#[tokio::test]
async fn demoted_admin_gets_fresh_roles_and_loses_the_admin_route() {
    // If this broke, an admin demoted in the dashboard would keep the admin role here (app
    // and identity headers) for up to 5 minutes on a locally verified JWT.
    let (world, served) = world().await;
    let jwt = world.admin.session_jwt.expose_secret().to_owned();
    let roles = served.get_as("/roles", &jwt).await.text().await.unwrap();
    assert!(roles.contains("stytch_admin"), "{roles}");
    world
        .emulator
        .via(EventSource::Dashboard)
        .update_member(&world.admin.member_id, MemberUpdate::new().roles(&[]))
        .unwrap();
    assert_eq!(
        delivered(&world, "dashboard.member.update")
            .await
            .last_status,
        Some(204)
    );
    let roles = served.get_as("/roles", &jwt).await.text().await.unwrap();
    assert!(!roles.contains("stytch_admin"), "{roles}");
    assert!(roles.contains("stytch_member"), "{roles}");
    // Not signed out: re-validated.
    assert_eq!(served.whoami(&jwt).await, StatusCode::OK);
    // Stytch's RBAC now refuses the admin route acting as them.
    let path = format!("/admin/members/{}/revoke-sessions", world.member.member_id);
    assert_eq!(
        served.post_as(&path, &jwt).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn deleted_organization_signs_out_its_members_only() {
    // If this broke, members of an organization deleted at Stytch would stay signed in here
    // (or members of another organization would be signed out).
    let (world, served) = world().await;
    let member = world.member.session_jwt.expose_secret().to_owned();
    let admin = world.admin.session_token.expose_secret().to_owned();
    let other = world.other_admin.session_jwt.expose_secret().to_owned();
    for credential in [&member, &admin, &other] {
        assert_eq!(served.whoami(credential).await, StatusCode::OK);
    }
    world.emulator.delete_organization(&world.org).unwrap();
    assert_eq!(
        delivered(&world, "direct.organization.delete")
            .await
            .last_status,
        Some(204)
    );
    assert!(refused_soon(&served, &member).await);
    assert!(refused_soon(&served, &admin).await);
    assert_eq!(served.whoami(&other).await, StatusCode::OK);
}

#[tokio::test]
async fn redelivery_is_acknowledged_and_applied_once() {
    // If this broke, Svix's retries and resends would apply an event again (a second
    // revocation, a second notification to every peer).
    let (world, served) = world().await;
    let mut events = served.layer.revoker().events();
    world
        .emulator
        .delete_member(&world.member2.member_id)
        .unwrap();
    let first = delivered(&world, "direct.member.delete").await;
    assert_eq!(first.last_status, Some(204));
    match events.recv().await.unwrap() {
        RevocationEvent::AppliedByStytch {
            target: RevokedTarget::Member(member),
            ..
        } => assert_eq!(member, world.member2.member_id),
        other => panic!("unexpected event {other:?}"),
    }
    world.emulator.redeliver_webhook(&first.msg_id).unwrap();
    let again = eventually(WITHIN, || {
        world.emulator.webhook_deliveries().iter().any(|d| {
            d.msg_id == first.msg_id && d.attempts >= 2 && d.state == DeliveryState::Delivered
        })
    })
    .await;
    assert!(again, "the redelivery was not acknowledged");
    assert!(
        events.try_recv().is_err(),
        "the redelivery was applied again"
    );
}

#[tokio::test]
async fn forged_stale_and_foreign_deliveries_change_nothing() {
    // If this broke, anyone able to reach the webhook path could sign members out, replay a
    // captured delivery, or act on another Stytch project's events.
    let (world, served) = world().await;
    let jwt = world.member.session_jwt.expose_secret().to_owned();
    assert_eq!(served.whoami(&jwt).await, StatusCode::OK);
    let payload = |project: &str| {
        json!({
            "project_id": project, "event_id": "event-test-1", "action": "DELETE",
            "object_type": "member", "source": "DASHBOARD", "id": world.member.member_id,
            "timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            "vertical": "B2B",
        })
    };
    let wrong = WebhookSecret::parse("whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap();
    let url = served.url(PATH);
    let project = world.emulator.project_id().to_owned();
    let stale = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
        - 600;
    let sends = [
        (
            "wrong secret",
            WebhookMessage::new("dashboard.member.delete", payload(&project)).signed_with(wrong),
            401,
        ),
        (
            "stale timestamp",
            WebhookMessage::new("dashboard.member.delete", payload(&project)).timestamp(stale),
            401,
        ),
        (
            "another project",
            WebhookMessage::new("dashboard.member.delete", payload("project-test-other")),
            204,
        ),
    ];
    for (name, message, status) in sends {
        let msg_id = world.emulator.send_webhook(message.to(url.clone()));
        let answered = eventually(WITHIN, || {
            world
                .emulator
                .webhook_deliveries()
                .iter()
                .any(|d| d.msg_id == msg_id && d.last_status.is_some())
        })
        .await;
        assert!(answered, "{name}");
        let delivery = world
            .emulator
            .webhook_deliveries()
            .into_iter()
            .find(|d| d.msg_id == msg_id)
            .unwrap();
        assert_eq!(delivery.last_status, Some(status), "{name}");
    }
    // No signature at all, and the wrong method.
    let unsigned = served
        .http
        .post(&url)
        .body(payload(&project).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        served.get(PATH).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    // The member is still served.
    assert_eq!(served.whoami(&jwt).await, StatusCode::OK);
}

/// `svix-*` headers signing `body` with `secret` (`whsec_…`) now, as Svix does.
fn signed(secret: &str, id: &str, body: &str) -> Vec<(&'static str, String)> {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine.decode(secret.trim_start_matches("whsec_")).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{now}.{body}").as_bytes());
    let signature = engine.encode(mac.finalize().into_bytes());
    vec![
        ("svix-id", id.to_owned()),
        ("svix-timestamp", now.to_string()),
        ("svix-signature", format!("v1,{signature}")),
    ]
}

#[tokio::test]
async fn a_signed_delivery_passes_whatever_its_browser_headers_say() {
    // If this broke, the cross-site check (meant for browsers) would refuse Stytch's
    // deliveries that come through a proxy adding Origin or Sec-Fetch-Site, and members of
    // an organization deleted at Stytch would stay signed in. (The event is sent by hand,
    // signed with the emulator's secret; the organization is still alive at the emulator,
    // which an organization-wide refusal does not ask about.)
    let (world, served) = world().await;
    let jwt = world.member.session_jwt.expose_secret().to_owned();
    assert_eq!(served.whoami(&jwt).await, StatusCode::OK);
    let body = json!({
        "project_id": world.emulator.project_id(), "event_id": "event-test-2",
        "action": "DELETE", "object_type": "organization", "source": "DASHBOARD",
        "id": world.org, "vertical": "B2B",
        "timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
    })
    .to_string();
    let secret = world.emulator.webhook_secret();
    let mut request = served
        .http
        .post(served.url(PATH))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .body(body.clone());
    for (name, value) in signed(secret.expose_secret(), "msg_test_cross_site", &body) {
        request = request.header(name, value);
    }
    assert_eq!(
        request.send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert!(refused_soon(&served, &jwt).await);
}

#[tokio::test]
async fn webhook_path_must_be_absolute_and_not_a_logout_path() {
    // If this broke, a typo would silently disable the receiver, or the webhook path would
    // shadow the logout route.
    let world = World::new().await;
    let secrets =
        || WebhookSecrets::parse(world.emulator.webhook_secret().expose_secret()).unwrap();
    for path in ["stytch/webhooks", "/logout", "/logout/everywhere"] {
        let built = world.builder().webhook(path, secrets()).build();
        assert!(
            matches!(built, Err(tower_stytch::ConfigError::InvalidRoute { .. })),
            "{path}"
        );
    }
}
