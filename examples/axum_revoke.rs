//! A handler that revokes: an admin suspends a member in the app's own database and, in the
//! same handler, signs that member out everywhere with the [`Revoker`], acting as the admin
//! (the request's own [`SessionCredential`]), so that Stytch enforces the admin's RBAC. Runs
//! against the Stytch emulator.
//!
//! ```text
//! cargo run --example axum_revoke --features axum
//! ```
//!
//! (The same can be declared without a handler: `forced_signout("DELETE /api/members/{member_id}")`
//! on the builder revokes after the app answers. A handler is the way when the decision needs
//! the app's own data: here, a member who is already suspended is not revoked again.)

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use stytch_emulator::{Emulator, EmulatorConfig};
use tower_stytch::{
    MemberSession, RevokeError, RevokeOutcome, Revoker, SessionCredential, StytchAuthLayer,
    StytchClient, StytchConfig,
};

/// The app's own state: who is suspended.
type Suspended = Arc<Mutex<HashSet<String>>>;

/// `POST /api/members/{member_id}/suspend`: suspends the member here, then revokes every
/// session of theirs acting as the caller. Stytch refuses (403) a caller whose roles do not
/// grant `revoke-sessions` on `stytch.member`; the suspension is then rolled back.
async fn suspend(
    State(suspended): State<Suspended>,
    Path(member_id): Path<String>,
    revoker: Revoker,
    caller: SessionCredential,
) -> (StatusCode, String) {
    if !suspended.lock().unwrap().insert(member_id.clone()) {
        return (StatusCode::OK, "already suspended\n".into());
    }
    match revoker
        .revoke_member(&member_id, Some(caller.credential()))
        .await
    {
        Ok(RevokeOutcome::Revoked { .. } | RevokeOutcome::AlreadyRevoked) => (
            StatusCode::OK,
            format!("{member_id} suspended and signed out\n"),
        ),
        // Stytch could not be reached; the caller could be verified here (an admin of the
        // member's organization): revoked here, sent to Stytch as soon as it answers.
        Ok(RevokeOutcome::Pending) => (
            StatusCode::ACCEPTED,
            format!("{member_id} suspended; sign-out pending at Stytch\n"),
        ),
        Ok(other) => (StatusCode::OK, format!("{}\n", other.as_str())),
        Err(RevokeError::Forbidden(_)) => {
            suspended.lock().unwrap().remove(&member_id);
            (StatusCode::FORBIDDEN, "not allowed\n".into())
        }
        Err(err) => {
            suspended.lock().unwrap().remove(&member_id);
            (StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n"))
        }
    }
}

async fn whoami(session: MemberSession) -> String {
    format!("{}\n", session.member_id)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In production: `StytchClient::from_env()?` (STYTCH_PROJECT_ID, STYTCH_SECRET).
    let emulator = Emulator::start(EmulatorConfig::new()).await?;
    let org = emulator.create_organization("Acme", "acme");
    let admin = emulator.create_member(&org, "admin@acme.test", &["stytch_admin"]);
    let member = emulator.create_member(&org, "member@acme.test", &[]);
    let admin_session = emulator.create_session(&admin);
    let member_session = emulator.create_session(&member);
    let client = StytchClient::new(
        StytchConfig::builder(emulator.project_id(), emulator.secret())
            .base_url(emulator.base_url())
            .build()?,
    )?;

    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/api/members/{member_id}/suspend", post(suspend))
        .with_state(Suspended::default())
        .layer(StytchAuthLayer::builder(client).build()?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let http = reqwest::Client::new();
    let as_member = format!("Bearer {}", member_session.session_token.expose_secret());
    let as_admin = format!("Bearer {}", admin_session.session_token.expose_secret());
    let get_whoami = |auth: String| {
        let http = http.clone();
        async move {
            http.get(format!("http://{addr}/whoami"))
                .header("authorization", auth)
                .send()
                .await
                .map(|r| r.status())
        }
    };
    println!(
        "member: GET /whoami -> {}",
        get_whoami(as_member.clone()).await?
    );
    // A member may not suspend the admin (Stytch refuses: their roles do not grant it); the
    // admin may suspend the member.
    for (who, auth, target) in [
        ("member", &as_member, &admin),
        ("admin", &as_admin, &member),
    ] {
        let url = format!("http://{addr}/api/members/{target}/suspend");
        let res = http.post(&url).header("authorization", auth).send().await?;
        print!(
            "{who}: POST /api/members/…/suspend -> {} {}",
            res.status(),
            res.text().await?
        );
    }
    println!("member: GET /whoami -> {}", get_whoami(as_member).await?);
    Ok(())
}
