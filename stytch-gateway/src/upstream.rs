//! [`Connections`]: the proxy's connections to the upstream, on hyper's `client::conn`
//! directly, with one pool per worker thread.
//!
//! Each worker of the gateway is one thread running one single-threaded runtime
//! ([`workers`](crate::workers)), as each nginx worker runs one event loop with its own
//! upstream `keepalive` connections. The pool follows: a thread keeps its own idle HTTP/1.1
//! connections (a stack, the most recently used first) and its own HTTP/2 connection, in a
//! thread-local list with one entry per [`Connections`] (one per gateway): no map, no hash,
//! no lock shared between workers. A request borrows an idle connection, or opens one (TCP,
//! then TLS for an `https://` upstream, ALPN choosing HTTP/2 or HTTP/1.1; HTTP/2 with prior
//! knowledge for `--upstream-h2c`), and gives it back when its response body has been read
//! to its end ([`Leased`]); a body dropped before its end closes that connection. A request
//! that a reused connection could not even start (the upstream closed it meanwhile) is sent
//! again on a new connection, as hyper-util's pooled client does.
//!
//! Upgrades (WebSocket) always get a connection of their own, HTTP/1.1 only (an HTTP/2
//! connection cannot carry an HTTP/1.1 `Upgrade`), never pooled: the upgrade takes it over.
//!
//! Idle connections are closed once unused for [`IDLE_TIMEOUT`] (checked whenever the
//! thread's pool is used), and a thread keeps at most [`MAX_IDLE`] of them.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::body::{Body, BoxError};
use crate::error::GatewayError;

/// How long an idle upstream connection is kept.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most idle upstream connections a worker keeps.
pub(crate) const MAX_IDLE: usize = 256;

