//! [`Gateway`]: the assembled reverse proxy, from [`ServeOptions`] to a running server.
//!
//! The service stack, outermost first: [`AccessLog`] (request ids, the access log) →
//! [`FormMethodOverride`] (a POST form's `_method` shown to the layer) → [`Health`] (`/healthz`, `/readyz`, before auth) →
//! [`BodylessRefusals`] (the auth-only endpoint's refusals without a body) → [`StytchAuth`]
//! (logout, admin revoke, forced sign-out hooks, public routes, authentication) → [`App`]
//! (auth-only endpoint, then the [`Proxy`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tower_layer::Layer as _;

use tower_stytch::config::{CookieSettings, CredentialSource};
use tower_stytch::{StytchAuthLayer, StytchClient};

use crate::access_log::AccessLog;
use crate::app::App;
use crate::auth_only::BodylessRefusals;
use crate::conn::{self, ConnectionLimits};
use crate::credentials::Credentials;
use crate::error::GatewayError;
use crate::form::FormMethodOverride;
use crate::forwarded::TrustedProxies;
use crate::health::{Health, ReadyCheck};
use crate::metrics::{MetricsService, recorder};
use crate::options::ServeOptions;
use crate::proxy::{Forwarding, Proxy, Transport};
use crate::routes;
use crate::server::{Drain, bind, serve};
use crate::service::ServiceFn;
use crate::startup::{StartCheck, check_stytch};
use crate::tls::UpstreamRoots;
use crate::underscore::UnderscoreHeaders;
use crate::upgrade::Upgrades;
use crate::workers::{Settings, Workers};

/// The longest wait at shutdown for the upgraded connections to close: a WebSocket's frame
/// in flight finished, its close frame sent and answered ([`ws_close`](crate::ws_close)).
const TUNNELS_CLOSE: Duration = Duration::from_secs(2);

/// Builds the auth layer the options describe.
///
/// # Errors
///
/// [`GatewayError::Config`] for a bad route pattern or client setting.
fn build_layer(options: &ServeOptions) -> Result<StytchAuthLayer, GatewayError> {
    let client = StytchClient::new(options.stytch.clone())?;
    let mut builder = StytchAuthLayer::builder(client).credential_sources(credential_sources());
    for prefix in &options.public {
        builder = builder.public_prefix(prefix);
    }
    for route in &options.optional {
        builder = builder.optional_route(route);
    }
    if options.insecure_cookies {
        let mut cookies = CookieSettings::default();
        cookies.secure = false;
        builder = builder.cookie_settings(cookies);
    }
    if let Some(path) = &options.logout_path {
        builder = builder.logout_path(path);
    }
    if let Some(prefix) = &options.admin_prefix {
        builder = builder.admin_prefix(prefix);
    }
    for pattern in &options.forced_signout {
        builder = builder.forced_signout(pattern);
    }
    if options.no_jwt {
        builder = builder.without_jwt();
    }
    if let Some(bus) = &options.redis {
        builder = builder.revocation_bus(bus.clone());
    }
    if let Some((path, secrets)) = &options.webhook {
        builder = builder.webhook(path, secrets.clone());
    }
    builder = routes::apply(
        builder,
        &options.routes,
        options.policy_refresh,
        &options.redirect_allowlist,
    );
    builder
        .build()
        .map_err(|err| routes::attribute(err, &options.routes, options.routes_file.as_deref()))
}

/// Where the layer reads credentials, and so what the proxy removes (Stytch's defaults).
fn credential_sources() -> Vec<CredentialSource> {
    CredentialSource::defaults()
}

/// What the proxy hands the upstream besides the request: credentials only with
/// `pass_credentials`, forwarding headers kept only from trusted proxies, headers with `_`
/// only when allowed, the allowed upgrades; and how long it waits for the client's body.
///
/// # Errors
///
/// [`GatewayError::UpgradeProtocol`], [`GatewayError::UnderscoreHeader`].
fn forwarding(options: &ServeOptions) -> Result<Forwarding, GatewayError> {
    Ok(Forwarding {
        credentials: if options.pass_credentials {
            Credentials::Pass
        } else {
            Credentials::Strip(credential_sources())
        },
        trusted_proxies: TrustedProxies::new(options.trusted_proxies.clone()),
        underscore_headers: UnderscoreHeaders::new(&options.allow_underscore_headers)?,
        upgrades: Upgrades::new(&options.upgrade_protocols, options.public_upgrades)?,
        body_timeout: options.client_body_timeout,
        revocation_grace: options.stream_revocation_grace,
    })
}

