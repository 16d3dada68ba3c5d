//! A fixed number of cache hits through the layer, for instruction counts under callgrind
//! (`benches/callgrind-hit.sh`): instructions are the same run after run whatever the
//! machine is doing, so two builds compare exactly where timings on a shared machine do not.
//!
//! ```text
//! hit_instructions SCENARIO N
//! ```
//!
//! SCENARIO: `bare` (the bare service, the token's request), `bare-jwt` (the bare service, the
//! JWT's request), `token`, `jwt`, `token-rule` (cache hits through the layer), and the
//! floors a hit is compared with: `moka` (a bare moka `get` of the token's key, the cache
//! built as the session cache is), `sha-token` and `sha-jwt` (the SHA-256 of the credential).
//!
//! Runs `N` requests of the scenario on a current-thread runtime after one warm-up request
//! (which fills the cache and, for `token-rule`, loads the RBAC policy). The script runs it
//! with `N` and with 0 and divides the difference by `N`: the cost of one request.

mod support;

use std::future::Future as _;
use std::time::Duration;

use stytch_emulator::{Emulator, EmulatorConfig};
use support::request::{call, client_for, echo};
use tower::ServiceBuilder;
use tower_stytch::StytchAuthLayer;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let scenario = args.next().unwrap_or_else(|| "token".to_owned());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    // The emulator runs on a runtime of its own (its own thread): only the layer's work is
    // on the measured one.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (emulator, session) = server.block_on(async {
        let emulator = Emulator::start(EmulatorConfig::new()).await.unwrap();
        let org = emulator.create_organization("Bench", "bench");
        let member = emulator.create_member(&org, "bench@bench.test", &["viewer"]);
        let session = emulator.create_session(&member);
        (emulator, session)
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = format!("Bearer {}", session.session_token.expose_secret());
    let jwt = format!("Bearer {}", session.session_jwt.expose_secret());
    rt.block_on(async {
        let client = client_for(&emulator);
        let (layer, auth) = match scenario.as_str() {
            "bare" => {
                let mut svc = tower::service_fn(echo);
                measured_requests(&mut svc, &token, n);
                return;
            }
            "bare-jwt" => {
                let mut svc = tower::service_fn(echo);
                measured_requests(&mut svc, &jwt, n);
                return;
            }
            "moka" => {
                moka_floor(&token, n).await;
                return;
            }
            "sha-token" => {
                measured_requests_sha(&token, n);
                return;
            }
            "sha-jwt" => {
                measured_requests_sha(&jwt, n);
                return;
            }
            "token" => (
                StytchAuthLayer::builder(client)
                    .without_jwt()
                    .build()
                    .unwrap(),
                &token,
            ),
            "jwt" => (StytchAuthLayer::builder(client).build().unwrap(), &jwt),
            // rule-scenario-start
            "token-rule" => (
                StytchAuthLayer::builder(client)
                    .without_jwt()
                    .authorize(
                        "* /api/{*rest}",
                        tower_stytch::config::Rule::new().permission("documents", "read"),
                    )
                    .build()
                    .unwrap(),
                &token,
            ),
            // rule-scenario-end
            other => panic!("unknown scenario {other}"),
        };
        let mut svc = ServiceBuilder::new()
            .layer(layer)
            .service(tower::service_fn(echo));
        // Warm: the cache filled, the policy loaded.
        for _ in 0..50 {
            if call(&mut svc, auth).await == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            call(&mut svc, auth).await,
            200,
            "the warm-up request failed"
        );
        measured_requests(&mut svc, auth, n);
    });
    drop(emulator);
}

/// The measured loop: the script counts instructions inside this function only
/// (`--toggle-collect`), so setup, the emulator's thread and background tasks do not count.
/// A cache hit completes without waiting: each request's future is polled once, and must be
/// ready (else the measure would include a lookup, and it stops).
#[inline(never)]
fn measured_requests<S, B>(svc: &mut S, auth: &str, n: usize)
where
    S: tower::Service<
            http::Request<http_body_util::Full<bytes::Bytes>>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        >,
{
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..n {
        let mut fut = std::pin::pin!(call(svc, auth));
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(status) => assert_eq!(std::hint::black_box(status), 200),
            std::task::Poll::Pending => panic!("not a cache hit: the request waited"),
        }
    }
}

/// The key of the credential in `auth` (`Bearer <credential>`): its SHA-256.
fn key_of(auth: &str) -> [u8; 32] {
    let raw = auth.trim_start_matches("Bearer ").as_bytes();
    <sha2::Sha256 as sha2::Digest>::digest(raw).into()
}

/// Per-entry expiry, as the session cache has (a timer-wheel node per entry).
struct Minute;

impl moka::Expiry<[u8; 32], std::sync::Arc<u64>> for Minute {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        _value: &std::sync::Arc<u64>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(60))
    }
}

/// The floor of a hit: a bare moka `get` of the token's key, in a cache built as the session
/// cache is (capacity, per-entry expiry, an eviction listener, foldhash, a 32-byte key, a
/// one-`Arc` value), polled once as the layer polls it.
async fn moka_floor(auth: &str, n: usize) {
    let cache: moka::future::Cache<[u8; 32], std::sync::Arc<u64>, foldhash::fast::RandomState> =
        moka::future::Cache::builder()
            .max_capacity(100_000)
            .expire_after(Minute)
            .eviction_listener(|_key, _value, _cause| {})
            .build_with_hasher(foldhash::fast::RandomState::default());
    let key = key_of(auth);
    cache.insert(key, std::sync::Arc::new(1)).await;
    cache.run_pending_tasks().await;
    measured_requests_gets(&cache, &key, n);
}

#[inline(never)]
fn measured_requests_gets(
    cache: &moka::future::Cache<[u8; 32], std::sync::Arc<u64>, foldhash::fast::RandomState>,
    key: &[u8; 32],
    n: usize,
) {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..n {
        let mut get = std::pin::pin!(cache.get(key));
        match get.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(value) => assert!(std::hint::black_box(value).is_some()),
            std::task::Poll::Pending => panic!("moka's get waited"),
        }
    }
}

/// The SHA-256 of the credential in `auth`, `n` times (the script counts inside this function
/// as it does inside `measured_requests`; so is `measured_requests_gets`, which is why
/// `moka_floor`, which calls it, must not match `*measured_requests*`).
#[inline(never)]
fn measured_requests_sha(auth: &str, n: usize) {
    let raw = auth.trim_start_matches("Bearer ").as_bytes();
    for _ in 0..n {
        std::hint::black_box(<sha2::Sha256 as sha2::Digest>::digest(
            std::hint::black_box(raw),
        ));
    }
}
