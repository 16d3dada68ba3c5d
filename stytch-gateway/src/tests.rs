//! In-process tests of the gateway's proxy, probes and metrics.
//!
//! If these fail, the gateway forwards requests wrongly (identity headers, hop-by-hop and
//! forwarded headers, streaming, 502/504), its probes or metrics lie, or its flags do not
//! reach the auth layer.
//!
//! They live inside the crate because they drive its private pieces directly. The upstream
//! is a small hyper server in this process; the gateway's service stack is served on
//! 127.0.0.1 by `server::serve`, with a stand-in for the auth layer that attaches a
//! `MemberSession` when the test asks for one (the real layer is exercised by the end-to-end
//! tests and by the `full_stack` tests below, against the in-process emulator).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Notify, oneshot};
use tower_stytch::MemberSession;

use crate::app::App;
use crate::body::{Body, BoxError, full_body, text_response};
use crate::credentials::Credentials;
use crate::forwarded::{TrustedProxies, parse_trusted_proxy};
use crate::health::{Health, ReadyCheck};
use crate::proxy::{Forwarding, Proxy, Transport};
use crate::server::serve;
use crate::service::ServiceFn;

/// A streaming body fed through a channel: `send(bytes)` on the sender, drop it to end.
fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, BoxError>(Frame::data(bytes)), rx))
    });
    (tx, StreamBody::new(stream).boxed_unsync())
}

const TEST_TIMEOUT: Duration = Duration::from_secs(20);
const BIG: usize = 4 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// What the test upstream saw and how tests steer it.
#[derive(Default)]
struct UpstreamState {
    seen: Mutex<Vec<HeaderMap>>,
    release: Notify,
    first_chunk_seen: Notify,
}

async fn upstream_handler(
    state: Arc<UpstreamState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    state.seen.lock().unwrap().push(req.headers().clone());
    let response = match req.uri().path() {
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            text_response(StatusCode::OK, "slow\n")
        }
        "/stream" => {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"first\n")).await;
                state.release.notified().await;
                for _ in 0..BIG / CHUNK {
                    if tx.send(Bytes::from(vec![b'x'; CHUNK])).await.is_err() {
                        return;
                    }
                }
            });
            Response::new(body)
        }
        "/upload" => {
            let mut body = req.into_body();
            let mut total = 0usize;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Some(data) = frame.data_ref() {
                    if total == 0 && !data.is_empty() {
                        state.first_chunk_seen.notify_one();
                    }
                    total += data.len();
                }
            }
            text_response(StatusCode::OK, total.to_string())
        }
        "/hop" => {
            let mut r = text_response(StatusCode::OK, "hop\n");
            let h = r.headers_mut();
            h.insert("connection", HeaderValue::from_static("x-secret-hop"));
            h.insert("x-secret-hop", HeaderValue::from_static("1"));
            h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            h.insert("x-kept", HeaderValue::from_static("1"));
            r
        }
        _ => text_response(StatusCode::OK, "ok\n"),
    };
    Ok(response)
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn spawn<S>(service: S) -> Server
where
    S: tower_service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(
        "proxy",
        listener,
        service,
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    Server {
        addr,
        stop: Some(stop),
    }
}

async fn spawn_upstream() -> (Server, Arc<UpstreamState>) {
    let state = Arc::new(UpstreamState::default());
    let s = state.clone();
    let server = spawn(tower::service_fn(move |req| {
        upstream_handler(s.clone(), req)
    }))
    .await;
    (server, state)
}

fn session() -> MemberSession {
    serde_json::from_value(serde_json::json!({
        "member_session_id": "member-session-test-1", "member_id": "member-test-1",
        "organization_id": "organization-test-1", "roles": ["stytch_member", "editor"],
        "expires_at": "2099-01-01T00:00:00Z"
    }))
    .unwrap()
}

/// The gateway's stack with a stand-in for the auth layer: a request carrying
/// `x-test-authenticated: 1` gets the test `MemberSession`.
async fn spawn_gateway(upstream: &str, timeout: Duration, ready: Arc<AtomicBool>) -> Server {
    spawn_gateway_with(upstream, timeout, ready, default_forwarding()).await
}

/// What the command line's defaults hand the upstream: no credential, forwarding headers
/// trusted from nobody.
fn default_forwarding() -> Forwarding {
    Forwarding {
        credentials: Credentials::Strip(tower_stytch::config::CredentialSource::defaults()),
        trusted_proxies: TrustedProxies::default(),
    }
}

