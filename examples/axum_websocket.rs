//! A WebSocket that closes itself when its session is revoked: an axum handler awaits
//! [`SessionLiveness::revoked`] next to the socket, against the Stytch emulator.
//!
//! ```text
//! cargo run --example axum_websocket --features axum
//! ```
//!
//! Opens the socket with a member's session token, logs the member out on another
//! connection, and shows the socket closed by the app with code 4401.

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use futures_util::StreamExt as _;
use stytch_emulator::{Emulator, EmulatorConfig};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tower_stytch::{
    MemberSession, StytchAuthLayer, StytchClient, StytchConfig, live::SessionLiveness,
};

/// The close code of a socket whose session was revoked: in the range RFC 6455 leaves to
/// applications (4000-4999), read as "401": authenticate again.
const SESSION_REVOKED: u16 = 4401;

/// `GET /live`: the handshake is authenticated by the layer like any request.
async fn live(ws: WebSocketUpgrade, session: MemberSession, liveness: SessionLiveness) -> Response {
    ws.on_upgrade(move |socket| serve(socket, session, liveness))
}

/// Greets, echoes, and closes with [`SESSION_REVOKED`] the moment the session is revoked
/// (logout, admin, forced sign-out, or any revocation that reaches this process).
async fn serve(mut socket: WebSocket, session: MemberSession, liveness: SessionLiveness) {
    let hello = format!("hello {}", session.member_id);
    if socket.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In production: `StytchClient::from_env()?` (STYTCH_PROJECT_ID, STYTCH_SECRET).
    let emulator = Emulator::start(EmulatorConfig::new()).await?;
    let org = emulator.create_organization("Acme", "acme");
    let member = emulator.create_member(&org, "ada@acme.test", &[]);
    let session = emulator.create_session(&member);
    let client = StytchClient::new(
        StytchConfig::builder(emulator.project_id(), emulator.secret())
            .base_url(emulator.base_url())
            .build()?,
    )?;
    let app = Router::new()
        .route("/live", get(live))
        .layer(StytchAuthLayer::builder(client).build()?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let bearer = format!("Bearer {}", session.session_token.expose_secret());
    let mut request = format!("ws://{addr}/live").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", bearer.parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    println!("socket: {}", socket.next().await.ok_or("closed")??);

    let res = reqwest::Client::new()
        .post(format!("http://{addr}/logout"))
        .header("authorization", &bearer)
        .send()
        .await?;
    println!("POST /logout on another connection -> {}", res.status());
    while let Some(message) = socket.next().await {
        if let tokio_tungstenite::tungstenite::Message::Close(Some(frame)) = message? {
            println!(
                "socket closed by the app: {} {}",
                u16::from(frame.code),
                frame.reason
            );
        }
    }
    Ok(())
}
