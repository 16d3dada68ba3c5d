//! Prometheus metrics: the recorder, the `/metrics` endpoint and the gateway's own metrics.
//!
//! The auth layer records its own counters and histograms through the `metrics` facade; the
//! gateway installs the Prometheus recorder, adds the upstream metrics below, and serves the
//! rendering on a separate listener (`--metrics-listen`).

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode, header};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::body::{Body, text_response};
use crate::error::GatewayError;
use crate::service::Handler;

/// Counter of upstream answers, label `class` (`2xx` … `5xx`, `unavailable`, `timeout`).
pub(crate) const UPSTREAM_RESPONSES: &str = "stytch_gateway_upstream_responses_total";
/// Histogram of the time until the upstream's response headers (or the failure), in seconds.
pub(crate) const UPSTREAM_DURATION: &str = "stytch_gateway_upstream_duration_seconds";

/// Counter of connections accepted, label `listener` (`proxy`, `metrics`, or `upstream` for
/// the bench servers). A number close to the requests served means clients (or nginx in
/// front) are not keeping their connections alive.
pub(crate) const CONNECTIONS: &str = "stytch_gateway_connections_accepted_total";

/// Gauge of client connections open, label `listener` (upgraded ones included).
pub(crate) const CONNECTIONS_OPEN: &str = "stytch_gateway_connections_open";

/// Counter of connections closed as soon as accepted, labels `listener` and `reason`
/// (`max_connections`: the cap was reached).
pub(crate) const CONNECTIONS_REFUSED: &str = "stytch_gateway_connections_refused_total";

/// Counter of connections closed by a timeout, labels `listener` and `phase`
/// (`first_request`, `header`, `idle`).
pub(crate) const CONNECTIONS_TIMED_OUT: &str = "stytch_gateway_connections_timed_out_total";

/// Counter of requests whose body the client did not send in time (answered 408).
pub(crate) const BODY_TIMEOUTS: &str = "stytch_gateway_request_body_timeouts_total";

/// Histogram buckets (seconds) of [`UPSTREAM_DURATION`] and of every other histogram.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Records one upstream answer.
pub(crate) fn record_upstream(status: StatusCode, elapsed: Duration) {
    let class = match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!(UPSTREAM_RESPONSES, "class" => class).increment(1);
    metrics::histogram!(UPSTREAM_DURATION, "class" => class).record(elapsed.as_secs_f64());
}

/// Records one connection accepted by `listener`.
pub(crate) fn record_connection(listener: &'static str) {
    metrics::counter!(CONNECTIONS, "listener" => listener).increment(1);
}

/// Records a connection given a slot by `listener`.
pub(crate) fn record_connection_opened(listener: &'static str) {
    metrics::gauge!(CONNECTIONS_OPEN, "listener" => listener).increment(1.0);
}

/// Records a connection of `listener` closed (its slot given back).
pub(crate) fn record_connection_closed(listener: &'static str) {
    metrics::gauge!(CONNECTIONS_OPEN, "listener" => listener).decrement(1.0);
}

/// Records a connection closed as soon as `listener` accepted it, for `reason`.
pub(crate) fn record_connection_refused(listener: &'static str, reason: &'static str) {
    metrics::counter!(CONNECTIONS_REFUSED, "listener" => listener, "reason" => reason).increment(1);
}

/// Records a connection of `listener` closed by the timeout of `phase`.
pub(crate) fn record_connection_timeout(listener: &'static str, phase: &'static str) {
    metrics::counter!(CONNECTIONS_TIMED_OUT, "listener" => listener, "phase" => phase).increment(1);
}

/// Records a request body the client did not send within the body timeout.
pub(crate) fn record_body_timeout() {
    metrics::counter!(BODY_TIMEOUTS).increment(1);
}

/// Records an upstream failure (`unavailable` or `timeout`).
pub(crate) fn record_upstream_failure(class: &'static str, elapsed: Duration) {
    metrics::counter!(UPSTREAM_RESPONSES, "class" => class).increment(1);
    metrics::histogram!(UPSTREAM_DURATION, "class" => class).record(elapsed.as_secs_f64());
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder's handle; the first call installs the recorder
/// (histograms with buckets) and starts its periodic upkeep on the current Tokio runtime.
///
/// # Errors
///
/// [`GatewayError::Metrics`] when another `metrics` recorder is already installed.
pub(crate) fn recorder() -> Result<PrometheusHandle, GatewayError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let installed = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(GatewayError::Metrics);
    let handle = match installed {
        Ok(handle) => {
            let _ = HANDLE.set(handle.clone());
            handle
        }
        // Lost a race with a concurrent first call: use the winner's handle.
        Err(err) => return HANDLE.get().cloned().ok_or(err),
    };
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// The `/metrics` endpoint (a [`Handler`]): `GET /metrics` renders the recorder, everything
/// else is 404.
#[derive(Clone)]
pub(crate) struct MetricsService {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for MetricsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsService").finish_non_exhaustive()
    }
}

impl MetricsService {
    /// Serves the rendering of `handle`.
    pub(crate) fn new(handle: PrometheusHandle) -> Self {
        Self { handle }
    }

    fn answer<B>(&self, req: &Request<B>) -> Response<Body> {
        if req.uri().path() != "/metrics" {
            return text_response(StatusCode::NOT_FOUND, "not found\n");
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        let mut response = text_response(StatusCode::OK, self.handle.render());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }
}

impl<B> Handler<B> for MetricsService {
    fn handle(&self, req: Request<B>) -> impl Future<Output = Response<Body>> + Send + 'static {
        std::future::ready(self.answer(&req))
    }
}