/// The proxy listener's connection timeouts and cap.
///
/// # Errors
///
/// [`GatewayError::ZeroTimeout`], [`GatewayError::ZeroSize`].
fn connection_limits(options: &ServeOptions) -> Result<ConnectionLimits, GatewayError> {
    for (name, timeout) in [
        ("client-header-timeout", options.client_header_timeout),
        ("keepalive-timeout", options.keepalive_timeout),
        ("stream-revocation-grace", options.stream_revocation_grace),
    ] {
        if timeout.is_zero() {
            return Err(GatewayError::ZeroTimeout { name });
        }
    }
    for (name, size) in [
        ("max-connections", options.max_connections),
        ("form-body-limit", options.form_body_limit),
    ] {
        if size == 0 {
            return Err(GatewayError::ZeroSize { name });
        }
    }
    Ok(ConnectionLimits {
        header_timeout: options.client_header_timeout,
        keepalive_timeout: options.keepalive_timeout,
        max_connections: options.max_connections,
    })
}

/// How the proxy reaches the upstream: TLS roots and h2c.
fn transport(options: &ServeOptions) -> Transport {
    Transport {
        roots: options
            .upstream_ca
            .clone()
            .map_or(UpstreamRoots::System, UpstreamRoots::CaFile),
        h2c: options.upstream_h2c,
    }
}

/// Everything [`Gateway::bind`] checks of `options`, without binding a port or calling
/// Stytch or Redis (`check-config`; no runtime needed).
///
/// # Errors
///
/// The first configuration error found.
pub(crate) fn validate(options: &ServeOptions) -> Result<(), GatewayError> {
    connection_limits(options)?;
    Proxy::new(
        &options.upstream,
        options.upstream_timeout,
        forwarding(options)?,
        &transport(options),
    )?;
    // A layer with the revocation bus would start its Redis tasks: the bus's URL and settings
    // were checked when the options were made.
    let mut offline = options.clone();
    offline.redis = None;
    let _checked = build_layer(&offline)?;
    Ok(())
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Whether in-flight requests finished before the deadline.
    pub drain: Drain,
    /// Revocations Stytch had not confirmed when the deadline passed (they still apply
    /// locally until this process exits).
    pub revocations_pending: usize,
    /// Stytch refused the project's credentials at start, and the gateway stopped itself:
    /// a configuration error (the command line exits 2).
    pub credentials_refused: bool,
}

impl ShutdownReport {
    /// Every request finished, every revocation was confirmed, and the gateway stopped
    /// because it was asked to.
    pub fn is_clean(&self) -> bool {
        self.drain == Drain::Complete && self.revocations_pending == 0 && !self.credentials_refused
    }
}

