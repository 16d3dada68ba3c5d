//! [`ServiceFn`]: the one always-ready `Service` adapter of the gateway's own services, over
//! a [`Handler`] (an async function of the request that always answers).
//!
//! The proxy, the app behind the auth layer, the metrics endpoint and the demo's apps each
//! hold their state in a cheap-to-clone value and say what a request gets in
//! [`Handler::handle`]; [`ServiceFn`] makes that a `tower_service::Service` that is always
//! ready, never fails, and whose future is the boxed [`ServiceFuture`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt as _;
use http::{Request, Response};

use crate::body::Body;

/// The future of the gateway's own services: boxed, infallible.
pub(crate) type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// What a request gets: the response, computed in a future that owns what it needs (every
/// failure is a response).
pub(crate) trait Handler<B> {
    /// The response to `req`. Work that needs no waiting may run here, before the future.
    fn handle(&self, req: Request<B>) -> impl Future<Output = Response<Body>> + Send + 'static;
}

/// An always-ready, infallible `Service` answering with a [`Handler`].
#[derive(Debug, Clone)]
pub(crate) struct ServiceFn<H>(pub(crate) H);

impl<H, B> tower_service::Service<Request<B>> for ServiceFn<H>
where
    H: Handler<B>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        Box::pin(self.0.handle(req).map(Ok))
    }
}