/// [`spawn_gateway`] with its own [`Forwarding`].
async fn spawn_gateway_with(
    upstream: &str,
    timeout: Duration,
    ready: Arc<AtomicBool>,
    forwarding: Forwarding,
) -> Server {
    let proxy = Proxy::new(upstream, timeout, forwarding, &Transport::default()).unwrap();
    let app = ServiceFn(App::new(proxy, Some("/auth".to_owned())));
    let fake_auth = tower::service_fn(move |mut req: Request<Incoming>| {
        let mut app = app.clone();
        if req.headers_mut().remove("x-test-authenticated").is_some() {
            req.extensions_mut().insert(session());
        }
        async move { tower_service::Service::call(&mut app, req).await }
    });
    let check: ReadyCheck = Arc::new(move || {
        let ready = ready.load(Ordering::SeqCst);
        Box::pin(async move {
            if ready {
                Ok("ready\n".to_owned())
            } else {
                Err("stytch unreachable".to_owned())
            }
        })
    });
    // Max age zero: every probe runs the check, so flipping `ready` shows at once.
    spawn(Health::new(fake_auth, check, Duration::ZERO)).await
}

/// The default stack: a recording upstream, and the gateway (stand-in auth, 5 s upstream
/// timeout, not ready) in front of it.
async fn default_gateway() -> (Server, Arc<UpstreamState>, Server) {
    let (up, state) = spawn_upstream().await;
    let gw = spawn_gateway(
        &format!("http://{}", up.addr),
        Duration::from_secs(5),
        Arc::default(),
    )
    .await;
    (up, state, gw)
}

