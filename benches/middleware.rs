//! The request path's cost: a cache hit through the layer against the bare service and
//! against tower-http's static bearer check, and the SHA-256 of the credential every hit
//! computes (its floor); and revoking a member as the cache grows.
//!
//! Everything goes through the public API: the request path against the emulator, the
//! revocations against a stateless stand-in for Stytch (`support::StubStytch`) that makes
//! filling a cache of 100 000 entries through the layer a matter of seconds.
//!
//! ```text
//! cargo bench --bench middleware
//! ```

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use stytch_emulator::{Emulator, EmulatorConfig};
use support::request::{call, client_for, echo};
use support::{StubStytch, member_id, token};
use tower::{Service, ServiceBuilder};
use tower_http::validate_request::ValidateRequestHeaderLayer;
use tower_stytch::config::{CacheConfig, Rule};
use tower_stytch::{StytchAuthLayer, StytchClient};

fn request_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (emulator, token, jwt, layer, layer_nojwt, layer_rule) = rt.block_on(async {
        let emulator = Emulator::start(EmulatorConfig::new()).await.unwrap();
        let org = emulator.create_organization("Bench", "bench");
        let member = emulator.create_member(&org, "bench@bench.test", &["viewer"]);
        let session = emulator.create_session(&member);
        let client = client_for(&emulator);
        let layer = StytchAuthLayer::builder(client.clone()).build().unwrap();
        let layer_nojwt = StytchAuthLayer::builder(client.clone())
            .without_jwt()
            .build()
            .unwrap();
        let layer_rule = StytchAuthLayer::builder(client)
            .without_jwt()
            .authorize(
                "* /api/{*rest}",
                Rule::new().permission("documents", "read"),
            )
            .build()
            .unwrap();
        (
            emulator,
            format!("Bearer {}", session.session_token.expose_secret()),
            format!("Bearer {}", session.session_jwt.expose_secret()),
            layer,
            layer_nojwt,
            layer_rule,
        )
    });

    let mut group = c.benchmark_group("request_path");
    group.measurement_time(Duration::from_secs(5));

    let bare = tower::service_fn(echo);
    group.bench_function("bare_service", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = bare;
            let token = token.clone();
            async move { call(&mut svc, &token).await }
        })
    });

    // The same bare service given the JWT request: building a request with a 1 KB header
    // (validated and copied by `http`) is the bench's own cost, not the layer's, so the JWT
    // hit is compared with this one.
    group.bench_function("bare_service_jwt_request", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = bare;
            let jwt = jwt.clone();
            async move { call(&mut svc, &jwt).await }
        })
    });

    let raw_token = token.trim_start_matches("Bearer ").to_owned();
    // Deprecated upstream as "too basic": it is the static-bearer baseline we compare with.
    #[allow(deprecated)]
    let validate = ServiceBuilder::new()
        .layer(ValidateRequestHeaderLayer::bearer(&raw_token))
        .service(tower::service_fn(echo));
    group.bench_function("tower_http_validate_bearer", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = validate.clone();
            let token = token.clone();
            async move { call(&mut svc, &token).await }
        })
    });

    let stytch = ServiceBuilder::new()
        .layer(layer_nojwt.clone())
        .service(tower::service_fn(echo));
    let mut warm = stytch.clone();
    assert_eq!(rt.block_on(call(&mut warm, &token)), 200);
    group.bench_function("stytch_token_cache_hit", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = stytch.clone();
            let token = token.clone();
            async move { call(&mut svc, &token).await }
        })
    });

    // The same hit on a route with an authorization rule (a permission the member's role
    // grants, by the emulator's policy): what checking it adds to the hit.
    let ruled = ServiceBuilder::new()
        .layer(layer_rule.clone())
        .service(tower::service_fn(echo));
    let mut warm = ruled.clone();
    rt.block_on(async {
        for _ in 0..100 {
            if call(&mut warm, &token).await == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert_eq!(
        rt.block_on(call(&mut warm, &token)),
        200,
        "the policy never loaded"
    );
    group.bench_function("stytch_token_cache_hit_with_rule", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = ruled.clone();
            let token = token.clone();
            async move { call(&mut svc, &token).await }
        })
    });

    let stytch_jwt = ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(echo));
    let mut warm = stytch_jwt.clone();
    assert_eq!(rt.block_on(call(&mut warm, &jwt)), 200);
    group.bench_function("stytch_jwt_cache_hit", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = stytch_jwt.clone();
            let jwt = jwt.clone();
            async move { call(&mut svc, &jwt).await }
        })
    });
    // The floor of a hit: the cache key is the SHA-256 of the whole credential, computed on
    // every request (the cache never holds a credential itself).
    for (name, auth) in [("sha256_of_the_token", &token), ("sha256_of_the_jwt", &jwt)] {
        let raw = auth.trim_start_matches("Bearer ").as_bytes().to_vec();
        group.bench_function(name, |b| {
            b.iter(|| <sha2::Sha256 as sha2::Digest>::digest(std::hint::black_box(&raw)))
        });
    }
    // The floor the token hit is compared with: a bare moka `get` of the token's key, in a
    // cache built as the session cache is (capacity, per-entry expiry, an eviction listener,
    // foldhash, a 32-byte key, a one-`Arc` value).
    let raw = token.trim_start_matches("Bearer ").as_bytes().to_vec();
    let key: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&raw).into();
    let moka = rt.block_on(async {
        let cache: moka::future::Cache<[u8; 32], Arc<u64>, foldhash::fast::RandomState> =
            moka::future::Cache::builder()
                .max_capacity(100_000)
                .expire_after(Minute)
                .eviction_listener(|_key, _value, _cause| {})
                .build_with_hasher(foldhash::fast::RandomState::default());
        cache.insert(key, Arc::new(1)).await;
        cache.run_pending_tasks().await;
        cache
    });
    group.bench_function("moka_get_of_the_key", |b| {
        b.to_async(&rt).iter(|| {
            let moka = &moka;
            async move { moka.get(&key).await }
        })
    });
    group.finish();
    drop(emulator);
}

