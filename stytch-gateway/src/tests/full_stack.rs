//! The real stack (`Gateway` = probes → `StytchAuthLayer` → auth-only / proxy) against the
//! in-process emulator, configured like the command line's flags.

use super::*;
use crate::options::ServeOptions;
use crate::serve::{Gateway, ShutdownReport};
use stytch_emulator::{Emulator, EmulatorConfig, EmulatorEndpoint, SessionInfo};

struct Stack {
    emulator: Emulator,
    upstream: (Server, Arc<UpstreamState>),
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<ShutdownReport>,
}

async fn start(configure: impl FnOnce(&mut ServeOptions)) -> Stack {
    let emulator = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let upstream = spawn_upstream().await;
    let mut options = ServeOptions::new(
        stytch_config(&emulator),
        format!("http://{}", upstream.0.addr),
    );
    configure(&mut options);
    let gateway = Gateway::bind(options).await.unwrap();
    let addr = gateway.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(gateway.run(async move {
        let _ = stopped.await;
    }));
    Stack {
        emulator,
        upstream,
        addr,
        stop: Some(stop),
        done,
    }
}

/// The Stytch configuration pointing at `emulator`.
fn stytch_config(emulator: &Emulator) -> tower_stytch::StytchConfig {
    tower_stytch::StytchConfig::builder(emulator.project_id(), emulator.secret())
        .base_url(emulator.base_url())
        .build()
        .unwrap()
}

