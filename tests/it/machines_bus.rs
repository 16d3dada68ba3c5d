//! M2M client cut-offs shared between instances through a real `redis-server`: two layers in
//! one process, each with its own machines cache, against one emulator.
//!
//! If these fail, a compromised M2M client cut off on one instance keeps working on the
//! others for the hour its tokens live, an instance restarted after the cut-off serves them
//! again, or a cut-off made while Redis was down never reaches the other instances.

use std::time::Duration;

use http::StatusCode;
use tower_stytch::bus::RedisBus;
use tower_stytch::revoke::AtStytch;

use crate::machines::{app, get_as, machine, rules};
use crate::redis_server::RedisServer;
use crate::support::{Served, World, serve};

/// Generous bound for a cut-off to reach another instance (the bus's goal is 50 ms).
const PROPAGATION: Duration = Duration::from_secs(2);

/// An instance admitting machines on `/api/reports`, sharing `redis`, caught up.
async fn instance(w: &World, redis: &RedisServer) -> Served {
    let bus = RedisBus::builder(&redis.url())
        .max_backoff(Duration::from_millis(200))
        .build()
        .unwrap();
    let layer = rules(w.builder()).revocation_bus(bus).build().unwrap();
    let handle = layer.revocation_bus().unwrap().clone();
    handle.ready().await;
    assert!(handle.caught_up(), "the bus did not catch up at startup");
    serve(layer, app()).await
}

/// Waits until `s` answers `want` to the machine route with `token`, within `timeout`.
async fn answers(s: &Served, token: &str, want: StatusCode, timeout: Duration) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    loop {
        if get_as(s, "/api/reports", token).await.0 == want {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn log_key(w: &World) -> String {
    format!("{{tower-stytch:{}}}:revocations", w.emulator.project_id())
}

#[tokio::test]
async fn a_client_cut_off_on_a_is_refused_on_b_and_holds_after_both_restart() {
    // If this broke, a leaked client's tokens would be refused only where the cut-off was
    // made, or served again by instances restarted after the log's window (a few minutes)
    // has passed, for the rest of the hour the tokens live.
    let w = World::new().await;
    let redis = RedisServer::start();
    let (a, b) = (instance(&w, &redis).await, instance(&w, &redis).await);
    let (leaked, _, token) = machine(&w, &["read:reports"]);
    let (_, _, other) = machine(&w, &["read:reports"]);
    assert_eq!(get_as(&b, "/api/reports", &token).await.0, StatusCode::OK);
    a.layer
        .revoker()
        .revoke_client(&leaked, AtStytch::Nothing)
        .await
        .unwrap();
    assert_eq!(
        get_as(&a, "/api/reports", &token).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(answers(&b, &token, StatusCode::UNAUTHORIZED, PROPAGATION).await);
    // Another client, and a client created afterwards, still work on both.
    let (_, _, fresh) = machine(&w, &["read:reports"]);
    for s in [&a, &b] {
        assert_eq!(get_as(s, "/api/reports", &other).await.0, StatusCode::OK);
        assert_eq!(get_as(s, "/api/reports", &fresh).await.0, StatusCode::OK);
    }
    // Both instances stop; by the time they are back the log's window has passed (trimmed
    // here to nothing, as it is once the window is over), while the token still lives.
    a.stop().await;
    b.stop().await;
    assert!(
        redis
            .command(&["XTRIM", &log_key(&w), "MAXLEN", "0"])
            .is_some()
    );
    let (a, b) = (instance(&w, &redis).await, instance(&w, &redis).await);
    for s in [&a, &b] {
        assert_eq!(
            get_as(s, "/api/reports", &token).await.0,
            StatusCode::UNAUTHORIZED,
            "the cut-off did not survive the restart"
        );
        assert_eq!(get_as(s, "/api/reports", &other).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_client_cut_off_while_redis_is_down_reaches_b_when_it_is_back() {
    // If this broke, a cut-off made during a Redis outage would stay on the instance that
    // made it: the others would serve the leaked client's tokens.
    let w = World::new().await;
    let mut redis = RedisServer::start();
    let (a, b) = (instance(&w, &redis).await, instance(&w, &redis).await);
    let (leaked, _, token) = machine(&w, &["read:reports"]);
    assert_eq!(get_as(&b, "/api/reports", &token).await.0, StatusCode::OK);
    redis.kill();
    a.layer
        .revoker()
        .revoke_client(&leaked, AtStytch::Nothing)
        .await
        .unwrap();
    assert_eq!(
        get_as(&a, "/api/reports", &token).await.0,
        StatusCode::UNAUTHORIZED
    );
    // B has not heard of it: Redis is down.
    assert_eq!(get_as(&b, "/api/reports", &token).await.0, StatusCode::OK);
    redis.restart();
    assert!(
        answers(
            &b,
            &token,
            StatusCode::UNAUTHORIZED,
            Duration::from_secs(10)
        )
        .await
    );
    // And an instance started now finds it in Redis.
    let c = instance(&w, &redis).await;
    assert_eq!(
        get_as(&c, "/api/reports", &token).await.0,
        StatusCode::UNAUTHORIZED
    );
}
