//! Path tricks against the route classification: paths that another server reads
//! differently (Tomcat's `;` parameters, double decoding, dot segments) must not inherit a
//! public prefix, and forced-sign-out hooks must match the way the app's router reads the
//! path: either the hook fires after the app's 2xx, or the request is refused before the app
//! runs. Requests go over a raw socket, so no client normalises the path first.
//!
//! If these fail, a request without a credential reaches a protected route behind a
//! normalising server, or the app acts on a member (deletes, suspends) while the member
//! stays signed in.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Served, World, app, serve};

/// The status and the header block of `method path` sent verbatim over a new connection,
/// with `Authorization: Bearer credential` when one is given.
async fn raw(s: &Served, method: &str, path: &str, credential: Option<&str>) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let auth = credential
        .map(|c| format!("authorization: Bearer {c}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n",
        s.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    (status, head.to_ascii_lowercase())
}

/// An app answering 204 to any path (the way routers that ignore a trailing slash, merge
/// slashes or resolve dot segments would act on the hooked route), counting the requests
/// that reached it.
fn lenient_app() -> (Router, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let router = Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { http::StatusCode::NO_CONTENT }
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
async fn dot_dot_semicolon_and_double_encoded_dots_do_not_escape_a_public_prefix() {
    // If this broke, `/public/..;/whoami` (Tomcat, Jetty) or `/public/%252e%252e/whoami` (a
    // double-decoding app) would reach a protected route without a credential.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    assert_eq!(raw(&s, "GET", "/public/x", None).await.0, 200);
    for path in [
        "/public/..;/whoami",
        "/public/%252e%252e/whoami",
        "/public/%252E%252E/whoami",
        "/public/%2e%2e/whoami",
        "/public/..%3b/whoami",
        "/public/x%252fwhoami",
        "/public/x;jsessionid=1/../../whoami",
    ] {
        assert_eq!(raw(&s, "GET", path, None).await.0, 401, "{path}");
    }
}

#[tokio::test]
async fn percent_encoded_member_id_in_a_hooked_route_signs_the_member_out() {
    // If this broke, `DELETE /api/members/member%2Dtest%2D…` would run the app's handler (axum
    // decodes the capture) and leave the member signed in.
    let w = World::new().await;
    let s = hooked(&w, app()).await;
    let victim = &w.member;
    let encoded = victim.member_id.replace('-', "%2D");
    let (status, head) = raw(
        &s,
        "DELETE",
        &format!("/api/members/{encoded}"),
        Some(w.admin.session_token.expose_secret()),
    )
    .await;
    assert_eq!(status, 204);
    assert!(head.contains("x-stytch-forced-signout: revoked"), "{head}");
    assert!(!w.emulator.is_session_live(&victim.member_session_id));
    assert_eq!(
        s.whoami(victim.session_jwt.expose_secret()).await,
        http::StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn trailing_slash_and_doubled_slashes_in_a_hooked_route_sign_the_member_out() {
    // If this broke, an app whose router ignores a trailing slash or merges slashes would
    // act on the member while the hook did not fire.
    let w = World::new().await;
    let (router, calls) = lenient_app();
    let s = hooked(&w, router).await;
    let admin = w.admin.session_token.expose_secret();
    for (victim, path) in [
        (&w.member, format!("/api/members/{}/", w.member.member_id)),
        (&w.member2, format!("//api/members/{}", w.member2.member_id)),
    ] {
        let (status, head) = raw(&s, "DELETE", &path, Some(admin)).await;
        assert_eq!(status, 204, "{path}");
        assert!(
            head.contains("x-stytch-forced-signout: revoked"),
            "{path}: {head}"
        );
        assert!(
            !w.emulator.is_session_live(&victim.member_session_id),
            "{path}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn dot_segments_and_invalid_ids_in_a_hooked_route_are_refused_before_the_app() {
    // If this broke, a path that the app resolves to the hooked route (or a capture that is
    // not a member id) would let the app act while no sign-out follows.
    let w = World::new().await;
    let (router, calls) = lenient_app();
    let s = hooked(&w, router).await;
    let admin = w.admin.session_token.expose_secret();
    let id = &w.member.member_id;
    for (path, status) in [
        (format!("/api/members/x/../{id}"), 400),
        (format!("/api/x/..;/members/{id}"), 400),
        (format!("/api/members/{id};v=1"), 400),
        (format!("/api/members/%2e/{id}"), 400),
        ("/api/members/not%20an%20id".to_owned(), 400),
        ("/api/members/%ff".to_owned(), 400),
    ] {
        assert_eq!(
            raw(&s, "DELETE", &path, Some(admin)).await.0,
            status,
            "{path}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the app ran");
    assert!(w.emulator.is_session_live(&w.member.member_session_id));
}
