//! An axum app protected by `StytchAuthLayer`, against the Stytch emulator
//! (`stytch-emulator`).
//!
//! ```text
//! cargo run --example axum --features axum
//! ```
//!
//! Starts the emulator, seeds a member, serves the app on 127.0.0.1, calls it with the
//! member's session token, logs out, and shows the same token refused.

use axum::Router;
use axum::routing::get;
use stytch_emulator::{Emulator, EmulatorConfig};
use tower_stytch::{MemberSession, StytchAuthLayer, StytchClient, StytchConfig};

async fn whoami(session: MemberSession) -> String {
    format!(
        "member {} of organization {} (roles: {})\n",
        session.member_id,
        session.organization_slug(),
        session.roles().join(", ")
    )
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

    let auth = StytchAuthLayer::builder(client)
        .public_route("GET /health")
        .build()?;
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/health", get(|| async { "ok\n" }))
        // Layers added with `Router::layer` wrap every route above them.
        .layer(auth);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("serving on http://{addr}");

    let http = reqwest::Client::new();
    let bearer = format!("Bearer {}", session.session_token.expose_secret());
    let res = http
        .get(format!("http://{addr}/whoami"))
        .header("authorization", &bearer)
        .send()
        .await?;
    print!("GET /whoami -> {} {}", res.status(), res.text().await?);
    let res = http
        .post(format!("http://{addr}/logout"))
        .header("authorization", &bearer)
        .send()
        .await?;
    println!("POST /logout -> {}", res.status());
    let res = http
        .get(format!("http://{addr}/whoami"))
        .header("authorization", &bearer)
        .send()
        .await?;
    println!("GET /whoami after logout -> {}", res.status());
    Ok(())
}
