//! Cross-site request forgery against the routes with a side effect: logout,
//! log-out-everywhere, the admin revocation routes and the forced-sign-out hooks. A refused
//! request has no side effect at all: no Stytch call, no `Set-Cookie`, no redirect, no local
//! revocation, and a hooked route never reaches the app.
//!
//! If these fail, a page on another site (or a sibling subdomain, which a `SameSite=Lax`
//! cookie does not stop) can sign members out, or force-sign-out a member through an admin's
//! browser; or, the other way round, API clients without browser headers are locked out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::delete;
use http::StatusCode;
use stytch_emulator::SessionInfo;

use crate::support::{Served, World, app, serve};

/// What the refused request must not have done: no call to Stytch at all, no cookie written
/// or cleared, no redirect, and the session still live at Stytch and here.
async fn assert_no_side_effect(
    w: &World,
    s: &Served,
    res: &reqwest::Response,
    victim: &SessionInfo,
) {
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        w.emulator.requests().is_empty(),
        "a refused request reached Stytch: {:?}",
        w.emulator
            .requests()
            .iter()
            .map(|r| r.path.clone())
            .collect::<Vec<_>>()
    );
    assert!(res.headers().get("set-cookie").is_none(), "Set-Cookie sent");
    assert!(res.headers().get("location").is_none(), "redirected");
    assert!(w.emulator.is_session_live(&victim.member_session_id));
    assert_eq!(
        s.whoami(victim.session_token.expose_secret()).await,
        StatusCode::OK,
        "revoked locally"
    );
}

#[tokio::test]
async fn sibling_subdomain_admin_revocation_with_a_lax_cookie_is_refused() {
    // If this broke, any page on a sibling subdomain (which SameSite=Lax does not stop) could
    // make an admin's browser sign a member out.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    let path = format!("/admin/members/{}/revoke-sessions", w.member.member_id);
    let cookie = format!("stytch_session={}", w.admin.session_token.expose_secret());
    for (site, origin) in [
        ("same-site", "https://evil.acme.test"),
        ("cross-site", "https://evil.test"),
    ] {
        w.emulator.clear_requests();
        let res = s
            .http
            .post(s.url(&path))
            .header("cookie", &cookie)
            .header("sec-fetch-site", site)
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_no_side_effect(&w, &s, &res, &w.member).await;
    }
    // An old browser: Origin only.
    w.emulator.clear_requests();
    let res = s
        .http
        .post(s.url(&path))
        .header("cookie", &cookie)
        .header("origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert_no_side_effect(&w, &s, &res, &w.member).await;
}

#[tokio::test]
async fn cross_site_logout_without_a_cookie_sets_no_cookie_and_does_not_redirect() {
    // If this broke, another site could clear our session cookies and bounce the browser
    // through our logout (or revoke a session whose bearer token it holds from a page).
    let w = World::new().await;
    let layer = w
        .builder()
        .logout_redirect_allowlist(["/"])
        .build()
        .unwrap();
    let s = serve(layer, app()).await;
    for path in ["/logout?return_to=/", "/logout/everywhere"] {
        w.emulator.clear_requests();
        let res = s
            .http
            .post(s.url(path))
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .unwrap();
        assert_no_side_effect(&w, &s, &res, &w.member).await;
        w.emulator.clear_requests();
        let res = s
            .http
            .post(s.url(path))
            .header(
                "authorization",
                format!("Bearer {}", w.member.session_token.expose_secret()),
            )
            .header("origin", "null")
            .send()
            .await
            .unwrap();
        assert_no_side_effect(&w, &s, &res, &w.member).await;
    }
}

#[tokio::test]
async fn cross_site_forced_signout_hook_never_reaches_the_app() {
    // If this broke, a cross-site request through an admin's browser could make the app act
    // (delete a member) and sign the member out.
    let w = World::new().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let router = Router::new().merge(app()).route(
        "/api/apps/{member_id}",
        delete(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { StatusCode::NO_CONTENT }
        }),
    );
    let layer = w
        .builder()
        .forced_signout("DELETE /api/apps/{member_id}")
        .build()
        .unwrap();
    let s = serve(layer, router).await;
    let path = format!("/api/apps/{}", w.member.member_id);
    let cookie = format!("stytch_session={}", w.admin.session_token.expose_secret());
    w.emulator.clear_requests();
    let res = s
        .http
        .delete(s.url(&path))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .header("origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert_no_side_effect(&w, &s, &res, &w.member).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the app ran");
    // The same request from the app's own pages goes through.
    let res = s
        .http
        .delete(s.url(&path))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .header("origin", format!("http://{}", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(res.headers()["x-stytch-forced-signout"], "revoked");
}

#[tokio::test]
async fn get_logout_from_an_img_tag_is_refused() {
    // If this broke, with GET logout enabled any page could sign visitors out with
    // <img src="https://app/logout"> (no Origin, no Sec-Fetch-Site in old browsers).
    let w = World::new().await;
    let layer = w.builder().allow_get_logout(true).build().unwrap();
    let s = serve(layer, app()).await;
    let cookie = format!("stytch_session={}", w.member.session_token.expose_secret());
    for headers in [
        vec![],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
    ] {
        w.emulator.clear_requests();
        let mut req = s.http.get(s.url("/logout")).header("cookie", &cookie);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let res = req.send().await.unwrap();
        assert_no_side_effect(&w, &s, &res, &w.member).await;
    }
    // A same-origin signal: the logout link on the app's own page, or a typed URL.
    let res = s
        .http
        .get(s.url("/logout"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "none")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["x-stytch-logout"], "revoked");
    assert!(!w.emulator.is_session_live(&w.member.member_session_id));
    let other = w.emulator.create_session(&w.member2.member_id);
    let res = s
        .http
        .get(s.url("/logout"))
        .header(
            "cookie",
            format!("stytch_session={}", other.session_token.expose_secret()),
        )
        .header("origin", format!("http://{}", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(!w.emulator.is_session_live(&other.member_session_id));
}

#[tokio::test]
async fn bearer_api_calls_and_same_origin_pages_keep_working() {
    // If this broke, API clients (no browser headers), the app's own pages (behind a TLS
    // terminator: Origin https, request http) or configured trusted origins would get 403.
    let w = World::new().await;
    let layer = w
        .builder()
        .trusted_origins(["https://app.acme.test"])
        .build()
        .unwrap();
    let s = serve(layer, app()).await;
    let revoke = |id: &str| format!("/admin/members/{id}/revoke-sessions");
    let res = s
        .post_as(
            &revoke(&w.member.member_id),
            w.admin.session_token.expose_secret(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = format!("stytch_session={}", w.admin.session_token.expose_secret());
    let res = s
        .http
        .post(s.url(&revoke(&w.member2.member_id)))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .header("origin", format!("https://{}", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A trusted sibling origin: its requests are same-site, and accepted.
    let other = w.emulator.create_session(&w.member.member_id);
    let res = s
        .http
        .post(s.url(&format!(
            "/admin/sessions/{}/revoke",
            other.member_session_id
        )))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-site")
        .header("origin", "https://app.acme.test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = s
        .post_as("/logout", w.admin.session_token.expose_secret())
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["x-stytch-logout"], "revoked");
}
