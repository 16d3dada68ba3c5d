//! Protocol tricks against the layer itself (issue #24's library part), each test named for
//! the attack: encodings only some servers decode, hooks dodged by case, method overrides or
//! a redirect, a refreshed session cookie on a publicly cacheable response, a cross-site
//! WebSocket handshake riding the member's cookie, and a session cookie tossed by a sibling
//! domain. Over real loopback sockets against the emulator.
//!
//! If these fail, a request the layer did not vouch for reaches the app, the app acts on a
//! member who stays signed in, or one member's session leaks to another.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::IntoResponse;
use axum::routing::get;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Served, World, app, serve};

/// The status and lower-cased header block of a raw HTTP/1.1 request (no client normalises
/// the path or merges headers first).
async fn raw(s: &Served, head: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let request = format!("{head}host: {}\r\nconnection: close\r\n\r\n", s.addr);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    (status, head.to_ascii_lowercase())
}

/// An app answering `status` to any path and method, counting the requests that reached it.
fn answering(status: StatusCode) -> (Router, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let router = Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut res = status.into_response();
            if status.is_redirection() {
                res.headers_mut()
                    .insert("location", http::HeaderValue::from_static("/members"));
            }
            res
        }
    });
    (router, calls)
}

async fn hooked(w: &World, router: Router) -> Served {
    let layer = w
        .builder()
        .forced_signout("DELETE /api/members/{member_id}")
        .build()
        .unwrap();
    serve(layer, router).await
}

