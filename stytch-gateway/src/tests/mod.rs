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
//! tests and by `full_stack`, against the in-process emulator).
//!
//! `proxy`: forwarding, streaming, 502 / 504. `endpoints`: probes, the auth-only endpoint,
//! metrics. `full_stack`: the real stack configured like the command line's flags. The
//! helpers shared by all three are below.

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
        ..Forwarding::default()
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

mod endpoints;
mod full_stack;
mod proxy;
