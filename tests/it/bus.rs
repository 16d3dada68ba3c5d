//! Several instances sharing revocations through a real `redis-server` (feature `redis`):
//! two layers in one process, each with its own cache and denylist, against one emulator.
//!
//! If these fail, a session logged out or revoked on one instance keeps working on the
//! others (its token for up to a minute, its JWT for up to five), an instance started or
//! reconnected later misses what happened meanwhile, or Redis being down breaks serving.

use std::time::Duration;

use axum::routing::get;
use http::StatusCode;
use stytch_emulator::{EmulatorEndpoint, Fault};
use tower_stytch::{bus::BusState, bus::RedisBus};

use crate::redis_server::RedisServer;
use crate::support::{Served, World, app, eventually, serve};

/// Generous bound for a revocation to reach another instance (the goal is 50 ms).
pub(crate) const PROPAGATION: Duration = Duration::from_secs(2);

pub(crate) fn bus(redis: &RedisServer) -> RedisBus {
    RedisBus::builder(&redis.url())
        .max_backoff(Duration::from_millis(200))
        .build()
        .unwrap()
}

/// An instance: a layer over its own cache and denylist, sharing `redis`, caught up.
pub(crate) async fn instance(w: &World, redis: &RedisServer) -> Served {
    let layer = w.builder().revocation_bus(bus(redis)).build().unwrap();
    let handle = layer.revocation_bus().unwrap().clone();
    handle.ready().await;
    assert!(handle.caught_up(), "the bus did not catch up at startup");
    serve(layer, app()).await
}

