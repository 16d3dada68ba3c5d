//! [`EchoUpstream`]: the small upstream app of the demo and the load run, and [`NoContent`],
//! the load run's no-op auth endpoint; `stytch-gateway upstream` serves either on its own.
//!
//! The echo app answers every request with a JSON page of what it received from the gateway:
//! method, path, identity headers and `X-Forwarded-*`. It never echoes `Authorization` or
//! cookies.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use clap::Args;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};

use crate::body::{Body, full_body};
use crate::conn::{ConnectionLimits, DEFAULT_MAX_CONNECTIONS};
use crate::error::GatewayError;
use crate::identity::{MEMBER_ID, MEMBER_SESSION_ID, ORGANIZATION_ID, ROLES};
use crate::server::{bind, serve_limited};
use crate::service::{Handler, ServiceFn};

/// `upstream`'s flags: the echo upstream on its own.
#[derive(Debug, Clone, Args)]
pub(crate) struct UpstreamArgs {
    /// Address the echo upstream listens on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub(crate) listen: SocketAddr,
    /// Answer every request 204 with no body instead of echoing it (the no-op auth endpoint
    /// the load run compares the auth-only endpoint with).
    #[arg(long)]
    pub(crate) no_content: bool,
    /// Connections open at once (the gateway's default; a load run with more client
    /// connections than that raises it, for each gateway in front may open as many).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub(crate) max_connections: usize,
}

/// Serves the echo app (or, with `--no-content`, [`NoContent`]) until `shutdown`.
///
/// # Errors
///
/// When the address cannot be bound.
pub(crate) async fn run_upstream(
    args: UpstreamArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    let listener = bind(args.listen).await?;
    let drain = Duration::from_secs(5);
    let limits = ConnectionLimits {
        max_connections: args.max_connections,
        ..ConnectionLimits::default()
    };
    if args.no_content {
        println!("no-content upstream listening on http://{}", args.listen);
        serve_limited("upstream", listener, NoContent, shutdown, drain, limits).await;
    } else {
        println!("echo upstream listening on http://{}", args.listen);
        serve_limited(
            "upstream",
            listener,
            ServiceFn(EchoUpstream),
            shutdown,
            drain,
            limits,
        )
        .await;
    }
    Ok(())
}

/// The echo app (stateless; a [`Handler`]).
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

impl<B> Handler<B> for EchoUpstream {
    fn handle(&self, req: Request<B>) -> impl Future<Output = Response<Body>> + Send + 'static {
        let mut body = serde_json::to_vec_pretty(&Self::page(&req)).unwrap_or_default();
        body.push(b'\n');
        let mut response = Response::new(full_body(body));
        *response.status_mut() = StatusCode::OK;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        std::future::ready(response)
    }
}

/// Answers every request `204 No Content` without reading it: the trivial auth endpoint
/// nginx `auth_request` is pointed at in the load run, to compare ours with. Not a
/// [`ServiceFn`]: its future is not boxed, so it stays the
/// cheapest answer the load run can measure against.
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
