//! [`BodylessRefusals`]: the auth-only endpoint's refusals (401 / 403 / 503 from the auth
//! layer) are sent without a body.
//!
//! nginx makes its `auth_request` subrequest header-only and never reads the answer's body,
//! so an answer that has one cannot go back to nginx's keep-alive pool: nginx closes the
//! connection, and its next check opens a new one. For the auth layer's JSON refusals that
//! meant a flood of junk credentials through nginx cost one TCP connection per request
//! (accept, handshake, a connection task here; a TIME_WAIT socket and an ephemeral port on
//! nginx's side, which run out long before the gateway does). Without a body
//! (`content-length: 0`) the refusal keeps the connection, as the 200 does (see `app`).
//!
//! The status and every header stay (`www-authenticate` names the error), so nginx, Traefik
//! `forwardAuth` and their clients still see why. Other paths are untouched.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::TryFutureExt as _;
use futures_util::future::MapOk;
use http::{Request, Response, header};
use http_body_util::{Either, Empty};

/// The body of a [`BodylessRefusals`] answer: the inner service's, or none.
pub(crate) type MaybeEmpty<B> = Either<B, Empty<Bytes>>;

type Map<B> = fn(Response<B>) -> Response<MaybeEmpty<B>>;

/// Wraps the auth layer: answers for `path` that are not 2xx lose their body.
#[derive(Clone, Debug)]
pub(crate) struct BodylessRefusals<S> {
    inner: S,
    path: Option<Arc<str>>,
}

impl<S> BodylessRefusals<S> {
    /// `path` is `--auth-only-path`; with `None` every answer passes unchanged.
    pub(crate) fn new(inner: S, path: Option<String>) -> Self {
        Self {
            inner,
            path: path.map(Into::into),
        }
    }
}

fn keep<B>(response: Response<B>) -> Response<MaybeEmpty<B>> {
    response.map(Either::Left)
}

fn strip<B>(response: Response<B>) -> Response<MaybeEmpty<B>> {
    if response.status().is_success() {
        return keep(response);
    }
    let (mut parts, body) = response.into_parts();
    drop(body);
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Either::Right(Empty::new()))
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for BodylessRefusals<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<MaybeEmpty<ResBody>>;
    type Error = S::Error;
    type Future = MapOk<S::Future, Map<ResBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // No clone-and-swap: this wrapper holds no state of its own between `poll_ready` and
        // `call`; the inner service it was made ready with is the one called.
        let map: Map<ResBody> = if self.path.as_deref() == Some(req.uri().path()) {
            strip
        } else {
            keep
        };
        self.inner.call(req).map_ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use http_body_util::{BodyExt as _, Full};
    use tower_service::Service as _;

    /// A service answering every request with `status` and a JSON body.
    #[derive(Clone)]
    struct Answer(StatusCode);

    impl tower_service::Service<Request<()>> for Answer {
        type Response = Response<Full<Bytes>>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _req: Request<()>) -> Self::Future {
            let mut response = Response::new(Full::new(Bytes::from_static(b"{\"error\":\"x\"}")));
            *response.status_mut() = self.0;
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
            headers.insert(header::WWW_AUTHENTICATE, "Bearer".parse().unwrap());
            std::future::ready(Ok(response))
        }
    }

    async fn answer(status: StatusCode, path: &str) -> (Response<()>, Bytes) {
        let mut service = BodylessRefusals::new(Answer(status), Some("/auth".to_owned()));
        let req = Request::builder().uri(path).body(()).unwrap();
        let response = service.call(req).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (Response::from_parts(parts, ()), bytes)
    }

    #[tokio::test]
    async fn refusals_on_the_auth_only_path_keep_status_and_headers_and_lose_the_body() {
        // If this broke, nginx would close its connection after every refused check.
        for status in [
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            let (response, body) = answer(status, "/auth").await;
            assert_eq!(response.status(), status);
            assert!(body.is_empty());
            assert!(response.headers().get(header::CONTENT_TYPE).is_none());
            assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        }
    }

    #[tokio::test]
    async fn other_paths_and_successes_are_untouched() {
        // If this broke, the proxied app's own error pages (or a 200's body) would vanish.
        for (status, path) in [
            (StatusCode::UNAUTHORIZED, "/app"),
            (StatusCode::UNAUTHORIZED, "/auth/more"),
            (StatusCode::OK, "/auth"),
        ] {
            let (response, body) = answer(status, path).await;
            assert_eq!(response.status(), status);
            assert_eq!(&body[..], b"{\"error\":\"x\"}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        }
    }
}