#[tokio::test]
async fn iis_unicode_overlong_utf8_and_fullwidth_dot_paths_do_not_escape_a_public_prefix() {
    // If this broke, `/public/%u002e%u002e/whoami` (IIS), `/public/%c0%ae%c0%ae/whoami`
    // (overlong UTF-8), `/public/%ef%bc%8e%ef%bc%8e/whoami` (fullwidth dots, NFKC-folded by
    // some stacks) or a NUL would be classified as public and reach, on a server that decodes
    // them into `..`, a protected route without a credential.
    let w = World::new().await;
    let (router, calls) = answering(StatusCode::OK);
    let s = serve(
        w.builder().public_prefix("/public/").build().unwrap(),
        router,
    )
    .await;
    for path in [
        "/public/%u002e%u002e/whoami",
        "/public/%U002E%U002E%U002Fwhoami",
        "/public/%c0%ae%c0%ae/whoami",
        "/public/%c0%af..%c0%afwhoami",
        "/public/%ef%bc%8e%ef%bc%8e/whoami",
        "/public/x%00.css",
        "/public/%25u002e%25u002e/whoami",
    ] {
        let (status, _) = raw(&s, &format!("GET {path} HTTP/1.1\r\n")).await;
        assert_eq!(status, 400, "{path}");
    }
    // Refused on protected routes too, credential or not.
    let token = w.member.session_token.expose_secret();
    let (status, _) = raw(
        &s,
        &format!("GET /api/%c0%ae%c0%ae/x HTTP/1.1\r\nauthorization: Bearer {token}\r\n"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the app ran");
    // An ordinary public path still passes.
    assert_eq!(raw(&s, "GET /public/app.css HTTP/1.1\r\n").await.0, 200);
}

#[tokio::test]
async fn a_hooked_route_in_another_case_still_signs_the_member_out() {
    // If this broke, `DELETE /API/Members/{id}` on a case-insensitive router (Express,
    // ASP.NET) would let the app act while the member stays signed in.
    let w = World::new().await;
    let (router, calls) = answering(StatusCode::NO_CONTENT);
    let s = hooked(&w, router).await;
    let admin = w.admin.session_token.expose_secret();
    let victim = &w.member;
    let (status, head) = raw(
        &s,
        &format!(
            "DELETE /API/Members/{} HTTP/1.1\r\nauthorization: Bearer {admin}\r\n",
            victim.member_id
        ),
    )
    .await;
    assert_eq!(status, 204);
    assert!(head.contains("x-stytch-forced-signout: revoked"), "{head}");
    assert!(!w.emulator.is_session_live(&victim.member_session_id));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_post_with_a_method_override_to_a_hooked_route_signs_the_member_out() {
    // If this broke, `POST /api/members/{id}` with `X-HTTP-Method-Override: DELETE` (Rails,
    // Laravel, Symfony, ASP.NET) or `?_method=DELETE` would let the app delete the member
    // while their sessions stay live.
    let w = World::new().await;
    let (router, _) = answering(StatusCode::OK);
    let s = hooked(&w, router).await;
    let admin = w.admin.session_token.expose_secret();
    for (victim, head) in [
        (
            &w.member,
            format!(
                "POST /api/members/{} HTTP/1.1\r\nx-http-method-override: delete\r\n",
                w.member.member_id
            ),
        ),
        (
            &w.member2,
            format!(
                "POST /api/members/{}?_method=DELETE HTTP/1.1\r\n",
                w.member2.member_id
            ),
        ),
    ] {
        let request = format!("{head}authorization: Bearer {admin}\r\ncontent-length: 0\r\n");
        let (status, response) = raw(&s, &request).await;
        assert_eq!(status, 200, "{head}");
        assert!(
            response.contains("x-stytch-forced-signout: revoked"),
            "{head}: {response}"
        );
        assert!(
            !w.emulator.is_session_live(&victim.member_session_id),
            "{head}"
        );
    }
    // Two different overrides: refused before the app (no honest client sends both).
    let (status, _) = raw(
        &s,
        &format!(
            "POST /api/members/{}?_method=PUT HTTP/1.1\r\nx-http-method-override: DELETE\r\nauthorization: Bearer {admin}\r\ncontent-length: 0\r\n",
            w.other_admin.member_id
        ),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_hooked_action_answered_with_a_redirect_signs_the_member_out() {
    // If this broke, an app that answers a completed action with 303 See Other (Rails,
    // Turbo) or 302 (Django) would act on the member while no sign-out followed.
    for status in [StatusCode::SEE_OTHER, StatusCode::FOUND] {
        let w = World::new().await;
        let (router, _) = answering(status);
        let s = hooked(&w, router).await;
        let admin = w.admin.session_token.expose_secret();
        let (answered, head) = raw(
            &s,
            &format!(
                "DELETE /api/members/{} HTTP/1.1\r\nauthorization: Bearer {admin}\r\n",
                w.member.member_id
            ),
        )
        .await;
        assert_eq!(answered, status.as_u16());
        assert!(
            head.contains("x-stytch-forced-signout: revoked"),
            "{status}: {head}"
        );
        assert!(!w.emulator.is_session_live(&w.member.member_session_id));
    }
}

#[tokio::test]
async fn a_refreshed_session_cookie_on_a_publicly_cacheable_response_is_made_private() {
    // If this broke, a shared cache (CDN, corporate proxy) could store a response carrying one
    // member's fresh session JWT in `Set-Cookie` and hand it to everyone who asks for the URL.
    let w = World::new().await;
    let cached = Router::new().route(
        "/page",
        get(|| async {
            (
                [
                    ("cache-control", "public, max-age=3600"),
                    ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
                ],
                "a page",
            )
        }),
    );
    let s = serve(w.builder().without_jwt().build().unwrap(), cached).await;
    let jwt = w.member.session_jwt.expose_secret();
    // JWTs have one-second timestamps: let the refreshed one differ from the original.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = s
        .http
        .get(s.url("/page"))
        .header("cookie", format!("stytch_session_jwt={jwt}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers().contains_key("set-cookie"),
        "no refresh happened"
    );
    let cache_control: Vec<_> = res.headers().get_all("cache-control").iter().collect();
    assert_eq!(cache_control, ["private, no-store"]);
    assert!(!res.headers().contains_key("expires"));
    // Without a cookie written, the app's caching is the app's.
    let res = s
        .get_as("/page", w.admin.session_token.expose_secret())
        .await;
    assert_eq!(res.headers()["cache-control"], "public, max-age=3600");
}

fn websocket_app() -> Router {
    Router::new().route(
        "/live",
        get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(|_socket| async {}) }),
    )
}

fn handshake(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}"
    )
}

#[tokio::test]
async fn cross_site_websocket_hijacking_with_the_session_cookie_is_refused() {
    // If this broke, a page on another site (or a sibling subdomain) could open a WebSocket
    // that the browser authenticates with the member's cookie, and read and write as them.
    let w = World::new().await;
    let s = serve(
        w.builder()
            .trusted_origins(["https://app.example.com"])
            .build()
            .unwrap(),
        websocket_app(),
    )
    .await;
    let cookie = format!(
        "cookie: stytch_session={}\r\n",
        w.member.session_token.expose_secret()
    );
    for hostile in [
        "origin: https://evil.example\r\n".to_owned(),
        "origin: https://evil.example\r\nsec-fetch-site: cross-site\r\n".to_owned(),
        format!(
            "origin: http://{}\r\nsec-fetch-site: same-site\r\n",
            "sibling.example.com"
        ),
    ] {
        let (status, head) = raw(&s, &handshake("/live", &format!("{cookie}{hostile}"))).await;
        assert_eq!(status, 403, "{hostile}: {head}");
    }
    // The request's own origin, and a trusted one, are accepted.
    let own = format!(
        "origin: http://{}\r\nsec-fetch-site: same-origin\r\n",
        s.addr
    );
    assert_eq!(
        raw(&s, &handshake("/live", &format!("{cookie}{own}")))
            .await
            .0,
        101
    );
    let trusted = "origin: https://app.example.com\r\n";
    assert_eq!(
        raw(&s, &handshake("/live", &format!("{cookie}{trusted}")))
            .await
            .0,
        101
    );
    // A bearer token is not sent by a browser on its own: a handshake carrying one is not a
    // cross-site riding of ambient credentials.
    let bearer = format!(
        "authorization: Bearer {}\r\norigin: https://evil.example\r\n",
        w.member.session_token.expose_secret()
    );
    assert_eq!(raw(&s, &handshake("/live", &bearer)).await.0, 101);
}

#[tokio::test]
async fn a_session_cookie_tossed_by_a_sibling_domain_is_refused_not_chosen() {
    // If this broke, a sibling subdomain that plants `stytch_session` for a longer path
    // (which the browser sends first) would sign the member into the planter's session: what
    // they upload or type would land in the attacker's account.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    let planted = w.other_admin.session_token.expose_secret();
    let own = w.member.session_token.expose_secret();
    let res = s
        .http
        .get(s.url("/whoami"))
        .header(
            "cookie",
            format!("stytch_session={planted}; stytch_session={own}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "ambiguous_credential", "{body}");
    // The same value twice is one cookie.
    let res = s
        .http
        .get(s.url("/whoami"))
        .header(
            "cookie",
            format!("stytch_session={own}; stytch_session={own}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
