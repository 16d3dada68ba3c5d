//! The request every request-path bench sends (`GET /api/items`, the credential in
//! `Authorization`, two unrelated cookies) and the bare service it reaches.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::{Service, ServiceExt};

/// The inner service: answers `ok`.
pub(crate) async fn echo(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

/// `GET /api/items` with `Authorization: auth`.
pub(crate) fn request(auth: &str) -> Request<Full<Bytes>> {
    Request::get("/api/items")
        .header("authorization", auth)
        .header("cookie", "theme=dark; lang=en")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Sends [`request`]`(auth)` through `svc`; the response's status.
pub(crate) async fn call<S, B>(svc: &mut S, auth: &str) -> u16
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
{
    svc.ready()
        .await
        .unwrap()
        .call(request(auth))
        .await
        .unwrap()
        .status()
        .as_u16()
}
