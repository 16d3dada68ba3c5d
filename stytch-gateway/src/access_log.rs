//! [`AccessLog`]: the request id of every request, and the access log (one line per
//! request, `--access-log on|off`, on by default as in nginx and oauth2-proxy).
//!
//! **Request ids.** Every request gets an `X-Request-Id`: the one a trusted proxy
//! (`--trusted-proxy`) sent when it is a plain token of at most 128 characters, else a new
//! one (32 hex digits), as Envoy does at the edge (a client's own id could forge or collide
//! with another's in the upstream's logs). The upstream receives it, and the client gets it
//! back on the response unless the upstream answered one of its own.
//!
//! **The access log** is written through `tracing` under the target
//! `stytch_gateway::access` at INFO, in the format of every other line (`--log-format text`
//! or `json`), whatever `RUST_LOG` says of other targets. A line is written when the
//! response's body ends (or the client goes away): `request_id`, `method`, `path` (never the
//! query), `version`, `status`, `duration_ms` (from the request's arrival to the body's
//! end), `bytes` (body bytes sent), and when known `upstream_ms` (the upstream's time to
//! its response headers), `member_id` and `member_session_id` (a request the gateway
//! authenticated and forwarded), `refused` (the auth layer's reason, e.g.
//! `unauthenticated`), `aborted=true` (the body did not reach its end). Never a header, a
//! cookie, a credential or a query string.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, ValueEnum};
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Response, Version};
use http_body::{Body as _, Frame};
use http_body_util::BodyExt as _;
use tower_stytch::MemberSession;
use tower_stytch::service::Rejection;

use crate::body::{Body, BoxError};
use crate::forwarded::TrustedProxies;
use crate::server::PeerAddr;
use crate::service::ServiceFuture;

/// `X-Request-Id`.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The longest request id kept from a trusted proxy.
const MAX_REQUEST_ID: usize = 128;
/// The `tracing` target of the access log's lines.
pub(crate) const TARGET: &str = "stytch_gateway::access";

/// `--access-log`.
#[derive(Debug, Clone, Args)]
pub(crate) struct AccessLogArgs {
    /// One line per request (method, path without the query, status, latency, upstream time,
    /// member and session ids, request id) at INFO under the target `stytch_gateway::access`,
    /// in the --log-format of every other line, whatever RUST_LOG says of other targets.
    #[arg(
        long = "access-log",
        env = "GATEWAY_ACCESS_LOG",
        value_name = "on|off",
        default_value = "on",
        value_enum
    )]
    pub(crate) access_log: Switch,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// The upstream's time to its response headers, in the response's extensions (set by the
/// proxy when it tried the upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UpstreamTime(pub(crate) Duration);

/// The outermost service: gives each request its id, and logs it when `enabled`.
#[derive(Debug, Clone)]
pub(crate) struct AccessLog<S> {
    inner: S,
    enabled: bool,
    trusted: TrustedProxies,
}

impl<S> AccessLog<S> {
    /// Ids for `inner`'s requests (kept from `trusted` proxies), logged when `enabled`.
    pub(crate) fn new(inner: S, enabled: bool, trusted: TrustedProxies) -> Self {
        Self {
            inner,
            enabled,
            trusted,
        }
    }

    /// The inner service.
    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B> tower_service::Service<Request<B>> for AccessLog<S>
where
    S: tower_service::Service<Request<B>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let peer = req.extensions().get::<PeerAddr>().map(|PeerAddr(p)| *p);
        let kept = peer.is_some_and(|p| self.trusted.contains(p.ip()));
        let id = kept
            .then(|| {
                req.headers()
                    .get(&X_REQUEST_ID)
                    .filter(|v| is_request_id(v))
            })
            .flatten()
            .cloned()
            .unwrap_or_else(new_request_id);
        req.headers_mut().insert(X_REQUEST_ID, id.clone());
        let line = self.enabled.then(|| Line {
            started: Instant::now(),
            request_id: id.clone(),
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            version: req.version(),
            peer: peer.map(|p| p.to_string()),
        });
        let response = self.inner.call(req);
        Box::pin(async move {
            let mut response = response.await?;
            response.headers_mut().entry(X_REQUEST_ID).or_insert(id);
            Ok(match line {
                Some(line) => logged(line, response),
                None => response,
            })
        })
    }
}

