//! What a revocation does to responses in flight through the gateway binary (issue #24):
//! a response of known length, authorized before the revocation and already acted on by the
//! upstream, arrives whole; a response of unknown length, or a long poll, ends once past the
//! grace period. (Server-sent events end at once: `live.rs`.)

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::StreamBody;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::{Notify, oneshot};

use super::{Gateway, Stytch, bounded, http};

/// Half of `/report`'s body.
const HALF: usize = 64 * 1024;

type Frames = futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>;

/// An upstream whose `/report` is a known-length body sent in two halves, the second when
/// the test releases it; whose `/chunked` sends a chunk every 100 ms forever (no length);
/// and whose `/poll` answers after 5 s.
struct SlowUpstream {
    addr: SocketAddr,
    release: Arc<Notify>,
    _stop: oneshot::Sender<()>,
}

fn data(n: usize) -> Result<Frame<Bytes>, Infallible> {
    Ok(Frame::data(Bytes::from(vec![b'r'; n])))
}

fn frames(path: &str, release: Arc<Notify>) -> Frames {
    use futures_util::StreamExt as _;
    match path {
        "/report" => futures_util::stream::once(async { data(HALF) })
            .chain(futures_util::stream::once(async move {
                release.notified().await;
                data(HALF)
            }))
            .boxed(),
        _ => futures_util::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((data(16), ()))
        })
        .boxed(),
    }
}

async fn answer(release: Arc<Notify>, req: Request<Incoming>) -> Response<StreamBody<Frames>> {
    let path = req.uri().path().to_owned();
    if path == "/poll" {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let mut response = Response::new(StreamBody::new(frames(&path, release)));
    if path == "/report" {
        let length = http::HeaderValue::from(2 * HALF);
        response.headers_mut().insert("content-length", length);
    }
    response
}

async fn slow_upstream() -> SlowUpstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let release = Arc::new(Notify::new());
    let (stop, mut stopped) = oneshot::channel::<()>();
    let r = release.clone();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                _ = &mut stopped => return,
            };
            let r = r.clone();
            let service = hyper::service::service_fn(move |req| {
                let r = r.clone();
                async move { Ok::<_, Infallible>(answer(r, req).await) }
            });
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    SlowUpstream {
        addr,
        release,
        _stop: stop,
    }
}

/// Logs `token`'s session out through `gw` and waits until the gateway refuses it.
async fn log_out(gw: &Gateway, token: &str) {
    let logout = http()
        .post(format!("{}/logout", gw.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success(), "logout: {}", logout.status());
    assert!(gw.refused_soon(token).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_sessions_known_length_response_in_flight_arrives_whole() {
    // If this broke, a request authorized before a logout, which the upstream already
    // executed (a report generated, an order placed), would reach the client as a broken
    // connection because its session was revoked while the answer was on its way.
    bounded(async {
        let stytch = Stytch::start();
        let up = slow_upstream().await;
        let gw = Gateway::start(&stytch, up.addr, &[]).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let mut report = http()
            .get(format!("{}/report", gw.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(report.status(), StatusCode::OK);
        let mut received = report.chunk().await.unwrap().unwrap().len();
        log_out(&gw, &token).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        up.release.notify_one();
        loop {
            match report.chunk().await {
                Ok(Some(chunk)) => received += chunk.len(),
                Ok(None) => break,
                Err(err) => panic!("the response was cut after {received} bytes: {err}"),
            }
        }
        assert_eq!(received, 2 * HALF);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_sessions_unknown_length_stream_and_long_poll_end_after_the_grace_period() {
    // If this broke, a revoked session's chunked stream or long poll would run on (until the
    // upstream ended it) after the grace period, or be cut before it like a server-sent
    // event stream.
    bounded(async {
        let stytch = Stytch::start();
        let up = slow_upstream().await;
        let args = ["--stream-revocation-grace", "2s"];
        let gw = Gateway::start(&stytch, up.addr, &args).await;
        let org = stytch.organization("acme").await;
        let (bob, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let sent = Instant::now();
        let mut stream = http()
            .get(format!("{}/chunked", gw.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(stream.chunk().await.unwrap().is_some());
        log_out(&gw, &token).await;
        let ended = loop {
            match stream.chunk().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the stream ended like a complete body"),
                Err(_) => break sent.elapsed(),
            }
        };
        assert!(ended >= Duration::from_millis(1800), "cut after {ended:?}");
        assert!(ended < Duration::from_secs(5), "cut after {ended:?}");
        // A long poll: the upstream answers after 5 s; the revocation answers it at 2 s.
        let token = new_session(&stytch, &bob).await;
        let sent = Instant::now();
        let poll = http()
            .get(format!("{}/poll", gw.base))
            .bearer_auth(&token)
            .send();
        let poll = tokio::spawn(poll);
        tokio::time::sleep(Duration::from_millis(200)).await;
        log_out(&gw, &token).await;
        let answer = poll.await.unwrap().unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        let answered = sent.elapsed();
        assert!(
            answered >= Duration::from_millis(1800) && answered < Duration::from_millis(4500),
            "{answered:?}"
        );
    })
    .await;
}

/// A fresh session token of `member_id`.
async fn new_session(stytch: &Stytch, member_id: &str) -> String {
    let s = stytch
        .control("sessions", serde_json::json!({ "member_id": member_id }))
        .await;
    s["session_token"].as_str().unwrap().to_owned()
}
