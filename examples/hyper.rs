//! A plain hyper 1 server protected by `StytchAuthLayer` (through hyper-util), against the
//! Stytch emulator (`stytch-emulator`).
//!
//! ```text
//! cargo run --example hyper
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use stytch_emulator::{Emulator, EmulatorConfig};
use tower::ServiceBuilder;
use tower_stytch::{MemberSession, StytchAuthLayer, StytchClient, StytchConfig};

async fn handler(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // The layer put the authenticated member into the request's extensions.
    let body = match req.extensions().get::<MemberSession>() {
        Some(session) => format!("hello {}\n", session.member_id),
        None => "hello stranger\n".to_owned(),
    };
    Ok(Response::new(Full::new(Bytes::from(body))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = Emulator::start(EmulatorConfig::new()).await?;
    let org = emulator.create_organization("Acme", "acme");
    let member = emulator.create_member(&org, "grace@acme.test", &[]);
    let session = emulator.create_session(&member);
    let auth = StytchAuthLayer::builder(StytchClient::new(
        StytchConfig::builder(emulator.project_id(), emulator.secret())
            .base_url(emulator.base_url())
            .build()?,
    )?)
    .build()?;

    // `ServiceBuilder` runs layers top to bottom: requests see `auth` first.
    let service = ServiceBuilder::new()
        .layer(auth)
        .service(tower::service_fn(handler));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    println!("serving on http://{addr}");

    let http = reqwest::Client::new();
    let res = http
        .get(format!("http://{addr}/"))
        .bearer_auth(session.session_token.expose_secret())
        .send()
        .await?;
    print!("GET / -> {} {}", res.status(), res.text().await?);
    let res = http.get(format!("http://{addr}/")).send().await?;
    println!("GET / without a session -> {}", res.status());
    Ok(())
}