/// What the access log knows of a request when it arrives.
struct Line {
    started: Instant,
    request_id: HeaderValue,
    method: Method,
    path: String,
    version: Version,
    peer: Option<String>,
}

/// What the response adds to the line.
struct Answer {
    status: u16,
    upstream: Option<Duration>,
    session: Option<MemberSession>,
    refused: Option<&'static str>,
}

/// `response` with a body that writes the line when it ends or is dropped.
fn logged(line: Line, response: Response<Body>) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let answer = Answer {
        status: parts.status.as_u16(),
        upstream: parts.extensions.get::<UpstreamTime>().map(|t| t.0),
        session: parts.extensions.get::<MemberSession>().cloned(),
        refused: parts
            .extensions
            .get::<Rejection>()
            .map(|r| r.kind().as_str()),
    };
    let body = LoggedBody {
        inner: body,
        pending: Some((line, answer)),
        bytes: 0,
    };
    Response::from_parts(parts, body.boxed_unsync())
}

/// A response body that writes its request's line once, when it ends or is dropped.
struct LoggedBody {
    inner: Body,
    pending: Option<(Line, Answer)>,
    bytes: u64,
}

impl LoggedBody {
    fn write(&mut self, complete: bool) {
        if let Some((line, answer)) = self.pending.take() {
            write_line(&line, &answer, self.bytes, complete);
        }
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.write(true);
                }
            }
            Poll::Ready(None) => self.write(true),
            Poll::Ready(Some(Err(_))) => self.write(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let complete = self.inner.is_end_stream();
        self.write(complete);
    }
}

/// Writes one access log line.
fn write_line(line: &Line, answer: &Answer, bytes: u64, complete: bool) {
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let session = answer.session.as_ref();
    tracing::info!(
        target: TARGET,
        request_id = line.request_id.to_str().unwrap_or_default(),
        method = line.method.as_str(),
        path = line.path.as_str(),
        version = version(line.version),
        status = answer.status,
        duration_ms = ms(line.started.elapsed()),
        upstream_ms = answer.upstream.map(ms),
        bytes,
        member_id = session.map(|s| tracing::field::display(&s.member_id)),
        member_session_id = session.map(|s| tracing::field::display(&s.member_session_id)),
        refused = answer.refused,
        peer = line.peer.as_deref(),
        aborted = (!complete).then_some(true),
        "request"
    );
}

/// `HTTP/1.1` and the like.
fn version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// Whether `value` may be kept as a request id: 1 to 128 characters of a plain token (no
/// blank, quote or control character that could forge a log line).
fn is_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:~+/=@".contains(b))
}

/// A new request id: 128 random bits, 32 hex digits.
fn new_request_id() -> HeaderValue {
    // 32 hex digits, written without the formatting machinery (once per request).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut random = fastrand::u128(..);
    let mut id = [0u8; 32];
    for digit in id.iter_mut().rev() {
        *digit = HEX[(random & 0xf) as usize];
        random >>= 4;
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_plain_tokens_and_new_ones_are_unique() {
        // If this broke, a trusted proxy's id with a newline or a quote could forge a log
        // line, or two requests could share a generated id.
        for good in [
            "abc",
            "5f2c-11ee.be56:0242ac120002",
            "Root=1-67891233-abcdef012345678912345678",
        ] {
            assert!(is_request_id(&HeaderValue::from_static(good)), "{good}");
        }
        let long = "a".repeat(MAX_REQUEST_ID + 1);
        for bad in ["", "a b", "a\"b", "a,b", long.as_str()] {
            assert!(
                !is_request_id(&HeaderValue::from_str(bad).unwrap()),
                "{bad}"
            );
        }
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(is_request_id(&a));
    }
}