/// Per-entry expiry, as the session cache has.
struct Minute;

impl moka::Expiry<[u8; 32], Arc<u64>> for Minute {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        _value: &Arc<u64>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(60))
    }
}

/// Authenticates the four credentials of member `m` (two sessions, two credentials each)
/// through the layer, which caches them.
async fn cache_member<S, B>(svc: &mut S, m: u64)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
{
    for n in 0..4 {
        assert_eq!(call(svc, &format!("Bearer {}", token(m, n))).await, 200);
    }
}

fn revoke_member(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("revoke_member");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(3));
    // Filling goes through the layer, one Stytch round trip per entry: 100 000 entries take
    // seconds; a million would take minutes, so the largest cache here is 100 000.
    for size in [1_000u64, 10_000, 100_000] {
        let (stytch, layer, svc) = rt.block_on(async {
            let stytch = StubStytch::start(serde_json::json!({"keys": []})).await;
            let mut cache = CacheConfig::default();
            cache.max_ttl = Duration::from_secs(3600);
            cache.max_capacity = size + 1000;
            let layer = StytchAuthLayer::builder(StytchClient::new(stytch.config()).unwrap())
                .without_jwt()
                .cache(cache)
                .build()
                .unwrap();
            let mut svc = ServiceBuilder::new()
                .layer(layer.clone())
                .service(tower::service_fn(echo));
            for m in 0..size / 4 {
                cache_member(&mut svc, m).await;
            }
            layer.run_pending_tasks().await;
            (stytch, layer, svc)
        });
        let next_member = AtomicU64::new(size / 4);
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.to_async(&rt).iter_custom(|iters| {
                let (layer, mut svc) = (layer.clone(), svc.clone());
                let first = next_member.fetch_add(iters, Ordering::Relaxed);
                async move {
                    // Only the revocation is timed: Stytch's answer, then evicting the
                    // member's 4 entries and denylisting them. Caching a fresh member first
                    // keeps the cache at `size` entries.
                    let revoker = layer.revoker();
                    let mut timed = Duration::ZERO;
                    for m in first..first + iters {
                        cache_member(&mut svc, m).await;
                        let start = std::time::Instant::now();
                        revoker.revoke_member(&member_id(m), None).await.unwrap();
                        timed += start.elapsed();
                    }
                    timed
                }
            })
        });
        drop(stytch);
    }
    group.finish();
}

/// 10 000 concurrent requests carrying one cold (never seen) session token: the time to
/// serve them all, one Stytch round trip (the emulator on loopback) for the lot.
fn coalescing(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (emulator, member, svc) = rt.block_on(async {
        let emulator = Emulator::start(EmulatorConfig::new()).await.unwrap();
        let org = emulator.create_organization("Bench", "bench");
        let member = emulator.create_member(&org, "bench@bench.test", &[]);
        let client = client_for(&emulator);
        let layer = StytchAuthLayer::builder(client)
            .without_jwt()
            .build()
            .unwrap();
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service(tower::service_fn(echo));
        (emulator, member, svc)
    });
    let mut group = c.benchmark_group("coalescing");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("10000_requests_one_cold_token", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let tokens: Vec<String> = (0..iters)
                .map(|_| {
                    let session = emulator.create_session(&member);
                    format!("Bearer {}", session.session_token.expose_secret())
                })
                .collect();
            let svc = svc.clone();
            async move {
                let mut timed = Duration::ZERO;
                for token in tokens {
                    let start = std::time::Instant::now();
                    let mut tasks = tokio::task::JoinSet::new();
                    for _ in 0..10_000 {
                        let (mut svc, token) = (svc.clone(), token.clone());
                        tasks.spawn(async move { call(&mut svc, &token).await });
                    }
                    while let Some(status) = tasks.join_next().await {
                        assert_eq!(status.unwrap(), 200);
                    }
                    timed += start.elapsed();
                }
                timed
            }
        })
    });
    group.finish();
}

criterion_group!(benches, request_path, revoke_member, coalescing);
criterion_main!(benches);
