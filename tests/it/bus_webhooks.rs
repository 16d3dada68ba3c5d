//! Stytch's webhooks through the bus: what a webhook received on one instance did (a member
//! or an organization signed out, roles changed) applied on every instance, including those
//! started later, and never undone by what a writer to Redis forges.
//!
//! If these fail, a member deleted or demoted at Stytch stays signed in (or keeps the old
//! roles) on every instance but the one that got the webhook.

use std::time::Duration;

use axum::routing::get;
use http::StatusCode;
use stytch_emulator::{EventSource, MemberUpdate, WebhookEndpoint};
use tower_stytch::{MemberSession, webhook::WebhookSecrets};

use crate::bus::{PROPAGATION, answers, bus, bus_of, log_key};
use crate::redis_server::RedisServer;
use crate::support::{Served, World, app, serve};

/// Where the webhook instances receive Stytch's webhooks.
const WEBHOOK_PATH: &str = "/stytch/webhooks";

/// An instance as [`instance`] builds it, also receiving Stytch's webhooks on
/// [`WEBHOOK_PATH`] (signed with the emulator's secret), with `GET /roles` answering the
/// member's roles, comma separated.
async fn webhook_instance(w: &World, redis: &RedisServer) -> Served {
    let secrets = WebhookSecrets::parse(w.emulator.webhook_secret().expose_secret()).unwrap();
    let layer = w
        .builder()
        .revocation_bus(bus(redis))
        .webhook(WEBHOOK_PATH, secrets)
        .build()
        .unwrap();
    let handle = layer.revocation_bus().unwrap().clone();
    handle.ready().await;
    assert!(handle.caught_up(), "the bus did not catch up at startup");
    let router = app().route(
        "/roles",
        get(|s: MemberSession| async move { s.roles().join(",") }),
    );
    serve(layer, router).await
}

/// The emulator sends its webhooks to `s` alone.
fn deliver_to(w: &World, s: &Served) {
    let endpoint = WebhookEndpoint::new(s.url(WEBHOOK_PATH)).unwrap();
    w.emulator.add_webhook_endpoint(endpoint);
}

/// Waits until the emulator's last delivery of `event_type` is answered, and checks it was
/// applied (204).
async fn delivered(w: &World, event_type: &str) {
    let delivery = crate::webhooks::delivered(w, event_type).await;
    assert_eq!(delivery.last_status, Some(204), "{event_type}");
}

