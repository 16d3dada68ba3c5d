//! `GET /live`: the demo page's WebSocket. It greets the member and sends a tick every few
//! seconds; it knows nothing of revocation: the gateway in front closes it when the session
//! is revoked, which is what the page shows.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::Identity;
use crate::body::{Body, full_body, text_response};
use crate::upgrade::upgrade_protocol;

/// How often the socket says it is still there.
const TICK: Duration = Duration::from_secs(10);

/// Answers a WebSocket handshake with 101 and serves the socket once hyper hands the
/// connection over; anything else is a 400.
pub(super) fn accept<B>(req: &mut Request<B>, identity: Identity) -> Response<Body> {
    let is_websocket =
        upgrade_protocol(req).is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let (true, Some(key)) = (is_websocket, key) else {
        return text_response(
            StatusCode::BAD_REQUEST,
            "a WebSocket handshake is expected\n",
        );
    };
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
        return text_response(StatusCode::BAD_REQUEST, "bad Sec-WebSocket-Key\n");
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                serve(socket, identity).await;
            }
            Err(err) => {
                tracing::debug!(error = %crate::error::chain(&err), "demo live socket: upgrade failed")
            }
        }
    });
    let mut response = Response::new(full_body(bytes::Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// Greets, then ticks until the socket closes (the peer, or the gateway cutting it).
async fn serve<S>(mut socket: WebSocketStream<S>, identity: Identity)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let hello = serde_json::json!({
        "type": "hello",
        "member_id": identity.member_id,
        "member_session_id": identity.member_session_id,
    });
    if socket.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    loop {
        tokio::select! {
            incoming = socket.next() => match incoming {
                // Pings are answered by tungstenite while it is polled; text is ignored.
                Some(Ok(message)) if !message.is_close() => {}
                _ => break,
            },
            _ = tick.tick() => {
                let tick = serde_json::json!({"type": "tick"}).to_string();
                if socket.send(Message::text(tick)).await.is_err() {
                    break;
                }
            }
        }
    }
    tracing::debug!(member_id = identity.member_id, "demo live socket closed");
}