async fn call(addr: SocketAddr, method: &str, path: &str, token: &str) -> Response<Bytes> {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .body(full_body(Bytes::new()))
        .unwrap();
    let response = client().request(req).await.unwrap();
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

/// A stack configured like `--logout-path /bye --admin-prefix /ops --public /assets/
/// --auth-only-path /auth`, with an admin and a plain member (bob) of one organization,
/// each with a session.
async fn start_with_flags() -> (Stack, SessionInfo, SessionInfo) {
    start_with_members(|o| {
        o.logout_path = Some("/bye".to_owned());
        o.admin_prefix = Some("/ops".to_owned());
        o.public = vec!["/assets/".to_owned()];
        o.auth_only_path = Some("/auth".to_owned());
    })
    .await
}

/// A stack configured by `configure`, with an admin and a plain member (bob) of one
/// organization, each with a session.
async fn start_with_members(
    configure: impl FnOnce(&mut ServeOptions),
) -> (Stack, SessionInfo, SessionInfo) {
    let stack = start(configure).await;
    let org = stack.emulator.create_organization("Acme", "acme");
    let admin = stack
        .emulator
        .create_member(&org, "a@acme.test", &["stytch_admin"]);
    let bob = stack.emulator.create_member(&org, "b@acme.test", &[]);
    let admin = stack.emulator.create_session(&admin);
    let bob = stack.emulator.create_session(&bob);
    (stack, admin, bob)
}

#[tokio::test]
async fn identity_reaches_the_upstream() {
    // If this broke, the upstream would not know who is calling.
    bounded(async {
        let (stack, _admin, bob) = start_with_flags().await;
        let r = call(stack.addr, "GET", "/app", bob.session_token.expose_secret()).await;
        assert_eq!(r.status(), StatusCode::OK);
        let seen = stack
            .upstream
            .1
            .seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap();
        assert_eq!(seen["x-stytch-member-id"], bob.member_id.as_str());
        assert_eq!(
            seen["x-stytch-member-session-id"],
            bob.member_session_id.as_str()
        );
    })
    .await;
}

#[tokio::test]
async fn the_public_flag_opens_its_prefix_and_nothing_else() {
    // If this broke, --public would be ignored, or would open the whole app.
    bounded(async {
        let (stack, _, _) = start_with_flags().await;
        assert_eq!(
            get(stack.addr, "/assets/app.css", &[]).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            get(stack.addr, "/app", &[]).await.status(),
            StatusCode::UNAUTHORIZED
        );
    })
    .await;
}

#[tokio::test]
async fn the_auth_only_path_answers_with_the_identity() {
    // If this broke, --auth-only-path would be ignored (nginx auth_request would fail).
    bounded(async {
        let (stack, _, bob) = start_with_flags().await;
        let refused = call(stack.addr, "GET", "/auth", "junk-credential-0123456789").await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        // No body, so nginx keeps the connection (see `auth_only`); the reason stays.
        assert!(refused.body().is_empty(), "{:?}", refused.body());
        assert_eq!(refused.headers()["content-length"], "0");
        assert!(
            refused.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
        let elsewhere = call(stack.addr, "GET", "/app", "junk-credential-0123456789").await;
        assert_eq!(elsewhere.status(), StatusCode::UNAUTHORIZED);
        assert!(!elsewhere.body().is_empty(), "other paths keep the JSON");
        let auth = call(
            stack.addr,
            "GET",
            "/auth",
            bob.session_token.expose_secret(),
        )
        .await;
        assert_eq!(auth.status(), StatusCode::OK);
        assert_eq!(auth.headers()["x-stytch-member-id"], bob.member_id.as_str());
    })
    .await;
}

#[tokio::test]
async fn the_admin_prefix_flag_moves_the_admin_routes() {
    // If this broke, --admin-prefix would be ignored.
    bounded(async {
        let (stack, admin, bob) = start_with_flags().await;
        let bob_token = bob.session_token.expose_secret();
        let admin_token = admin.session_token.expose_secret();
        let revoke = format!("/ops/members/{}/revoke-sessions", bob.member_id);
        assert!(
            call(stack.addr, "POST", &revoke, admin_token)
                .await
                .status()
                .is_success()
        );
        assert_eq!(
            call(stack.addr, "GET", "/app", bob_token).await.status(),
            StatusCode::UNAUTHORIZED
        );
    })
    .await;
}

#[tokio::test]
async fn the_logout_path_flag_moves_logout() {
    // If this broke, --logout-path would be ignored.
    bounded(async {
        let (stack, admin, _) = start_with_flags().await;
        let admin_token = admin.session_token.expose_secret();
        assert!(
            call(stack.addr, "POST", "/bye", admin_token)
                .await
                .status()
                .is_success()
        );
        assert_eq!(
            call(stack.addr, "GET", "/app", admin_token).await.status(),
            StatusCode::UNAUTHORIZED
        );
    })
    .await;
}

#[tokio::test]
async fn probes_answer_and_the_shutdown_is_clean() {
    // If this broke, orchestrators would see a dead gateway, or shutdown would drop work.
    bounded(async {
        let (stack, _, _) = start_with_flags().await;
        assert_eq!(
            get(stack.addr, "/readyz", &[]).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            get(stack.addr, "/healthz", &[]).await.status(),
            StatusCode::OK
        );
        let mut stack = stack;
        let _ = stack.stop.take().unwrap().send(());
        let report = stack.done.await.unwrap();
        assert!(report.is_clean(), "{report:?}");
    })
    .await;
}

#[tokio::test]
async fn forced_signout_hook_signs_the_member_out() {
    // If this broke, deleting a member in the upstream app would leave their sessions alive.
    bounded(async {
        let (stack, admin, bob) = start_with_members(|o| {
            o.forced_signout = vec!["DELETE /api/members/{member_id}".to_owned()];
            o.no_jwt = true;
        })
        .await;
        let bob_token = bob.session_token.expose_secret();
        assert_eq!(
            call(stack.addr, "GET", "/app", bob_token).await.status(),
            StatusCode::OK
        );
        let path = format!("/api/members/{}", bob.member_id);
        let r = call(
            stack.addr,
            "DELETE",
            &path,
            admin.session_token.expose_secret(),
        )
        .await;
        assert!(r.status().is_success(), "{:?}", r.status());
        assert_eq!(
            call(stack.addr, "GET", "/app", bob_token).await.status(),
            StatusCode::UNAUTHORIZED
        );
    })
    .await;
}

#[tokio::test]
async fn readyz_is_503_when_stytch_is_unreachable() {
    // If this broke, /readyz would report ready while no request can be authenticated.
    bounded(async {
        let stack = start(|o| o.readiness_max_age = Duration::ZERO).await;
        assert_eq!(
            get(stack.addr, "/readyz", &[]).await.status(),
            StatusCode::OK
        );
        let Stack { emulator, addr, .. } = stack;
        emulator.shutdown().await;
        let r = get(addr, "/readyz", &[]).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get(addr, "/healthz", &[]).await.status(), StatusCode::OK);
    })
    .await;
}

/// The start-up log line's readiness check has reached the emulator (its one JWKS call
/// without local JWT verification), so the counts below are the probes' alone.
async fn startup_check_done(emulator: &Emulator) -> usize {
    while emulator.request_count(EmulatorEndpoint::Jwks) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    emulator.request_count(EmulatorEndpoint::Jwks)
}

#[tokio::test]
async fn readyz_probes_within_the_max_age_make_one_stytch_call() {
    // If this broke, every readiness probe (every replica, every few seconds, from every
    // load balancer) would call Stytch: a probe storm would become a Stytch call storm.
    bounded(async {
        let stack = start(|o| {
            o.no_jwt = true;
            o.readiness_max_age = Duration::from_secs(3600);
        })
        .await;
        let before = startup_check_done(&stack.emulator).await;
        for _ in 0..20 {
            let r = get(stack.addr, "/readyz", &[]).await;
            assert_eq!(r.status(), StatusCode::OK);
        }
        let concurrent = (0..20).map(|_| get(stack.addr, "/readyz", &[]));
        for r in futures_util::future::join_all(concurrent).await {
            assert_eq!(r.status(), StatusCode::OK);
        }
        let calls = stack.emulator.request_count(EmulatorEndpoint::Jwks) - before;
        assert_eq!(
            calls, 1,
            "40 probes within the max age made {calls} Stytch calls"
        );
    })
    .await;
}

#[tokio::test]
async fn a_stale_readiness_result_is_checked_again() {
    // If this broke, /readyz would keep answering from its first check forever: a gateway
    // that lost Stytch would stay "ready".
    bounded(async {
        let max_age = Duration::from_millis(200);
        let stack = start(|o| {
            o.no_jwt = true;
            o.readiness_max_age = max_age;
        })
        .await;
        let before = startup_check_done(&stack.emulator).await;
        for round in 1..=3 {
            let r = get(stack.addr, "/readyz", &[]).await;
            assert_eq!(r.status(), StatusCode::OK);
            let calls = stack.emulator.request_count(EmulatorEndpoint::Jwks) - before;
            assert_eq!(calls, round, "probe {round} after the max age");
            tokio::time::sleep(max_age * 2).await;
        }
        // And a stale result follows Stytch's state: gone now, so not ready.
        let Stack { emulator, addr, .. } = stack;
        emulator.shutdown().await;
        tokio::time::sleep(max_age * 2).await;
        let r = get(addr, "/readyz", &[]).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    })
    .await;
}
