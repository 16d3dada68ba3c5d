//! The request path's cost: a cache hit through the layer against the bare service and
//! against tower-http's static bearer check; and member eviction as the cache grows.
//!
//! ```text
//! cargo bench --bench middleware
//! ```

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use stytch_emulator::{Emulator, EmulatorConfig};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::validate_request::ValidateRequestHeaderLayer;
use tower_stytch::{StytchAuthLayer, StytchClient, StytchConfig};

async fn echo(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

fn request(auth: &str) -> Request<Full<Bytes>> {
    Request::get("/api/items")
        .header("authorization", auth)
        .header("cookie", "theme=dark; lang=en")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn call<S, B>(svc: &mut S, auth: &str) -> u16
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
{
    svc.ready()
        .await
        .unwrap()
        .call(request(auth))
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn request_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (emulator, token, jwt, layer, layer_nojwt) = rt.block_on(async {
        let emulator = Emulator::start(EmulatorConfig::new()).await.unwrap();
        let org = emulator.create_organization("Bench", "bench");
        let member = emulator.create_member(&org, "bench@bench.test", &[]);
        let session = emulator.create_session(&member);
        let client = StytchClient::new(
            StytchConfig::builder(emulator.project_id(), emulator.secret())
                .base_url(emulator.base_url())
                .build()
                .unwrap(),
        )
        .unwrap();
        let layer = StytchAuthLayer::builder(client.clone()).build().unwrap();
        let layer_nojwt = StytchAuthLayer::builder(client)
            .without_jwt()
            .build()
            .unwrap();
        (
            emulator,
            format!("Bearer {}", session.session_token.expose_secret()),
            format!("Bearer {}", session.session_jwt.expose_secret()),
            layer,
            layer_nojwt,
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
    group.finish();
    drop(emulator);
}

fn eviction(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("evict_member");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(3));
    for size in [10_000u64, 100_000, 1_000_000] {
        let cache = rt.block_on(async {
            let cache = tower_stytch::__bench::Cache::new(size + 1000);
            // 4 entries per member: a token and a JWT for two sessions.
            cache.populate(size / 4, 4).await;
            cache
        });
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.to_async(&rt).iter_custom(|iters| {
                let cache = cache.clone();
                async move {
                    // Only the eviction is timed; putting the member's 4 entries back is not.
                    let mut timed = Duration::ZERO;
                    for i in 0..iters {
                        let member = (i * 7919) % (size / 4);
                        cache.restore_member(member, 4).await;
                        let start = std::time::Instant::now();
                        let evicted = cache.evict_member(member).await;
                        timed += start.elapsed();
                        assert_eq!(evicted, 4);
                    }
                    timed
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, request_path, eviction);
criterion_main!(benches);
