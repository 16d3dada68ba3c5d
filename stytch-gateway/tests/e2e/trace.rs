//! Secrets under faults: the soak's TRACE check in small (the full one is
//! `SOAK_TRACE=1 stytch-gateway/benches/soak.sh`). Two gateways sharing a password-protected
//! Redis, with a webhook secret, log at TRACE (every process here does) through a burst of
//! injected Stytch faults, a Redis restart with revocations made while it was down, and a
//! signed webhook, and a request with a token in its query string; then no session token,
//! JWT signature, project secret, webhook secret or Redis password may appear in the
//! gateways' logs (the access log's lines included) or the emulator's.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use reqwest::Method;
use serde_json::json;

use super::redis_server::RedisServer;
use super::{
    Gateway, REDIS_PASSWORD, SECRET, Stytch, WEBHOOK_PATH, WEBHOOK_SECRET, bounded, free_port,
    upstream, within,
};

/// A member's session: (member_id, session token, session JWT).
async fn session(
    stytch: &Stytch,
    org: &str,
    email: &str,
    roles: &[&str],
) -> (String, String, String) {
    let m = stytch
        .control(
            "members",
            json!({"organization_id": org, "email_address": email, "roles": roles}),
        )
        .await;
    let member_id = m["member_id"].as_str().unwrap().to_owned();
    let s = stytch
        .control("sessions", json!({"member_id": member_id}))
        .await;
    let token = s["session_token"].as_str().unwrap().to_owned();
    let jwt = s["session_jwt"].as_str().unwrap().to_owned();
    (member_id, token, jwt)
}

/// Queues `fault` for the next `times` calls of `endpoint`.
async fn fault(stytch: &Stytch, endpoint: &str, fault: serde_json::Value, times: u64) {
    stytch
        .control(
            "faults",
            json!({"endpoint": endpoint, "fault": fault, "times": times}),
        )
        .await;
}

/// One set of processes, as the soak: it follows the soak's events in order, one step each.
#[tokio::test(flavor = "multi_thread")]
async fn trace_logs_through_stytch_faults_and_a_redis_restart_hold_no_secret() {
    // If this broke, a credential or secret would reach the logs on an error or reconnect
    // path the quiet tests never take: a Stytch error answer or retry, a revocation queued
    // while Redis is down and replayed, the bus's reconnection with its password, a signed
    // webhook, or a takeover of pending revocations.
    bounded(async {
        let mut redis = RedisServer::start_with_password(REDIS_PASSWORD);
        let up = upstream().await;
        let (stytch, a, b) = start_pair(&redis, up.addr).await;

        let org = stytch.organization("acme").await;
        let mut sessions = vec![session(&stytch, &org, "admin@acme.test", &["stytch_admin"]).await];
        for n in 0..5 {
            sessions.push(session(&stytch, &org, &format!("m{n}@acme.test"), &[]).await);
        }
        let credentials = credentials(&sessions);
        let (_, admin, admin_jwt) = sessions[0].clone();
        let [
            _,
            (_, t1, j1),
            (m2, t2, _),
            (_, t3, j3),
            (m4, t4, j4),
            (_, t5, _),
        ] = <[_; 6]>::try_from(sessions).unwrap();
        for gw in [&a, &b] {
            for credential in [&admin, &admin_jwt, &t1, &j1] {
                assert_eq!(
                    gw.call(Method::GET, "/whoami", credential).await,
                    StatusCode::OK
                );
            }
        }

        stytch_faults(&stytch, &a, [&t3, &t4, &t5]).await;
        // A logout whose revoke call fails: kept pending, delivered later.
        assert!(a.call(Method::POST, "/logout", &t1).await.is_success());

        // Redis down: revocations made meanwhile, on both gateways; then back (empty).
        redis.kill();
        assert!(b.call(Method::POST, "/logout", &j3).await.is_success());
        let revoke_m4 = format!("/admin/members/{m4}/revoke-sessions");
        assert!(a.call(Method::POST, &revoke_m4, &admin).await.is_success());
        redis.restart();
        for (gw, credential) in [(&a, &j3), (&b, &t4), (&b, &j4)] {
            assert!(
                within(Duration::from_secs(10), || async {
                    gw.call(Method::GET, "/whoami", credential).await == StatusCode::UNAUTHORIZED
                })
                .await,
                "a revocation made while Redis was down never reached the other gateway"
            );
        }

        webhook_signs_out(&stytch, &a, &m2, &t2).await;
        access_log_written(&a, &admin).await;
        assert_logs_hold_no_secret(&stytch, [&a, &b], &credentials);
    })
    .await;
}

