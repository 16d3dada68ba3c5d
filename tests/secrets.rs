//! No secret in any log line: every code path of the layer, the client and the emulator runs
//! with a TRACE subscriber capturing everything, then the capture is searched for secrets.
//!
//! If this fails, a credential or the project secret can end up in the logs. It installs a
//! global tracing subscriber, so it runs in a test binary of its own.
#![cfg(feature = "axum")]

#[path = "it/support.rs"]
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use stytch_emulator::{EmulatorEndpoint, Fault};
use support::{World, app, serve};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_log_line_at_trace() {
    // If this broke, a credential or the project secret would be written to the logs.
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let w = World::new().await;
    let s = serve(w.hooked_builder().build().unwrap(), app()).await;
    let get = |c: String| {
        let s = &s;
        async move { s.get_as("/whoami?x=1", &c).await.status() }
    };
    let token = w.member.session_token.expose_secret().to_owned();
    let jwt = w.member.session_jwt.expose_secret().to_owned();
    assert_eq!(get(token.clone()).await, StatusCode::OK);
    assert_eq!(get(token.clone()).await, StatusCode::OK);
    assert_eq!(get(jwt.clone()).await, StatusCode::OK);
    // Cookies, junk and unknown credentials.
    let res = s
        .http
        .get(s.url("/whoami"))
        .header(
            "cookie",
            format!(
                "stytch_session_jwt={}",
                w.member2.session_jwt.expose_secret()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        get("zZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q".into()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get("a.b".into()).await, StatusCode::UNAUTHORIZED);
    let forged = format!("{}x", &jwt[..jwt.len() - 1]);
    assert_eq!(get(forged).await, StatusCode::UNAUTHORIZED);
    // Stytch outage on authenticate and on revoke.
    w.emulator.inject_fault(
        EmulatorEndpoint::Authenticate,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        2,
    );
    assert_eq!(
        get(w.admin.session_token.expose_secret().to_owned()).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    w.emulator.inject_fault(
        EmulatorEndpoint::Revoke,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        2,
    );
    let res = s.post_as("/logout", &token).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(s.layer.revoker().flush(Duration::from_secs(5)).await, 0);
    // Admin paths: forbidden, allowed, hook.
    let res = s
        .post_as(
            &format!("/admin/members/{}/revoke-sessions", w.admin.member_id),
            w.member2.session_token.expose_secret(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = s
        .delete_as(
            &format!("/api/members/{}", w.member2.member_id),
            w.admin.session_jwt.expose_secret(),
        )
        .await;
    assert_eq!(res.headers()["x-stytch-forced-signout"], "revoked");
    // A wrong project secret.
    let bad = tower_stytch::StytchConfig::builder(
        w.emulator.project_id(),
        "secret-test-WRONG-wrong-wrong",
    )
    .base_url(w.emulator.base_url())
    .build()
    .unwrap();
    let bad = tower_stytch::StytchClient::new(bad).unwrap();
    let s2 = serve(
        tower_stytch::StytchAuthLayer::builder(bad)
            .without_jwt()
            .build()
            .unwrap(),
        app(),
    )
    .await;
    let res = s2
        .get_as("/whoami", w.other_admin.session_token.expose_secret())
        .await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // Machines: an M2M client's token minted over Stytch's token endpoint, admitted on a
    // machines-only route, refused elsewhere, then cut off (and suspended at Stytch).
    let (client_id, client_secret, machine_token) = machine_flow(&w).await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "nothing was captured"
    );
    assert!(logs.contains("revoked"), "revocations are logged");
    let secrets = [
        w.emulator.secret().to_owned(),
        "secret-test-WRONG-wrong-wrong".to_owned(),
        token,
        jwt,
        w.member2.session_token.expose_secret().to_owned(),
        w.member2.session_jwt.expose_secret().to_owned(),
        w.admin.session_token.expose_secret().to_owned(),
        w.admin.session_jwt.expose_secret().to_owned(),
        w.other_admin.session_token.expose_secret().to_owned(),
        "zZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q".to_owned(),
        client_secret,
        machine_token,
    ];
    assert!(
        logs.contains(&client_id),
        "the cut-off is logged with its client id"
    );
    for secret in &secrets {
        // A JWT's signature alone is enough to replay it: look for it too.
        let tail = secret.rsplit('.').next().unwrap();
        assert!(
            !logs.contains(secret.as_str()),
            "a secret leaked into the logs"
        );
        assert!(
            tail.len() < 20 || !logs.contains(tail),
            "a JWT signature leaked into the logs"
        );
    }
    assert!(!logs.contains("x=1"), "query strings are not logged");
}

/// The machine paths of the layer, the client and the emulator; returns the client's id,
/// secret and access token.
async fn machine_flow(w: &World) -> (String, String, String) {
    use axum::routing::get;
    use tower_stytch::MachineClient;
    use tower_stytch::config::{Principals, Rule};
    use tower_stytch::revoke::AtStytch;

    let layer = w
        .builder()
        .authorize(
            "GET /api/reports",
            Rule::new()
                .permission("reports", "read")
                .principals(Principals::Machines),
        )
        .build()
        .unwrap();
    let router = axum::Router::new()
        .route(
            "/api/reports",
            get(|m: MachineClient| async move { m.client_id.clone() }),
        )
        .route("/whoami", get(|| async { "member" }));
    let s = serve(layer, router).await;
    let creds = w
        .emulator
        .create_m2m_client(stytch_emulator::NewM2mClient::new(&["read:reports"]))
        .unwrap();
    let secret = creds.client_secret.expose_secret().to_owned();
    let minted: serde_json::Value = s
        .http
        .post(format!(
            "{}v1/public/{}/oauth2/token",
            w.emulator.base_url(),
            w.emulator.project_id()
        ))
        .json(&serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": secret,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = minted["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.get_as("/api/reports", &token).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        s.get_as("/whoami", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let cut = s
        .layer
        .revoker()
        .revoke_client(&creds.client_id, AtStytch::Suspend)
        .await
        .unwrap();
    assert!(cut.suspended_at_stytch);
    assert_eq!(
        s.get_as("/api/reports", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    (creds.client_id, secret, token)
}
