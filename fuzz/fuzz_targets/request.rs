//! Arbitrary requests (method, path, headers: cookies, bearer values, forwarding and
//! browser headers, bytes that are not UTF-8) through the whole layer, with public prefixes, a
//! forced-sign-out hook and the logout and admin routes configured, against the emulator.
//!
//! Checked: no panic; never a 5xx other than 503; the app is reached on a protected route
//! only with an authenticated member; a public-prefix path that reaches the app anonymously
//! is one the app's router would also see under the prefix.
#![no_main]

#[path = "common.rs"]
mod common;

use std::convert::Infallible;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tower::{Service, ServiceExt, service_fn};
use tower_stytch::{MemberSession, StytchAuthLayer};

#[derive(Debug, Arbitrary)]
struct Input {
    method: u8,
    path: Vec<u8>,
    headers: Vec<(u8, Vec<u8>)>,
    use_real_token: bool,
}

const NAMES: [&str; 10] = [
    "cookie",
    "authorization",
    "origin",
    "sec-fetch-site",
    "host",
    "x-forwarded-for",
    "x-stytch-member-id",
    "content-type",
    "referer",
    "x-stytch-session",
];

fn layer() -> &'static StytchAuthLayer {
    static LAYER: OnceLock<StytchAuthLayer> = OnceLock::new();
    LAYER.get_or_init(|| {
        let w = common::world();
        let _guard = w.runtime.enter();
        StytchAuthLayer::builder(common::client(&w.emulator))
            .public_prefix("/assets/")
            .forced_signout("DELETE /api/members/{member_id}")
            .build()
            .unwrap()
    })
}

async fn app(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let member = req.extensions().get::<MemberSession>().is_some();
    let public = path.starts_with("/assets/");
    // The app is reached without a member only under the public prefix.
    assert!(member || public, "reached the app anonymously: {path:?}");
    if public && !member {
        // A public path never resolves out of the prefix, however many times another server
        // decodes it: no dot segment, no `;` parameter, no backslash.
        let mut reading = path.clone();
        for _ in 0..4 {
            assert!(
                !reading.contains(';') && !reading.contains('\\'),
                "ambiguous public path passed: {path:?}"
            );
            assert!(
                !reading.split('/').any(|seg| seg == "." || seg == ".."),
                "dot segment in a public path: {path:?}"
            );
            reading = percent_encoding::percent_decode_str(&reading)
                .decode_utf8_lossy()
                .into_owned();
        }
    }
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

fuzz_target!(|input: Input| {
    let w = common::world();
    let method = match input.method % 5 {
        0 => Method::GET,
        1 => Method::POST,
        2 => Method::DELETE,
        3 => Method::HEAD,
        _ => Method::OPTIONS,
    };
    let Ok(path) = std::str::from_utf8(&input.path) else {
        return;
    };
    let mut builder = Request::builder().method(method).uri(format!("/{path}"));
    for (name, value) in input.headers.iter().take(12) {
        let name = HeaderName::from_static(NAMES[usize::from(*name) % NAMES.len()]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            builder = builder.header(name, value);
        }
    }
    if input.use_real_token {
        builder = builder.header(
            "authorization",
            format!("Bearer {}", w.member.session_token.expose_secret()),
        );
    }
    let Ok(req) = builder.body(Full::new(Bytes::new())) else {
        return;
    };
    let status = w.runtime.block_on(async {
        let mut svc = tower::Layer::layer(layer(), service_fn(app));
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        res.status()
    });
    assert!(
        !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
        "{status}"
    );
});
