//! `SessionLiveness` through the layer: an axum WebSocket handler that awaits it closes its
//! socket when the session is revoked, however the revocation came.
//!
//! If these fail, an app's WebSockets outlive a logout or a forced sign-out (the "no peer
//! does this" promise of the README), or one member's revocation closes another's sockets.

use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};
use tower_stytch::live::SessionLiveness;

use crate::support::{World, bearer, serve};

/// The close code the README's example uses for a revoked session.
pub(crate) const SESSION_REVOKED: u16 = 4401;

pub(crate) async fn live(ws: WebSocketUpgrade, liveness: SessionLiveness) -> Response {
    ws.on_upgrade(move |socket| echo_until_revoked(socket, liveness))
}

async fn echo_until_revoked(mut socket: WebSocket, liveness: SessionLiveness) {
    loop {
        tokio::select! {
            () = liveness.revoked() => {
                let close = CloseFrame { code: SESSION_REVOKED, reason: "session revoked".into() };
                let _ = socket.send(Message::Close(Some(close))).await;
                return;
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if socket.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(addr: std::net::SocketAddr, credential: &str) -> Socket {
    let mut request = format!("ws://{addr}/live").into_client_request().unwrap();
    let header = bearer(credential).parse().unwrap();
    request.headers_mut().insert("authorization", header);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
        .send(tungstenite::Message::text("ping"))
        .await
        .unwrap();
    let echoed = socket.next().await.unwrap().unwrap();
    assert_eq!(echoed.to_text().unwrap(), "ping");
    socket
}

/// The close code the app sent, waiting at most 2 s (a bound on propagation, not a timing).
pub(crate) async fn closed_with(socket: &mut Socket) -> Option<u16> {
    let wait = async {
        while let Some(Ok(message)) = socket.next().await {
            if let tungstenite::Message::Close(frame) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(2), wait)
        .await
        .expect("the socket stayed open")
}

#[tokio::test]
async fn a_websocket_awaiting_session_liveness_closes_on_logout_and_on_a_member_revocation() {
    // If this broke, a handler awaiting `SessionLiveness::revoked` would keep serving a
    // logged-out or forced-out session, or close the sockets of a session not revoked.
    let w = World::new().await;
    let s = serve(
        w.builder().build().unwrap(),
        Router::new().route("/live", get(live)),
    )
    .await;
    let token = w.member.session_token.expose_secret();
    let other = w.emulator.create_session(&w.member2.member_id);
    let other = other.session_token.expose_secret();
    let mut socket = connect(s.addr, token).await;
    let mut second = connect(s.addr, token).await;
    let mut bystander = connect(s.addr, other).await;

    assert!(s.post_as("/logout", token).await.status().is_success());
    assert_eq!(closed_with(&mut socket).await, Some(SESSION_REVOKED));
    assert_eq!(closed_with(&mut second).await, Some(SESSION_REVOKED));

    // Member 2's socket was left alone, until the app revokes every session of member 2.
    bystander
        .send(tungstenite::Message::text("still here"))
        .await
        .unwrap();
    let echoed = bystander.next().await.unwrap().unwrap();
    assert_eq!(echoed.to_text().unwrap(), "still here");
    s.layer
        .revoker()
        .revoke_member(&w.member2.member_id, None)
        .await
        .unwrap();
    assert_eq!(closed_with(&mut bystander).await, Some(SESSION_REVOKED));
}

#[tokio::test]
async fn session_liveness_on_a_public_route_is_a_configuration_error() {
    // If this broke, a handler on a public route would get a liveness handle with no session
    // behind it (never revoked) instead of being told the route is not authenticated.
    let w = World::new().await;
    let layer = w.builder().public_route("GET /live").build().unwrap();
    let handler = get(|_: SessionLiveness| async { "live" });
    let s = serve(layer, Router::new().route("/live", handler)).await;
    let res = s.get("/live").await;
    assert_eq!(res.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("no authenticated session")
    );
}

#[tokio::test]
async fn a_websocket_closes_when_stytch_deletes_the_member_or_the_organization() {
    // If this broke, a member deleted in Stytch's dashboard (or their organization) would be
    // refused on their next request but keep their live WebSocket open: the webhook's
    // revocation would not reach live connections.
    let w = World::new().await;
    let secret = w.emulator.webhook_secret();
    let secrets = tower_stytch::webhook::WebhookSecrets::parse(secret.expose_secret()).unwrap();
    let s = serve(
        w.builder()
            .webhook("/stytch/webhooks", secrets)
            .build()
            .unwrap(),
        Router::new().route("/live", get(live)),
    )
    .await;
    let endpoint = stytch_emulator::WebhookEndpoint::new(s.url("/stytch/webhooks")).unwrap();
    w.emulator.add_webhook_endpoint(endpoint);
    let mut member = connect(s.addr, w.member.session_token.expose_secret()).await;
    let mut admin = connect(s.addr, w.admin.session_token.expose_secret()).await;
    let mut other_org = connect(s.addr, w.other_admin.session_token.expose_secret()).await;

    w.emulator.delete_member(&w.member.member_id).unwrap();
    assert_eq!(closed_with(&mut member).await, Some(SESSION_REVOKED));
    // The admin of the same organization is still connected, until the organization goes.
    admin
        .send(tungstenite::Message::text("here"))
        .await
        .unwrap();
    assert_eq!(
        admin.next().await.unwrap().unwrap().to_text().unwrap(),
        "here"
    );
    w.emulator.delete_organization(&w.org).unwrap();
    assert_eq!(closed_with(&mut admin).await, Some(SESSION_REVOKED));
    // Another organization's connection is left alone.
    other_org
        .send(tungstenite::Message::text("still here"))
        .await
        .unwrap();
    let echoed = other_org.next().await.unwrap().unwrap();
    assert_eq!(echoed.to_text().unwrap(), "still here");
}