/// Waits until `s` answers `GET /roles` with `jwt` without `stytch_admin`, within `timeout`;
/// the roles it answered last.
async fn demoted(s: &Served, jwt: &str, timeout: Duration) -> String {
    let end = tokio::time::Instant::now() + timeout;
    loop {
        let roles = s.get_as("/roles", jwt).await.text().await.unwrap();
        if !roles.contains("stytch_admin") || tokio::time::Instant::now() >= end {
            return roles;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The log's entries as (`kind`, `from`).
async fn log_entries(w: &World, redis: &RedisServer) -> Vec<(String, String)> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(log_key(w))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let field = |entry: &redis::streams::StreamId, name: &str| -> String {
        entry.get(name).unwrap_or_default()
    };
    reply
        .ids
        .iter()
        .map(|e| (field(e, "kind"), field(e, "from")))
        .collect()
}

#[tokio::test]
async fn member_deleted_at_stytch_webhook_on_a_is_refused_on_b_token_and_jwt() {
    // If this broke, a member deleted in Stytch's dashboard would be signed out on the
    // instance that received the webhook only: every other instance would keep serving
    // their token from its cache (a minute) and their JWT (five minutes). Or B, applying
    // it, would publish it again, and every instance would apply each webhook twice.
    let w = World::new().await;
    let redis = RedisServer::start();
    let (a, b) = (
        webhook_instance(&w, &redis).await,
        webhook_instance(&w, &redis).await,
    );
    deliver_to(&w, &a);
    let token = w.member.session_token.expose_secret();
    let jwt = w.member.session_jwt.expose_secret();
    assert_eq!(b.whoami(token).await, StatusCode::OK);
    assert_eq!(b.whoami(jwt).await, StatusCode::OK);
    w.emulator
        .via(EventSource::Dashboard)
        .delete_member(&w.member.member_id)
        .unwrap();
    delivered(&w, "dashboard.member.delete").await;
    assert!(answers(&b, token, StatusCode::UNAUTHORIZED, PROPAGATION).await);
    assert!(answers(&b, jwt, StatusCode::UNAUTHORIZED, PROPAGATION).await);
    assert_eq!(
        b.whoami(w.member2.session_jwt.expose_secret()).await,
        StatusCode::OK
    );
    // B writes its log messages in order: once its next one has reached A, a republished
    // webhook effect (queued before it) would be in the log too.
    let res = b
        .post_as("/logout", w.member2.session_token.expose_secret())
        .await;
    assert_eq!(res.headers()["x-stytch-logout"], "revoked");
    let member2 = w.member2.session_jwt.expose_secret();
    assert!(answers(&a, member2, StatusCode::UNAUTHORIZED, PROPAGATION).await);
    let from_stytch: Vec<_> = log_entries(&w, &redis)
        .await
        .into_iter()
        .filter(|(kind, _)| kind.starts_with("stytch_"))
        .collect();
    let a_id = bus_of(&a).instance_id().to_owned();
    assert_eq!(from_stytch, [("stytch_member".to_owned(), a_id)]);
}

#[tokio::test]
async fn organization_deleted_at_stytch_webhook_on_a_is_refused_on_b() {
    // If this broke, members of an organization deleted at Stytch would stay signed in on
    // every instance but the one that received the webhook (or members of another
    // organization would be signed out there).
    let w = World::new().await;
    let redis = RedisServer::start();
    let (a, b) = (
        webhook_instance(&w, &redis).await,
        webhook_instance(&w, &redis).await,
    );
    deliver_to(&w, &a);
    let token = w.member.session_token.expose_secret();
    let jwt = w.member.session_jwt.expose_secret();
    let admin = w.admin.session_jwt.expose_secret();
    let other = w.other_admin.session_jwt.expose_secret();
    for credential in [token, jwt, admin, other] {
        assert_eq!(b.whoami(credential).await, StatusCode::OK);
    }
    w.emulator.delete_organization(&w.org).unwrap();
    delivered(&w, "direct.organization.delete").await;
    for credential in [token, jwt, admin] {
        assert!(answers(&b, credential, StatusCode::UNAUTHORIZED, PROPAGATION).await);
    }
    assert_eq!(b.whoami(other).await, StatusCode::OK);
}

#[tokio::test]
async fn roles_changed_at_stytch_webhook_on_a_makes_b_revalidate() {
    // If this broke, an admin demoted in Stytch's dashboard would keep the admin role (in
    // the app and the identity headers) on every instance but the one that received the
    // webhook, for up to five minutes on a locally verified JWT.
    let w = World::new().await;
    let redis = RedisServer::start();
    let (a, b) = (
        webhook_instance(&w, &redis).await,
        webhook_instance(&w, &redis).await,
    );
    deliver_to(&w, &a);
    let jwt = w.admin.session_jwt.expose_secret();
    let roles = b.get_as("/roles", jwt).await.text().await.unwrap();
    assert!(roles.contains("stytch_admin"), "{roles}");
    w.emulator
        .via(EventSource::Dashboard)
        .update_member(&w.admin.member_id, MemberUpdate::new().roles(&[]))
        .unwrap();
    delivered(&w, "dashboard.member.update").await;
    let roles = demoted(&b, jwt, PROPAGATION).await;
    assert!(!roles.contains("stytch_admin"), "{roles}");
    assert!(roles.contains("stytch_member"), "{roles}");
    // Re-validated, not signed out.
    assert_eq!(b.whoami(jwt).await, StatusCode::OK);
}

#[tokio::test]
async fn an_instance_started_after_a_webhook_refuses_the_deleted_member_and_revalidates() {
    // If this broke, an instance started (or restarted) after a member was deleted at Stytch
    // would accept their JWT, which verifies locally for five minutes, and one started after
    // an admin's demotion would serve them as admin: the webhook reached the instances of
    // the time only.
    let w = World::new().await;
    let redis = RedisServer::start();
    let a = webhook_instance(&w, &redis).await;
    deliver_to(&w, &a);
    w.emulator
        .via(EventSource::Scim)
        .delete_member(&w.member.member_id)
        .unwrap();
    w.emulator
        .via(EventSource::Dashboard)
        .update_member(&w.admin.member_id, MemberUpdate::new().roles(&[]))
        .unwrap();
    delivered(&w, "scim.member.delete").await;
    delivered(&w, "dashboard.member.update").await;
    // Both published before B exists.
    let published = || async {
        let kinds: Vec<_> = log_entries(&w, &redis)
            .await
            .into_iter()
            .map(|(kind, _)| kind)
            .collect();
        kinds.iter().any(|k| k == "stytch_member") && kinds.iter().any(|k| k == "roles")
    };
    let end = tokio::time::Instant::now() + PROPAGATION;
    while !published().await {
        assert!(tokio::time::Instant::now() < end, "never published");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let b = webhook_instance(&w, &redis).await;
    assert_eq!(
        b.whoami(w.member.session_jwt.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    let roles = b
        .get_as("/roles", w.admin.session_jwt.expose_secret())
        .await
        .text()
        .await
        .unwrap();
    assert!(!roles.contains("stytch_admin"), "{roles}");
    assert!(roles.contains("stytch_member"), "{roles}");
    assert_eq!(
        b.whoami(w.member2.session_jwt.expose_secret()).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn forged_roles_mark_in_redis_cannot_hide_a_demotion_received_here() {
    // If this broke, anyone able to write to Redis could keep a demoted admin's sessions
    // served as admin on the instance that received Stytch's webhook (its JWT, verified
    // locally, for five minutes): a `roles` message naming the admin's current roles and a
    // later change time would make the genuine, earlier event look stale there.
    let w = World::new().await;
    let redis = RedisServer::start();
    let a = webhook_instance(&w, &redis).await;
    deliver_to(&w, &a);
    let jwt = w.admin.session_jwt.expose_secret();
    let before = a.get_as("/roles", jwt).await.text().await.unwrap();
    assert!(before.contains("stytch_admin"), "{before}");
    let current: Vec<&str> = before.split(',').collect();
    let roles = serde_json::to_string(&current).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let changed_at = (now_ms + 10 * 24 * 3600 * 1000).to_string();
    let until = (now_ms + 300 * 1000).to_string();
    let forger = "0123456789abcdef0123456789abcdef";
    let key = log_key(&w);
    let mut events = a.layer.revoker().events();
    let forged = [
        "XADD",
        &key,
        "*",
        "v",
        "1",
        "kind",
        "roles",
        "from",
        forger,
        "origin",
        forger,
        "rev",
        "1",
        "id",
        &w.admin.member_id,
        "changed_at",
        &changed_at,
        "roles",
        &roles,
        "until",
        &until,
    ];
    assert!(redis.command(&forged).is_some_and(|r| r.starts_with('$')));
    let applied = tokio::time::timeout(PROPAGATION, events.recv()).await;
    assert!(
        matches!(
            applied,
            Ok(Ok(
                tower_stytch::revoke::RevocationEvent::RolesChanged { .. }
            ))
        ),
        "the forged mark was not read: {applied:?}"
    );
    w.emulator
        .via(EventSource::Dashboard)
        .update_member(&w.admin.member_id, MemberUpdate::new().roles(&[]))
        .unwrap();
    delivered(&w, "dashboard.member.update").await;
    let after = a.get_as("/roles", jwt).await.text().await.unwrap();
    assert!(!after.contains("stytch_admin"), "{after}");
}
