//! Upgrades through the gateway binary (issue #24): an `Upgrade: h2c` must never turn the
//! client's connection into an HTTP/2 one to the upstream (where it could send anything),
//! a WebSocket is tunnelled only for a session unless `--public-upgrades`, and a
//! cookie-authenticated WebSocket from another site is refused.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::edge::raw_head;
use super::websocket::{ws_connect, ws_upstream};
use super::{Gateway, Stytch, bounded};

/// What the h2c upstream got: version, path, headers.
type Seen = Arc<Mutex<Vec<(Version, String, HeaderMap)>>>;

/// An upstream that speaks h2c as hypercorn does: a request with `Upgrade: h2c` is answered
/// `101 Switching Protocols` and the connection continues as HTTP/2; anything else is an
/// HTTP/1.1 answer.
struct H2cUpstream {
    addr: SocketAddr,
    seen: Seen,
    _stop: oneshot::Sender<()>,
}

fn recorded(seen: &Seen, req: &Request<Incoming>) {
    let path = req.uri().path().to_owned();
    let entry = (req.version(), path, req.headers().clone());
    seen.lock().unwrap().push(entry);
}

async fn h2c_or_http11(seen: Seen, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    recorded(&seen, &req);
    let wants_h2c = req
        .headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("h2c")));
    if !wants_h2c {
        return Response::new(Full::new(Bytes::from_static(b"http/1.1\n")));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let h2 = hyper::service::service_fn(move |req: Request<Incoming>| {
            recorded(&seen, &req);
            async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"h2\n")))) }
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(upgraded, h2)
            .await;
    });
    let mut switching = Response::new(Full::new(Bytes::new()));
    *switching.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = switching.headers_mut();
    headers.insert("connection", http::HeaderValue::from_static("Upgrade"));
    headers.insert("upgrade", http::HeaderValue::from_static("h2c"));
    switching
}

async fn h2c_upstream() -> H2cUpstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let (stop, mut stopped) = oneshot::channel::<()>();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                _ = &mut stopped => return,
            };
            let s = s.clone();
            let service = hyper::service::service_fn(move |req| {
                let s = s.clone();
                async move { Ok::<_, Infallible>(h2c_or_http11(s, req).await) }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    H2cUpstream {
        addr,
        seen,
        _stop: stop,
    }
}

/// Sends an h2c upgrade for `path` (with `credential` as a bearer token when given) and
/// reads the answer's head, byte by byte (what follows a 101 is HTTP/2). On a 101, speaks
/// HTTP/2 over the same connection as an attacker would: `GET /internal/admin` with forged
/// identity headers. Returns the status of the upgrade's answer.
async fn try_to_smuggle(gw: &Gateway, path: &str, credential: Option<&str>) -> u16 {
    let addr = gw.base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let auth = credential
        .map(|c| format!("authorization: Bearer {c}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}connection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        answer.push(tcp.read_u8().await.unwrap());
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status: u16 = answer.split(' ').nth(1).unwrap().parse().unwrap();
    if status == 101 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let forged = Request::get(format!("http://{addr}/internal/admin"))
            .header("x-stytch-member-id", "member-evil")
            .header("x-stytch-roles", "stytch_admin")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let _ = send.send_request(forged).await;
    }
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_upgrade_smuggling_never_reaches_the_upstream_as_http2() {
    // If this broke, a client (anonymous on a public route, or any member) could upgrade its
    // connection to h2c through the gateway and then send the upstream, over HTTP/2, requests
    // for any path with forged identity headers: past authentication, hooks and header
    // stripping.
    bounded(async {
        let stytch = Stytch::start();
        let up = h2c_upstream().await;
        let gw = Gateway::start(&stytch, up.addr, &["--public", "/public/"]).await;
        let org = stytch.organization("acme").await;
        let (member, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        for (path, credential) in [("/public/page", None), ("/app", Some(token.as_str()))] {
            let status = try_to_smuggle(&gw, path, credential).await;
            let seen = up.seen.lock().unwrap().clone();
            let smuggled: Vec<&String> = seen
                .iter()
                .filter(|(version, ..)| *version == Version::HTTP_2)
                .map(|(_, path, _)| path)
                .collect();
            assert!(
                smuggled.is_empty(),
                "HTTP/2 requests reached the upstream: {smuggled:?}"
            );
            assert_eq!(status, 200, "{path}: the upgrade was not refused");
            // The request itself went on as an ordinary HTTP/1.1 one, the upgrade dropped.
            let (version, seen_path, headers) = seen.last().unwrap();
            assert_eq!((*version, seen_path.as_str()), (Version::HTTP_11, path));
            assert!(!headers.contains_key("upgrade"), "{headers:?}");
            assert!(!headers.contains_key("http2-settings"), "{headers:?}");
        }
        let (_, _, authenticated) = up.seen.lock().unwrap()[1].clone();
        assert_eq!(authenticated["x-stytch-member-id"], member.as_str());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_anonymous_websocket_on_a_public_route_is_refused_unless_public_upgrades() {
    // If this broke, anyone could hold a tunnel to the upstream through a public prefix
    // (a tunnel the gateway neither authenticates nor can end on a revocation), or an
    // operator who wants anonymous WebSockets could not have them.
    bounded(async {
        let stytch = Stytch::start();
        let up = ws_upstream(None).await;
        let gw = Gateway::start(&stytch, up.addr, &["--public", "/ws"]).await;
        let refused = ws_connect(&gw.base, "/ws", None).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::FORBIDDEN);
            }
            other => panic!(
                "an anonymous WebSocket was not refused: {:?}",
                other.map(|_| ())
            ),
        }
        assert!(up.handshakes.lock().unwrap().is_empty());
        let args = ["--public", "/ws", "--public-upgrades"];
        let open = Gateway::start(&stytch, up.addr, &args).await;
        assert!(ws_connect(&open.base, "/ws", None).await.is_ok());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_site_websocket_hijacking_through_the_gateway_is_refused() {
    // If this broke, a page on another site could open a WebSocket through the gateway that
    // the browser authenticates with the member's cookie, and read and write as the member.
    bounded(async {
        let stytch = Stytch::start();
        let up = ws_upstream(None).await;
        let gw = Gateway::start(&stytch, up.addr, &[]).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let handshake = |origin: &str| {
            format!(
                "GET /ws HTTP/1.1\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\ncookie: stytch_session={token}\r\norigin: {origin}\r\n"
            )
        };
        let status = raw_head(&gw.base, &handshake("https://evil.example")).await;
        assert_eq!(status, 403);
        assert!(up.handshakes.lock().unwrap().is_empty(), "the handshake reached the upstream");
        let status = raw_head(&gw.base, &handshake(&gw.base)).await;
        assert_eq!(status, 101);
        assert_eq!(up.handshakes.lock().unwrap().len(), 1);
    })
    .await;
}