/// A gateway with its listeners bound, ready to [`run`](Self::run).
pub struct Gateway {
    listener: TcpListener,
    metrics: Option<(TcpListener, ServiceFn<MetricsService>)>,
    /// The workers, started, each with its copy of the service stack.
    workers: Workers,
    settings: Settings,
    /// `/readyz` answers 503 once set (shutdown).
    draining: Arc<AtomicBool>,
    layer: StytchAuthLayer,
    /// A handle on the proxy inside `service`, to close its tunnels at shutdown.
    proxy: Proxy,
    options: ServeOptions,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listen", &self.listener.local_addr().ok())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Validates the options, builds the stack and binds the listeners.
    ///
    /// # Errors
    ///
    /// Configuration errors, bind failures, and a metrics recorder that cannot be installed.
    pub async fn bind(options: ServeOptions) -> Result<Self, GatewayError> {
        let limits = connection_limits(&options)?;
        let proxy = Proxy::new(
            &options.upstream,
            options.upstream_timeout,
            forwarding(&options)?,
            &transport(&options),
        )?;
        let layer = build_layer(&options)?;
        let app = ServiceFn(App::new(proxy.clone(), options.auth_only_path.clone()));
        let ready_layer = layer.clone();
        let check: ReadyCheck = Arc::new(move || {
            let layer = ready_layer.clone();
            Box::pin(async move { readiness(&layer).await })
        });
        let service = Health::new(
            BodylessRefusals::new(layer.layer(app), options.auth_only_path.clone()),
            check,
            options.readiness_max_age,
        );
        let webhook_path = options.webhook.as_ref().map(|(path, _)| path.clone());
        let (limit, timeout) = (options.form_body_limit, options.client_body_timeout);
        let service = FormMethodOverride::new(service, limit, timeout, webhook_path);
        let trusted = TrustedProxies::new(options.trusted_proxies.clone());
        let service = AccessLog::new(service, options.access_log, trusted);
        let metrics = match options.metrics_listen {
            Some(addr) => {
                let handle = recorder()?;
                Some((bind(addr).await?, ServiceFn(MetricsService::new(handle))))
            }
            None => None,
        };
        let listener = bind(options.listen).await?;
        conn::check_open_file_limit(limits.max_connections);
        let draining = service.get_ref().get_ref().draining_flag();
        let settings = Settings {
            name: "proxy",
            limits,
            drain_timeout: options.shutdown_timeout,
        };
        let workers = Workers::start(options.workers, service, settings).await?;
        Ok(Self {
            listener,
            metrics,
            workers,
            settings,
            draining,
            layer,
            proxy,
            options,
        })
    }

    /// The proxy's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.options.listen)
    }

    /// The metrics endpoint's bound address, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The auth layer (for its [`Revoker`](tower_stytch::Revoker) or readiness).
    pub fn layer(&self) -> &StytchAuthLayer {
        &self.layer
    }

    /// Serves until `shutdown` completes; then `/readyz` turns 503, the listener closes,
    /// in-flight requests finish, upgraded connections (WebSockets) are closed, and pending
    /// revocations are flushed, all within the shutdown timeout.
    ///
    /// Meanwhile Stytch is checked once (the `startup` module): when it refuses the
    /// project's credentials the gateway stops the same way, and the report says so.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> ShutdownReport {
        let Self {
            listener,
            metrics,
            workers,
            settings,
            draining,
            layer,
            proxy,
            options,
        } = self;
        let addr = listener
            .local_addr()
            .map_or_else(|_| options.listen.to_string(), |a| a.to_string());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let metrics_task = metrics.map(|(listener, svc)| spawn_metrics(listener, svc, stop_rx));
        tracing::info!(
            %addr,
            upstream = %options.upstream,
            stytch = %options.stytch.base_url(),
            project_id = options.stytch.project_id(),
            jwt = !options.no_jwt,
            "gateway listening"
        );
        if let Some(bus) = layer.revocation_bus() {
            tracing::info!(?bus, "sharing revocations through Redis");
        }
        let (verdict_tx, verdict) = tokio::sync::watch::channel(None);
        tokio::spawn({
            let layer = layer.clone();
            async move { verdict_tx.send_replace(Some(check_stytch(&layer).await)) }
        });
        let refused = credentials_refused(verdict.clone());
        let signalled = Arc::new(std::sync::OnceLock::<Instant>::new());
        let signalled_at = signalled.clone();
        let shutdown = async move {
            tokio::select! {
                () = shutdown => {}
                () = refused => {}
            }
            let _ = signalled_at.set(Instant::now());
            draining.store(true, Ordering::Relaxed);
        };
        let budget = options.shutdown_timeout;
        let (drain, workers) = workers.serve(listener, shutdown, settings).await;
        let started = signalled.get().copied().unwrap_or_else(Instant::now);
        // Upgraded connections (WebSockets) are no longer hyper's: close them now (a
        // WebSocket with its close frame), within what is left of the budget.
        let left = budget.saturating_sub(started.elapsed());
        proxy.close_tunnels(left.min(TUNNELS_CLOSE)).await;
        match drain {
            Drain::Complete => tracing::info!("in-flight requests finished"),
            Drain::TimedOut => {
                tracing::warn!(timeout = ?budget, "shutdown timeout passed with requests in flight");
            }
        }
        let remaining = budget
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(100));
        let revocations_pending = flush_revocations(&layer, remaining).await;
        // Only now: revocations started by requests run on the workers' runtimes.
        workers.finish().await;
        let _ = stop_tx.send(true);
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        let credentials_refused = *verdict.borrow() == Some(StartCheck::CredentialsRefused);
        ShutdownReport {
            drain,
            revocations_pending,
            credentials_refused,
        }
    }
}

