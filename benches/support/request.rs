//! The request every request-path bench sends (`GET /api/items`, the credential in
//! `Authorization`, two unrelated cookies), the bare service it reaches, and a client of the
//! emulator standing in for Stytch.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use stytch_emulator::Emulator;
use tower::{Service, ServiceExt};
use tower_stytch::{StytchClient, StytchConfig};

/// A client of `emulator`'s project, with the default settings.
pub(crate) fn client_for(emulator: &Emulator) -> StytchClient {
    let config = StytchConfig::builder(emulator.project_id(), emulator.secret())
        .base_url(emulator.base_url())
        .build()
        .unwrap();
    StytchClient::new(config).unwrap()
}

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
