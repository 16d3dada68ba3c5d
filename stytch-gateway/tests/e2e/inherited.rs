//! The auth layer's edge protections (issue #24, fixed in the library and tested in detail
//! in `tests/it/edge.rs`), shown to hold through the gateway binary: one short test each.

use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::AsyncWriteExt as _;

use super::edge::{no_redirects, raw, recorder, session_live};
use super::{Gateway, Stytch, WEBHOOK_PATH, WEBHOOK_SECRET, bounded, http};

#[tokio::test(flavor = "multi_thread")]
async fn paths_only_some_servers_decode_are_refused_through_the_gateway() {
    // If this broke, `%u002e` (IIS), overlong UTF-8 (`%c0%ae`), fullwidth dots or a NUL
    // would reach an upstream that decodes them into `..` or a truncated path, public
    // prefix included.
    bounded(async {
        let stytch = Stytch::start();
        let up = recorder().await;
        let gw = Gateway::start(&stytch, up.addr, &["--public", "/assets/"]).await;
        for path in [
            "/assets/%u002e%u002e/admin",
            "/assets/%c0%ae%c0%ae/admin",
            "/assets/%ef%bc%8e%ef%bc%8e/admin",
            "/assets/x%00.css",
        ] {
            let (status, _) = raw(&gw.base, &format!("GET {path} HTTP/1.1\r\n"), b"").await;
            assert_eq!(status, 400, "{path}");
        }
        assert!(up.seen().is_empty(), "an odd path reached the upstream");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_fire_in_any_case_on_method_overrides_and_on_redirects_through_the_gateway() {
    // If this broke, `POST /API/Members/{id}` with `X-HTTP-Method-Override: DELETE` (or
    // `?_method=delete`) answered 303 by the app would delete the member while the gateway
    // kept them signed in; or a 304 (nothing done) would sign them out.
    bounded(async {
        let stytch = Stytch::start();
        let up = recorder().await;
        let hook = ["--forced-signout", "DELETE /api/members/{member_id}"];
        let gw = Gateway::start(&stytch, up.addr, &hook).await;
        let org = stytch.organization("acme").await;
        let (_, admin) = stytch
            .member(&org, "alice@acme.test", &["stytch_admin"])
            .await;
        let (bob_id, bob) = stytch.member(&org, "bob@acme.test", &[]).await;
        let (carol_id, carol) = stytch.member(&org, "carol@acme.test", &[]).await;
        let client = no_redirects();
        let post = |path: String| {
            client
                .post(format!("{}{path}", gw.base))
                .bearer_auth(&admin)
        };
        let bob_path = format!("/API/Members/{bob_id}?status=303");
        let r = post(bob_path).header("x-http-method-override", "DELETE");
        assert_eq!(r.send().await.unwrap().status(), StatusCode::SEE_OTHER);
        assert!(gw.refused_soon(&bob).await, "Bob is still signed in");
        let not_modified = format!("/api/members/{carol_id}?_method=delete&status=304");
        let r = post(not_modified).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert!(
            session_live(&stytch, &carol).await,
            "a 304 signed Carol out"
        );
        let redirected = format!("/api/members/{carol_id}?_method=delete&status=303");
        let r = post(redirected).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(gw.refused_soon(&carol).await, "Carol is still signed in");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refreshed_jwt_cookie_makes_a_cacheable_response_private_through_the_gateway() {
    // If this broke, a CDN in front of the gateway could store a public page carrying one
    // member's fresh session JWT in Set-Cookie and serve it to everyone.
    bounded(async {
        let stytch = Stytch::start();
        let up = recorder().await;
        let gw = Gateway::start(&stytch, up.addr, &["--no-jwt"]).await;
        let org = stytch.organization("acme").await;
        let (member_id, _) = stytch.member(&org, "bob@acme.test", &[]).await;
        let s = stytch
            .control("sessions", serde_json::json!({ "member_id": member_id }))
            .await;
        let jwt = s["session_jwt"].as_str().unwrap().to_owned();
        // JWTs have one-second timestamps: let the refreshed one differ from the original.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let r = http()
            .get(format!("{}/page", gw.base))
            .header("cookie", format!("stytch_session_jwt={jwt}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers().contains_key("set-cookie"),
            "no refresh happened"
        );
        assert_eq!(r.headers()["cache-control"], "private, no-store");
        gw.assert_logs_clean(&[&jwt]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_cookie_tossed_by_a_sibling_domain_is_refused_through_the_gateway() {
    // If this broke, a sibling subdomain planting its own `stytch_session` would sign the
    // member into the planter's session through the gateway.
    bounded(async {
        let stytch = Stytch::start();
        let up = recorder().await;
        let gw = Gateway::start(&stytch, up.addr, &[]).await;
        let org = stytch.organization("acme").await;
        let (_, planted) = stytch.member(&org, "mallory@acme.test", &[]).await;
        let (_, own) = stytch.member(&org, "bob@acme.test", &[]).await;
        let r = http()
            .get(format!("{}/whoami", gw.base))
            .header(
                "cookie",
                format!("stytch_session={planted}; stytch_session={own}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(up.seen().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_with_forged_signature_headers_is_refused_before_its_body_through_the_gateway() {
    // If this broke, anyone could make the gateway wait for (and hold) a webhook body that
    // never comes, without a plausible signature: a few hundred such requests would tie up
    // the webhook route and the gateway's connections.
    bounded(async {
        let stytch = Stytch::start();
        let up = recorder().await;
        let args = ["--webhook-path", WEBHOOK_PATH];
        let env = [("STYTCH_WEBHOOK_SECRET", WEBHOOK_SECRET)];
        let gw = Gateway::start_with_env(&stytch, up.addr, &args, &env).await;
        let addr = gw.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let head = format!(
            "POST {WEBHOOK_PATH} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\nsvix-id: msg_1\r\nsvix-timestamp: {now}\r\nsvix-signature: v1,not-a-signature\r\n\r\n{{\"a\":"
        );
        let started = Instant::now();
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = [0u8; 12];
        let read = tokio::io::AsyncReadExt::read_exact(&mut stream, &mut answer);
        tokio::time::timeout(Duration::from_secs(3), read)
            .await
            .expect("the gateway waited for the body")
            .unwrap();
        let status = String::from_utf8_lossy(&answer[9..12]).into_owned();
        assert!(status.starts_with('4'), "{status}");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(up.seen().is_empty());
    })
    .await;
}
