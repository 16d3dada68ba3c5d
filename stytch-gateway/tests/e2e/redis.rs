//! Revocations shared between gateway processes through Redis (and `rediss://`), and a
//! revocation a killed gateway left pending, completed by another.

use std::time::Duration;

use http::StatusCode;

use super::https::TestPki;
use super::redis_server::RedisServer;
use super::{Gateway, PROJECT_ID, REDIS_PASSWORD, SECRET, Stytch, bounded, http, upstream, within};

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_share_revocations_through_redis() {
    // If this broke, a logout or an admin revocation through one gateway would leave the
    // session working through the others (or the Redis password would reach the logs).
    bounded(async {
        let redis = RedisServer::start_with_password(REDIS_PASSWORD);
        let stytch = Stytch::start();
        let up = upstream().await;
        let url = redis.url();
        let flags = ["--redis-url", url.as_str()];
        let a = Gateway::start(&stytch, up.addr, &flags).await;
        let b =
            Gateway::start_with_env(&stytch, up.addr, &[], &[("GATEWAY_REDIS_URL", &url)]).await;
        let readyz = http()
            .get(format!("{}/readyz", b.base))
            .send()
            .await
            .unwrap();
        assert!(
            readyz
                .text()
                .await
                .unwrap()
                .contains("revocation bus: live")
        );
        let org = stytch.organization("acme").await;
        let (_, admin) = stytch
            .member(&org, "alice@acme.test", &["stytch_admin"])
            .await;
        let (_, bob) = stytch.member(&org, "bob@acme.test", &[]).await;
        let (carol_id, carol) = stytch.member(&org, "carol@acme.test", &[]).await;
        use reqwest::Method;
        for token in [&bob, &carol] {
            assert_eq!(b.call(Method::GET, "/whoami", token).await, StatusCode::OK);
        }
        assert!(a.call(Method::POST, "/logout", &bob).await.is_success());
        assert!(
            within(Duration::from_secs(2), || async {
                b.call(Method::GET, "/whoami", &bob).await == StatusCode::UNAUTHORIZED
            })
            .await
        );
        let revoke_carol = format!("/admin/members/{carol_id}/revoke-sessions");
        assert_eq!(a.call(Method::GET, "/whoami", &admin).await, StatusCode::OK);
        assert!(
            a.call(Method::POST, &revoke_carol, &admin)
                .await
                .is_success()
        );
        assert!(
            within(Duration::from_secs(2), || async {
                b.call(Method::GET, "/whoami", &carol).await == StatusCode::UNAUTHORIZED
            })
            .await
        );
        for gw in [&a, &b] {
            gw.assert_logs_clean(&[&admin, &bob, &carol, REDIS_PASSWORD]);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_pending_on_a_killed_gateway_is_completed_by_another() {
    // If this broke, a revocation Stytch had not confirmed would die with the gateway that
    // took it (SIGKILL: no flush, no goodbye), and Stytch would never end the session.
    bounded(async {
        let redis = RedisServer::start();
        let stytch = Stytch::start();
        let up = upstream().await;
        let url = redis.url();
        let flags = ["--redis-url", url.as_str(), "--redis-lease", "1s"];
        let mut a = Gateway::start(&stytch, up.addr, &flags).await;
        let b = Gateway::start(&stytch, up.addr, &flags).await;
        let org = stytch.organization("acme").await;
        let (_, admin) = stytch.member(&org, "alice@acme.test", &["stytch_admin"]).await;
        let (carol_id, carol) = stytch.member(&org, "carol@acme.test", &[]).await;
        use reqwest::Method;
        for token in [&admin, &carol] {
            assert_eq!(a.call(Method::GET, "/whoami", token).await, StatusCode::OK);
        }
        stytch
            .control(
                "faults",
                serde_json::json!({"endpoint": "revoke", "fault": {"type": "status", "status": 503}, "times": 100000}),
            )
            .await;
        let revoke_carol = format!("/admin/members/{carol_id}/revoke-sessions");
        assert_eq!(
            a.call(Method::POST, &revoke_carol, &admin).await,
            StatusCode::ACCEPTED,
            "pending at Stytch"
        );
        let pending_key = format!("{{tower-stytch:{PROJECT_ID}}}:pending");
        let pending = || redis.integer(&["XLEN", &pending_key]);
        assert!(within(Duration::from_secs(2), || async { pending() == Some(1) }).await);
        a.proc.signal("-KILL");
        a.proc.wait(Duration::from_secs(5));
        let cleared = http()
            .delete(format!("{}emulator/v1/faults", stytch.base_url))
            .basic_auth(PROJECT_ID, Some(SECRET))
            .send()
            .await
            .unwrap();
        assert!(cleared.status().is_success());
        assert!(live_at_stytch(&stytch, &carol).await, "A completed it before dying");
        assert_eq!(b.call(Method::GET, "/whoami", &carol).await, StatusCode::UNAUTHORIZED);
        assert!(
            within(Duration::from_secs(15), || async { !live_at_stytch(&stytch, &carol).await })
                .await,
            "B never completed the revocation at Stytch"
        );
        assert!(within(Duration::from_secs(2), || async { pending() == Some(0) }).await);
    })
    .await;
}

#[tokio::test]
async fn two_gateways_share_revocations_over_rediss_with_a_verified_certificate() {
    // If this broke, `rediss://` (Redis over TLS, as managed Redis services require) would not
    // carry revocations between gateways, or would trust a certificate nobody vouched for.
    bounded(async {
        let pki = TestPki::new();
        let redis = RedisServer::start_tls(REDIS_PASSWORD, &pki.leaf_pem, &pki.leaf_key_pem);
        let url = redis.tls_url().unwrap();
        let stytch = Stytch::start();
        let up = upstream().await;
        // The test CA is this process's only trust anchor for Redis (rustls-native-certs
        // reads SSL_CERT_FILE).
        let trusted = [
            ("GATEWAY_REDIS_URL", url.as_str()),
            ("SSL_CERT_FILE", pki.ca_path()),
        ];
        let a = Gateway::start_with_env(&stytch, up.addr, &[], &trusted).await;
        let b = Gateway::start_with_env(&stytch, up.addr, &[], &trusted).await;
        for gw in [&a, &b] {
            let body = http()
                .get(format!("{}/readyz", gw.base))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(body.contains("revocation bus: live"), "{body}");
        }
        let org = stytch.organization("acme").await;
        let (_, bob) = stytch.member(&org, "bob@acme.test", &[]).await;
        use reqwest::Method;
        assert_eq!(b.call(Method::GET, "/whoami", &bob).await, StatusCode::OK);
        assert!(a.call(Method::POST, "/logout", &bob).await.is_success());
        assert!(
            within(Duration::from_secs(2), || async {
                b.call(Method::GET, "/whoami", &bob).await == StatusCode::UNAUTHORIZED
            })
            .await
        );
        // A gateway that does not trust the test CA never gets a bus: the certificate is
        // verified, not merely encrypted to.
        let untrusting = Gateway::start_with_env(
            &stytch,
            up.addr,
            &["--redis-startup-wait", "1s"],
            &[("GATEWAY_REDIS_URL", url.as_str())],
        )
        .await;
        let body = http()
            .get(format!("{}/readyz", untrusting.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!body.contains("revocation bus: live"), "{body}");
        for gw in [&a, &b, &untrusting] {
            gw.assert_logs_clean(&[&bob, REDIS_PASSWORD]);
        }
    })
    .await;
}

/// Whether Stytch (the emulator) still takes `token` as a live session.
async fn live_at_stytch(stytch: &Stytch, token: &str) -> bool {
    let status = http()
        .post(format!("{}v1/b2b/sessions/authenticate", stytch.base_url))
        .basic_auth(PROJECT_ID, Some(SECRET))
        .json(&serde_json::json!({"session_token": token}))
        .send()
        .await
        .unwrap()
        .status();
    assert!(
        status == StatusCode::OK || status == StatusCode::NOT_FOUND,
        "authenticate: {status}"
    );
    status == StatusCode::OK
}
