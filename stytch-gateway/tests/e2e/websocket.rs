//! WebSocket (HTTP/1.1 `Upgrade`) through the gateway binary: the handshake is
//! authenticated like any request, the upstream gets the identity headers and not the
//! credential, and frames flow both ways once both sides switched protocols.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest as _};

use super::https::TestPki;
use super::{Gateway, Stytch, bounded};

/// A WebSocket upstream: records each handshake's headers, echoes every message, refuses
/// (404) a handshake for any path but `/ws`.
pub(crate) struct WsUpstream {
    pub(crate) addr: SocketAddr,
    pub(crate) handshakes: Arc<Mutex<Vec<HeaderMap>>>,
    _stop: oneshot::Sender<()>,
}

/// Serves one WebSocket connection on `stream`: the handshake, then echo.
async fn serve_ws<S>(stream: S, handshakes: Arc<Mutex<Vec<HeaderMap>>>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // tungstenite's callback signature: its error type is a whole response.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, res: Response| -> Result<Response, ErrorResponse> {
        handshakes.lock().unwrap().push(req.headers().clone());
        if req.uri().path() != "/ws" {
            let mut refusal = ErrorResponse::new(Some("no socket here".to_owned()));
            *refusal.status_mut() = StatusCode::NOT_FOUND;
            return Err(refusal);
        }
        Ok(res)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if message.is_text() || message.is_binary() {
            if ws.send(message).await.is_err() {
                return;
            }
        } else if message.is_close() {
            return;
        }
    }
}

/// A plain (`ws://`) upstream, or a TLS one (`wss://`, ALPN `h2` and `http/1.1` offered)
/// when `pki` is given.
pub(crate) async fn ws_upstream(pki: Option<&TestPki>) -> WsUpstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(Mutex::new(Vec::new()));
    let acceptor = pki.map(|pki| pki.acceptor(&[b"h2", b"http/1.1"]));
    let (stop, mut stopped) = oneshot::channel::<()>();
    let h = handshakes.clone();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                _ = &mut stopped => return,
            };
            let (h, acceptor) = (h.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            serve_ws(tls, h).await;
                        }
                    }
                    None => serve_ws(stream, h).await,
                }
            });
        }
    });
    WsUpstream {
        addr,
        handshakes,
        _stop: stop,
    }
}

/// Opens a WebSocket to the gateway at `base` (`http://…`) for `path`, sending `cookie`.
pub(crate) async fn ws_connect(
    base: &str,
    path: &str,
    cookie: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tungstenite::Error,
> {
    let url = format!("{}{path}", base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().unwrap();
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert("cookie", cookie.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

/// The status of a refused handshake.
fn refused_status(result: Result<impl Sized, tungstenite::Error>) -> StatusCode {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status(),
        Err(other) => panic!("handshake failed without an HTTP answer: {other}"),
        Ok(_) => panic!("handshake succeeded"),
    }
}

/// Sends a text and a binary message and expects both echoed.
async fn assert_echoes<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::text("hello through the gateway"))
        .await
        .unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(echoed.to_text().unwrap(), "hello through the gateway");
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_data().as_ref(), [0u8, 1, 2, 255]);
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_handshake_is_authenticated_and_frames_flow_both_ways() {
    // If this broke, WebSockets through the gateway would fail (Upgrade dropped as a
    // hop-by-hop header, no upgrade on either side), open without a session, or hand the
    // upstream the member's cookie instead of the identity headers.
    bounded(async {
        let stytch = Stytch::start();
        let up = ws_upstream(None).await;
        let gw = Gateway::start(&stytch, up.addr, &[]).await;
        let org = stytch.organization("acme").await;
        let (member, token) = stytch.member(&org, "bob@acme.test", &[]).await;

        let anonymous = ws_connect(&gw.base, "/ws", None).await;
        assert_eq!(refused_status(anonymous), StatusCode::UNAUTHORIZED);
        assert!(up.handshakes.lock().unwrap().is_empty());

        let cookie = format!("stytch_session={token}; theme=dark");
        let mut ws = ws_connect(&gw.base, "/ws", Some(&cookie)).await.unwrap();
        assert_echoes(&mut ws).await;
        ws.close(None).await.unwrap();

        let seen = up.handshakes.lock().unwrap()[0].clone();
        assert_eq!(seen["x-stytch-member-id"], member.as_str());
        assert_eq!(seen["x-stytch-organization-id"], org.as_str());
        assert_eq!(
            seen["cookie"], "theme=dark",
            "the session cookie reached the upstream"
        );
        assert_eq!(seen["upgrade"], "websocket");
        assert!(seen.contains_key("sec-websocket-key"));
        gw.assert_logs_clean(&[&token]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_refusing_the_upgrade_is_an_ordinary_response() {
    // If this broke, a handshake the upstream refuses would hang or be turned into a 502
    // instead of the upstream's own answer reaching the client.
    bounded(async {
        let stytch = Stytch::start();
        let up = ws_upstream(None).await;
        let gw = Gateway::start(&stytch, up.addr, &[]).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let cookie = format!("stytch_session={token}");
        let refused = ws_connect(&gw.base, "/elsewhere", Some(&cookie)).await;
        assert_eq!(refused_status(refused), StatusCode::NOT_FOUND);
        // The gateway still serves the next handshake.
        let mut ws = ws_connect(&gw.base, "/ws", Some(&cookie)).await.unwrap();
        assert_echoes(&mut ws).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_to_an_https_upstream_that_offers_h2_uses_http11() {
    // If this broke, a WebSocket to an https upstream that speaks HTTP/2 would fail: the
    // handshake would go over an h2 connection, which cannot carry an HTTP/1.1 Upgrade.
    bounded(async {
        let pki = TestPki::new();
        let stytch = Stytch::start();
        let up = ws_upstream(Some(&pki)).await;
        let url = format!("https://localhost:{}", up.addr.port());
        let gw = Gateway::start_url(&stytch, &url, &["--upstream-ca", pki.ca_path()], &[]).await;
        let org = stytch.organization("acme").await;
        let (member, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let cookie = format!("stytch_session={token}");
        let mut ws = ws_connect(&gw.base, "/ws", Some(&cookie)).await.unwrap();
        assert_echoes(&mut ws).await;
        let seen = up.handshakes.lock().unwrap()[0].clone();
        assert_eq!(seen["x-stytch-member-id"], member.as_str());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_open_at_shutdown_is_closed_with_1001() {
    // If this broke, a deploy would cut every browser's WebSocket as an error (1006) instead
    // of telling it the server is going away (1001), and clients would not reconnect calmly.
    bounded(async {
        let stytch = Stytch::start();
        let up = ws_upstream(None).await;
        let gw = Gateway::start(&stytch, up.addr, &["--shutdown-timeout", "3s"]).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let cookie = format!("stytch_session={token}");
        let mut ws = ws_connect(&gw.base, "/ws", Some(&cookie)).await.unwrap();
        assert_echoes(&mut ws).await;
        gw.proc.signal("-TERM");
        let close = loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => {}
                other => panic!("no close frame: {other:?}"),
            }
        };
        let close = close.expect("a close frame with a code");
        assert_eq!(u16::from(close.code), 1001);
        assert_eq!(close.reason.as_str(), "gateway shutting down");
    })
    .await;
}