/// Completes when the start-up check's `verdict` is that Stytch refused the credentials;
/// never otherwise.
async fn credentials_refused(mut verdict: tokio::sync::watch::Receiver<Option<StartCheck>>) {
    let other = verdict
        .wait_for(|v| *v == Some(StartCheck::CredentialsRefused))
        .await
        .is_err();
    if other {
        // The check ended with another verdict.
        std::future::pending::<()>().await;
    }
}

/// Serves `/metrics` on its own listener until `stop` turns true.
fn spawn_metrics(
    listener: TcpListener,
    service: ServiceFn<MetricsService>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Drain> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics listening on /metrics");
    }
    tokio::spawn(serve(
        "metrics",
        listener,
        service,
        async move {
            let _ = stop.wait_for(|stop| *stop).await;
        },
        Duration::from_secs(1),
    ))
}

/// `/readyz`: Stytch reachable and, with a revocation bus, the shared revocations read (or
/// the startup wait over: Redis down does not make the gateway unready). The body shows the
/// bus's state, the Redis node serving its keys, and its switches of primary.
async fn readiness(layer: &StytchAuthLayer) -> Result<String, String> {
    let bus = layer.revocation_bus();
    let state = bus.map(|b| b.state().as_str());
    if let Some(bus) = bus
        && !bus.is_ready()
    {
        return Err(format!("revocation bus {}", bus.state().as_str()));
    }
    match (layer.ready().await, state) {
        (Ok(()), None) => Ok("ready\n".to_owned()),
        (Ok(()), Some(state)) => Ok(format!(
            "ready\nrevocation bus: {state}\n{}",
            bus.map(bus_primary).unwrap_or_default()
        )),
        (Err(err), None) => Err(err.to_string()),
        (Err(err), Some(state)) => Err(format!("{err}; revocation bus: {state}")),
    }
}

/// `/readyz` lines on the bus's primary: the node serving its keys (`host:port`), how many
/// times it changed since start, and when last (RFC 3339).
fn bus_primary(bus: &tower_stytch::bus::BusHandle) -> String {
    let primary = bus.primary().unwrap_or_else(|| "none yet".to_owned());
    let mut lines = format!(
        "revocation bus primary: {primary}\nrevocation bus primary changes: {}\n",
        bus.primary_changes()
    );
    if let Some(at) = bus.last_primary_change() {
        lines.push_str(&format!(
            "revocation bus last primary change: {}\n",
            humantime::format_rfc3339_seconds(at)
        ));
    }
    lines
}

/// Sends Stytch the revocations it has not confirmed, for at most `budget`; returns how
/// many are still pending.
async fn flush_revocations(layer: &StytchAuthLayer, budget: Duration) -> usize {
    let started = std::time::Instant::now();
    let pending = layer.revoker().flush(budget).await;
    if let Some(bus) = layer.revocation_bus() {
        // What was decided here reaches the other instances before this one goes.
        let unwritten = bus.flush(budget.saturating_sub(started.elapsed())).await;
        if unwritten > 0 {
            tracing::warn!(
                unwritten,
                "revocation messages not written to Redis before exit"
            );
        }
    }
    if pending == 0 {
        tracing::info!("no revocations pending");
    } else {
        tracing::warn!(
            revocations_pending = pending,
            "revocations not confirmed by Stytch before exit"
        );
    }
    pending
}
