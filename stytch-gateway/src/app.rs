//! [`App`]: what runs behind the auth layer: the auth-only endpoint, then the proxy.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::Either;
use http::{Request, Response, StatusCode};
use tower_stytch::{MachineClient, MemberSession};

use crate::body::{Body, BoxError, full_body, text_response};
use crate::identity::insert_identity;
use crate::proxy::Proxy;
use crate::service::Handler;

/// The handler behind the auth layer (served as a [`ServiceFn`](crate::service::ServiceFn)).
///
/// A request for the auth-only path (`--auth-only-path`, for nginx `auth_request` and
/// Traefik `forwardAuth`) is answered 200 with the identity headers and an empty body (any
/// method, body not read); the auth layer in front has already answered 401 / 403 / 503
/// when it had to. The body is empty because nginx never reads an `auth_request` answer's
/// body: one with a body cannot go back to nginx's keep-alive pool, so every check would
/// open a new connection to the gateway.
/// Everything else goes to the [`Proxy`]. The response carries the request's
/// [`MemberSession`] in its extensions, for the access log.
#[derive(Clone, Debug)]
pub(crate) struct App {
    proxy: Proxy,
    auth_only_path: Option<Arc<str>>,
}

impl App {
    /// Proxies everything to `proxy`; `auth_only_path` enables the auth-only endpoint.
    pub(crate) fn new(proxy: Proxy, auth_only_path: Option<String>) -> Self {
        Self {
            proxy,
            auth_only_path: auth_only_path.map(Into::into),
        }
    }

    fn auth_only<B>(req: &Request<B>) -> Response<Body> {
        let admitted = req.extensions().get::<MemberSession>().is_some()
            || req.extensions().get::<MachineClient>().is_some();
        match admitted {
            true => {
                let mut response = Response::new(full_body(Bytes::new()));
                insert_identity(response.headers_mut(), req.extensions());
                response
            }
            // Only reachable when the auth-only path was also declared public.
            false => text_response(StatusCode::UNAUTHORIZED, "unauthenticated\n"),
        }
    }
}

impl<B> Handler<B> for App
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    fn handle(&self, req: Request<B>) -> impl Future<Output = Response<Body>> + Send + 'static {
        // The access log names the session (a reference-counted clone).
        let session = req.extensions().get::<MemberSession>().cloned();
        if self.auth_only_path.as_deref() == Some(req.uri().path()) {
            let mut response = Self::auth_only(&req);
            if let Some(session) = session {
                response.extensions_mut().insert(session);
            }
            return Either::Left(std::future::ready(response));
        }
        let proxy = self.proxy.clone();
        Either::Right(async move {
            let mut response = proxy.forward(req).await;
            if let Some(session) = session {
                response.extensions_mut().insert(session);
            }
            response
        })
    }
}
