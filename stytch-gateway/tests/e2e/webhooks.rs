//! Stytch's webhooks through the gateway: members deleted, deprovisioned or demoted at
//! Stytch are signed out (or get their new roles); redelivered, foreign and forged events
//! change nothing and are counted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode};

use super::{
    Gateway, PROJECT_ID, SECRET, Stytch, Upstream, WEBHOOK_PATH, WEBHOOK_SECRET, bounded,
    free_port, http, last_seen, metrics_text, upstream,
};

/// Long on purpose: one pair of processes for the four sign-out events (starting them is
/// the slow part), then one check per member.
#[tokio::test(flavor = "multi_thread")]
async fn webhooks_sign_out_deleted_and_deprovisioned_members_and_deleted_organizations() {
    // If this broke, a member deleted in Stytch's dashboard, deprovisioned through SCIM, or
    // in an organization deleted at Stytch would keep passing the shipped gateway on its
    // cached session for up to a minute.
    bounded(async {
        use reqwest::Method;
        let up = upstream().await;
        let (stytch, gw, _) = webhook_pair(&up).await;
        let org = stytch.organization("acme").await;
        let other_org = stytch.organization("globex").await;
        let (deleted_id, deleted) = stytch.member(&org, "a@acme.test", &[]).await;
        let (deactivated_id, deactivated) = stytch.member(&org, "b@acme.test", &[]).await;
        let (scim_deleted_id, scim_deleted) = stytch.member(&org, "c@acme.test", &[]).await;
        let (_, stays) = stytch.member(&org, "e@acme.test", &[]).await;
        let (_, in_deleted_org) = stytch.member(&other_org, "d@globex.test", &[]).await;
        let tokens = [
            &deleted,
            &deactivated,
            &scim_deleted,
            &stays,
            &in_deleted_org,
        ];
        for token in tokens {
            assert_eq!(gw.call(Method::GET, "/whoami", token).await, StatusCode::OK);
        }
        let dashboard = serde_json::json!({"source": "DASHBOARD"});
        let scim = serde_json::json!({"source": "SCIM"});
        stytch
            .control_with(Method::DELETE, &format!("members/{deleted_id}"), dashboard)
            .await;
        stytch
            .control_with(
                Method::PUT,
                &format!("members/{deactivated_id}"),
                serde_json::json!({"status": "deleted", "source": "SCIM"}),
            )
            .await;
        stytch
            .control_with(Method::DELETE, &format!("members/{scim_deleted_id}"), scim)
            .await;
        stytch
            .control_with(
                Method::DELETE,
                &format!("organizations/{other_org}"),
                serde_json::json!({}),
            )
            .await;
        for event_type in [
            "dashboard.member.delete",
            "scim.member.update",
            "scim.member.delete",
            "direct.organization.delete",
        ] {
            assert_eq!(
                stytch.delivered(event_type).await["last_status"],
                204,
                "{event_type}"
            );
        }
        for token in [&deleted, &deactivated, &scim_deleted, &in_deleted_org] {
            assert!(
                gw.refused_soon(token).await,
                "still served after the webhook"
            );
        }
        assert_eq!(
            gw.call(Method::GET, "/whoami", &stays).await,
            StatusCode::OK
        );
        let mut credentials: Vec<&str> = tokens.iter().map(|t| t.as_str()).collect();
        credentials.extend([WEBHOOK_SECRET, WEBHOOK_SECRET.trim_start_matches("whsec_")]);
        gw.assert_logs_clean(&credentials);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn demoted_admin_gets_new_roles_in_the_identity_headers_and_the_admin_route_refuses() {
    // If this broke, an admin demoted in Stytch's dashboard would keep X-Stytch-Roles:
    // stytch_admin at the upstream (and the admin route) until the cache entry expired.
    bounded(async {
        use reqwest::Method;
        let up = upstream().await;
        let (stytch, gw, _) = webhook_pair(&up).await;
        let org = stytch.organization("acme").await;
        let (alice_id, alice) = stytch
            .member(&org, "alice@acme.test", &["stytch_admin"])
            .await;
        let (bob_id, bob) = stytch.member(&org, "bob@acme.test", &[]).await;
        assert_eq!(gw.call(Method::GET, "/app", &alice).await, StatusCode::OK);
        let roles = |h: &HeaderMap| h["x-stytch-roles"].to_str().unwrap().to_owned();
        assert!(roles(&last_seen(&up)).contains("stytch_admin"));
        stytch
            .control_with(
                Method::PUT,
                &format!("members/{alice_id}"),
                serde_json::json!({"roles": [], "source": "DASHBOARD"}),
            )
            .await;
        assert_eq!(
            stytch.delivered("dashboard.member.update").await["last_status"],
            204
        );
        assert_eq!(gw.call(Method::GET, "/app", &alice).await, StatusCode::OK);
        let now = roles(&last_seen(&up));
        assert!(!now.contains("stytch_admin"), "{now}");
        assert!(now.contains("stytch_member"), "{now}");
        let revoke_bob = format!("/admin/members/{bob_id}/revoke-sessions");
        assert_eq!(
            gw.call(Method::POST, &revoke_bob, &alice).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(gw.call(Method::GET, "/whoami", &bob).await, StatusCode::OK);
    })
    .await;
}

/// Three deliveries against one pair of processes, then the metrics they left, read once.
#[tokio::test(flavor = "multi_thread")]
async fn duplicate_foreign_and_forged_webhooks_are_counted_and_change_nothing() {
    // If this broke, a Svix redelivery would be applied twice, another project's event or a
    // forged one would act here, or operators could not see which happened.
    bounded(async {
        use reqwest::Method;
        let up = upstream().await;
        let (stytch, gw, metrics) = webhook_pair(&up).await;
        let org = stytch.organization("acme").await;
        let (deleted_id, _) = stytch.member(&org, "a@acme.test", &[]).await;
        let (kept_id, kept) = stytch.member(&org, "b@acme.test", &[]).await;
        delete_then_redeliver(&stytch, &deleted_id).await;
        stytch
            .control(
                "webhooks/send",
                serde_json::json!({"event_type": "dashboard.member.delete",
                    "payload": member_deleted("project-test-another", &kept_id)}),
            )
            .await;
        assert_eq!(
            stytch.delivered("dashboard.member.delete").await["last_status"],
            204
        );
        stytch
            .control(
                "webhooks/send",
                serde_json::json!({"event_type": "scim.member.delete",
                    "payload": member_deleted(PROJECT_ID, &kept_id),
                    "secret": "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}),
            )
            .await;
        assert_eq!(
            stytch.delivered("scim.member.delete").await["last_status"],
            401
        );
        assert_eq!(gw.call(Method::GET, "/whoami", &kept).await, StatusCode::OK);
        let rendered = metrics_text(&metrics).await;
        let count = |kind: &str, outcome: &str| webhook_count(&rendered, kind, outcome);
        assert_eq!(
            count("direct.member.delete", "applied").as_deref(),
            Some("1"),
            "{rendered}"
        );
        assert_eq!(
            count("direct.member.delete", "duplicate").as_deref(),
            Some("1"),
            "{rendered}"
        );
        assert_eq!(
            count("dashboard.member.delete", "ignored").as_deref(),
            Some("1"),
            "{rendered}"
        );
        assert!(count("unverified", "rejected").is_some(), "{rendered}");
    })
    .await;
}

/// Deletes `member_id` at the emulator, and has the emulator deliver that webhook a second
/// time (as Svix may) once the first delivery was answered.
async fn delete_then_redeliver(stytch: &Stytch, member_id: &str) {
    stytch
        .control_with(
            reqwest::Method::DELETE,
            &format!("members/{member_id}"),
            serde_json::json!({}),
        )
        .await;
    let first = stytch.delivered("direct.member.delete").await;
    let msg_id = first["msg_id"].as_str().unwrap().to_owned();
    stytch
        .control("webhooks/redeliver", serde_json::json!({"msg_id": msg_id}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while stytch.delivered("direct.member.delete").await["attempts"] != 2 {
        assert!(Instant::now() < deadline, "the redelivery never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A "member deleted" event of `project` about `member_id`, as sent through the emulator.
fn member_deleted(project: &str, member_id: &str) -> serde_json::Value {
    serde_json::json!({
        "project_id": project, "event_id": "event-test-1", "action": "DELETE",
        "object_type": "member", "source": "DASHBOARD", "id": member_id,
        "timestamp": "2030-01-01T00:00:00Z", "vertical": "B2B",
    })
}

/// The value of `stytch_webhooks_total{type=kind, outcome=outcome}` in the `/metrics` text.
fn webhook_count(rendered: &str, kind: &str, outcome: &str) -> Option<String> {
    rendered
        .lines()
        .find(|l| {
            l.starts_with("stytch_webhooks_total{")
                && l.contains(&format!("type=\"{kind}\""))
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_owned)
}

/// An emulator sending its webhooks to a gateway (in front of `up`) that receives them on
/// [`WEBHOOK_PATH`]; also the gateway's metrics address.
async fn webhook_pair(up: &Upstream) -> (Stytch, Gateway, String) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let url = format!("http://{addr}{WEBHOOK_PATH}");
    let stytch = Stytch::start_with(&["--webhook-url", &url, "--webhook-secret", WEBHOOK_SECRET]);
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
    let args = ["--webhook-path", WEBHOOK_PATH, "--metrics-listen", &metrics];
    let env = [("STYTCH_WEBHOOK_SECRET", WEBHOOK_SECRET)];
    let gw = Gateway::start_on(addr, &stytch, &format!("http://{}", up.addr), &args, &env).await;
    (stytch, gw, metrics)
}

impl Stytch {
    /// The last delivery of `event_type` once answered (or failed), within 10 s.
    async fn delivered(&self, event_type: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let response = http()
                .get(format!("{}emulator/v1/webhooks/deliveries", self.base_url))
                .basic_auth(PROJECT_ID, Some(SECRET))
                .send()
                .await
                .unwrap();
            let log: serde_json::Value = response.json().await.unwrap();
            let found = log["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .find(|d| {
                    d["event_type"] == event_type
                        && !d["last_status"].is_null()
                        && d["state"] != "pending"
                });
            if let Some(delivery) = found {
                return delivery.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no delivery of {event_type}: {log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
