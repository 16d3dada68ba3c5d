//! Every client connection's timeouts and the cap on open connections.
//!
//! A connection is in one of three phases, each with its own deadline (nginx's names):
//!
//! - **before its first request** (a silent TCP connection, the HTTP/2 preface alone, the
//!   first request's headers, either protocol): `client_header_timeout` from the accept;
//! - **between requests** (no request in flight): `keepalive_timeout` since the last response
//!   ended; on HTTP/1 a byte of the next request starts `client_header_timeout` instead, so a
//!   slow header is cut sooner; on HTTP/2 anything but a request (pings, settings, an
//!   unfinished header block) keeps nothing open;
//! - **serving** (a request in flight, its response body still being sent): no connection
//!   deadline; the request body's own timeout (`client_body_timeout`, in the proxy) and the
//!   upstream's bound it.
//!
//! When a deadline passes the connection is dropped (closed), as nginx does. An upgraded
//! connection (WebSocket) leaves hyper and these phases, but keeps its slot until it closes.
//! The slots are the cap (`--max-connections`): past it, a new connection is closed as soon as
//! it is accepted, counted in `stytch_gateway_connections_refused_total`, and logged (at
//! most once every 10 s).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Version;
use hyper::rt::{Read, ReadBufCursor, Write};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::metrics as gw_metrics;

/// Default time a client has to send a request's headers (and, on a new connection, to
/// start at all): nginx's `client_header_timeout`.
pub(crate) const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time a connection with no request in flight stays open: nginx's
/// `keepalive_timeout`.
pub(crate) const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// Default cap on open client connections per listener. Each proxied connection may hold a
/// second descriptor towards the upstream: 400 of them fit a 1,024-descriptor limit with
/// room for the listeners, Stytch, Redis and the upstream pool's idle connections.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 400;

/// How long a refused connection's log line silences the next ones.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The timeouts and cap of a listener's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionLimits {
    /// Time to send a request's headers; from the accept for the first request.
    pub(crate) header_timeout: Duration,
    /// Time a connection with no request in flight stays open.
    pub(crate) keepalive_timeout: Duration,
    /// Connections open at once (upgraded ones included).
    pub(crate) max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Why a connection's deadline passed (the `phase` label of the timeout metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No complete first request within the header timeout.
    FirstRequest,
    /// A started header not complete within the header timeout (HTTP/1).
    Header,
    /// No request within the keep-alive timeout.
    Idle,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::FirstRequest => "first_request",
            Self::Header => "header",
            Self::Idle => "idle",
        }
    }
}

struct State {
    accepted: Instant,
    in_flight: usize,
    served: u64,
    idle_since: Instant,
    header_since: Option<Instant>,
    http2: bool,
}

/// What a connection is doing, shared by its IO, its requests and its watcher.
///
/// Nothing here wakes the watcher ([`guard`]): a change of phase only ever moves the
/// deadline to at least `min(header, keep-alive timeout)` from now, so the watcher sleeps
/// at most that long and looks again (see [`guard`]); a request costs no wake-up and no
/// timer.
pub(crate) struct Activity {
    state: Mutex<State>,
    /// Idle on HTTP/1: the next byte read starts a request's headers.
    awaiting_bytes: AtomicBool,
}

