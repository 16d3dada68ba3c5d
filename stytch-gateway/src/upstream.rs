//! [`EchoUpstream`]: the small upstream app of the demo and the load run, and [`NoContent`],
//! the load run's no-op auth endpoint.
//!
//! The echo app answers every request with a JSON page of what it received from the gateway:
//! method, path, identity headers and `X-Forwarded-*`. It never echoes `Authorization` or
//! cookies.

use std::convert::Infallible;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};

use super::identity::{MEMBER_ID, MEMBER_SESSION_ID, ORGANIZATION_ID, ROLES};
use super::{Body, full_body};

/// The echo app (stateless, always ready).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EchoUpstream;

impl EchoUpstream {
    /// The JSON page for a request.
    pub(crate) fn page<B>(req: &Request<B>) -> serde_json::Value {
        let h = req.headers();
        let get = |name: &str| -> serde_json::Value {
            header_str(h, name).map_or(serde_json::Value::Null, Into::into)
        };
        let roles: Vec<&str> = header_str(h, ROLES.as_str())
            .map(|r| r.split(',').filter(|r| !r.is_empty()).collect())
            .unwrap_or_default();
        serde_json::json!({
            "method": req.method().as_str(),
            "path": req.uri().path(),
            "authenticated": h.contains_key(&MEMBER_ID),
            "member_id": get(MEMBER_ID.as_str()),
            "organization_id": get(ORGANIZATION_ID.as_str()),
            "member_session_id": get(MEMBER_SESSION_ID.as_str()),
            "roles": roles,
            "x_forwarded_for": get("x-forwarded-for"),
            "x_forwarded_proto": get("x-forwarded-proto"),
            "x_forwarded_host": get("x-forwarded-host"),
        })
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl<B> tower_service::Service<Request<B>> for EchoUpstream {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = super::ServiceFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut body = serde_json::to_vec_pretty(&Self::page(&req)).unwrap_or_default();
        body.push(b'\n');
        let mut response = Response::new(full_body(body));
        *response.status_mut() = StatusCode::OK;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Box::pin(async move { Ok(response) })
    }
}

/// Answers every request `204 No Content` without reading it: the trivial auth endpoint
/// nginx `auth_request` is pointed at in the load run, to compare ours with.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoContent;

impl<B> tower_service::Service<Request<B>> for NoContent {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let mut response = Response::new(full_body(bytes::Bytes::new()));
        *response.status_mut() = StatusCode::NO_CONTENT;
        std::future::ready(Ok(response))
    }
}