/// Why a request did not get the upstream's response headers.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// No TCP connection (refused, unreachable, timed out, no such host).
    #[error("cannot connect")]
    Connect(#[source] std::io::Error),
    /// The TLS handshake failed (certificate not trusted, protocol error).
    #[error("TLS handshake failed")]
    Tls(#[source] std::io::Error),
    /// The connection failed before or while the request was sent, or before the response
    /// headers arrived (the client's body too: its timeout is among the causes).
    #[error("request failed")]
    Request(#[source] hyper::Error),
}

/// How to reach the upstream, shared by every worker; the connections themselves are each
/// thread's own.
#[derive(Clone)]
pub(crate) struct Connections {
    inner: Arc<Shared>,
}

struct Shared {
    scheme: Scheme,
    authority: Authority,
    /// The host to resolve or connect to (an IPv6 literal without its brackets).
    host: String,
    port: u16,
    /// TLS for an `https://` upstream: ALPN `h2` and `http/1.1`, and `http/1.1` alone (for
    /// upgrades), with the name the certificate must carry.
    tls: Option<Tls>,
    /// HTTP/2 with prior knowledge to an `http://` upstream.
    h2c: bool,
    connect_timeout: Duration,
}

struct Tls {
    any: TlsConnector,
    http1: TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("authority", &self.inner.authority)
            .field("h2c", &self.inner.h2c)
            .finish_non_exhaustive()
    }
}

/// A connection just opened: which protocol it speaks.
enum Opened {
    Http1(http1::SendRequest<Body>),
    Http2(http2::SendRequest<Body>),
}

impl Connections {
    /// Connections to `scheme://authority`, over TLS configured by `tls` for `https`, with
    /// HTTP/2 by prior knowledge when `h2c`; a TCP and TLS connect may take `connect_timeout`.
    ///
    /// # Errors
    ///
    /// [`GatewayError::InvalidUpstream`] for a host that is no TLS server name.
    pub(crate) fn new(
        scheme: Scheme,
        authority: Authority,
        tls: &ClientConfig,
        h2c: bool,
        connect_timeout: Duration,
    ) -> Result<Self, GatewayError> {
        let https = scheme == Scheme::HTTPS;
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let name =
                ServerName::try_from(host.clone()).map_err(|_| GatewayError::InvalidUpstream {
                    url: format!("{scheme}://{authority}"),
                    reason: "the host is no TLS server name",
                })?;
            let with_alpn = |alpn: &[&[u8]]| {
                let mut config = tls.clone();
                config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
                TlsConnector::from(Arc::new(config))
            };
            Some(Tls {
                any: with_alpn(&[b"h2", b"http/1.1"]),
                http1: with_alpn(&[b"http/1.1"]),
                name,
            })
        } else {
            None
        };
        Ok(Self {
            inner: Arc::new(Shared {
                scheme,
                authority,
                host,
                port,
                tls,
                h2c,
                connect_timeout,
            }),
        })
    }

    /// Sends `req` (its URI's path and query are the target) on a pooled or new connection
    /// and waits for the response headers. The [`Lease`] goes with the response body: the
    /// connection returns to this thread's pool when the body has been read to its end.
    ///
    /// # Errors
    ///
    /// [`UpstreamError`]: no connection, or the request failed on it.
    pub(crate) async fn send(
        &self,
        mut req: Request<Body>,
    ) -> Result<(Response<Incoming>, Option<Lease>), UpstreamError> {
        let pool = self.pool();
        if let Some(mut h2) = pool.http2() {
            self.absolute_form(&mut req);
            let response = h2.send_request(req).await;
            return response.map(|r| (r, None)).map_err(UpstreamError::Request);
        }
        while let Some(mut sender) = pool.checkout() {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(response) => return Ok((response, Some(Lease { pool, sender }))),
                Err(mut failed) => match failed.take_message() {
                    // Never started: the upstream closed the connection meanwhile.
                    Some(unsent) => req = unsent,
                    None => return Err(UpstreamError::Request(failed.into_error())),
                },
            }
        }
        // Boxed: a connect's state (TLS handshake included) is large, and rare; the request
        // futures of every request would otherwise carry (and copy) it.
        match Box::pin(self.open(false)).await? {
            Opened::Http1(mut sender) => {
                let response = sender.send_request(req).await;
                let response = response.map_err(UpstreamError::Request)?;
                Ok((response, Some(Lease { pool, sender })))
            }
            Opened::Http2(mut h2) => {
                pool.set_http2(h2.clone());
                self.absolute_form(&mut req);
                let response = h2.send_request(req).await;
                response.map(|r| (r, None)).map_err(UpstreamError::Request)
            }
        }
    }

    /// Sends an upgrade request on a new HTTP/1.1 connection of its own.
    ///
    /// # Errors
    ///
    /// [`UpstreamError`]: no connection, or the request failed on it.
    pub(crate) async fn send_upgrade(
        &self,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match Box::pin(self.open(true)).await? {
            Opened::Http1(mut sender) => sender
                .send_request(req)
                .await
                .map_err(UpstreamError::Request),
            Opened::Http2(_) => unreachable!("upgrade connections offer HTTP/1.1 alone"),
        }
    }

    /// HTTP/2 needs the scheme and authority (`:scheme`, `:authority`); HTTP/1.1 is sent the
    /// path alone (origin form).
    fn absolute_form(&self, req: &mut Request<Body>) {
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.inner.scheme.clone());
        parts.authority = Some(self.inner.authority.clone());
        parts.path_and_query = Some(path);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
        *req.version_mut() = Version::HTTP_2;
    }

    /// Opens a connection: TCP, TLS for `https`, then hyper's handshake; its task runs on
    /// this thread's runtime. `http1_only` for upgrades.
    async fn open(&self, http1_only: bool) -> Result<Opened, UpstreamError> {
        let shared = &*self.inner;
        let connect = TcpStream::connect((shared.host.as_str(), shared.port));
        let tcp = match tokio::time::timeout(shared.connect_timeout, connect).await {
            Ok(tcp) => tcp.map_err(UpstreamError::Connect)?,
            Err(_) => {
                let timed_out = std::io::ErrorKind::TimedOut.into();
                return Err(UpstreamError::Connect(timed_out));
            }
        };
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &shared.tls else {
            return handshake(TokioIo::new(tcp), shared.h2c && !http1_only).await;
        };
        let connector = if http1_only { &tls.http1 } else { &tls.any };
        let secured = connector.connect(tls.name.clone(), tcp);
        let stream = match tokio::time::timeout(shared.connect_timeout, secured).await {
            Ok(stream) => stream.map_err(UpstreamError::Tls)?,
            Err(_) => {
                let timed_out = std::io::ErrorKind::TimedOut.into();
                return Err(UpstreamError::Tls(timed_out));
            }
        };
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        handshake(TokioIo::new(stream), h2).await
    }

    /// This thread's pool for these connections (made on first use).
    fn pool(&self) -> Arc<Pool> {
        POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            let me = Arc::downgrade(&self.inner);
            if let Some((_, pool)) = pools.iter().find(|(owner, _)| owner.ptr_eq(&me)) {
                return Arc::clone(pool);
            }
            // Pools of connections no longer used (a gateway gone) go with their connections.
            pools.retain(|(owner, _)| owner.strong_count() > 0);
            let pool = Arc::new(Pool::default());
            pools.push((me, Arc::clone(&pool)));
            pool
        })
    }
}