impl std::fmt::Debug for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activity").finish_non_exhaustive()
    }
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            state: Mutex::new(State {
                accepted: now,
                in_flight: 0,
                served: 0,
                idle_since: now,
                header_since: None,
                http2: false,
            }),
            awaiting_bytes: AtomicBool::new(false),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: on an idle HTTP/1 connection, the next request's headers started.
    fn on_read(&self) {
        if self.awaiting_bytes.load(Ordering::Relaxed)
            && self.awaiting_bytes.swap(false, Ordering::Relaxed)
        {
            let mut state = self.state();
            if state.in_flight == 0 && !state.http2 {
                state.header_since.get_or_insert_with(Instant::now);
            }
        }
    }

    /// A request of `version` is being served until the returned guard drops.
    pub(crate) fn start(self: &Arc<Self>, version: Version) -> InFlight {
        let mut state = self.state();
        state.in_flight += 1;
        state.served += 1;
        state.header_since = None;
        state.http2 = version == Version::HTTP_2;
        drop(state);
        self.awaiting_bytes.store(false, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    fn end(&self) {
        let mut state = self.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
            state.header_since = None;
            self.awaiting_bytes.store(!state.http2, Ordering::Relaxed);
        }
    }

    /// When the connection must be closed if nothing changes, and why; `None` while a
    /// request is in flight.
    pub(crate) fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Phase)> {
        let state = self.state();
        if state.in_flight > 0 {
            return None;
        }
        Some(match (state.served, state.header_since) {
            (0, _) => (state.accepted + limits.header_timeout, Phase::FirstRequest),
            (_, Some(since)) => (since + limits.header_timeout, Phase::Header),
            (_, None) => (state.idle_since + limits.keepalive_timeout, Phase::Idle),
        })
    }
}

/// A request in flight on its connection, until dropped (with its response body).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Drives `conn` until it ends or its connection's deadline passes (then drops it, which
/// closes the socket). `peer` and `listener` only label the log line and the metric.
///
/// The watcher is never woken by the connection: whenever it looks (at `now`), it sleeps
/// until the deadline or `now + min(header, keep-alive timeout)`, whichever comes first.
/// Whatever happens meanwhile (a request starts or ends, the next one's first byte
/// arrives) sets a deadline no earlier than that, so none is missed, and each is kept to
/// the instant it falls due.
pub(crate) async fn guard<C, E>(
    conn: C,
    activity: &Activity,
    limits: &ConnectionLimits,
    listener: &'static str,
    peer: SocketAddr,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let look_again = limits.header_timeout.min(limits.keepalive_timeout);
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(conn, sleep);
    loop {
        tokio::select! {
            biased;
            ended = &mut conn => {
                if let Err(err) = ended {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
                return;
            }
            () = &mut sleep => {
                let now = Instant::now();
                let next = match activity.deadline(limits) {
                    Some((at, phase)) if at <= now => {
                        gw_metrics::record_connection_timeout(listener, phase.as_str());
                        tracing::debug!(%peer, phase = phase.as_str(), "connection timed out; closed");
                        return;
                    }
                    Some((at, _)) => at.min(now + look_again),
                    None => now + look_again,
                };
                sleep.as_mut().reset(next);
            }
        }
    }
}

/// The cap on a listener's open connections.
#[derive(Debug)]
pub(crate) struct Slots {
    listener: &'static str,
    semaphore: Arc<Semaphore>,
    max: usize,
    last_logged: Option<Instant>,
    refused_unlogged: u64,
}

/// An open connection's slot: released, and the open-connections gauge lowered, on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    listener: &'static str,
    _permit: OwnedSemaphorePermit,
    /// The open connections of the worker serving it ([`workers`](crate::workers)).
    load: Option<Arc<AtomicUsize>>,
}

impl Slot {
    /// Counts the connection in `load` (its worker's open connections) until it closes.
    pub(crate) fn count_in(&mut self, load: Arc<AtomicUsize>) {
        load.fetch_add(1, Ordering::Relaxed);
        if let Some(previous) = self.load.replace(load) {
            previous.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(load) = &self.load {
            load.fetch_sub(1, Ordering::Relaxed);
        }
        gw_metrics::record_connection_closed(self.listener);
    }
}

impl Slots {
    /// At most `max` connections of `listener` at once.
    pub(crate) fn new(listener: &'static str, max: usize) -> Self {
        Self {
            listener,
            semaphore: Arc::new(Semaphore::new(max)),
            max,
            last_logged: None,
            refused_unlogged: 0,
        }
    }

