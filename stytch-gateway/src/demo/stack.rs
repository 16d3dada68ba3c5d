//! The running demo ([`Running`]): the emulator with the seeded data, the demo app as the
//! upstream, and the gateway in front of it, all on 127.0.0.1.

use std::net::SocketAddr;
use std::time::Duration;

use stytch_emulator::{Emulator, EmulatorConfig, WebhookEndpoint};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_stytch::StytchConfig;
use tower_stytch::config::CookieSettings;
use tower_stytch::webhook::WebhookSecrets;

use super::app::{ControlApi, DemoApp, Machine};
use super::seed::{DemoSeed, MACHINE_NAME, MACHINE_SCOPES, members, seed};
use crate::error::GatewayError;
use crate::options::ServeOptions;
use crate::serve::{Gateway, ShutdownReport};
use crate::server::{Drain, bind, serve};
use crate::service::ServiceFn;

/// Preferred demo ports; each falls back to an ephemeral port when taken.
const EMULATOR_PORT: u16 = 4010;
const GATEWAY_PORT: u16 = 8080;
const UPSTREAM_PORT: u16 = 8081;
const METRICS_PORT: u16 = 9090;

/// Where the demo's gateway receives the emulator's webhooks.
pub(crate) const WEBHOOK_PATH: &str = "/stytch/webhooks";

/// The demo gateway's routes file (authorization rules), as `serve --routes` reads it.
pub(crate) const ROUTES_TOML: &str = include_str!("routes.toml");
/// The name its errors would give it.
const ROUTES_NAME: &str = "stytch-gateway/src/demo/routes.toml";
/// Where the gateway may send a browser: the step-up page of the routes file.
const STEP_UP_PAGE: &str = "/step-up";

/// A running demo: emulator, upstream and gateway.
pub(crate) struct Running {
    /// The emulator, with the seeded data.
    pub(crate) emulator: Emulator,
    /// The seeded data.
    pub(crate) seed: DemoSeed,
    /// The gateway's address.
    pub(crate) gateway_addr: SocketAddr,
    /// The gateway's metrics endpoint's address.
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// The demo app's address.
    pub(crate) upstream_addr: SocketAddr,
    stop: watch::Sender<bool>,
    gateway_task: JoinHandle<ShutdownReport>,
    upstream_task: JoinHandle<Drain>,
}

impl Running {
    /// Starts the emulator, seeds it, and starts the demo app and the gateway in front of
    /// it; returns once the gateway reaches the emulator.
    ///
    /// # Errors
    ///
    /// When a component cannot start, or the gateway cannot reach the emulator.
    pub(crate) async fn start() -> Result<Self, GatewayError> {
        let emulator = start_emulator(EmulatorConfig::new()).await?;
        let seed = seed(&emulator).map_err(|source| GatewayError::Emulator {
            name: "m2m-client",
            source,
        })?;
        let (stop, stop_rx) = watch::channel(false);

        let upstream = bind_preferred(UPSTREAM_PORT).await?;
        let upstream_addr = upstream.local_addr().map_err(GatewayError::LocalAddr)?;
        let upstream_task = tokio::spawn(serve(
            "upstream",
            upstream,
            ServiceFn(demo_app(&emulator, &seed)?),
            stopped(stop_rx.clone()),
            Duration::from_secs(2),
        ));

        let gateway = bind_gateway(gateway_options(&emulator, upstream_addr)?).await?;
        let gateway_addr = gateway.local_addr();
        let metrics_addr = gateway.metrics_addr();
        let hook = WebhookEndpoint::new(format!("http://{gateway_addr}{WEBHOOK_PATH}")).map_err(
            |source| GatewayError::Emulator {
                name: "webhook-url",
                source,
            },
        )?;
        emulator.add_webhook_endpoint(hook);
        // Fail early (and clearly) when the gateway cannot reach the emulator.
        gateway
            .layer()
            .ready()
            .await
            .map_err(GatewayError::NotReady)?;
        let gateway_task = tokio::spawn(gateway.run(stopped(stop_rx)));
        Ok(Self {
            emulator,
            seed,
            gateway_addr,
            metrics_addr,
            upstream_addr,
            stop,
            gateway_task,
            upstream_task,
        })
    }

    /// Stops the gateway, the demo app and the emulator; returns how the gateway's shutdown
    /// went.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Task`] when the gateway's task panicked.
    pub(crate) async fn stop(self) -> Result<ShutdownReport, GatewayError> {
        let _ = self.stop.send(true);
        let report = self.gateway_task.await.map_err(GatewayError::Task)?;
        let _ = self.upstream_task.await;
        self.emulator.shutdown().await;
        Ok(report)
    }
}

