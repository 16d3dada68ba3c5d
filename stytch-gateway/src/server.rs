//! [`serve`]: the accept loop with graceful shutdown (hyper-util `GracefulShutdown`), each
//! connection held to its timeouts and the cap ([`conn`]), the listener it
//! accepts on ([`bind`]), and the signal that stops it ([`shutdown_signal`]).

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

use crate::body::{Body, BoxError};
use crate::conn::{self, Activity, ConnectionLimits, InFlight, Slot, Slots, Tracked};
use crate::error::GatewayError;

/// HTTP/2 pings on a connection with requests in flight, to find a peer that vanished
/// (a stream to a dead client would otherwise wait for TCP to give up).
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long an HTTP/2 ping may go unanswered before the connection is closed.
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The address of the client that opened the connection, inserted into every request's
/// extensions by [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerAddr(pub SocketAddr);

/// How the drain after the shutdown signal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every connection finished its in-flight requests and closed.
    Complete,
    /// The deadline passed with connections still open (they are dropped).
    TimedOut,
}

/// [`serve_limited`] with the default [`ConnectionLimits`].
pub(crate) async fn serve<S>(
    name: &'static str,
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) -> Drain
where
    S: tower_service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let limits = ConnectionLimits::default();
    serve_limited(name, listener, service, shutdown, drain_timeout, limits).await
}

/// Serves HTTP/1.1 (with upgrades: WebSocket) and HTTP/2 (prior knowledge) on `listener`
/// with `service` until `shutdown` completes; then stops accepting, lets in-flight requests
/// finish (idle keep-alive connections are closed) for at most `drain_timeout`, and reports
/// how that went.
///
/// Every request carries a [`PeerAddr`] extension; every accepted connection is counted
/// under the listener's `name` (`stytch_gateway_connections_accepted_total`), and held to
/// `limits` ([`conn`]: timeouts, the cap on open connections).
pub(crate) async fn serve_limited<S>(
    name: &'static str,
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
    limits: ConnectionLimits,
) -> Drain
where
    S: tower_service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let protocols = Protocols::new();
    let mut slots = Slots::new(name, limits.max_connections);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    crate::metrics::record_connection(name);
                    // Past the cap: dropping the stream closes it at once.
                    let Some(slot) = slots.take(peer) else { continue };
                    let _ = stream.set_nodelay(true);
                    Connection::new(name, peer, limits, slot).spawn(stream, service.clone(), &protocols);
                }
                Err(err) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    protocols.drain(drain_timeout).await
}

/// How a runtime's connections are served: HTTP/1.1 (with upgrades) or HTTP/2 (prior
/// knowledge), each watched for the graceful drain.
pub(crate) struct Protocols {
    builder: auto::Builder<TokioExecutor>,
    graceful: GracefulShutdown,
}

impl Protocols {
    pub(crate) fn new() -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // The header timeout is `conn::guard`'s (hyper's would also cut idle keep-alive
        // connections at the header timeout).
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
        Self {
            builder,
            graceful: GracefulShutdown::new(),
        }
    }

    /// Lets the connections finish their in-flight requests (idle keep-alive ones are
    /// closed), for at most `timeout`.
    pub(crate) async fn drain(self, timeout: Duration) -> Drain {
        match tokio::time::timeout(timeout, self.graceful.shutdown()).await {
            Ok(()) => Drain::Complete,
            Err(_) => Drain::TimedOut,
        }
    }
}

/// A connection just accepted, with its slot.
pub(crate) struct Connection {
    name: &'static str,
    peer: SocketAddr,
    limits: ConnectionLimits,
    slot: Slot,
}

impl Connection {
    /// The connection from `peer` on the listener `name`, held to `limits`, in `slot`.
    pub(crate) fn new(
        name: &'static str,
        peer: SocketAddr,
        limits: ConnectionLimits,
        slot: Slot,
    ) -> Self {
        Self {
            name,
            peer,
            limits,
            slot,
        }
    }

    /// Serves the connection in a task of its own (on the current runtime), under its
    /// timeouts: every request carries a [`PeerAddr`] and is in flight until its response
    /// body is sent.
    pub(crate) fn spawn<S>(self, stream: TcpStream, service: S, protocols: &Protocols)
    where
        S: tower_service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let Self {
            name,
            peer,
            limits,
            slot,
        } = self;
        let activity = Activity::new();
        let requests = Arc::clone(&activity);
        let hyper_service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let in_flight = requests.start(req.version());
            req.extensions_mut().insert(PeerAddr(peer));
            let mut service = service.clone();
            async move {
                poll_fn(|cx| service.poll_ready(cx)).await?;
                let response = service.call(req).await?;
                Ok::<_, Infallible>(response.map(|body| InFlightBody::new(body, in_flight)))
            }
        });
        let io = Tracked::new(TokioIo::new(stream), Arc::clone(&activity), slot);
        let builder = protocols.builder.clone();
        let watcher = protocols.graceful.watcher();
        tokio::spawn(async move {
            let conn = builder.serve_connection_with_upgrades(io, hyper_service);
            conn::guard(watcher.watch(conn), &activity, &limits, name, peer).await;
        });
    }
}

/// A response body that keeps its request [in flight](InFlight) until it is sent or dropped.
struct InFlightBody {
    inner: Body,
    _in_flight: InFlight,
}

impl InFlightBody {
    fn new(inner: Body, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl http_body::Body for InFlightBody {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, BoxError>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Binds a TCP listener, naming the address on failure.
///
/// # Errors
///
/// [`GatewayError::Bind`].
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { addr, source })
}

/// Completes on SIGTERM or ctrl-c (SIGINT).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
