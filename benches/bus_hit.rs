//! What Redis and webhooks add to a cache hit: the same request (`GET /api/items`, the
//! credential in `Authorization`, already cached) through a layer with neither and through a
//! layer with both, side by side in one criterion group, for an opaque token and for a
//! session JWT.
//!
//! "Both" is a layer as a multi-instance deployment runs it: a [`RedisBus`] connected to a
//! real `redis-server` (started here on a free loopback port) and caught up, a peer instance
//! on the same bus that has revoked 2 000 other sessions (so the denylist holds what a busy
//! bus leaves in it), and a Stytch webhook route configured. The bus is read by its own
//! task; a cache hit consults only the local cache and denylist, which is what this shows.
//!
//! ```text
//! cargo bench --features jwt,redis --bench bus_hit
//! ```
//!
//! The figure is the difference `with_bus_and_webhook` − `no_bus` for each credential (and
//! each against `bare_service`, the inner service alone).

#[path = "../tests/it/redis_server.rs"]
mod redis_server;
mod support;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use stytch_emulator::{Emulator, EmulatorConfig};
use support::request::{call, client_for, echo};
use tower::Layer;
use tower_stytch::{StytchAuthLayer, bus::RedisBus, webhook::WebhookSecrets};

use redis_server::RedisServer;

/// Sessions the peer revokes before timing.
const PEER_REVOCATIONS: usize = 2_000;

fn bus_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let redis = RedisServer::start();
    let (emulator, token, jwt, plain, with_bus, _peer) = rt.block_on(async {
        let emulator = Emulator::start(EmulatorConfig::new()).await.unwrap();
        let org = emulator.create_organization("Bench", "bench");
        let member = emulator.create_member(&org, "bench@bench.test", &[]);
        let session = emulator.create_session(&member);
        let client = client_for(&emulator);
        let plain = StytchAuthLayer::builder(client.clone()).build().unwrap();
        let secrets = WebhookSecrets::parse(emulator.webhook_secret().expose_secret()).unwrap();
        let with_bus = StytchAuthLayer::builder(client.clone())
            .revocation_bus(RedisBus::new(&redis.url()).unwrap())
            .webhook("/webhooks/stytch", secrets)
            .build()
            .unwrap();
        let peer = StytchAuthLayer::builder(client)
            .revocation_bus(RedisBus::new(&redis.url()).unwrap())
            .build()
            .unwrap();
        for layer in [&with_bus, &peer] {
            let bus = layer.revocation_bus().unwrap();
            bus.ready().await;
            assert!(bus.caught_up(), "the bus did not connect");
        }
        // Other members' sessions, revoked by the peer: they reach `with_bus` over Redis.
        let others = emulator.create_member(&org, "others@bench.test", &[]);
        let mut last = None;
        for _ in 0..PEER_REVOCATIONS {
            let other = emulator.create_session(&others);
            peer.revoker()
                .revoke_session(&other.member_session_id, None)
                .await
                .unwrap();
            last = Some(other);
        }
        // The last one's JWT still verifies locally: `with_bus` refuses it only once the
        // peer's revocations have arrived over Redis.
        let last = format!("Bearer {}", last.unwrap().session_jwt.expose_secret());
        let mut svc = with_bus.layer(tower::service_fn(echo));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while call(&mut svc, &last).await != 401 {
            assert!(
                std::time::Instant::now() < deadline,
                "the peer's revocations never arrived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (
            emulator,
            format!("Bearer {}", session.session_token.expose_secret()),
            format!("Bearer {}", session.session_jwt.expose_secret()),
            plain,
            with_bus,
            peer,
        )
    });

    let mut group = c.benchmark_group("bus_hit");
    group.measurement_time(Duration::from_secs(5));
    let bare = tower::service_fn(echo);
    group.bench_function("bare_service", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = bare;
            let token = token.clone();
            async move { call(&mut svc, &token).await }
        })
    });
    for (name, auth) in [("token", &token), ("jwt", &jwt)] {
        for (variant, layer) in [("no_bus", &plain), ("with_bus_and_webhook", &with_bus)] {
            let svc = layer.layer(tower::service_fn(echo));
            let mut warm = svc.clone();
            assert_eq!(rt.block_on(call(&mut warm, auth)), 200);
            group.bench_function(format!("{name}_cache_hit_{variant}"), |b| {
                b.to_async(&rt).iter(|| {
                    let mut svc = svc.clone();
                    let auth = auth.clone();
                    async move { call(&mut svc, &auth).await }
                })
            });
        }
    }
    group.finish();
    let bus = with_bus.revocation_bus().unwrap();
    assert!(
        bus.caught_up(),
        "the bus fell behind or disconnected while timing"
    );
    drop(emulator);
}

criterion_group!(benches, bus_hit);
criterion_main!(benches);