/// Completes when `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts an emulator on the demo's port, or on an ephemeral port when it is taken.
async fn start_emulator(config: EmulatorConfig) -> Result<Emulator, GatewayError> {
    match Emulator::start(config.clone().listen(loopback(EMULATOR_PORT))).await {
        Ok(emulator) => Ok(emulator),
        Err(_) => Emulator::start(config.listen(loopback(0)))
            .await
            .map_err(|source| GatewayError::Bind {
                addr: loopback(0),
                source,
            }),
    }
}

/// Binds `127.0.0.1:port`, or an ephemeral port when it is taken.
async fn bind_preferred(port: u16) -> Result<TcpListener, GatewayError> {
    match TcpListener::bind(loopback(port)).await {
        Ok(listener) => Ok(listener),
        Err(_) => bind(loopback(0)).await,
    }
}

/// The demo gateway's options: in front of the demo app at `upstream`, against `emulator`,
/// receiving its webhooks.
fn gateway_options(
    emulator: &Emulator,
    upstream: SocketAddr,
) -> Result<ServeOptions, GatewayError> {
    let mut options = ServeOptions::new(stytch_config(emulator)?, format!("http://{upstream}"));
    options.shutdown_timeout = Duration::from_secs(5);
    options.auth_only_path = Some("/auth".to_owned());
    // The page is served to anyone and shows who is signed in; its assets and sign-in route
    // are public; plain http on loopback, so cookies without `Secure`.
    options.optional = vec!["/".to_owned()];
    options.public = vec!["/demo/".to_owned()];
    options.insecure_cookies = true;
    options.listen = loopback(GATEWAY_PORT);
    options.metrics_listen = Some(loopback(METRICS_PORT));
    let secrets = WebhookSecrets::parse(emulator.webhook_secret().expose_secret())?;
    options.webhook = Some((WEBHOOK_PATH.to_owned(), secrets));
    options.routes = crate::routes::parse(std::path::Path::new(ROUTES_NAME), ROUTES_TOML)?;
    options.routes_file = Some(ROUTES_NAME.into());
    options.redirect_allowlist = vec![STEP_UP_PAGE.to_owned()];
    Ok(options)
}

/// Binds the gateway on the demo's ports, or on ephemeral ones when they are taken.
async fn bind_gateway(mut options: ServeOptions) -> Result<Gateway, GatewayError> {
    match Gateway::bind(options.clone()).await {
        Err(GatewayError::Bind { .. }) => {
            options.listen = loopback(0);
            options.metrics_listen = Some(loopback(0));
            Gateway::bind(options).await
        }
        bound => bound,
    }
}

/// The Stytch configuration pointing at `emulator` (its project id, secret and base URL).
///
/// # Errors
///
/// [`GatewayError::Config`] when the emulator's project id or secret is not a valid one.
fn stytch_config(emulator: &Emulator) -> Result<StytchConfig, GatewayError> {
    Ok(
        StytchConfig::builder(emulator.project_id(), emulator.secret())
            .base_url(emulator.base_url())
            .build()?,
    )
}

/// The demo web app for `seed`, minting sessions through `emulator`'s control API and
/// writing cookies as the demo gateway clears them (no `Secure`: plain http on loopback).
fn demo_app(emulator: &Emulator, seed: &DemoSeed) -> Result<DemoApp, GatewayError> {
    let control = ControlApi::new(
        &emulator.base_url(),
        emulator.project_id(),
        emulator.secret(),
    )
    .ok_or(GatewayError::InvalidUpstream {
        url: emulator.base_url(),
        reason: "the emulator's control API URL is not valid",
    })?;
    let mut cookies = CookieSettings::default();
    cookies.secure = false;
    let stytch = tower_stytch::StytchClient::new(stytch_config(emulator)?)?;
    let machine = Machine::new(
        &emulator.base_url(),
        emulator.project_id(),
        seed.machine.client_id.clone(),
        seed.machine.client_secret.expose_secret().to_owned(),
        MACHINE_NAME,
        MACHINE_SCOPES.map(str::to_owned).to_vec(),
    )
    .ok_or(GatewayError::InvalidUpstream {
        url: emulator.base_url(),
        reason: "the emulator's token endpoint URL is not valid",
    })?;
    Ok(DemoApp::new(
        members(seed),
        stytch,
        control,
        cookies,
        machine,
    ))
}