/// Waits until `s` answers `want` to `GET /whoami` with `credential`, within `timeout`.
pub(crate) async fn answers(
    s: &Served,
    credential: &str,
    want: StatusCode,
    timeout: Duration,
) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    loop {
        if s.whoami(credential).await == want {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) fn bus_of(s: &Served) -> &tower_stytch::bus::BusHandle {
    s.layer.revocation_bus().unwrap()
}

#[tokio::test]
async fn logout_on_a_is_refused_on_b_token_and_jwt() {
    // If this broke, a logged-out session would keep working on every other instance: its
    // token until B's cache entry expires, its JWT (verified locally) for five minutes.
    let w = World::new().await;
    let redis = RedisServer::start();
    let (a, b) = (instance(&w, &redis).await, instance(&w, &redis).await);
    let token = w.member.session_token.expose_secret();
    let jwt = w.member.session_jwt.expose_secret();
    assert_eq!(b.whoami(token).await, StatusCode::OK);
    assert_eq!(b.whoami(jwt).await, StatusCode::OK);
    let res = a.post_as("/logout", token).await;
    assert_eq!(res.headers()["x-stytch-logout"], "revoked");
    assert!(answers(&b, token, StatusCode::UNAUTHORIZED, PROPAGATION).await);
    assert!(answers(&b, jwt, StatusCode::UNAUTHORIZED, PROPAGATION).await);
    // Another member is untouched.
    assert_eq!(
        b.whoami(w.member2.session_jwt.expose_secret()).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn jwt_of_a_session_logged_out_by_token_on_a_during_an_authenticate_outage_is_refused_on_b() {
    // If this broke, a logout on A whose token could not be looked up (Stytch's
    // authenticate failing) would be known to B only by the token's hash: A names the
    // session once Stytch answers, but B would ignore that second message about the same
    // revocation, and serve the session's JWT (verified locally) for up to five minutes
    // (found by the soak, #15).
    let w = World::new().await;
    let redis = RedisServer::start();
    let (a, b) = (instance(&w, &redis).await, instance(&w, &redis).await);
    let token = w.member.session_token.expose_secret();
    let jwt = w.member.session_jwt.expose_secret();
    assert_eq!(b.whoami(jwt).await, StatusCode::OK);
    // A's lookup of the (uncached) token fails: three attempts, each a 503.
    w.emulator.inject_fault(
        EmulatorEndpoint::Authenticate,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        3,
    );
    let res = a.post_as("/logout", token).await;
    assert_eq!(res.headers()["x-stytch-logout"], "revoked");
    assert!(answers(&b, jwt, StatusCode::UNAUTHORIZED, PROPAGATION).await);
    assert!(answers(&b, token, StatusCode::UNAUTHORIZED, PROPAGATION).await);
}

#[tokio::test]
async fn logout_on_a_closes_the_sessions_websocket_on_b() {
    // If this broke, a session logged out on one instance would keep its live WebSocket (or
    // stream) open on another: the bus's revocations would not reach live connections. The
    // time from A's logout answer to B's close is printed (`--nocapture`), 20 runs.
    use crate::live::{SESSION_REVOKED, closed_with, connect, live};
    let w = World::new().await;
    let redis = RedisServer::start();
    let a = instance(&w, &redis).await;
    let layer = w.builder().revocation_bus(bus(&redis)).build().unwrap();
    layer.revocation_bus().unwrap().ready().await;
    let b = serve(layer, axum::Router::new().route("/live", get(live))).await;
    let mut times = Vec::new();
    for _ in 0..20 {
        let session = w.emulator.create_session(&w.member.member_id);
        let token = session.session_token.expose_secret();
        let mut socket = connect(b.addr, token).await;
        let res = a.post_as("/logout", token).await;
        let answered = std::time::Instant::now();
        assert_eq!(res.headers()["x-stytch-logout"], "revoked");
        assert_eq!(closed_with(&mut socket).await, Some(SESSION_REVOKED));
        times.push(answered.elapsed());
    }
    times.sort();
    println!(
        "bus → live close after the logout's answer: p50 {:?}, max {:?} (20 runs)",
        times[times.len() / 2],
        times[times.len() - 1]
    );
}

#[tokio::test]
async fn admin_revocation_on_a_is_refused_on_b() {
    // If this broke, an admin's revocation would take effect on the instance that served it
    // only.
    let w = World::new().await;
    let redis = RedisServer::start();
    let (a, b) = (instance(&w, &redis).await, instance(&w, &redis).await);
    let token = w.member2.session_token.expose_secret();
    let jwt = w.member2.session_jwt.expose_secret();
    assert_eq!(b.whoami(token).await, StatusCode::OK);
    assert_eq!(b.whoami(jwt).await, StatusCode::OK);
    let admin = w.admin.session_token.expose_secret();
    assert_eq!(a.whoami(admin).await, StatusCode::OK);
    let path = format!("/admin/members/{}/revoke-sessions", w.member2.member_id);
    assert_eq!(a.post_as(&path, admin).await.status(), StatusCode::OK);
    assert!(answers(&b, token, StatusCode::UNAUTHORIZED, PROPAGATION).await);
    assert!(answers(&b, jwt, StatusCode::UNAUTHORIZED, PROPAGATION).await);
}

#[tokio::test]
async fn an_instance_started_after_a_logout_refuses_its_still_valid_jwt() {
    // If this broke, an instance started (or restarted) after a logout would accept the
    // session's JWT, which verifies locally for five minutes: pub/sub alone loses it.
    let w = World::new().await;
    let redis = RedisServer::start();
    let a = instance(&w, &redis).await;
    let token = w.member.session_token.expose_secret();
    let res = a.post_as("/logout", token).await;
    assert_eq!(res.headers()["x-stytch-logout"], "revoked");
    // Published before B exists.
    assert!(
        eventually(PROPAGATION, || redis
            .integer(&["XLEN", &log_key(&w)])
            .is_some_and(|n| n >= 1))
        .await
    );
    let b = instance(&w, &redis).await;
    assert_eq!(
        b.whoami(w.member.session_jwt.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        b.whoami(w.member2.session_jwt.expose_secret()).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_acknowledged_by_redis_just_before_it_restarted_empty_still_reaches_b() {
    // If this broke, a revocation Redis acknowledged and then lost (a restart without
    // persistence, a failover) before a peer read it would never reach that peer, which
    // would serve the session's JWT for up to five minutes (found by the soak, #15: a member
    // revoked at the instant Redis was killed stayed signed in on the other instance).
    let w = World::new().await;
    let mut redis = RedisServer::start();
    let a = instance(&w, &redis).await;
    let res = a
        .post_as("/logout", w.member.session_token.expose_secret())
        .await;
    assert_eq!(res.headers()["x-stytch-logout"], "revoked");
    assert!(
        eventually(PROPAGATION, || redis
            .integer(&["XLEN", &log_key(&w)])
            .is_some_and(|n| n >= 1))
        .await
    );
    // Redis loses everything before B ever reads it.
    redis.kill();
    redis.restart();
    // A's next write finds the connection lost.
    let res = a
        .post_as("/logout", w.member2.session_token.expose_secret())
        .await;
    assert_eq!(res.headers()["x-stytch-logout"], "revoked");
    let b = instance(&w, &redis).await;
    assert!(
        answers(
            &b,
            w.member.session_jwt.expose_secret(),
            StatusCode::UNAUTHORIZED,
            Duration::from_secs(10)
        )
        .await
    );
    assert!(
        answers(
            &b,
            w.member2.session_jwt.expose_secret(),
            StatusCode::UNAUTHORIZED,
            Duration::from_secs(10)
        )
        .await
    );
}

/// Writes to the log, as an instance that has died since wrote it, its revocation of the
/// member's session (confirmed by Stytch, held ten minutes).
fn revoked_by_a_dead_instance(w: &World, redis: &RedisServer) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let (revoked_at, until) = (now_ms.to_string(), (now_ms + 600_000).to_string());
    let dead = "fedcba9876543210fedcba9876543210";
    let key = log_key(w);
    let applied = [
        "XADD",
        &key,
        "*",
        "v",
        "1",
        "kind",
        "session",
        "from",
        dead,
        "origin",
        dead,
        "rev",
        "1",
        "id",
        &w.member.member_session_id,
        "confirmed",
        "1",
        "until",
        &until,
        "revoked_at",
        &revoked_at,
    ];
    assert!(redis.command(&applied).is_some_and(|r| r.starts_with('$')));
}

#[tokio::test]
async fn logout_survives_redis_restarting_empty_after_the_instance_that_made_it_died() {
    // If this broke, Redis restarted without persistence would take every revocation of the
    // window with it: an instance started afterwards catches up from an empty log and serves
    // the revoked session's JWT (verified locally) for up to five minutes. The instance that
    // made this revocation is gone, and the one still running (B) writes nothing of its
    // own: only B's copy of the window is left.
    let w = World::new().await;
    let mut redis = RedisServer::start();
    let b = instance(&w, &redis).await;
    let jwt = w.member.session_jwt.expose_secret();
    assert_eq!(b.whoami(jwt).await, StatusCode::OK);
    revoked_by_a_dead_instance(&w, &redis);
    assert!(answers(&b, jwt, StatusCode::UNAUTHORIZED, PROPAGATION).await);
    // Redis loses everything. B reconnects, finds the epoch key changed, and writes what it
    // knows of the window again.
    redis.kill();
    redis.restart();
    let c = instance(&w, &redis).await;
    assert!(answers(&c, jwt, StatusCode::UNAUTHORIZED, Duration::from_secs(10)).await);
    // Only that session: another member's JWT is served on C.
    assert_eq!(
        c.whoami(w.member2.session_jwt.expose_secret()).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_survives_redis_coming_back_from_an_older_snapshot() {
    // If this broke, Redis restarted from a snapshot taken before a revocation (RDB saved
    // every few minutes, then a crash) would come back with the same epoch key and a log
    // without that revocation: an instance started afterwards would serve the session's JWT.
    let w = World::new().await;
    let mut redis = RedisServer::start();
    let b = instance(&w, &redis).await;
    let jwt = w.member.session_jwt.expose_secret();
    assert_eq!(b.whoami(jwt).await, StatusCode::OK);
    // The snapshot: B's epoch key, a marker, and a log whose newest entry is older than the
    // revocation (an `undo` of a revocation nobody here knows: ignored).
    let key = log_key(&w);
    let dead = "fedcba9876543210fedcba9876543210";
    let older = [
        "XADD", &key, "*", "v", "1", "kind", "undo", "from", dead, "origin", dead, "rev", "99",
    ];
    assert!(redis.command(&older).is_some_and(|r| r.starts_with('$')));
    assert_eq!(
        redis.command(&["SET", "snapshot-marker", "1"]).as_deref(),
        Some("+OK")
    );
    assert_eq!(redis.command(&["SAVE"]).as_deref(), Some("+OK"));
    revoked_by_a_dead_instance(&w, &redis);
    assert!(answers(&b, jwt, StatusCode::UNAUTHORIZED, PROPAGATION).await);
    // A crash; Redis loads the snapshot. B reconnects, finds the log's newest entry older
    // than what it read, and writes what it knows of the window again.
    redis.kill();
    redis.restart();
    assert_eq!(
        redis.integer(&["EXISTS", "snapshot-marker"]),
        Some(1),
        "Redis came back empty, not from the snapshot: the other test's case"
    );
    let c = instance(&w, &redis).await;
    assert!(answers(&c, jwt, StatusCode::UNAUTHORIZED, Duration::from_secs(10)).await);
}

pub(crate) fn log_key(w: &World) -> String {
    format!("{{tower-stytch:{}}}:revocations", w.emulator.project_id())
}

#[tokio::test]
async fn redis_down_both_keep_serving_and_a_logout_meanwhile_reaches_b_after() {
    // If this broke, Redis going down would break serving (Redis in the request path), or a
    // logout made during the outage would never reach the other instances.
    let w = World::new().await;
    let mut redis = RedisServer::start();
    let (a, b) = (instance(&w, &redis).await, instance(&w, &redis).await);
    let jwt = w.member.session_jwt.expose_secret();
    let token = w.member.session_token.expose_secret();
    assert_eq!(b.whoami(jwt).await, StatusCode::OK);
    redis.kill();
    assert!(
        eventually(PROPAGATION, || bus_of(&a).state() == BusState::Down
            && bus_of(&b).state() == BusState::Down)
        .await
    );
    // Both serve, and stay ready.
    for s in [&a, &b] {
        assert_eq!(
            s.whoami(w.member2.session_jwt.expose_secret()).await,
            StatusCode::OK
        );
        assert!(bus_of(s).is_ready());
    }
    let res = a.post_as("/logout", token).await;
    assert_eq!(res.headers()["x-stytch-logout"], "revoked");
    assert_eq!(a.whoami(jwt).await, StatusCode::UNAUTHORIZED);
    redis.restart();
    assert!(answers(&b, jwt, StatusCode::UNAUTHORIZED, Duration::from_secs(10)).await);
    assert!(eventually(PROPAGATION, || bus_of(&b).state() == BusState::Live).await);
}

#[tokio::test]
async fn a_malformed_message_is_dropped_and_the_bus_goes_on() {
    // If this broke, one garbled or hostile entry in Redis would stop an instance from
    // applying every revocation after it (or crash it).
    let w = World::new().await;
    let redis = RedisServer::start();
    let (a, b) = (instance(&w, &redis).await, instance(&w, &redis).await);
    let key = log_key(&w);
    for junk in [
        vec!["v", "1", "kind", "session", "id", "not an id"],
        vec!["v", "1"],
        vec!["garbage", "\u{fffd}"],
    ] {
        let mut args = vec!["XADD", key.as_str(), "*"];
        args.extend(junk);
        assert!(redis.command(&args).is_some_and(|r| r.starts_with('$')));
    }
    let jwt = w.member.session_jwt.expose_secret();
    assert_eq!(b.whoami(jwt).await, StatusCode::OK);
    a.post_as("/logout", w.member.session_token.expose_secret())
        .await;
    assert!(answers(&b, jwt, StatusCode::UNAUTHORIZED, PROPAGATION).await);
    // A third instance catching up over the junk is fine too.
    let c = instance(&w, &redis).await;
    assert_eq!(c.whoami(jwt).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_pending_on_a_silent_instance_is_completed_by_another() {
    // If this broke, a revocation Stytch has not confirmed would die with the instance that
    // took it: Stytch would never end the session. A runs on a runtime of its own, shut down
    // abruptly, as a process dies (the gateway test kills a real process with SIGKILL).
    let w = World::new().await;
    let redis = RedisServer::start();
    let bus = |redis: &RedisServer| {
        RedisBus::builder(&redis.url())
            .lease(Duration::from_millis(900))
            .max_backoff(Duration::from_millis(200))
            .build()
            .unwrap()
    };
    let unavailable = Fault::Status {
        status: 503,
        retry_after: None,
    };
    w.emulator
        .inject_fault(EmulatorEndpoint::Revoke, unavailable, 1000);
    let builder = w.builder().revocation_bus(bus(&redis));
    let session = w.member.member_session_id.clone();
    let (a_runtime, a, outcome) = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (a, outcome) = runtime.block_on(async move {
            let a = builder.build().unwrap();
            a.revocation_bus().unwrap().ready().await;
            let outcome = a.revoker().revoke_session(&session, None).await.unwrap();
            (a, outcome)
        });
        (runtime, a, outcome)
    })
    .await
    .unwrap();
    assert_eq!(outcome.as_str(), "pending");
    let pending_key = format!("{{tower-stytch:{}}}:pending", w.emulator.project_id());
    let pending = || redis.integer(&["XLEN", &pending_key]);
    assert!(eventually(PROPAGATION, || pending() == Some(1)).await);
    // A dies: none of its tasks runs again.
    tokio::task::spawn_blocking(move || a_runtime.shutdown_background())
        .await
        .unwrap();
    drop(a);
    w.emulator.clear_faults();
    assert!(w.emulator.is_session_live(&w.member.member_session_id));
    let b = w.builder().revocation_bus(bus(&redis)).build().unwrap();
    b.revocation_bus().unwrap().ready().await;
    // B refuses it meanwhile (caught up from the pending Stream or the log)…
    let served = serve(b, app()).await;
    assert_eq!(
        served.whoami(w.member.session_jwt.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    // …and completes it at Stytch once A's lease has run out.
    assert!(
        w.ended_at_stytch(&w.member.member_session_id, Duration::from_secs(10))
            .await
    );
    assert!(eventually(PROPAGATION, || pending() == Some(0)).await);
    assert_eq!(served.layer.revoker().pending(), 0);
}

#[tokio::test]
async fn forged_undo_or_confirm_in_redis_cannot_release_a_revocation_made_here() {
    // If this broke, anyone able to write to Redis could make an instance accept again a
    // session it revoked itself (its JWT, verified locally, for the rest of its life), by
    // appending an `undo` (or a `confirm` ending the holds now) naming that revocation.
    let w = World::new().await;
    let redis = RedisServer::start();
    let a = instance(&w, &redis).await;
    let jwt = w.member.session_jwt.expose_secret();
    let res = a
        .post_as("/logout", w.member.session_token.expose_secret())
        .await;
    assert_eq!(res.headers()["x-stytch-logout"], "revoked");
    assert_eq!(a.whoami(jwt).await, StatusCode::UNAUTHORIZED);
    let key = log_key(&w);
    let origin = bus_of(&a).instance_id().to_owned();
    let forger = "0123456789abcdef0123456789abcdef";
    for rev in 1..=4u64 {
        let rev = rev.to_string();
        let undo = [
            "XADD", &key, "*", "v", "1", "kind", "undo", "from", forger, "origin", &origin, "rev",
            &rev,
        ];
        assert!(redis.command(&undo).is_some_and(|r| r.starts_with('$')));
        let confirm = [
            "XADD",
            &key,
            "*",
            "v",
            "1",
            "kind",
            "confirm",
            "from",
            forger,
            "origin",
            &origin,
            "rev",
            &rev,
            "until",
            "1",
            "revoked_at",
            "1",
        ];
        assert!(redis.command(&confirm).is_some_and(|r| r.starts_with('$')));
    }
    // A reads its log: once a later, genuine message has been applied by a peer, the forged
    // ones (written before it) have been read too.
    let b = instance(&w, &redis).await;
    let res = b
        .post_as("/logout", w.member2.session_token.expose_secret())
        .await;
    assert_eq!(res.headers()["x-stytch-logout"], "revoked");
    assert!(
        answers(
            &a,
            w.member2.session_jwt.expose_secret(),
            StatusCode::UNAUTHORIZED,
            PROPAGATION
        )
        .await
    );
    assert_eq!(a.whoami(jwt).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn flush_reports_what_redis_has_not_received_and_waits_for_it() {
    // If this broke, a gateway shutting down would drop the revocations it made while Redis
    // was unreachable without saying so, or exit before writing them once Redis is back.
    let w = World::new().await;
    let mut redis = RedisServer::start();
    let a = instance(&w, &redis).await;
    redis.kill();
    assert!(eventually(PROPAGATION, || bus_of(&a).state() == BusState::Down).await);
    let res = a
        .post_as("/logout", w.member.session_token.expose_secret())
        .await;
    assert_eq!(res.headers()["x-stytch-logout"], "revoked");
    assert!(bus_of(&a).flush(Duration::from_millis(100)).await >= 1);
    redis.restart();
    assert_eq!(bus_of(&a).flush(Duration::from_secs(10)).await, 0);
    // Applied, then confirmed. Redis came back empty: when the instance notices (its epoch
    // key is gone) after writing them, it writes the window again, so each may be there
    // twice (applying a message twice is harmless); never fewer.
    let written = redis.integer(&["XLEN", &log_key(&w)]).unwrap_or(0);
    assert!((2..=4).contains(&written), "{written} messages in the log");
}

#[tokio::test]
async fn redis_unreachable_at_startup_serves_and_turns_ready_after_the_wait() {
    // If this broke, Redis down when instances start would keep them all out of the load
    // balancer (never ready), or stop them from authenticating requests.
    let w = World::new().await;
    let redis = RedisServer::start();
    let url = redis.url();
    drop(redis);
    let bus = RedisBus::builder(&url)
        .startup_wait(Duration::from_secs(1))
        .build()
        .unwrap();
    let layer = w.builder().revocation_bus(bus).build().unwrap();
    let handle = layer.revocation_bus().unwrap().clone();
    assert!(
        !handle.is_ready(),
        "ready before the startup wait without catching up"
    );
    handle.ready().await;
    assert!(handle.is_ready());
    assert!(!handle.caught_up());
    assert_eq!(handle.state(), BusState::Down);
    let s = serve(layer, app()).await;
    let res = s
        .post_as("/logout", w.member.session_token.expose_secret())
        .await;
    assert_eq!(res.headers()["x-stytch-logout"], "revoked");
    assert_eq!(
        s.whoami(w.member.session_jwt.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.whoami(w.member2.session_jwt.expose_secret()).await,
        StatusCode::OK
    );
}
