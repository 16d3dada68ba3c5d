//! The layer against the emulator over loopback: authentication, cache, coalescing, faults.
//!
//! If these fail, requests reach the app unauthenticated (or valid ones are refused), every
//! request pays a Stytch round trip, or a Stytch outage logs everyone out instead of failing
//! closed.

use std::sync::Arc;
use std::time::Duration;

use crate::support::{World, app, serve};
use http::StatusCode;
use stytch_emulator::{EmulatorEndpoint, Fault};
use tower_stytch::client::{AuthenticateRequest, RevokeSelector};
use tower_stytch::config::CredentialSource;
use tower_stytch::credential::{Credential, SessionToken};
use tower_stytch::{config::CacheConfig, service::RejectionKind};

#[tokio::test]
async fn a_valid_token_reaches_the_handler_and_the_second_request_is_cached() {
    // If this broke, every request would pay a Stytch round trip, or the wrong member be seen.
    let w = World::new().await;
    let s = serve(w.builder().without_jwt().build().unwrap(), app()).await;
    for _ in 0..2 {
        let res = s
            .get_as("/whoami", w.member.session_token.expose_secret())
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.text().await.unwrap(), w.member.member_id);
    }
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Authenticate), 1);
}

#[tokio::test]
async fn concurrent_requests_with_one_cold_token_make_one_stytch_call() {
    // If this broke, a page load fanning out 200 requests would make 200 Stytch calls.
    let w = World::new().await;
    w.emulator.inject_fault(
        EmulatorEndpoint::Authenticate,
        Fault::Latency(Duration::from_millis(200)),
        1,
    );
    let s = Arc::new(serve(w.builder().without_jwt().build().unwrap(), app()).await);
    let token = w.member.session_token.expose_secret().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (s, token) = (Arc::clone(&s), token.clone());
        tasks.push(tokio::spawn(async move {
            s.get_as("/whoami", &token).await.status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Authenticate), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests_with_one_cold_token_make_one_stytch_call() {
    // If this broke, a burst of traffic from one client whose session is not cached yet (a
    // restart, a cache eviction) would hit Stytch once per request instead of once.
    // In process (the layer as a tower service, Stytch over loopback): 10 000 HTTP
    // connections would measure the test machine's socket limits, not the coalescing.
    use tower::{Service, ServiceBuilder, ServiceExt};
    let w = World::new().await;
    w.emulator.inject_fault(
        EmulatorEndpoint::Authenticate,
        Fault::Latency(Duration::from_millis(500)),
        1,
    );
    let layer = w.builder().without_jwt().build().unwrap();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(|req: http::Request<String>| async move {
            let member = req
                .extensions()
                .get::<tower_stytch::MemberSession>()
                .map(|s| s.member_id.to_string());
            Ok::<_, std::convert::Infallible>(http::Response::new(member.unwrap_or_default()))
        }));
    let auth = crate::support::bearer(w.member.session_token.expose_secret());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10_000 {
        let (mut svc, auth) = (svc.clone(), auth.clone());
        tasks.spawn(async move {
            let req = http::Request::get("/whoami")
                .header("authorization", auth)
                .body(String::new())
                .unwrap();
            let res = svc.ready().await.unwrap().call(req).await.unwrap();
            let status = res.status();
            let body = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap();
            (status, body.to_bytes())
        });
    }
    let mut served = 0;
    while let Some(done) = tasks.join_next().await {
        let (status, member) = done.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(member, w.member.member_id.as_bytes());
        served += 1;
    }
    assert_eq!(served, 10_000);
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Authenticate), 1);
}

#[tokio::test]
async fn a_request_without_a_credential_gets_401_with_a_bearer_challenge() {
    // If this broke, unauthenticated requests would reach the app.
    let w = World::new().await;
    let s = serve(w.builder().without_jwt().build().unwrap(), app()).await;
    let res = s.get("/whoami").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"stytch\"");
}

#[tokio::test]
async fn malformed_credentials_get_401_without_asking_stytch() {
    // If this broke, junk would reach Stytch (and burn its rate limit), or reach the app.
    let w = World::new().await;
    let s = serve(w.builder().without_jwt().build().unwrap(), app()).await;
    for junk in ["not a token", "a.b", &"x".repeat(5000)] {
        let res = s.get_as("/whoami", junk).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{junk}");
    }
    let res = s
        .http
        .get(s.url("/whoami"))
        .header("cookie", b"stytch_session=\xff\xfe".as_slice())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        w.emulator.request_count(EmulatorEndpoint::Authenticate),
        0,
        "junk reached Stytch"
    );
}

