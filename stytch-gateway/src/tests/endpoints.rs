//! The gateway's own endpoints: `/healthz`, `/readyz`, the auth-only endpoint, `/metrics`.

use super::*;

#[tokio::test]
async fn healthz_and_readyz() {
    // If this broke, orchestrators would route traffic to a gateway that cannot reach Stytch.
    bounded(async {
        let (up, state) = spawn_upstream().await;
        let ready = Arc::new(AtomicBool::new(true));
        let gw = spawn_gateway(
            &format!("http://{}", up.addr),
            Duration::from_secs(5),
            ready.clone(),
        )
        .await;
        assert_eq!(get(gw.addr, "/healthz", &[]).await.status(), StatusCode::OK);
        assert_eq!(get(gw.addr, "/readyz", &[]).await.status(), StatusCode::OK);
        ready.store(false, Ordering::SeqCst);
        let r = get(gw.addr, "/readyz", &[]).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get(gw.addr, "/healthz", &[]).await.status(), StatusCode::OK);
        assert!(
            state.seen.lock().unwrap().is_empty(),
            "a probe reached the upstream"
        );
    })
    .await;
}

#[tokio::test]
async fn auth_only_endpoint_answers_with_identity_headers() {
    // If this broke, nginx auth_request / Traefik forwardAuth setups would get no identity.
    bounded(async {
        let (_up, state, gw) = default_gateway().await;
        let r = get(
            gw.addr,
            "/auth",
            &[
                ("x-test-authenticated", "1"),
                ("x-stytch-member-id", "evil"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-stytch-member-id"], "member-test-1");
        assert_eq!(r.headers()["x-stytch-roles"], "stytch_member,editor");
        // An answer with a body costs nginx its keep-alive connection to the gateway on
        // every check (it never reads auth_request bodies): a connection per request.
        assert!(r.body().is_empty(), "{:?}", r.body());
        assert_eq!(r.headers()["content-length"], "0");
        assert!(
            state.seen.lock().unwrap().is_empty(),
            "the auth-only request reached the upstream"
        );
    })
    .await;
}

#[tokio::test]
async fn upstream_metrics_are_rendered() {
    // If this broke, the gateway's own upstream metrics would be missing from /metrics.
    bounded(async {
        let handle = crate::metrics::recorder().unwrap();
        let metrics = spawn(ServiceFn(crate::metrics::MetricsService::new(handle))).await;
        let (_up, _state, gw) = default_gateway().await;
        assert_eq!(get(gw.addr, "/echo", &[]).await.status(), StatusCode::OK);
        let r = get(metrics.addr, "/metrics", &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        let text = String::from_utf8_lossy(r.body());
        assert!(
            text.contains("stytch_gateway_upstream_responses_total{class=\"2xx\"}"),
            "{text}"
        );
        assert!(
            text.contains("stytch_gateway_upstream_duration_seconds_bucket"),
            "{text}"
        );
        assert_eq!(
            get(metrics.addr, "/other", &[]).await.status(),
            StatusCode::NOT_FOUND
        );
    })
    .await;
}