    /// A slot for a connection just accepted, or `None` (counted and logged) when all are
    /// taken: the caller closes the connection.
    pub(crate) fn take(&mut self, peer: SocketAddr) -> Option<Slot> {
        if let Ok(permit) = Arc::clone(&self.semaphore).try_acquire_owned() {
            gw_metrics::record_connection_opened(self.listener);
            return Some(Slot {
                listener: self.listener,
                _permit: permit,
                load: None,
            });
        }
        gw_metrics::record_connection_refused(self.listener, "max_connections");
        self.refused_unlogged += 1;
        let now = Instant::now();
        if self
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_INTERVAL)
        {
            tracing::warn!(listener = self.listener, max_connections = self.max, %peer,
                refused = self.refused_unlogged,
                "connection limit reached: new connections are closed (--max-connections)");
            self.last_logged = Some(now);
            self.refused_unlogged = 0;
        }
        None
    }
}

/// A client connection's IO: tells its [`Activity`] when bytes arrive, and holds its
/// [`Slot`] for as long as the socket lives (through an upgrade too).
#[derive(Debug)]
pub(crate) struct Tracked<IO> {
    io: IO,
    activity: Arc<Activity>,
    _slot: Slot,
}

impl<IO> Tracked<IO> {
    pub(crate) fn new(io: IO, activity: Arc<Activity>, slot: Slot) -> Self {
        Self {
            io,
            activity,
            _slot: slot,
        }
    }
}

impl<IO: Read + Unpin> Read for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if polled.is_ready() {
            self.activity.on_read();
        }
        polled
    }
}

impl<IO: Write + Unpin> Write for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// Warns when the process's open-file limit cannot hold `max_connections` proxied
/// connections (two descriptors each) and some spare (Linux: `/proc/self/limits`).
pub(crate) fn check_open_file_limit(max_connections: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|n| n.parse::<usize>().ok());
    let needed = max_connections.saturating_mul(2).saturating_add(64);
    if let Some(soft) = soft
        && soft < needed
    {
        tracing::warn!(
            open_file_limit = soft,
            max_connections,
            needed,
            "the open-file limit is below what --max-connections may use; lower it or raise the limit (ulimit -n)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_timeout: Duration::from_secs(60),
        keepalive_timeout: Duration::from_secs(75),
        max_connections: 2,
    };

    #[tokio::test(start_paused = true)]
    async fn each_phase_has_its_deadline() {
        // If this broke, a silent connection, an idle one or a slow header would stay open
        // forever (or a connection would be cut while serving a request).
        let activity = Activity::new();
        let accepted = Instant::now();
        let first = activity.deadline(&LIMITS).unwrap();
        assert_eq!(
            first,
            (accepted + LIMITS.header_timeout, Phase::FirstRequest)
        );
        let request = activity.start(Version::HTTP_11);
        assert_eq!(activity.deadline(&LIMITS), None);
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(request);
        let idle = Instant::now();
        assert_eq!(
            activity.deadline(&LIMITS).unwrap(),
            (idle + LIMITS.keepalive_timeout, Phase::Idle)
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        activity.on_read();
        let started = Instant::now();
        assert_eq!(
            activity.deadline(&LIMITS).unwrap(),
            (started + LIMITS.header_timeout, Phase::Header)
        );
        // HTTP/2: frames between requests (pings) are no request's header.
        drop(activity.start(Version::HTTP_2));
        activity.on_read();
        assert_eq!(activity.deadline(&LIMITS).unwrap().1, Phase::Idle);
    }

    #[tokio::test]
    async fn slots_cap_open_connections_and_come_back_on_close() {
        // If this broke, connections past the cap would be served (exhausting descriptors),
        // or a closed connection would never give its slot back.
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let mut slots = Slots::new("test", LIMITS.max_connections);
        let a = slots.take(peer).unwrap();
        let _b = slots.take(peer).unwrap();
        assert!(slots.take(peer).is_none());
        drop(a);
        assert!(slots.take(peer).is_some());
    }
}
