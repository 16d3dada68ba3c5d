//! Propagation of revocations between two instances through a real `redis-server`: instance
//! A revokes a session (`Revoker::revoke_session`, Stytch being the emulator); from the moment
//! A's call returns (the revoking response), instance B is asked for the session's JWT again
//! and again until it refuses it. 1 000 revocations, one at a time; prints p50 / p99 / max.
//!
//! A applies a revocation it can verify (here: the project's own) before Stytch answers, and
//! publishes it then, so B often refuses the session before A's call returns; the second
//! line, from the start of A's call, bounds the bus's own latency whatever that overlap.
//!
//! Both instances run in this process (each with its own cache, denylist and Redis
//! connections), so the figures are the bus's: A's write, Redis, B's blocked read, B's apply.
//!
//! ```text
//! cargo bench --bench bus --features redis
//! ```

#[path = "../tests/it/redis_server.rs"]
mod redis_server;
mod support;

use std::time::{Duration, Instant};

use stytch_emulator::{Emulator, EmulatorConfig};
use support::request::{call, client_for, echo};
use tower::Layer;
use tower_stytch::{StytchAuthLayer, bus::RedisBus};

use redis_server::RedisServer;

const REVOCATIONS: usize = 1_000;
/// A refusal slower than this is a failure (the goal is 50 ms at p99).
const GIVE_UP: Duration = Duration::from_secs(1);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let redis = RedisServer::start();
    let emulator = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let org = emulator.create_organization("Acme", "acme");
    let member = emulator.create_member(&org, "member@acme.test", &[]);
    let client = client_for(&emulator);
    let instance = || {
        let bus = RedisBus::new(&redis.url()).unwrap();
        StytchAuthLayer::builder(client.clone())
            .revocation_bus(bus)
            .build()
            .unwrap()
    };
    let (a, b) = (instance(), instance());
    for layer in [&a, &b] {
        let bus = layer.revocation_bus().unwrap();
        bus.ready().await;
        assert!(bus.caught_up(), "the bus did not connect");
    }
    let mut svc_b = b.layer(tower::service_fn(echo));
    let mut samples = Vec::with_capacity(REVOCATIONS);
    let mut from_start = Vec::with_capacity(REVOCATIONS);
    for _ in 0..REVOCATIONS {
        let session = emulator.create_session(&member);
        let auth = format!("Bearer {}", session.session_jwt.expose_secret());
        assert_eq!(call(&mut svc_b, &auth).await, 200, "B must accept it first");
        let started = Instant::now();
        a.revoker()
            .revoke_session(&session.member_session_id, None)
            .await
            .unwrap();
        let responded = Instant::now();
        while call(&mut svc_b, &auth).await != 401 {
            assert!(responded.elapsed() < GIVE_UP, "B never refused the session");
            tokio::task::yield_now().await;
        }
        samples.push(responded.elapsed());
        from_start.push(started.elapsed());
    }
    samples.sort();
    from_start.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "propagation A → B over {REVOCATIONS} revocations (revoking response → refusal on B): \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, mean {:.2} ms",
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.99)),
        ms(samples[samples.len() - 1]),
        ms(mean),
    );
    println!(
        "  from the start of the revoking call (includes Stytch's answer to A): \
         p50 {:.2} ms, p99 {:.2} ms",
        ms(percentile(&from_start, 0.50)),
        ms(percentile(&from_start, 0.99)),
    );
    let already = samples
        .iter()
        .filter(|d| **d < Duration::from_micros(100))
        .count();
    println!("  refused by B already at the first request after the response: {already}");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
