//! [`serve`]: the accept loop with graceful shutdown (hyper-util `GracefulShutdown`), the
//! listener it accepts on ([`bind`]), and the signal that stops it ([`shutdown_signal`]).

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::body::Body;
use crate::error::GatewayError;

/// How long a client may take to send a request's headers.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Serves HTTP/1.1 (with upgrades: WebSocket) and HTTP/2 (prior knowledge) on `listener`
/// with `service` until
/// `shutdown` completes; then stops accepting, lets in-flight requests finish (idle
/// keep-alive connections are closed) for at most `drain_timeout`, and reports how that went.
///
/// Every request carries a [`PeerAddr`] extension; every accepted connection is counted
/// under the listener's `name` (`stytch_gateway_connections_accepted_total`).
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
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    crate::metrics::record_connection(name);
                    let _ = stream.set_nodelay(true);
                    let service = service.clone();
                    let hyper_service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                        req.extensions_mut().insert(PeerAddr(peer));
                        let mut service = service.clone();
                        async move {
                            poll_fn(|cx| service.poll_ready(cx)).await?;
                            service.call(req).await
                        }
                    });
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), hyper_service);
                        if let Err(err) = watcher.watch(conn).await {
                            tracing::debug!(%peer, error = %err, "connection ended with an error");
                        }
                    });
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
    match tokio::time::timeout(drain_timeout, graceful.shutdown()).await {
        Ok(()) => Drain::Complete,
        Err(_) => Drain::TimedOut,
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