/// The emulator, sending its webhooks to gateway A, and gateways A and B sharing `redis`,
/// in front of the upstream at `up`.
async fn start_pair(redis: &RedisServer, up: SocketAddr) -> (Stytch, Gateway, Gateway) {
    let a_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let hook = format!("http://{a_addr}{WEBHOOK_PATH}");
    let stytch = Stytch::start_with(&["--webhook-url", &hook, "--webhook-secret", WEBHOOK_SECRET]);
    let url = redis.url();
    let args = [
        "--redis-url",
        url.as_str(),
        "--redis-lease",
        "1s",
        "--webhook-path",
        WEBHOOK_PATH,
    ];
    let env = [("STYTCH_WEBHOOK_SECRET", WEBHOOK_SECRET)];
    let upstream_url = format!("http://{up}");
    let a = Gateway::start_on(a_addr, &stytch, &upstream_url, &args, &env).await;
    let b_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let b = Gateway::start_on(b_addr, &stytch, &upstream_url, &args, &env).await;
    (stytch, a, b)
}

/// What no log may hold of `sessions`: each token, JWT and JWT signature.
fn credentials(sessions: &[(String, String, String)]) -> Vec<String> {
    sessions
        .iter()
        .flat_map(|(_, token, jwt)| {
            [
                token.clone(),
                jwt.clone(),
                jwt.rsplit('.').next().unwrap().to_owned(),
            ]
        })
        .collect()
}

/// A burst of Stytch faults on the uncached `tokens` through `gw`: 503 (fail closed), never
/// 200/401. The revoke faults are left for the next revocation.
async fn stytch_faults(stytch: &Stytch, gw: &Gateway, tokens: [&String; 3]) {
    fault(
        stytch,
        "authenticate",
        json!({"type": "status", "status": 503}),
        3,
    )
    .await;
    fault(stytch, "authenticate", json!({"type": "rst"}), 3).await;
    fault(stytch, "authenticate", json!({"type": "malformed_body"}), 3).await;
    fault(
        stytch,
        "revoke",
        json!({"type": "status", "status": 500}),
        3,
    )
    .await;
    for token in tokens {
        let status = gw.call(Method::GET, "/whoami", token).await;
        assert_ne!(
            status,
            StatusCode::UNAUTHORIZED,
            "a live session refused under faults"
        );
    }
}

/// A signed webhook: `member_id` deleted at Stytch, and its `token` refused by `gw`.
async fn webhook_signs_out(stytch: &Stytch, gw: &Gateway, member_id: &str, token: &str) {
    let deleted = super::http()
        .delete(format!(
            "{}emulator/v1/members/{member_id}",
            stytch.base_url
        ))
        .basic_auth(super::PROJECT_ID, Some(SECRET))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    assert!(
        gw.refused_soon(token).await,
        "the webhook did not sign member 2 out"
    );
}

/// The access log (on by default) is among the logs checked: a request carrying the
/// `admin` token in its query string too, whose line is written.
async fn access_log_written(gw: &Gateway, admin: &str) {
    let path = format!("/whoami?session_token={admin}");
    assert_eq!(gw.call(Method::GET, &path, admin).await, StatusCode::OK);
    let written = within(Duration::from_secs(5), || async {
        gw.proc
            .stderr()
            .lines()
            .any(|l| l.contains("stytch_gateway::access") && l.contains(r#"path="/whoami""#))
    })
    .await;
    assert!(written, "no access log line");
}

/// No credential, project secret, webhook secret or Redis password in the gateways' logs or
/// the emulator's.
fn assert_logs_hold_no_secret(stytch: &Stytch, gateways: [&Gateway; 2], credentials: &[String]) {
    let mut secrets: Vec<&str> = credentials.iter().map(String::as_str).collect();
    let webhook_key = WEBHOOK_SECRET.trim_start_matches("whsec_");
    secrets.extend([REDIS_PASSWORD, WEBHOOK_SECRET, webhook_key]);
    for gw in gateways {
        gw.assert_logs_clean(&secrets);
    }
    // Its stderr: its stdout is the start-up banner, which prints the secrets it was given.
    let emulator_logs = stytch.proc.stderr();
    for secret in secrets.iter().chain([&SECRET]) {
        assert!(
            !emulator_logs.contains(secret),
            "a credential appeared in the emulator's logs"
        );
    }
}
