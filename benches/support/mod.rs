//! A stand-in for Stytch's API, for the benches: over loopback it answers
//! `POST /v1/b2b/sessions/authenticate` with a session derived from the token (`tok{m}x{n}` is
//! session `n / 2` of member `m`), `POST /v1/b2b/sessions/revoke` with 200, and the JWKS with
//! the keys it was given, all at once. Unlike the emulator it keeps no state and mints
//! nothing, so filling a cache of 100 000 entries through the layer takes seconds.
#![allow(dead_code)]

pub(crate) mod request;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tower_stytch::StytchConfig;

pub(crate) const PROJECT: &str = "project-test-00000000-0000-0000-0000-000000000000";

/// The running stand-in; stops when dropped.
pub(crate) struct StubStytch {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StubStytch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The credential of session `n / 2` of member `m`.
pub(crate) fn token(m: u64, n: u64) -> String {
    format!("tok{m}x{n}")
}

/// The member id behind [`token`]`(m, _)`.
pub(crate) fn member_id(m: u64) -> String {
    format!("member-test-{m}")
}

fn session_for(token: &str) -> Option<Value> {
    let (m, n) = token.strip_prefix("tok")?.split_once('x')?;
    let (m, n): (u64, u64) = (m.parse().ok()?, n.parse().ok()?);
    let now = SystemTime::now();
    let at = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    Some(json!({
        "member_session_id": format!("session-test-{m}-{}", n / 2),
        "member_id": member_id(m),
        "organization_id": "organization-test-bench",
        "organization_slug": "bench",
        "roles": ["stytch_member"],
        "started_at": at(now),
        "last_accessed_at": at(now),
        "expires_at": at(now + Duration::from_secs(3600)),
    }))
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    res
}

async fn answer(req: Request<Incoming>, jwks: Value) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if path.starts_with("/v1/b2b/sessions/jwks/") {
        return json_response(StatusCode::OK, &jwks);
    }
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match path.as_str() {
        "/v1/b2b/sessions/authenticate" => {
            match body["session_token"].as_str().and_then(session_for) {
                Some(session) => json_response(
                    StatusCode::OK,
                    &json!({"request_id": "request-id-bench", "status_code": 200,
                        "member_session": session}),
                ),
                None => json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"status_code": 404, "error_type": "session_not_found"}),
                ),
            }
        }
        "/v1/b2b/sessions/revoke" => json_response(
            StatusCode::OK,
            &json!({"request_id": "request-id-bench", "status_code": 200}),
        ),
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error_type": "not_found"})),
    }
}

impl StubStytch {
    /// Serves on 127.0.0.1, with `jwks` as the JWKS answer.
    pub(crate) async fn start(jwks: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let jwks = jwks.clone();
                let service = hyper::service::service_fn(move |req| {
                    let jwks = jwks.clone();
                    async move { Ok::<_, Infallible>(answer(req, jwks).await) }
                });
                tokio::spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, task }
    }

    /// A configuration pointing at this stand-in.
    pub(crate) fn config(&self) -> StytchConfig {
        StytchConfig::builder(PROJECT, "secret-test-bench")
            .base_url(format!("http://{}/", self.addr))
            .build()
            .unwrap()
    }
}