fn client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response<Bytes> {
    let mut req = Request::get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = client()
        .request(req.body(full_body(Bytes::new())).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test took too long")
}

#[tokio::test]
async fn identity_headers_reach_the_upstream_and_spoofed_ones_do_not() {
    // If this broke, a client could impersonate any member (or admin) towards the upstream.
    bounded(async {
        let (_up, state, gw) = default_gateway().await;
        let spoof = [
            ("x-stytch-member-id", "member-evil"),
            ("X-Stytch-Roles", "stytch_admin"),
            ("x-stytch-organization-id", "organization-evil"),
            ("x-stytch-member-session-id", "member-session-evil"),
        ];
        let mut authed = spoof.to_vec();
        authed.push(("x-test-authenticated", "1"));
        assert_eq!(
            get(gw.addr, "/echo", &authed).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            get(gw.addr, "/public", &spoof).await.status(),
            StatusCode::OK
        );
        let seen = state.seen.lock().unwrap().clone();
        let (authed, anonymous) = (&seen[0], &seen[1]);
        assert_eq!(authed["x-stytch-member-id"], "member-test-1");
        assert_eq!(authed["x-stytch-organization-id"], "organization-test-1");
        assert_eq!(
            authed["x-stytch-member-session-id"],
            "member-session-test-1"
        );
        assert_eq!(authed["x-stytch-roles"], "stytch_member,editor");
        for name in [
            "x-stytch-member-id",
            "x-stytch-roles",
            "x-stytch-organization-id",
            "x-stytch-member-session-id",
        ] {
            assert_eq!(authed.get_all(name).iter().count(), 1, "{name}");
            assert!(
                !anonymous.contains_key(name),
                "{name} reached the upstream on a public route"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn h2c_speaks_http2_to_a_plain_http_upstream_and_http11_without_it() {
    // If this broke, --upstream-h2c would be ignored (or plain-http upstreams would get a
    // protocol they may not speak without it).
    bounded(async {
        let versions = Arc::new(Mutex::new(Vec::new()));
        let v = versions.clone();
        let up = spawn(tower::service_fn(move |req: Request<Incoming>| {
            v.lock().unwrap().push(req.version());
            async { Ok::<_, Infallible>(text_response(StatusCode::OK, "ok\n")) }
        }))
        .await;
        let upstream = format!("http://{}", up.addr);
        for h2c in [true, false] {
            let transport = Transport {
                h2c,
                ..Transport::default()
            };
            let proxy = Proxy::new(
                &upstream,
                Duration::from_secs(5),
                default_forwarding(),
                &transport,
            )
            .unwrap();
            let req = Request::get("http://gateway/x")
                .body(full_body(Bytes::new()))
                .unwrap();
            assert_eq!(proxy.forward(req).await.status(), StatusCode::OK);
        }
        assert_eq!(
            *versions.lock().unwrap(),
            [http::Version::HTTP_2, http::Version::HTTP_11]
        );
        let https_h2c = Transport {
            h2c: true,
            ..Transport::default()
        };
        let refused = Proxy::new(
            "https://127.0.0.1:1",
            Duration::from_secs(5),
            default_forwarding(),
            &https_h2c,
        );
        assert!(refused.is_err_and(|e| e.is_config()));
    })
    .await;
}

#[tokio::test]
async fn forwarded_headers_are_set_and_a_clients_are_replaced() {
    // If this broke, the upstream would log the gateway's address instead of the client's,
    // or believe the address and scheme any client claims.
    bounded(async {
        let (up, state, gw) = default_gateway().await;
        let r = get(
            gw.addr,
            "/echo",
            &[
                ("host", "app.example:8443"),
                ("x-forwarded-for", "10.1.1.1"),
                ("x-forwarded-proto", "https"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let seen = state.seen.lock().unwrap()[0].clone();
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
        assert_eq!(seen["x-forwarded-proto"], "http");
        assert_eq!(seen["x-forwarded-host"], "app.example:8443");
        assert_eq!(seen["x-real-ip"], "127.0.0.1");
        assert_eq!(seen["host"], up.addr.to_string());
    })
    .await;
}

#[tokio::test]
async fn a_trusted_proxys_forwarded_headers_are_kept() {
    // If this broke, behind a TLS-terminating load balancer the upstream would see every
    // request as plain http from the balancer.
    bounded(async {
        let (up, state) = spawn_upstream().await;
        let forwarding = Forwarding {
            trusted_proxies: TrustedProxies::new(vec![parse_trusted_proxy("127.0.0.0/8").unwrap()]),
            ..default_forwarding()
        };
        let gw = spawn_gateway_with(
            &format!("http://{}", up.addr),
            Duration::from_secs(5),
            Arc::default(),
            forwarding,
        )
        .await;
        let r = get(
            gw.addr,
            "/echo",
            &[
                ("x-forwarded-for", "10.1.1.1"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app.example"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let seen = state.seen.lock().unwrap()[0].clone();
        assert_eq!(seen["x-forwarded-for"], "10.1.1.1, 127.0.0.1");
        assert_eq!(seen["x-forwarded-proto"], "https");
        assert_eq!(seen["x-forwarded-host"], "app.example");
    })
    .await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    // If this broke, connection-scoped headers (and Proxy-Authorization) would leak across hops.
    bounded(async {
        let (_up, state, gw) = default_gateway().await;
        let r = get(
            gw.addr,
            "/hop",
            &[
                ("connection", "x-drop-me"),
                ("x-drop-me", "1"),
                ("proxy-authorization", "Basic Zm9vOmJhcg=="),
                ("te", "trailers"),
                ("x-end-to-end", "1"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let seen = state.seen.lock().unwrap()[0].clone();
        for name in ["x-drop-me", "proxy-authorization", "te"] {
            assert!(!seen.contains_key(name), "{name} reached the upstream");
        }
        assert_eq!(seen["x-end-to-end"], "1");
        assert!(!r.headers().contains_key("x-secret-hop"));
        assert!(!r.headers().contains_key("keep-alive"));
        assert_eq!(r.headers()["x-kept"], "1");
    })
    .await;
}

#[tokio::test]
async fn response_bodies_stream_without_buffering() {
    // If this broke, the gateway would hold whole responses in memory (and stall SSE/downloads).
    bounded(async {
        let (_up, state, gw) = default_gateway().await;
        let req = Request::get(format!("http://{}/stream", gw.addr))
            .body(full_body(Bytes::new()))
            .unwrap();
        let response = client().request(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        // The upstream sends the rest only after we saw the first chunk.
        let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("first chunk did not arrive before the upstream finished: buffered")
            .unwrap()
            .unwrap();
        assert_eq!(first.data_ref().unwrap().as_ref(), b"first\n");
        state.release.notify_one();
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest.len(), BIG);
    })
    .await;
}

#[tokio::test]
async fn request_bodies_stream_without_buffering() {
    // If this broke, uploads would be buffered whole in the gateway before reaching the upstream.
    bounded(async {
        let (_up, state, gw) = default_gateway().await;
        let (tx, body) = channel_body();
        let req = Request::post(format!("http://{}/upload", gw.addr))
            .body(body)
            .unwrap();
        let response = tokio::spawn(client().request(req));
        tx.send(Bytes::from(vec![b'a'; CHUNK])).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), state.first_chunk_seen.notified())
            .await
            .expect("the upstream did not see the first chunk while the upload was open");
        for _ in 1..BIG / CHUNK {
            tx.send(Bytes::from(vec![b'a'; CHUNK])).await.unwrap();
        }
        drop(tx);
        let response = response.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let count = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(count, BIG.to_string().as_bytes());
    })
    .await;
}

#[tokio::test]
async fn upstream_down_is_502() {
    // If this broke, clients would see a hung request or a 500 instead of a clear 502.
    bounded(async {
        let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = free.local_addr().unwrap();
        drop(free);
        let gw = spawn_gateway(
            &format!("http://{addr}"),
            Duration::from_secs(5),
            Arc::default(),
        )
        .await;
        let r = get(gw.addr, "/anything", &[]).await;
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(r.body().as_ref(), b"upstream unavailable\n");
    })
    .await;
}

#[tokio::test]
async fn slow_upstream_is_504_after_the_timeout() {
    // If this broke, a stuck upstream would hold client connections for as long as it likes.
    bounded(async {
        let (up, _state) = spawn_upstream().await;
        let gw = spawn_gateway(
            &format!("http://{}", up.addr),
            Duration::from_millis(300),
            Arc::default(),
        )
        .await;
        let started = Instant::now();
        let r = get(gw.addr, "/slow", &[]).await;
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(r.body().as_ref(), b"upstream timed out\n");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    })
    .await;
}

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

mod full_stack {
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
}
