//! [`FormMethodOverride`]: a form's `_method` field shown to the auth layer.
//!
//! Rails (`Rack::MethodOverride`), Laravel and Symfony send a browser's DELETE, PUT or
//! PATCH as a POST form carrying `_method=delete`, and act on the method it names. The auth
//! layer matches forced-sign-out hooks (and authorization rules) on that method, but cannot
//! read a body. The gateway can: for a POST whose `Content-Type` is
//! `application/x-www-form-urlencoded`, it reads the body (at most `--form-body-limit`,
//! 64 KiB by default: 413 beyond; all of it within `--client-body-timeout`: 408 after), and
//! when the form has a `_method` field, presents the request to the layer with
//! `X-HTTP-Method-Override: <value>` added. The layer then refuses (400) a request whose
//! overrides disagree (a client-sent `X-HTTP-Method-Override`, `X-HTTP-Method`,
//! `X-Method-Override` or `?_method=` naming another method), exactly as for two
//! conflicting headers; a form with two different `_method` values is refused (400) here.
//! The header the gateway added is for the layer only: the upstream gets the client's
//! headers and the body unchanged.
//!
//! Not read: `multipart/form-data` bodies and JSON bodies (Laravel reads `_method` in
//! those too), and the webhook path's body (the layer reads it under its own limits).

use std::convert::Infallible;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either as EitherFuture;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Extensions, Method, Request, Response, StatusCode, Version};
use http_body::Body as HttpBody;
use http_body_util::{BodyExt as _, Either, Full, LengthLimitError, Limited};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::body::{Body, BoxError, text_response};
use crate::service::ServiceFuture;

/// Default largest form body read for `_method`.
pub(crate) const DEFAULT_FORM_BODY_LIMIT: usize = 64 * 1024;

/// Form bodies buffered at once, at most (64 of 64 KiB: 4 MiB); a request waits for its
/// turn within its body timeout.
const READS_AT_ONCE: usize = 64;

/// The header the gateway adds for the layer.
const X_HTTP_METHOD_OVERRIDE: HeaderName = HeaderName::from_static("x-http-method-override");

/// The request body behind [`FormMethodOverride`]: the client's, or the form it read.
pub(crate) type FormBody<B> = Either<B, Full<Bytes>>;

/// How forms are read.
#[derive(Debug)]
struct Config {
    limit: usize,
    timeout: Duration,
    reads: Semaphore,
    /// The webhook's path: its body is the layer's.
    skipped_path: Option<String>,
}

/// Reads a POST form's `_method` before `inner` (the auth layer) sees the request; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct FormMethodOverride<S> {
    inner: S,
    config: Arc<Config>,
}

/// The client's own `X-HTTP-Method-Override` values, kept while the gateway's copy is
/// shown to the layer; the proxy puts them back ([`restore_client_overrides`]).
#[derive(Debug, Clone)]
struct ClientOverrides(Vec<HeaderValue>);

/// Puts back the client's `X-HTTP-Method-Override` values in place of those the layer saw,
/// if [`FormMethodOverride`] added one.
pub(crate) fn restore_client_overrides(headers: &mut HeaderMap, extensions: &mut Extensions) {
    if let Some(ClientOverrides(values)) = extensions.remove::<ClientOverrides>() {
        headers.remove(X_HTTP_METHOD_OVERRIDE);
        for value in values {
            headers.append(X_HTTP_METHOD_OVERRIDE, value);
        }
    }
}

impl<S> FormMethodOverride<S> {
    /// Reads forms of at most `limit` bytes, each within `timeout`, except on
    /// `skipped_path`.
    pub(crate) fn new(
        inner: S,
        limit: usize,
        timeout: Duration,
        skipped_path: Option<String>,
    ) -> Self {
        let config = Config {
            limit,
            timeout,
            reads: Semaphore::new(READS_AT_ONCE),
            skipped_path,
        };
        Self {
            inner,
            config: Arc::new(config),
        }
    }

