//! What the upstream receives: identity headers (never spoofed ones), no member credential
//! unless `--pass-credentials`, cookie crumbs joined, and forwarding headers replaced unless
//! they come from a trusted proxy.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioExecutor;

use super::{
    Gateway, Stytch, Upstream, bounded, free_port, http, last_seen, metrics_text, upstream,
};

#[tokio::test(flavor = "multi_thread")]
async fn identity_headers_reach_the_upstream_and_spoofed_ones_do_not() {
    // If this broke, the real binary would forward spoofed identities, drop real ones or lose /metrics.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
        let gw = Gateway::start(&stytch, up.addr, &["--metrics-listen", &metrics]).await;
        let org = stytch.organization("acme").await;
        let (member, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let r = http()
            .get(format!("{}/whoami", gw.base))
            .bearer_auth(&token)
            .header("x-stytch-member-id", "member-evil")
            .header("x-stytch-roles", "stytch_admin")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let anonymous = http()
            .get(format!("{}/whoami", gw.base))
            .header("x-stytch-member-id", "member-evil")
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        let seen = up.seen.lock().unwrap().clone();
        assert_eq!(
            seen.len(),
            1,
            "the unauthenticated request reached the upstream"
        );
        assert_eq!(seen[0]["x-stytch-member-id"], member.as_str());
        assert_eq!(seen[0]["x-stytch-organization-id"], org.as_str());
        assert!(
            !seen[0]["x-stytch-roles"]
                .to_str()
                .unwrap()
                .contains("stytch_admin")
        );
        assert_eq!(seen[0]["x-forwarded-for"], "127.0.0.1");
        let rendered = metrics_text(&metrics).await;
        assert!(
            rendered.contains("stytch_gateway_upstream_responses_total{class=\"2xx\"} 1"),
            "{rendered}"
        );
        assert!(
            rendered.contains("stytch_auth_requests_total"),
            "{rendered}"
        );
        gw.assert_logs_clean(&[&token]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_never_sees_the_members_bearer_token_or_stytch_cookies() {
    // If this broke, the upstream (its logs, a compromised dependency) would hold the member's
    // Stytch credential and could act as the member at Stytch or replay it through the gateway.
    // One gateway process for the three ways a credential comes (bearer, cookies, both) and
    // the logout that must still clear the cookies: hence its length.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let gw = Gateway::start(&stytch, up.addr, &[]).await;
        let org = stytch.organization("acme").await;
        let (member, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let r = http()
            .get(format!("{}/whoami", gw.base))
            .bearer_auth(&token)
            .header(
                "cookie",
                format!("theme=dark; stytch_session={token}; stytch_session_jwt=a.b.c; lang=en"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let seen = last_seen(&up);
        assert!(
            !seen.contains_key("authorization"),
            "the bearer token reached the upstream"
        );
        assert_eq!(values(&seen, "cookie"), ["theme=dark; lang=en"]);
        assert_eq!(seen["x-stytch-member-id"], member.as_str());
        // A cookie-only request: the session cookie is consumed, the app's cookies stay.
        let r = http()
            .get(format!("{}/whoami", gw.base))
            .header("cookie", format!("stytch_session={token}"))
            .header("authorization", "Basic YXBwOmFwcA==")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let seen = last_seen(&up);
        assert!(!seen.contains_key("cookie"), "{seen:?}");
        // Not the layer's credential: another scheme is the app's business.
        assert_eq!(seen["authorization"], "Basic YXBwOmFwcA==");
        // Logout still clears the session cookies in the browser.
        let r = http()
            .post(format!("{}/logout", gw.base))
            .header("cookie", format!("stytch_session={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let cleared: Vec<_> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert!(
            cleared.iter().any(|c| c.starts_with("stytch_session=;")),
            "{cleared:?}"
        );
        assert!(
            cleared
                .iter()
                .any(|c| c.starts_with("stytch_session_jwt=;")),
            "{cleared:?}"
        );
        gw.assert_logs_clean(&[&token]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_cookie_crumbs_reach_the_upstream_as_one_header() {
    // If this broke, an HTTP/1.1 upstream would see several Cookie headers (most frameworks
    // keep only one) or a Stytch cookie hidden in a second crumb.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let gw = Gateway::start(&stytch, up.addr, &[]).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http::<Full<Bytes>>();
        let req = Request::builder()
            .uri(format!("{}/whoami", gw.base))
            .header("cookie", "a=1")
            .header("cookie", format!("stytch_session={token}"))
            .header("cookie", "b=2")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = client.request(req).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(values(&last_seen(&up), "cookie"), ["a=1; b=2"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pass_credentials_forwards_the_token_and_cookies() {
    // If this broke, an upstream that needs the member's credential (it calls Stytch itself)
    // could not be given it.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let gw = Gateway::start(&stytch, up.addr, &["--pass-credentials"]).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let r = http()
            .get(format!("{}/whoami", gw.base))
            .bearer_auth(&token)
            .header("cookie", format!("theme=dark; stytch_session={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let seen = last_seen(&up);
        assert_eq!(seen["authorization"], format!("Bearer {token}").as_str());
        assert_eq!(
            values(&seen, "cookie"),
            [format!("theme=dark; stytch_session={token}")]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_forwarding_headers_from_an_untrusted_peer_are_replaced() {
    // If this broke, any client could pose as another address (rate limits, audit logs, IP
    // allowlists) or as an https request to the upstream.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        // No trusted proxy (the default): every peer is a client.
        let gw = Gateway::start(&stytch, up.addr, &[]).await;
        let forged = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=6.6.6.6;proto=https"),
            ("x-real-ip", "6.6.6.6"),
        ];
        let seen = seen_with(&stytch, &gw, &up, &forged).await;
        assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(values(&seen, "x-forwarded-proto"), ["http"]);
        let host = gw.base.trim_start_matches("http://");
        assert_eq!(values(&seen, "x-forwarded-host"), [host]);
        assert_eq!(values(&seen, "x-real-ip"), ["127.0.0.1"]);
        assert!(!seen.contains_key("forwarded"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_from_a_trusted_proxy_are_kept_and_appended_to() {
    // If this broke, behind a load balancer the upstream would see the balancer's address as
    // the client, and a TLS-terminated request as plain http.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let trusted = [("GATEWAY_TRUSTED_PROXY", "10.0.0.0/8, 127.0.0.1")];
        let gw = Gateway::start_with_env(&stytch, up.addr, &[], &trusted).await;
        let from_proxy = [
            ("x-forwarded-for", "203.0.113.7, 10.1.2.3"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
            ("x-real-ip", "203.0.113.7"),
        ];
        let seen = seen_with(&stytch, &gw, &up, &from_proxy).await;
        assert_eq!(
            values(&seen, "x-forwarded-for"),
            ["203.0.113.7, 10.1.2.3, 127.0.0.1"]
        );
        assert_eq!(values(&seen, "x-forwarded-proto"), ["https"]);
        assert_eq!(values(&seen, "x-forwarded-host"), ["app.example.com"]);
        assert_eq!(values(&seen, "x-real-ip"), ["203.0.113.7"]);
    })
    .await;
}

/// What the upstream saw of a member's `GET /whoami` through `gw` carrying `headers`.
async fn seen_with(
    stytch: &Stytch,
    gw: &Gateway,
    up: &Upstream,
    headers: &[(&str, &str)],
) -> HeaderMap {
    let org = stytch.organization("acme").await;
    let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
    let mut req = http()
        .get(format!("{}/whoami", gw.base))
        .bearer_auth(&token);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    assert_eq!(req.send().await.unwrap().status(), StatusCode::OK);
    last_seen(up)
}

/// Every value of `name` the upstream saw, in order.
fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}