/// hyper's handshake on `io`, HTTP/2 when `http2`; spawns the connection's task.
async fn handshake<IO>(io: TokioIo<IO>, http2: bool) -> Result<Opened, UpstreamError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if http2 {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(UpstreamError::Request)?;
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, "upstream HTTP/2 connection ended");
            }
        });
        return Ok(Opened::Http2(sender));
    }
    let (sender, conn) = http1::handshake(io).await.map_err(UpstreamError::Request)?;
    tokio::spawn(async move {
        if let Err(err) = conn.with_upgrades().await {
            tracing::debug!(error = %err, "upstream connection ended");
        }
    });
    Ok(Opened::Http1(sender))
}

thread_local! {
    /// This thread's pools, one per [`Connections`] in use here (one per gateway).
    static POOLS: RefCell<Vec<(Weak<Shared>, Arc<Pool>)>> = const { RefCell::new(Vec::new()) };
}

/// One thread's upstream connections. Its lock is only ever taken by that thread (and by
/// a [`Lease`] dropped elsewhere, which a worker's single-threaded runtime never does).
#[derive(Default)]
struct Pool {
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    /// Idle HTTP/1.1 connections, the most recently used last.
    idle: VecDeque<(http1::SendRequest<Body>, Instant)>,
    /// The HTTP/2 connection, once the upstream chose HTTP/2.
    http2: Option<http2::SendRequest<Body>>,
}

impl Pool {
    fn state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The HTTP/2 connection, while open.
    fn http2(&self) -> Option<http2::SendRequest<Body>> {
        let mut state = self.state();
        match &state.http2 {
            Some(h2) if !h2.is_closed() => Some(h2.clone()),
            Some(_) => {
                state.http2 = None;
                None
            }
            None => None,
        }
    }

    fn set_http2(&self, h2: http2::SendRequest<Body>) {
        self.state().http2 = Some(h2);
    }

    /// The most recently used idle connection still open, if any; expired ones are closed.
    fn checkout(&self) -> Option<http1::SendRequest<Body>> {
        let mut state = self.state();
        if state.idle.is_empty() {
            return None;
        }
        expire(&mut state.idle);
        while let Some((sender, _)) = state.idle.pop_back() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put_back(&self, sender: http1::SendRequest<Body>) {
        let mut state = self.state();
        expire(&mut state.idle);
        if state.idle.len() < MAX_IDLE && !sender.is_closed() {
            state.idle.push_back((sender, Instant::now()));
        }
    }
}

/// Closes the connections idle for longer than [`IDLE_TIMEOUT`] (the oldest are first).
fn expire(idle: &mut VecDeque<(http1::SendRequest<Body>, Instant)>) {
    let Some((_, oldest)) = idle.front() else {
        return;
    };
    let now = Instant::now();
    if now.duration_since(*oldest) < IDLE_TIMEOUT {
        return;
    }
    while idle
        .front()
        .is_some_and(|(_, since)| now.duration_since(*since) >= IDLE_TIMEOUT)
    {
        idle.pop_front();
    }
}

/// An HTTP/1.1 connection lent to one response: back to its pool by [`Leased`] when the
/// body was read to its end.
pub(crate) struct Lease {
    pool: Arc<Pool>,
    sender: http1::SendRequest<Body>,
}

/// A response body holding its connection's [`Lease`]: the connection goes back to the
/// pool when the body is dropped after its end, and is closed when dropped before.
pub(crate) struct Leased {
    inner: Incoming,
    lease: Option<Lease>,
    ended: bool,
}

impl Leased {
    pub(crate) fn new(inner: Incoming, lease: Option<Lease>) -> Self {
        Self {
            inner,
            lease,
            ended: false,
        }
    }
}

impl Drop for Leased {
    fn drop(&mut self) {
        use http_body::Body as _;
        if let Some(Lease { pool, sender }) = self.lease.take()
            && (self.ended || self.inner.is_end_stream())
        {
            pool.put_back(sender);
        }
    }
}

impl http_body::Body for Leased {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.ended = true;
        }
        polled.map(|frame| frame.map(|r| r.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
