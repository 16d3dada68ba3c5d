//! The routes the gateway acts on: logout and the admin revocation, and the path tricks
//! that must neither open a public prefix nor dodge a forced sign-out hook.

use http::StatusCode;

use super::{Gateway, Stytch, bounded, upstream};

#[tokio::test(flavor = "multi_thread")]
async fn logout_and_admin_revoke_end_to_end() {
    // If this broke, logged-out or force-signed-out members would keep access through the binary.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let gw = Gateway::start(&stytch, up.addr, &[]).await;
        let org = stytch.organization("acme").await;
        let (_, admin) = stytch
            .member(&org, "alice@acme.test", &["stytch_admin"])
            .await;
        let (bob_id, bob) = stytch.member(&org, "bob@acme.test", &[]).await;
        let (carol_id, carol) = stytch.member(&org, "carol@acme.test", &[]).await;
        use reqwest::Method;
        assert_eq!(gw.call(Method::GET, "/whoami", &bob).await, StatusCode::OK);
        assert!(gw.call(Method::POST, "/logout", &bob).await.is_success());
        assert_eq!(
            gw.call(Method::GET, "/whoami", &bob).await,
            StatusCode::UNAUTHORIZED
        );
        let revoke_bob = format!("/admin/members/{bob_id}/revoke-sessions");
        assert_eq!(
            gw.call(Method::POST, &revoke_bob, &carol).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            gw.call(Method::GET, "/whoami", &carol).await,
            StatusCode::OK
        );
        let revoke_carol = format!("/admin/members/{carol_id}/revoke-sessions");
        assert!(
            gw.call(Method::POST, &revoke_carol, &admin)
                .await
                .is_success()
        );
        assert_eq!(
            gw.call(Method::GET, "/whoami", &carol).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            gw.call(Method::GET, "/whoami", &admin).await,
            StatusCode::OK
        );
        gw.assert_logs_clean(&[&admin, &bob, &carol]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn public_prefix_path_tricks_never_reach_the_upstream_without_a_credential() {
    // If this broke, `--public /assets/` would let `/assets/..;/admin` (Tomcat, Jetty) or
    // `/assets/%252e%252e/admin` (double decoding) reach the upstream's /admin anonymously.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let gw = Gateway::start(&stytch, up.addr, &["--public", "/assets/"]).await;
        assert_eq!(
            raw_status(&gw.base, "GET", "/assets/app.js", None).await,
            200
        );
        for path in [
            "/assets/..;/admin",
            "/assets/%252e%252e/admin",
            "/assets/%2e%2e/admin",
            "/assets/%252fadmin",
        ] {
            assert_eq!(raw_status(&gw.base, "GET", path, None).await, 401, "{path}");
        }
        assert_eq!(
            up.seen.lock().unwrap().len(),
            1,
            "a trick reached the upstream"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn percent_encoded_member_id_through_the_gateway_signs_the_member_out() {
    // If this broke, `DELETE /api/members/member%2Dtest%2D…` would reach the upstream (which
    // decodes it and acts) and the member would stay signed in.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let gw = Gateway::start(
            &stytch,
            up.addr,
            &["--forced-signout", "DELETE /api/members/{member_id}"],
        )
        .await;
        let org = stytch.organization("acme").await;
        let (_, admin) = stytch
            .member(&org, "alice@acme.test", &["stytch_admin"])
            .await;
        let (bob_id, bob) = stytch.member(&org, "bob@acme.test", &[]).await;
        use reqwest::Method;
        assert_eq!(gw.call(Method::GET, "/whoami", &bob).await, StatusCode::OK);
        let path = format!("/api/members/{}", bob_id.replace('-', "%2D"));
        assert_eq!(
            raw_status(&gw.base, "DELETE", &path, Some(&admin)).await,
            200
        );
        assert_eq!(
            gw.call(Method::GET, "/whoami", &bob).await,
            StatusCode::UNAUTHORIZED
        );
    })
    .await;
}

/// The status of `method path` sent verbatim (no client normalises the path), with
/// `Authorization: Bearer credential` when one is given.
async fn raw_status(base: &str, method: &str, path: &str, credential: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = credential
        .map(|c| format!("authorization: Bearer {c}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line")
}