#[tokio::test]
async fn an_unknown_token_gets_401_and_stytch_is_asked_once() {
    // If this broke, a client retrying a dead token would cost a Stytch call each time.
    let w = World::new().await;
    let s = serve(w.builder().without_jwt().build().unwrap(), app()).await;
    let unknown = "zZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q";
    for _ in 0..3 {
        let res = s.get_as("/whoami", unknown).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(
            res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
    }
    // The negative cache: Stytch was asked once about the unknown token.
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Authenticate), 1);
}

#[tokio::test]
async fn a_session_revoked_at_stytch_is_refused_once_its_cache_entry_expires() {
    // If this broke, a session revoked in Stytch's dashboard would live on here forever.
    let w = World::new().await;
    let layer = w
        .builder()
        .without_jwt()
        .cache({
            let mut cache = CacheConfig::default();
            cache.max_ttl = Duration::from_millis(300);
            cache
        })
        .build()
        .unwrap();
    let s = serve(layer, app()).await;
    let token = w.member2.session_token.expose_secret();
    assert_eq!(s.whoami(token).await, StatusCode::OK);
    w.client()
        .revoke(
            &RevokeSelector::MemberSessionId(w.member2.member_session_id.clone()),
            None,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.whoami(token).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_sessions_get_401() {
    // If this broke, a session past its expiry would keep working.
    let w = World::new().await;
    let s = serve(w.builder().without_jwt().build().unwrap(), app()).await;
    w.emulator.set_clock_offset(2 * 3600);
    let res = s
        .get_as("/whoami", w.member.session_token.expose_secret())
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn stytch_faults_fail_closed_with_503_never_200_or_401() {
    // If this broke, a Stytch outage would either let everyone in or log everyone out.
    let w = World::new().await;
    let s = serve(w.builder().without_jwt().build().unwrap(), app()).await;
    let faults = [
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        Fault::Status {
            status: 503,
            retry_after: Some(7),
        },
        Fault::Status {
            status: 429,
            retry_after: Some(2),
        },
        Fault::ConnectionReset,
        Fault::MalformedBody,
        Fault::TruncatedBody,
        Fault::Latency(Duration::from_secs(2)),
    ];
    for fault in faults {
        let label = format!("{fault:?}");
        // More faults than the client's attempts, so every attempt of this request fails.
        w.emulator
            .inject_fault(EmulatorEndpoint::Authenticate, fault, 2);
        let res = s
            .get_as("/whoami", w.member.session_token.expose_secret())
            .await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{label}");
        assert!(res.headers().contains_key("retry-after"), "{label}");
        // Use up a fault the client did not retry (decode errors are final).
        let raw = w.client();
        let req = AuthenticateRequest::new(Credential::Token(SessionToken::new(
            w.member2.session_token.expose_secret(),
        )));
        for _ in 0..3 {
            if raw.authenticate(&req).await.is_ok() {
                break;
            }
        }
    }
    // With Stytch back, the same token works (failures are not cached).
    let res = s
        .get_as("/whoami", w.member.session_token.expose_secret())
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_project_secret_is_a_500_not_a_401() {
    // If this broke, a misconfigured deployment would log every user out instead of alerting.
    let w = World::new().await;
    let config = tower_stytch::StytchConfig::builder(w.emulator.project_id(), "secret-test-wrong")
        .base_url(w.emulator.base_url())
        .build()
        .unwrap();
    let client = tower_stytch::StytchClient::new(config).unwrap();
    let layer = tower_stytch::StytchAuthLayer::builder(client)
        .without_jwt()
        .build()
        .unwrap();
    let s = serve(layer, app()).await;
    let res = s
        .get_as("/whoami", w.member.session_token.expose_secret())
        .await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn public_and_optional_routes() {
    // If this broke, public assets would need a login, or optional pages would refuse guests.
    let w = World::new().await;
    let layer = w
        .builder()
        .optional_route("GET /optional")
        .without_jwt()
        .build()
        .unwrap();
    let s = serve(layer, app()).await;
    let res = s.get("/public/app.js").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "public");
    let res = s.get("/optional").await;
    assert_eq!(res.text().await.unwrap(), "anonymous");
    let res = s
        .get_as("/optional", w.member.session_token.expose_secret())
        .await;
    assert_eq!(res.text().await.unwrap(), w.member.member_id);
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Authenticate), 1);
}

#[tokio::test]
async fn cookie_layouts_authenticate() {
    // If this broke, browsers sending Stytch's SDK cookies would not be recognised.
    let w = World::new().await;
    let s = serve(w.builder().without_jwt().build().unwrap(), app()).await;
    let token = w.member.session_token.expose_secret();
    let jwt = w.member.session_jwt.expose_secret();
    let layouts = [
        format!("stytch_session={token}"),
        format!("theme=dark; stytch_session=\"{token}\"; junk"),
        format!("stytch_session_jwt={jwt}; stytch_session={token}"),
        format!("stytch_session=; stytch_session={token}"),
    ];
    for cookie in layouts {
        let res = s
            .http
            .get(s.url("/whoami"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{cookie}");
        assert_eq!(res.text().await.unwrap(), w.member.member_id);
    }
    // Two Cookie headers (HTTP/2 style) on a raw hyper client.
    let res = s
        .http
        .get(s.url("/whoami"))
        .header("cookie", "a=1")
        .header("cookie", format!("stytch_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_jwt_from_a_cookie_refreshed_by_stytch_is_set_back() {
    // If this broke, browsers would keep presenting the old JWT and every request would go remote.
    let w = World::new().await;
    let s = serve(w.builder().without_jwt().build().unwrap(), app()).await;
    let jwt = w.member.session_jwt.expose_secret();
    // JWTs have one-second timestamps: let the refreshed one differ from the original.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = s
        .http
        .get(s.url("/whoami"))
        .header("cookie", format!("stytch_session_jwt={jwt}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("stytch_session_jwt="), "{set}");
    assert!(!set.contains(jwt), "the refreshed JWT must differ");
    for attr in ["Path=/", "SameSite=Lax", "Secure", "Expires="] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    // From a header, there is no cookie to refresh.
    let res = s
        .get_as("/whoami", w.admin.session_jwt.expose_secret())
        .await;
    assert!(!res.headers().contains_key("set-cookie"));
}

#[tokio::test]
async fn custom_sources_and_rejection_handler() {
    // If this broke, apps could not use their own header names or error pages.
    let w = World::new().await;
    let layer = w
        .builder()
        .without_jwt()
        .credential_sources(vec![CredentialSource::header("x-session").unwrap()])
        .on_rejection(|rejection: &tower_stytch::service::Rejection| {
            let mut res =
                http::Response::new(bytes::Bytes::from(format!("custom {}", rejection.kind())));
            *res.status_mut() = rejection.status();
            res
        })
        .build()
        .unwrap();
    let s = serve(layer, app()).await;
    let res = s
        .http
        .get(s.url("/whoami"))
        .header("x-session", w.member.session_token.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = s.get("/whoami").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.text().await.unwrap(), "custom missing_credential");
}

#[tokio::test]
async fn rejection_kind_is_in_the_response_extensions() {
    // If this broke, outer layers could not tell why a request was refused.
    use tower::ServiceExt;
    let w = World::new().await;
    let layer = w.builder().without_jwt().build().unwrap();
    let svc = tower::ServiceBuilder::new().layer(layer).service(app());
    let res = svc
        .oneshot(
            http::Request::get("/whoami")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let rejection = res
        .extensions()
        .get::<tower_stytch::service::Rejection>()
        .unwrap();
    assert_eq!(rejection.kind(), RejectionKind::MissingCredential);
}

#[tokio::test]
async fn the_extractor_says_when_the_layer_is_missing() {
    // If this broke, a forgotten layer would surface as an opaque error.
    use tower::ServiceExt;
    let res = app()
        .oneshot(
            http::Request::get("/whoami")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("StytchAuthLayer"));
}

#[test]
fn layer_service_and_future_are_send_sync_and_clone() {
    // If this broke, the layer could not be used with axum or multi-threaded hyper.
    fn send_sync<T: Send + Sync>() {}
    fn clone<T: Clone>() {}
    send_sync::<tower_stytch::StytchAuthLayer>();
    clone::<tower_stytch::StytchAuthLayer>();
    send_sync::<tower_stytch::service::StytchAuth<axum::Router>>();
    clone::<tower_stytch::service::StytchAuth<axum::Router>>();
    fn send<T: Send>() {}
    send::<
        tower_stytch::service::ResponseFuture<
            axum::routing::Route,
            axum::body::Body,
            axum::body::Body,
        >,
    >();
}

#[tokio::test]
async fn poll_ready_is_forwarded_to_the_inner_service() {
    // If this broke, backpressure from the app (e.g. a concurrency limit) would be ignored.
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll};
    use tower::Service;

    #[derive(Clone)]
    struct Gate(Arc<AtomicBool>);
    impl Service<http::Request<axum::body::Body>> for Gate {
        type Response = http::Response<axum::body::Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            if self.0.load(Ordering::SeqCst) {
                Poll::Ready(Ok(()))
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
        fn call(&mut self, _req: http::Request<axum::body::Body>) -> Self::Future {
            std::future::ready(Ok(http::Response::new(axum::body::Body::empty())))
        }
    }

    let w = World::new().await;
    let open = Arc::new(AtomicBool::new(false));
    let mut svc = tower::Layer::layer(&w.builder().build().unwrap(), Gate(Arc::clone(&open)));
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_pending());
    open.store(true, Ordering::SeqCst);
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
}