    /// The inner service.
    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl Config {
    /// Whether `req` is a POST form whose body this layer reads.
    fn reads<B: HttpBody>(&self, req: &Request<B>) -> bool {
        req.method() == Method::POST
            && !req.body().is_end_stream()
            && is_form(req.headers())
            && self.skipped_path.as_deref() != Some(req.uri().path())
    }
}

/// Whether the `Content-Type` is `application/x-www-form-urlencoded` (parameters aside).
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

impl<S, B> tower_service::Service<Request<B>> for FormMethodOverride<S>
where
    S: tower_service::Service<Request<FormBody<B>>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = EitherFuture<S::Future, ServiceFuture>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if !self.config.reads(&req) {
            return EitherFuture::Left(self.inner.call(req.map(Either::Left)));
        }
        // The ready service stays here; a clone is driven to readiness once the form is read.
        let mut inner = self.inner.clone();
        let config = Arc::clone(&self.config);
        EitherFuture::Right(Box::pin(async move {
            match read_form(req, &config).await {
                Ok(req) => {
                    poll_fn(|cx| inner.poll_ready(cx)).await?;
                    inner.call(req).await
                }
                Err(refusal) => Ok(refusal.response()),
            }
        }))
    }
}

/// Why a form was not read: the answer's status and body, and the request's version.
#[derive(Debug)]
struct Refusal(StatusCode, &'static str, Version);

impl Refusal {
    /// The answer; it also closes an HTTP/1 connection (the body may be half read).
    fn response(self) -> Response<Body> {
        let Self(status, body, version) = self;
        let mut response = text_response(status, body);
        if version < Version::HTTP_2 {
            let close = HeaderValue::from_static("close");
            response.headers_mut().insert(header::CONNECTION, close);
        }
        response
    }
}

/// The request with its form read and, if it has a `_method`, the override the layer
/// reads; or the refusal (400, 408, 413, 503).
async fn read_form<B>(req: Request<B>, config: &Config) -> Result<Request<FormBody<B>>, Refusal>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let version = req.version();
    let refuse = |status, body| Refusal(status, body, version);
    if req
        .body()
        .size_hint()
        .exact()
        .is_some_and(|len| len > config.limit as u64)
    {
        return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, "form too large\n"));
    }
    let deadline = Instant::now() + config.timeout;
    let Ok(Ok(_permit)) = tokio::time::timeout_at(deadline, config.reads.acquire()).await else {
        return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "busy\n"));
    };
    let (mut parts, body) = req.into_parts();
    let read = tokio::time::timeout_at(deadline, Limited::new(body, config.limit).collect());
    let form = match read.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(err)) if err.is::<LengthLimitError>() => {
            return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, "form too large\n"));
        }
        Ok(Err(_)) => return Err(refuse(StatusCode::BAD_REQUEST, "unreadable body\n")),
        Err(_) => {
            crate::metrics::record_body_timeout();
            return Err(refuse(
                StatusCode::REQUEST_TIMEOUT,
                "request body timed out\n",
            ));
        }
    };
    match method_field(&form) {
        Ok(None) => {}
        Ok(Some(method)) => {
            let client = parts
                .headers
                .get_all(X_HTTP_METHOD_OVERRIDE)
                .iter()
                .cloned()
                .collect();
            parts.extensions.insert(ClientOverrides(client));
            parts.headers.append(X_HTTP_METHOD_OVERRIDE, method);
        }
        Err(()) => {
            tracing::info!(
                path = parts.uri.path(),
                "form with conflicting _method fields refused"
            );
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "conflicting _method fields\n",
            ));
        }
    }
    Ok(Request::from_parts(parts, Either::Right(Full::new(form))))
}

/// The `_method` field of `form`: `None` without one; `Err` when two disagree (ASCII case
/// aside) or the value cannot be a header.
fn method_field(form: &[u8]) -> Result<Option<HeaderValue>, ()> {
    let mut found: Option<String> = None;
    for (name, value) in form_urlencoded::parse(form) {
        if name != "_method" {
            continue;
        }
        let value = value.trim();
        match &found {
            Some(first) if !first.eq_ignore_ascii_case(value) => return Err(()),
            Some(_) => {}
            None => found = Some(value.to_owned()),
        }
    }
    found
        .map(|value| HeaderValue::from_str(&value).map_err(|_| ()))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_method_field_is_read_and_conflicts_are_refused() {
        // If this broke, a Rails or Laravel form's `_method=delete` would not reach the
        // layer's hooks, or a form naming two methods could pick the one the layer does not
        // see.
        let field = |form: &str| method_field(form.as_bytes());
        assert_eq!(field("a=1&_method=delete").unwrap().unwrap(), "delete");
        assert_eq!(
            field("_method=DELETE&_method=delete").unwrap().unwrap(),
            "DELETE"
        );
        assert_eq!(field("%5Fmethod=put").unwrap().unwrap(), "put");
        assert_eq!(field("a=1&method=delete").unwrap(), None);
        assert!(field("_method=delete&_method=patch").is_err());
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
        );
        assert!(is_form(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=x"),
        );
        assert!(!is_form(&h));
    }
}
